// ClusterGatewayClient against one real pumptwind on 127.0.0.1 (no PostgreSQL: what the
// client does with a pump's samples does not depend on cluster mode). Samples a session
// delivers ahead of the pump's earlier seqs (as after a move or a failover, when the earlier
// ones are still on their way through another session) are nacked OUT_OF_ORDER: the client
// sends them again once the earlier ones are there, and drops none.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "device_link/cluster_gateway_client.h"
#include "gtest/gtest.h"
#include "tests/support/server_process.h"
#include "tests/support/telemetry_fixtures.h"

namespace pumptwin {
namespace {

using testing::HealthySample;

constexpr char kGateway[] = "gw-client";
constexpr int64_t kT0 = 1767225600000;    // 2026-01-01
constexpr int64_t kStepMs = 3600 * 1000;  // hourly samples

std::vector<v1::TelemetrySample> Samples(const std::string& pump, uint64_t from, uint64_t to) {
  std::vector<v1::TelemetrySample> out;
  for (uint64_t q = from; q <= to; ++q) {
    out.push_back(HealthySample(pump, q, kT0 + static_cast<int64_t>(q) * kStepMs,
                                static_cast<double>(q) * 500.0 / 24));
  }
  return out;
}

class ClusterClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start().ok()) << server_.ReadLog();
    auto stub = v1::TwinService::NewStub(
        grpc::CreateChannel(server_.grpc_target(), grpc::InsecureChannelCredentials()));
    grpc::Status st =
        testing::RegisterHealthyPump(*stub, "CC-1", kGateway, "clinic-a", kT0 - kStepMs, kStepMs);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  device_link::ClusterGatewayClientOptions Options() const {
    device_link::ClusterGatewayClientOptions o;
    o.session.credentials = grpc::InsecureChannelCredentials();
    o.session.gateway_id = kGateway;
    o.seeds = {server_.grpc_target()};
    return o;
  }
  testing::TempDir dir_;
  testing::ServerProcess server_{testing::ServerProcessOptions{.data_dir = dir_.path() + "/d"}};
};

TEST_F(ClusterClientTest, SamplesAheadOfTheReorderWindowAreSentAgainNotDropped) {
  device_link::ClusterGatewayClient client(Options());
  client.Start();
  // Seqs 100-120 first: more than the reorder window (64) ahead of the pump's applied seq 0.
  ASSERT_TRUE(client.Send(Samples("CC-1", 100, 120)).ok());
  ASSERT_TRUE(client.Send(Samples("CC-1", 1, 99)).ok());
  ASSERT_TRUE(client.WaitUntilAllDone(absl::Seconds(60)));
  EXPECT_EQ(client.acked_seq("CC-1"), 120u);
  const device_link::ClusterGatewayStats st = client.stats();
  EXPECT_GT(st.samples_resent_out_of_order, 0u);
  client.Stop();
}

}  // namespace
}  // namespace pumptwin
