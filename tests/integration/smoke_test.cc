// Smoke test of the real pumptwind binary: start on ephemeral loopback ports, Health goes
// SERVING, a TwinService call through generated stubs answers, /metrics has build info,
// SIGTERM exits 0.
#include <signal.h>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "tests/support/server_process.h"

namespace pumptwin {
namespace {

using ::testing::HasSubstr;

TEST(SmokeTest, ServesHealthMetricsAndStopsCleanlyOnSigterm) {
  testing::TempDir dir;
  testing::ServerProcess server({.data_dir = dir.path() + "/data",
                                 // gRPC core waits for idle client connections to close
                                 // until the grace deadline: keep it short here.
                                 .extra_args = {"--shutdown_grace=1s"}});
  ASSERT_TRUE(server.Start().ok());

  auto channel = grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext hctx;
  hctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  hctx.set_wait_for_ready(true);
  grpc::Status hs = health->Check(&hctx, req, &resp);
  ASSERT_TRUE(hs.ok()) << hs.error_message();
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  // One TwinService call through the generated stub: the method answers with a precise
  // status (never a silent OK with empty data).
  auto twin = v1::TwinService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::GetPumpRequest get;
  get.set_name("pumps/does-not-exist");
  v1::Pump pump;
  grpc::Status s = twin->GetPump(&ctx, get, &pump);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_FALSE(s.error_message().empty());

  auto metrics = testing::HttpGet(server.metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(*metrics, HasSubstr("pumptwin_build_info{version=\""));
  EXPECT_THAT(*metrics, HasSubstr("pumptwin_ready 1"));
  EXPECT_THAT(*metrics, HasSubstr("pumptwin_grpc_requests_total{code=\""));
  EXPECT_THAT(*metrics, HasSubstr("method=\"pumptwin.v1.TwinService/GetPump\""));

  auto code = server.Stop(SIGTERM);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << server.ReadLog();
  EXPECT_THAT(server.ReadLog(), HasSubstr("event=stopped"));
  // Loopback without --tls_client_ca_file: gateways are not authenticated, and the log says so.
  EXPECT_THAT(server.ReadLog(), HasSubstr("event=gateway_auth_none"));
}

TEST(SmokeTest, RefusesPlaintextOnNonLoopbackAddress) {
  testing::TempDir dir;
  // --listen given twice: the later one (a public address) wins; nothing is bound.
  testing::ServerProcess server({.data_dir = dir.path() + "/data",
                                 .extra_args = {"--listen=0.0.0.0:0"},
                                 .start_timeout = absl::Seconds(10)});
  absl::Status s = server.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(server.ReadLog(), HasSubstr("refusing to serve plaintext gRPC"));
}

}  // namespace
}  // namespace pumptwin
