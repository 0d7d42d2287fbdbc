// Shared fixture of the tests/therapy integration tests: one real pumptwind per test
// suite (ephemeral loopback ports, own data dir), TwinService and DeviceGateway stubs,
// and helpers to register pumps and ingest samples (waiting for the durable Ack).
// Not thread-safe except the stubs themselves (gRPC stubs are thread-safe).
#ifndef PUMPTWIN_TESTS_THERAPY_THERAPY_FIXTURE_H_
#define PUMPTWIN_TESTS_THERAPY_THERAPY_FIXTURE_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "pumptwin/v1/gateway.grpc.pb.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "tests/support/server_process.h"

namespace pumptwin::therapy_test {

inline std::unique_ptr<grpc::ClientContext> Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  ctx->set_wait_for_ready(true);
  return ctx;
}

inline int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

struct Server {
  explicit Server(std::vector<std::string> extra_args = {}) {
    extra_args.push_back("--shutdown_grace=1s");
    process = std::make_unique<testing::ServerProcess>(testing::ServerProcessOptions{
        .data_dir = dir.path() + "/data", .extra_args = std::move(extra_args)});
  }
  absl::Status Start() {
    absl::Status s = process->Start();
    if (!s.ok()) return s;
    channel = grpc::CreateChannel(process->grpc_target(), grpc::InsecureChannelCredentials());
    twin = v1::TwinService::NewStub(channel);
    gateway = v1::DeviceGateway::NewStub(channel);
    return s;
  }
  testing::TempDir dir;
  std::unique_ptr<testing::ServerProcess> process;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::TwinService::Stub> twin;
  std::unique_ptr<v1::DeviceGateway::Stub> gateway;
};

inline v1::Prescription Morphine(double rate_ul_per_day, double conc_ug_per_ml = 10000) {
  v1::Prescription rx;
  rx.set_drug("morphine");
  rx.set_concentration_ug_per_ml(conc_ug_per_ml);
  rx.set_mode(v1::THERAPY_MODE_SIMPLE_CONTINUOUS);
  rx.set_rate_ul_per_day(rate_ul_per_day);
  return rx;
}

// Registers a programmable peristaltic pump (20 mL, 50 cm x 0.5 mm catheter) implanted a
// day ago, on morphine 10 mg/mL at 500 uL/day, bound to gateway "gw-therapy".
inline grpc::Status RegisterPump(v1::TwinService::Stub& twin, const std::string& id,
                                 const std::string& clinic, v1::Pump* out = nullptr) {
  v1::RegisterPumpRequest req;
  v1::Pump* p = req.mutable_pump();
  p->set_pump_id(id);
  p->set_profile(v1::PUMP_PROFILE_PROGRAMMABLE_PERISTALTIC);
  p->set_model_name("test 20 mL");
  p->set_reservoir_capacity_ul(20000);
  p->set_catheter_length_cm(50);
  p->set_catheter_inner_diameter_mm(0.5);
  p->set_implant_time_ms(NowMs() - 24 * 3600 * 1000);
  p->set_patient_ref("patient-" + id);
  p->set_clinic(clinic);
  p->add_gateway_ids("gw-therapy");
  *req.mutable_initial_prescription() = Morphine(500);
  req.set_initial_reservoir_ul(18000);
  req.set_reason("test implant");
  v1::Pump resp;
  auto ctx = Ctx();
  grpc::Status s = twin.RegisterPump(ctx.get(), req, &resp);
  if (out != nullptr) *out = resp;
  return s;
}

// Sends one frame of `samples` over a fresh gateway session and waits (bounded by the
// deadline) for its Ack; collects Nacks. Returns false if no Ack arrived.
inline bool Ingest(v1::DeviceGateway::Stub& gw, const std::vector<v1::TelemetrySample>& samples,
                   std::vector<v1::Nack>* nacks) {
  auto ctx = Ctx();
  auto stream = gw.Connect(ctx.get());
  v1::GatewayMessage hello;
  hello.mutable_hello()->set_gateway_id("gw-therapy");
  if (!stream->Write(hello)) return false;
  v1::ServerMessage msg;
  if (!stream->Read(&msg) || !msg.has_welcome()) return false;
  v1::GatewayMessage frame;
  frame.mutable_frame()->set_frame_id(7);
  for (const auto& s : samples) *frame.mutable_frame()->add_samples() = s;
  if (!stream->Write(frame)) return false;
  bool acked = false;
  for (int i = 0; i < 10000 && stream->Read(&msg); ++i) {
    if (msg.has_nack() && nacks != nullptr) nacks->push_back(msg.nack());
    if (msg.has_ack() && msg.ack().frame_id() == 7) {
      acked = true;
      break;
    }
  }
  stream->WritesDone();
  ctx->TryCancel();
  return acked;
}

// Plausible sample `seq` of a pump at device time `t_ms`.
inline v1::TelemetrySample MakeSample(const std::string& pump_id, uint64_t seq, int64_t t_ms) {
  v1::TelemetrySample s;
  s.set_pump_id(pump_id);
  s.set_seq(seq);
  s.set_device_time_ms(t_ms);
  s.set_calculated_reservoir_ul(17900 - static_cast<double>(seq) * 0.01);
  return s;
}

// A test suite sharing one server (started once per suite).
class ServerSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new Server();
    ASSERT_TRUE(server_->Start().ok());
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  v1::TwinService::Stub& twin() { return *server_->twin; }

  static inline Server* server_ = nullptr;
};

}  // namespace pumptwin::therapy_test

#endif  // PUMPTWIN_TESTS_THERAPY_THERAPY_FIXTURE_H_
