// The transport's receive limit against the real pumptwind over 127.0.0.1: a message over
// what the protocol needs is refused RESOURCE_EXHAUSTED by gRPC without being parsed or
// reaching a handler (a caller need not be authenticated to send one), while the largest
// gateway frame the Welcome allows still passes. gRPC's default limit (4 MiB) would let
// both 3 MiB messages through.
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "pumptwin/v1/gateway.grpc.pb.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "tests/support/raw_stream.h"
#include "tests/support/server_process.h"

namespace pumptwin {
namespace {

class ReceiveLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<testing::ServerProcess>(testing::ServerProcessOptions{
        .data_dir = dir_.path() + "/data", .extra_args = {"--shutdown_grace=1s"}});
    ASSERT_TRUE(server_->Start().ok()) << server_->ReadLog();
    channel_ = grpc::CreateChannel(server_->grpc_target(), grpc::InsecureChannelCredentials());
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(ReceiveLimitTest, OversizedRequestIsRefusedBeforeAnyHandler) {
  // A GetPump with a short name and 3 MiB of unknown field: under gRPC's default limit
  // (4 MiB) the handler would parse it and answer NOT_FOUND.
  v1::GetPumpRequest req;
  req.set_name("pumps/p1");
  req.GetReflection()->MutableUnknownFields(&req)->AddLengthDelimited(1000,
                                                                      std::string(3 << 20, 'x'));
  auto stub = v1::TwinService::NewStub(channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::Pump pump;
  grpc::Status s = stub->GetPump(&ctx, req, &pump);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
}

TEST_F(ReceiveLimitTest, OversizedGatewayMessageIsRefused) {
  // 3 MiB of bytes on DeviceGateway.Connect: over a full frame of the largest samples.
  testing::RawBidiStream s(channel_, "/pumptwin.v1.DeviceGateway/Connect");
  s.WriteBytes(std::string(3 << 20, '\x0a'));  // may fail once the server has refused it
  std::vector<v1::ServerMessage> got;
  grpc::Status st = s.Finish(&got);
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
}

TEST_F(ReceiveLimitTest, LargestFrameTheWelcomeAllowsIsReceived) {
  testing::RawBidiStream s(channel_, "/pumptwin.v1.DeviceGateway/Connect");
  v1::GatewayMessage hello;
  hello.mutable_hello()->set_gateway_id("gw1");
  ASSERT_TRUE(s.WriteMessage(hello));
  v1::ServerMessage m;
  ASSERT_TRUE(s.Read(&m));
  ASSERT_TRUE(m.has_welcome());
  const uint32_t max_samples = m.welcome().max_samples_per_frame();
  ASSERT_GT(max_samples, 0u);

  // Every sample at the documented limits: a 64-byte pump id, every field, 64 events.
  v1::GatewayMessage frame;
  frame.mutable_frame()->set_frame_id(1);
  for (uint32_t i = 0; i < max_samples; ++i) {
    v1::TelemetrySample* t = frame.mutable_frame()->add_samples();
    t->set_pump_id(std::string(63, 'p') + static_cast<char>('a' + i % 26));
    t->set_seq(UINT64_MAX);
    t->set_device_time_ms(-1);
    t->set_calculated_reservoir_ul(1.5);
    t->set_measured_reservoir_ul(1.5);
    t->set_cumulative_drive_units(UINT64_MAX);
    t->set_outlet_pressure_mmhg(1.5);
    t->set_stroke_pressure_peak_mmhg(1.5);
    t->set_csf_pulsation_mmhg(1.5);
    t->set_battery_voltage_v(1.5);
    t->set_battery_current_ua(1.5);
    t->set_motor_current_ma(1.5);
    t->set_temperature_c(1.5);
    t->set_alarm_flags(UINT32_MAX);
    for (int e = 0; e < 64; ++e) {
      v1::DeviceEvent* ev = t->add_events();
      ev->set_type(static_cast<v1::DeviceEventType>(1));
      ev->set_device_time_ms(-1);
      ev->set_value_ul(1.5);
    }
  }
  ASSERT_GT(frame.ByteSizeLong(), size_t{1} << 20);  // above the API's own limit
  ASSERT_TRUE(s.WriteMessage(frame));
  // Unknown pumps: Nacks, then the frame's Ack. What matters is that it was read.
  std::vector<v1::ServerMessage> got;
  grpc::Status st = s.Finish(&got);
  EXPECT_TRUE(st.ok()) << st.error_code() << " " << st.error_message();
  ASSERT_FALSE(got.empty());
  EXPECT_TRUE(got.back().has_ack()) << got.back().DebugString();
}

}  // namespace
}  // namespace pumptwin
