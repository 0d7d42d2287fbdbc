// Exactly-once into the twin: the same telemetry sent once in order to pump A, and to
// pump B with duplicates, out of order within the reorder window, and across a
// reconnect (a new gateway session resending what it had), must leave both twins in the
// same state. Also: a gap beyond the window is refused, never silently dropped.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/ingest/ingest_fixture.h"
#include "tests/support/server_process.h"

namespace pumptwin::testing {
namespace {

// The physics of two twins fed the same samples must agree (server-time fields such as
// clock skew legitimately differ between the pumps).
void ExpectSameModelState(const v1::TwinState& a, const v1::TwinState& b) {
  EXPECT_EQ(a.last_seq(), b.last_seq());
  EXPECT_EQ(a.device_time_ms(), b.device_time_ms());
  EXPECT_DOUBLE_EQ(a.calculated_reservoir_ul(), b.calculated_reservoir_ul());
  EXPECT_DOUBLE_EQ(a.estimated_reservoir_ul(), b.estimated_reservoir_ul());
  EXPECT_DOUBLE_EQ(a.delivered_total_ul(), b.delivered_total_ul());
  EXPECT_DOUBLE_EQ(a.delivered_24h_ug(), b.delivered_24h_ug());
  EXPECT_DOUBLE_EQ(a.delivery_ratio(), b.delivery_ratio());
  EXPECT_DOUBLE_EQ(a.battery_charge_fraction(), b.battery_charge_fraction());
  EXPECT_DOUBLE_EQ(a.pressure_baseline_mmhg(), b.pressure_baseline_mmhg());
}

TEST(ExactlyOnceTest, DuplicatesReorderAndReconnectApplyEachSampleOnce) {
  TempDir dir;
  ServerProcess server({.data_dir = dir.path() + "/data"});
  {
    absl::Status started = server.Start();
    ASSERT_TRUE(started.ok()) << started;
  }
  auto stub = v1::TwinService::NewStub(
      grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials()));
  ASSERT_TRUE(RegisterSensorizedPump(*stub, "eo-a", "gw-eo").ok());
  ASSERT_TRUE(RegisterSensorizedPump(*stub, "eo-b", "gw-eo").ok());

  {
    auto client = MakeGateway(server.grpc_target(), "gw-eo");
    client->Start();
    ASSERT_TRUE(client->WaitUntilWelcomed(1, absl::Seconds(20)));
    // A: 1..120 once, in order.
    for (uint64_t s = 1; s <= 120; s += 20)
      ASSERT_TRUE(client->Send(Samples("eo-a", s, s + 19)).ok());
    // B: 1..40 in order, then 41..60 reversed in one frame (within the window),
    // then 30..70 (duplicates 30..60 plus new 61..70), then 71..80 twice.
    ASSERT_TRUE(client->Send(Samples("eo-b", 1, 40)).ok());
    auto rev = Samples("eo-b", 41, 60);
    std::reverse(rev.begin(), rev.end());
    ASSERT_TRUE(client->Send(rev).ok());
    ASSERT_TRUE(client->Send(Samples("eo-b", 30, 70)).ok());
    ASSERT_TRUE(client->Send(Samples("eo-b", 71, 80)).ok());
    ASSERT_TRUE(client->Send(Samples("eo-b", 71, 80)).ok());
    ASSERT_TRUE(client->WaitUntilAllDone(absl::Seconds(30)));
    EXPECT_EQ(client->stats().samples_nacked, 0u);
    EXPECT_EQ(client->acked_seq("eo-b"), 80u);
    client->Stop();
  }
  {
    // A new session (reconnect): it resends 61..100 (61..80 already stored) then 101..120.
    auto client = MakeGateway(server.grpc_target(), "gw-eo");
    client->Start();
    ASSERT_TRUE(client->WaitUntilWelcomed(1, absl::Seconds(20)));
    EXPECT_EQ(client->acked_seq("eo-b"), 80u) << "the Welcome must carry the resume point";
    ASSERT_TRUE(client->Send(Samples("eo-b", 61, 100)).ok());
    ASSERT_TRUE(client->Send(Samples("eo-b", 101, 120)).ok());
    ASSERT_TRUE(client->WaitUntilAllDone(absl::Seconds(30)));
    EXPECT_EQ(client->acked_seq("eo-b"), 120u);
    client->Stop();
  }
  auto a = GetTwin(*stub, "eo-a");
  auto b = GetTwin(*stub, "eo-b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->last_seq(), 120u);
  ExpectSameModelState(*a, *b);
  EXPECT_GT(a->delivered_total_ul(), 0.0);
}

TEST(ExactlyOnceTest, GapBeyondTheReorderWindowIsNackedOutOfOrder) {
  TempDir dir;
  ServerProcess server({.data_dir = dir.path() + "/data", .extra_args = {"--reorder_window=8"}});
  {
    absl::Status started = server.Start();
    ASSERT_TRUE(started.ok()) << started;
  }
  auto stub = v1::TwinService::NewStub(
      grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials()));
  ASSERT_TRUE(RegisterSensorizedPump(*stub, "gap-a", "gw-gap").ok());
  absl::Mutex mu;
  std::vector<v1::Nack> nacks;
  device_link::GatewayClientOptions o;
  o.target = server.grpc_target();
  o.credentials = grpc::InsecureChannelCredentials();
  o.gateway_id = "gw-gap";
  o.on_nack = [&](const v1::Nack& n) {
    absl::MutexLock l(&mu);
    nacks.push_back(n);
  };
  device_link::GatewayClient client(std::move(o));
  client.Start();
  ASSERT_TRUE(client.WaitUntilWelcomed(1, absl::Seconds(20)));
  ASSERT_TRUE(client.Send(Samples("gap-a", 1, 5)).ok());
  ASSERT_TRUE(client.Send({SampleAt("gap-a", 50)}).ok());  // 45 ahead of a window of 8
  ASSERT_TRUE(client.WaitUntilAllDone(absl::Seconds(30)));
  client.Stop();
  absl::MutexLock l(&mu);
  ASSERT_EQ(nacks.size(), 1u);
  EXPECT_EQ(nacks[0].seq(), 50u);
  EXPECT_EQ(nacks[0].reason(), v1::NACK_REASON_OUT_OF_ORDER);
  EXPECT_THAT(nacks[0].message(), ::testing::HasSubstr("seq=50"));
  auto twin = GetTwin(*stub, "gap-a");
  ASSERT_TRUE(twin.ok());
  EXPECT_EQ(twin->last_seq(), 5u);
}

}  // namespace
}  // namespace pumptwin::testing
