// DeviceGateway.Connect with bytes that are not a valid GatewayMessage (garbage, strings that
// are not UTF-8), sent raw over real gRPC on 127.0.0.1: the stream ends with a status that
// names the problem, never with OK and the rest of the stream unanswered.
#include <string>
#include <vector>

#include "device_link/fake_sink.h"
#include "device_link/gateway_service.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/device_link/test_util.h"
#include "tests/support/raw_stream.h"

namespace pumptwin::device_link {
namespace {

using ::testing::HasSubstr;
using testing::MakeSamples;
using testing::TestServer;
using v1::GatewayMessage;
using v1::ServerMessage;

constexpr char kConnect[] = "/pumptwin.v1.DeviceGateway/Connect";

// The serialized message with the last byte of the string field value `value` replaced by
// 0xff, which is never valid UTF-8.
std::string WithInvalidUtf8(const GatewayMessage& m, const std::string& value) {
  std::string bytes = m.SerializeAsString();
  const size_t at = bytes.find(value);
  if (at != std::string::npos) bytes[at + value.size() - 1] = '\xff';
  return bytes;
}

GatewayMessage Hello(const std::string& gateway) {
  GatewayMessage m;
  m.mutable_hello()->set_gateway_id(gateway);
  return m;
}

GatewayMessage Frame(uint64_t id, const std::string& pump, uint64_t seq) {
  GatewayMessage m;
  m.mutable_frame()->set_frame_id(id);
  for (auto& s : MakeSamples(pump, seq, 1)) *m.mutable_frame()->add_samples() = std::move(s);
  return m;
}

class GatewayParseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sink_.RegisterPump("p1", {"gw1"});
    server_ = TestServer::Start(&sink_, {});
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials());
  }

  FakeSink sink_;
  std::unique_ptr<TestServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(GatewayParseTest, GarbageFirstMessageIsFailedPrecondition) {
  pumptwin::testing::RawBidiStream s(channel_, kConnect);
  ASSERT_TRUE(s.WriteBytes(std::string("\x0a\xff\xff\xff\x07", 5)));
  std::vector<ServerMessage> got;
  grpc::Status st = s.Finish(&got);
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("not a valid GatewayMessage"));
  EXPECT_EQ(sink_.submits(), 0u);
}

TEST_F(GatewayParseTest, HelloWithNonUtf8GatewayIdIsRefused) {
  pumptwin::testing::RawBidiStream s(channel_, kConnect);
  ASSERT_TRUE(s.WriteBytes(WithInvalidUtf8(Hello("gw-utf8#"), "gw-utf8#")));
  std::vector<ServerMessage> got;
  grpc::Status st = s.Finish(&got);
  EXPECT_TRUE(got.empty());  // no Welcome for an id the server could not read
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("UTF-8"));
}

TEST_F(GatewayParseTest, UnparseableLaterFrameEndsTheStreamWithInvalidArgument) {
  pumptwin::testing::RawBidiStream s(channel_, kConnect);
  ASSERT_TRUE(s.WriteMessage(Hello("gw1")));
  ServerMessage m;
  ASSERT_TRUE(s.Read(&m));
  ASSERT_TRUE(m.has_welcome());
  ASSERT_TRUE(s.WriteMessage(Frame(1, "p1", 1)));
  // Frame 1 is answered before the bad message is sent.
  ASSERT_TRUE(s.Read(&m));
  ASSERT_TRUE(m.has_ack()) << m.DebugString();
  EXPECT_EQ(m.ack().frame_id(), 1u);

  ASSERT_TRUE(s.WriteBytes(WithInvalidUtf8(Frame(2, "p-utf8#", 2), "p-utf8#")));  // message 3
  s.WriteMessage(Frame(3, "p1", 2));  // may fail once the server has ended the stream
  std::vector<ServerMessage> got;
  grpc::Status st = s.Finish(&got);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("message 3 of the stream is not a valid"));
  // Frames after the bad message were not read: no Ack, so the gateway still holds them.
  for (const ServerMessage& r : got) EXPECT_FALSE(r.has_ack() && r.ack().frame_id() == 3u);
  EXPECT_EQ(sink_.submits(), 1u);
}

TEST(MaxGatewayMessageBytesTest, CoversAFullFrameOfLargestSamples) {
  FrameLimits limits;
  limits.max_samples_per_frame = 10;
  GatewayMessage m;
  m.mutable_frame()->set_frame_id(UINT64_MAX);
  for (int i = 0; i < 10; ++i) {
    v1::TelemetrySample* s = m.mutable_frame()->add_samples();
    *s = MakeSamples(std::string(limits.sample.max_pump_id_bytes, 'p'), 1, 1)[0];
    s->set_seq(UINT64_MAX);
    s->set_device_time_ms(-1);  // the longest varint
    s->set_cumulative_drive_units(UINT64_MAX);
    s->set_alarm_flags(UINT32_MAX);
    for (size_t e = 0; e < limits.sample.max_events_per_sample; ++e) {
      v1::DeviceEvent* ev = s->add_events();
      ev->set_type(static_cast<v1::DeviceEventType>(1));
      ev->set_device_time_ms(-1);
      ev->set_value_ul(1.5);
    }
  }
  const size_t bound = MaxGatewayMessageBytes(limits);
  EXPECT_GE(bound, m.ByteSizeLong());
  EXPECT_LT(bound, m.ByteSizeLong() + (size_t{128} << 10));  // a bound, not a blank cheque
}

}  // namespace
}  // namespace pumptwin::device_link
