// LeaseKeeper against PostgreSQL (started by the test): replicas share the shards fairly,
// a replica that joins gets its share from the others, a replica that stops renewing loses
// its shards to the others once its leases and heartbeat expire, and a replica's fence
// covers only shards it holds. Expiry is moved into the past in the database (what time
// passing does) instead of waiting for it.
#include "server/cluster/lease_keeper.h"

#include <libpq-fe.h>

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/store/postgres_test_server.h"

namespace pumptwin::cluster {
namespace {

using pumptwin::testing::NextTestSchema;
using pumptwin::testing::SharedPostgresTestServer;

constexpr uint32_t kShards = 8;

class LeaseKeeperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = SharedPostgresTestServer();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *server;
    schema_ = NextTestSchema();
  }

  // A replica: its own store connection pool and keeper; records what it gained and lost.
  struct Replica {
    std::unique_ptr<store::PostgresStore> store;
    std::unique_ptr<LeaseKeeper> keeper;
    std::set<uint32_t> serving;  // per on_gained / on_lost
  };

  std::unique_ptr<Replica> Join(const std::string& name) {
    auto r = std::make_unique<Replica>();
    auto store = store::PostgresStore::Open({.dsn = server_->Dsn(), .schema = schema_});
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return nullptr;
    r->store = *std::move(store);
    Replica* raw = r.get();
    r->keeper = std::make_unique<LeaseKeeper>(
        r->store.get(),
        LeaseKeeperOptions{
            .replica = name,
            .shard_count = kShards,
            .ttl = absl::Seconds(30),
            .on_gained =
                [raw](const std::vector<uint32_t>& s) { raw->serving.insert(s.begin(), s.end()); },
            .on_lost =
                [raw](const std::vector<uint32_t>& s) {
                  for (uint32_t shard : s) raw->serving.erase(shard);
                },
        });
    EXPECT_TRUE(r->keeper->Start().ok());
    return r;
  }

  static RoundResult RoundOk(Replica& r) {
    auto result = r.keeper->Round();
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : RoundResult();
  }

  // As if `owner` had stopped (paused, partitioned, killed) for longer than the TTL.
  void Lapse(const std::string& owner) {
    PGconn* c = PQconnectdb(server_->Dsn().c_str());
    for (const char* table : {"shard_leases", "replicas"}) {
      PGresult* r = PQexec(c, absl::StrCat("UPDATE \"", schema_, "\".", table,
                                           " SET expires_at = clock_timestamp() - interval '1 s' "
                                           "WHERE owner = '",
                                           owner, "'")
                                  .c_str());
      EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << PQresultErrorMessage(r);
      PQclear(r);
    }
    PQfinish(c);
  }

  // Replicas "a" and "b" after the rounds that settle them on half of the shards each.
  std::pair<std::unique_ptr<Replica>, std::unique_ptr<Replica>> TwoSettledReplicas() {
    auto a = Join("a");
    auto b = Join("b");
    if (a == nullptr || b == nullptr) return {nullptr, nullptr};
    for (int round = 0; round < 3; ++round) {  // a drains half, releases it, b takes it
      RoundOk(*a);
      RoundOk(*b);
    }
    return {std::move(a), std::move(b)};
  }

  // A pump id in virtual shard `shard`.
  static std::string PumpOfShard(uint32_t shard) {
    for (int i = 0;; ++i) {
      std::string p = absl::StrCat("p", i);
      if (store::VirtualShardOf(p, kShards) == shard) return p;
    }
  }

  static std::set<uint32_t> Shards(const Replica& r) {
    std::set<uint32_t> out;
    for (const store::ShardLease& l : r.keeper->Held()) out.insert(l.shard);
    return out;
  }

  pumptwin::testing::PostgresTestServer* server_ = nullptr;
  std::string schema_;
};

TEST_F(LeaseKeeperTest, AJoiningReplicaGetsItsFairShareAndNoShardHasTwoOwners) {
  auto a = Join("a");
  ASSERT_NE(a, nullptr);
  RoundResult first = RoundOk(*a);
  EXPECT_EQ(first.gained.size(), kShards) << "alone, a serves every shard";
  EXPECT_EQ(a->serving.size(), kShards);

  auto b = Join("b");
  ASSERT_NE(b, nullptr);
  RoundResult b1 = RoundOk(*b);
  EXPECT_EQ(b1.live_replicas, 2u);
  EXPECT_TRUE(b1.gained.empty()) << "b took shards a holds";
  RoundResult a2 = RoundOk(*a);
  EXPECT_EQ(a2.draining.size(), kShards / 2) << "a kept more than its share";
  EXPECT_TRUE(a2.released.empty()) << "released before its commits under way could land";
  EXPECT_EQ(a->serving.size(), kShards / 2) << "a still serves what drains";
  // A draining shard is not served, but a commit under its lease still lands.
  const uint32_t drained = a2.draining.front();
  EXPECT_FALSE(a->keeper->Owns(drained));
  auto late = a->keeper->FenceFor({drained});
  ASSERT_TRUE(late.ok()) << late.status();
  store::WriteGroup g;
  g.pumps.emplace_back(PumpOfShard(drained), "registration");
  EXPECT_TRUE(a->store->CommitFenced(g, *late).ok());
  RoundResult b2 = RoundOk(*b);
  EXPECT_TRUE(b2.gained.empty()) << "b took shards a still drains";
  RoundResult a3 = RoundOk(*a);
  EXPECT_EQ(a3.released.size(), kShards / 2);
  EXPECT_EQ(a->keeper->FenceFor({drained}).status().code(), absl::StatusCode::kFailedPrecondition);
  RoundResult b3 = RoundOk(*b);
  EXPECT_EQ(b3.gained.size(), kShards / 2);

  const std::set<uint32_t> sa = Shards(*a), sb = Shards(*b);
  EXPECT_EQ(sa.size() + sb.size(), kShards);
  for (uint32_t s : sa) EXPECT_FALSE(sb.contains(s)) << "shard " << s << " has two owners";
  EXPECT_EQ(a->serving, sa);
  EXPECT_EQ(b->serving, sb);
  // Steady state: further rounds move nothing.
  RoundResult a4 = RoundOk(*a), b4 = RoundOk(*b);
  EXPECT_TRUE(a4.gained.empty() && a4.lost.empty() && a4.draining.empty() && a4.released.empty());
  EXPECT_TRUE(b4.gained.empty() && b4.lost.empty() && b4.draining.empty() && b4.released.empty());
}

TEST_F(LeaseKeeperTest, AReplicaThatStopsLosesItsShardsAndItsFence) {
  auto [a, b] = TwoSettledReplicas();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const std::set<uint32_t> of_a = Shards(*a);
  ASSERT_EQ(of_a.size(), kShards / 2);
  const uint32_t one_of_a = *of_a.begin();
  auto fence = a->keeper->FenceFor({one_of_a});
  ASSERT_TRUE(fence.ok()) << fence.status();

  Lapse("a");  // a paused past its TTL
  RoundResult b_takes = RoundOk(*b);
  EXPECT_EQ(b_takes.live_replicas, 1u);
  EXPECT_EQ(std::set<uint32_t>(b_takes.gained.begin(), b_takes.gained.end()), of_a);
  EXPECT_EQ(Shards(*b).size(), kShards);

  // a comes back: its renewal returns nothing, it stops serving; its old fence is refused.
  store::WriteGroup g;
  g.pumps.emplace_back("p", "registration");
  absl::Status stale = a->store->CommitFenced(g, *fence);
  EXPECT_EQ(stale.code(), absl::StatusCode::kFailedPrecondition) << stale;
  RoundResult back = RoundOk(*a);
  EXPECT_EQ(std::set<uint32_t>(back.lost.begin(), back.lost.end()), of_a);
  EXPECT_TRUE(a->serving.empty());
  EXPECT_FALSE(a->keeper->Owns(one_of_a));
  EXPECT_EQ(a->keeper->FenceFor({one_of_a}).status().code(), absl::StatusCode::kFailedPrecondition);
  // b's fence for the same shard is current: its commit goes through.
  auto b_fence = b->keeper->FenceFor({one_of_a});
  ASSERT_TRUE(b_fence.ok()) << b_fence.status();
  EXPECT_TRUE(b->store->CommitFenced(g, *b_fence).ok());
}

TEST_F(LeaseKeeperTest, ACleanShutdownHandsTheShardsOverAtOnce) {
  auto [a, b] = TwoSettledReplicas();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->keeper->ReleaseAll().ok());
  EXPECT_TRUE(a->serving.empty());
  Lapse("a");  // its heartbeat ends with the process
  RoundResult b_takes = RoundOk(*b);
  EXPECT_EQ(b_takes.gained.size(), kShards / 2);
  EXPECT_EQ(Shards(*b).size(), kShards);
}

}  // namespace
}  // namespace pumptwin::cluster
