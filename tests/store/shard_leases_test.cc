// Cluster mode's virtual-shard leases and fenced commits on PostgreSQL (postgres_store.h,
// ShardLease): a lease is held by one replica at a time, each takeover raises its epoch, and a
// replica that lost a lease writes nothing under it, not even a commit racing the takeover.
// Lease expiry is time on the database's clock: tests expire a lease by moving its expiry into
// the past (what time passing does), or wait on the database clock for a short lease.
#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/store/postgres_store.h"
#include "store_test_util.h"
#include "tests/store/postgres_test_server.h"

namespace pumptwin::store {
namespace {

using pumptwin::testing::NextTestSchema;
using pumptwin::testing::SharedPostgresTestServer;
using testing::NumberedGroup;

constexpr uint32_t kShards = 8;
constexpr absl::Duration kTtl = absl::Seconds(30);

// One connection of the test's own (transactions left open on purpose).
class Sql {
 public:
  explicit Sql(const std::string& dsn) : c_(PQconnectdb(dsn.c_str())) {}
  ~Sql() { PQfinish(c_); }
  // Runs `sql`; the first value of the first row, or the error message prefixed "error: ".
  std::string Run(const std::string& sql) {
    PGresult* r = PQexec(c_, sql.c_str());
    std::string out;
    const ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK && PQntuples(r) > 0) {
      out = PQgetvalue(r, 0, 0);
    } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      out = absl::StrCat("error: ", PQresultErrorMessage(r));
    }
    PQclear(r);
    return out;
  }

 private:
  PGconn* c_;
};

class ShardLeasesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = SharedPostgresTestServer();
    ASSERT_TRUE(server.ok()) << server.status();
    dsn_ = (*server)->Dsn();
    schema_ = NextTestSchema();
    auto a = PostgresStore::Open({.dsn = dsn_, .schema = schema_});
    auto b = PostgresStore::Open({.dsn = dsn_, .schema = schema_});
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    a_ = *std::move(a);
    b_ = *std::move(b);
    ASSERT_TRUE(a_->EnsureShardLeases(kShards).ok());
    ASSERT_TRUE(b_->EnsureShardLeases(kShards).ok());
  }

  // Moves the expiry of `shard` into the past, as time passing beyond it would.
  void Expire(uint32_t shard) {
    Sql sql(dsn_);
    EXPECT_EQ(sql.Run(absl::StrCat("UPDATE \"", schema_,
                                   "\".shard_leases SET expires_at = clock_timestamp() - "
                                   "interval '1 second' WHERE shard = ",
                                   shard)),
              "");
  }

  static LeaseFence FenceOf(const std::string& owner, const ShardLease& lease) {
    return LeaseFence{owner, {{lease.shard, lease.epoch}}};
  }

  // `group` with its alert and audit entries renumbered from `cursor` on: the next entries of
  // the one cluster-wide log (a fenced commit must append right after its last entry).
  static WriteGroup AppendingAt(WriteGroup group, uint64_t cursor) {
    for (auto& [c, bytes] : group.alerts) c = cursor++;
    cursor -= group.alerts.size();
    for (auto& [c, bytes] : group.audit) c = cursor++;
    return group;
  }

  static ShardLease LeaseOf(const std::vector<ShardLease>& leases, uint32_t shard) {
    for (const ShardLease& l : leases) {
      if (l.shard == shard) return l;
    }
    ADD_FAILURE() << "no lease of shard " << shard;
    return ShardLease();
  }

  std::string dsn_, schema_;
  std::unique_ptr<PostgresStore> a_, b_;  // two replicas on one database
};

TEST(VirtualShard, IsFnv1aOfThePumpIdAndSpreadsPumps) {
  EXPECT_EQ(VirtualShardOf("", 256), 0x811c9dc5u % 256);
  EXPECT_EQ(VirtualShardOf("a", 256), 0xe40c292cu % 256);
  std::vector<int> per_shard(256);
  for (int i = 0; i < 25600; ++i) ++per_shard[VirtualShardOf(absl::StrCat("pump-", i), 256)];
  for (int n : per_shard) {
    EXPECT_GT(n, 50);
    EXPECT_LT(n, 150);
  }
}

TEST_F(ShardLeasesTest, OneOwnerAtATimeAndEveryTakeoverRaisesTheEpoch) {
  auto taken = a_->TakeExpiredLeases("a", kTtl, 100);
  ASSERT_TRUE(taken.ok()) << taken.status();
  ASSERT_EQ(taken->size(), kShards);
  for (const ShardLease& l : *taken) {
    EXPECT_EQ(l.owner, "a");
    EXPECT_EQ(l.epoch, 1);
    EXPECT_GT(l.expires, absl::Now() - absl::Minutes(5));
  }
  auto none = b_->TakeExpiredLeases("b", kTtl, 100);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty()) << "b took a lease a holds";

  Expire(3);
  auto took = b_->TakeExpiredLeases("b", kTtl, 100);
  ASSERT_TRUE(took.ok()) << took.status();
  ASSERT_EQ(took->size(), 1u);
  EXPECT_EQ((*took)[0].shard, 3u);
  EXPECT_EQ((*took)[0].epoch, 2);

  auto renewed = a_->RenewLeases("a", *taken, kTtl);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_EQ(renewed->size(), kShards - 1) << "a renewed the lease b took over";
  for (const ShardLease& l : *renewed) EXPECT_NE(l.shard, 3u);

  auto all = a_->ListLeases();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), kShards);
  EXPECT_EQ(LeaseOf(*all, 3).owner, "b");
  EXPECT_EQ(LeaseOf(*all, 3).epoch, 2);
  EXPECT_EQ(LeaseOf(*all, 4).owner, "a");

  // Released leases are taken at once by the next replica that asks.
  auto released = a_->ReleaseLeases("a", *renewed);
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, kShards - 1);
  auto rest = b_->TakeExpiredLeases("b", kTtl, 100);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(rest->size(), kShards - 1);
  for (const ShardLease& l : *rest) EXPECT_EQ(l.epoch, 2);
}

TEST_F(ShardLeasesTest, AReplicaThatLostTheLeaseWritesNothing) {
  const uint32_t shard = VirtualShardOf("p0", kShards);
  auto taken = a_->TakeExpiredLeases("a", kTtl, 100);
  ASSERT_TRUE(taken.ok()) << taken.status();
  const ShardLease mine = LeaseOf(*taken, shard);
  ASSERT_TRUE(a_->CommitFenced(NumberedGroup(0), FenceOf("a", mine)).ok());  // p0 seq 1-10

  Expire(shard);  // a paused past its lease
  auto took = b_->TakeExpiredLeases("b", kTtl, 100);
  ASSERT_TRUE(took.ok()) << took.status();
  ASSERT_EQ(took->size(), 1u);

  absl::Status late = a_->CommitFenced(NumberedGroup(3), FenceOf("a", mine));  // p0 seq 11-20
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition) << late;
  EXPECT_TRUE(absl::StrContains(late.message(), "lost")) << late;
  EXPECT_TRUE(absl::StrContains(late.message(), "\"b\"")) << late;
  EXPECT_EQ(a_->GetPumpHead("p0")->last_seq, 10u) << "the fenced-out commit was applied";
  EXPECT_EQ(*a_->LastAlertCursor(), 1u);

  // The new owner writes under its epoch; the old epoch stays refused.
  absl::Status next = b_->CommitFenced(AppendingAt(NumberedGroup(3), 2), FenceOf("b", (*took)[0]));
  ASSERT_TRUE(next.ok()) << next;
  EXPECT_EQ(b_->GetPumpHead("p0")->last_seq, 20u);
  EXPECT_EQ(b_->CommitFenced(NumberedGroup(6), FenceOf("a", mine)).code(),
            absl::StatusCode::kFailedPrecondition);
  // Another replica's name with the right epoch is refused too.
  EXPECT_EQ(a_->CommitFenced(NumberedGroup(6), FenceOf("a", (*took)[0])).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b_->GetPumpHead("p0")->last_seq, 20u);
}

TEST_F(ShardLeasesTest, ATakeoverWaitsForTheFencedCommitInProgress) {
  auto taken = a_->TakeExpiredLeases("a", absl::Milliseconds(300), 1);
  ASSERT_TRUE(taken.ok()) << taken.status();
  ASSERT_EQ(taken->size(), 1u);
  const ShardLease mine = (*taken)[0];
  // a's commit is between its fence check and COMMIT when the lease runs out.
  Sql in_flight(dsn_);
  ASSERT_EQ(in_flight.Run("BEGIN"), "");
  ASSERT_EQ(in_flight.Run(absl::StrCat("SELECT \"", schema_, "\".check_fence('a', '{", mine.shard,
                                       "}', '{", mine.epoch, "}')")),
            "");
  Sql clock(dsn_);
  ASSERT_EQ(clock.Run(absl::StrCat("SELECT pg_sleep(greatest(0, extract(epoch FROM expires_at - "
                                   "clock_timestamp()) + 0.05)) FROM \"",
                                   schema_, "\".shard_leases WHERE shard = ", mine.shard)),
            "");
  auto while_committing = b_->TakeExpiredLeases("b", kTtl, 100);
  ASSERT_TRUE(while_committing.ok()) << while_committing.status();
  for (const ShardLease& l : *while_committing) {
    EXPECT_NE(l.shard, mine.shard) << "taken over while a commit under it was in progress";
  }
  ASSERT_EQ(in_flight.Run("COMMIT"), "");
  auto after = b_->TakeExpiredLeases("b", kTtl, 100);
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ((*after)[0].shard, mine.shard);
  EXPECT_EQ((*after)[0].epoch, mine.epoch + 1);
}

// Alerts and audit entries form one log across replicas: a fenced commit appends right after
// the log's last entry or writes nothing (ABORTED, retried by the replica after reading the
// log), so two replicas never write the same cursor and the log has no gap.
TEST_F(ShardLeasesTest, TwoReplicasNeverWriteTheSameAlertCursor) {
  auto taken = a_->TakeExpiredLeases("a", kTtl, kShards / 2);
  ASSERT_TRUE(taken.ok()) << taken.status();
  auto rest = b_->TakeExpiredLeases("b", kTtl, kShards);
  ASSERT_TRUE(rest.ok()) << rest.status();
  auto fence_for = [&](const std::string& owner, const std::vector<ShardLease>& held,
                       const std::string& pump) -> std::optional<LeaseFence> {
    const uint32_t shard = VirtualShardOf(pump, kShards);
    for (const ShardLease& l : held) {
      if (l.shard == shard) return FenceOf(owner, l);
    }
    return std::nullopt;
  };
  // One pump leased to each replica.
  std::string pa, pb;
  for (int i = 0; i < 64 && (pa.empty() || pb.empty()); ++i) {
    const std::string p = absl::StrCat("p", i);
    if (pa.empty() && fence_for("a", *taken, p)) pa = p;
    if (pb.empty() && fence_for("b", *rest, p)) pb = p;
  }
  ASSERT_FALSE(pa.empty() || pb.empty());
  auto group_of = [](const std::string& pump, uint64_t cursor) {
    WriteGroup g = NumberedGroup(0);
    g.telemetry[0].pump_id = pump;
    g.snapshots[0].first = pump;
    return AppendingAt(std::move(g), cursor);
  };
  ASSERT_TRUE(a_->CommitFenced(group_of(pa, 1), *fence_for("a", *taken, pa)).ok());
  // b had not read entry 1: its entry 1 is refused and nothing of its group is written.
  absl::Status same = b_->CommitFenced(group_of(pb, 1), *fence_for("b", *rest, pb));
  EXPECT_EQ(same.code(), absl::StatusCode::kAborted) << same;
  EXPECT_EQ(b_->GetPumpHead(pb).status().code(), absl::StatusCode::kNotFound);
  // A gap (entry 3 after 1) is refused the same way.
  absl::Status gap = b_->CommitFenced(group_of(pb, 3), *fence_for("b", *rest, pb));
  EXPECT_EQ(gap.code(), absl::StatusCode::kAborted) << gap;
  // Appending after the last entry succeeds.
  absl::Status next = b_->CommitFenced(group_of(pb, 2), *fence_for("b", *rest, pb));
  ASSERT_TRUE(next.ok()) << next;
  EXPECT_EQ(b_->GetPumpHead(pb)->last_seq, 10u);
  EXPECT_EQ(*a_->LastAlertCursor(), 2u);
}

// Entries numbered at commit time (WriteGroup::log_appends) are numbered under the log's
// lock, after what the other replica committed: two replicas appending at once never
// conflict, the cursors have no gap and no duplicate, and each append saw the true tail.
TEST_F(ShardLeasesTest, AppendsNumberedAtCommitTimeNeverConflict) {
  auto taken = a_->TakeExpiredLeases("a", kTtl, kShards / 2);
  ASSERT_TRUE(taken.ok()) << taken.status();
  auto rest = b_->TakeExpiredLeases("b", kTtl, kShards);
  ASSERT_TRUE(rest.ok()) << rest.status();
  ASSERT_FALSE(taken->empty() || rest->empty());
  constexpr int kEach = 60;
  // Each entry names itself ("a:7") and the entry it was numbered after ("|b:3").
  auto run = [&](PostgresStore* store, const std::string& owner, const ShardLease& lease,
                 std::vector<absl::Status>* statuses) {
    std::string pump;
    for (int i = 0; pump.empty(); ++i) {
      const std::string p = absl::StrCat(owner, "-pump-", i);
      if (VirtualShardOf(p, kShards) == lease.shard) pump = p;
    }
    for (int i = 0; i < kEach; ++i) {
      WriteGroup g;
      g.snapshots.emplace_back(pump, absl::StrCat("state ", i));
      const std::string name = absl::StrCat(owner, ":", i);
      g.log_appends.push_back([name](LogTail& tail, WriteGroup& out) {
        const std::string after =
            tail.last_audit_record.substr(0, tail.last_audit_record.find('|'));
        out.alerts.emplace_back(++tail.last_cursor, name);
        tail.last_audit_record = absl::StrCat(name, "|", after);
        out.audit.emplace_back(++tail.last_audit_seq, tail.last_audit_record);
        return absl::OkStatus();
      });
      statuses->push_back(store->CommitFenced(g, FenceOf(owner, lease)));
    }
  };
  std::vector<absl::Status> of_a, of_b;
  std::thread ta(run, a_.get(), "a", taken->front(), &of_a);
  std::thread tb(run, b_.get(), "b", rest->front(), &of_b);
  ta.join();
  tb.join();
  for (const auto& s : of_a) EXPECT_TRUE(s.ok()) << s;
  for (const auto& s : of_b) EXPECT_TRUE(s.ok()) << s;
  auto alerts = a_->ScanAlertsAfter(0, 1000);
  auto audit = b_->ScanAuditAfter(0, 1000);
  ASSERT_TRUE(alerts.ok() && audit.ok());
  ASSERT_EQ(alerts->size(), 2u * kEach);
  ASSERT_EQ(audit->size(), 2u * kEach);
  std::set<std::string> names;
  for (size_t i = 0; i < alerts->size(); ++i) {
    EXPECT_EQ((*alerts)[i].first, i + 1);
    EXPECT_EQ((*audit)[i].first, i + 1);
    names.insert((*alerts)[i].second);
    const std::string& record = (*audit)[i].second;
    EXPECT_EQ(record.substr(0, record.find('|')), (*alerts)[i].second);
    const std::string previous = i == 0 ? "" : (*alerts)[i - 1].second;
    EXPECT_EQ(record.substr(record.find('|') + 1), previous) << "entry " << i + 1;
  }
  EXPECT_EQ(names.size(), 2u * kEach);  // every append once
}

TEST_F(ShardLeasesTest, BadArgumentsAndAnotherShardCountAreRefused) {
  EXPECT_EQ(a_->TakeExpiredLeases("", kTtl, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a_->TakeExpiredLeases("a", absl::ZeroDuration(), 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a_->TakeExpiredLeases("a", absl::Hours(2), 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a_->EnsureShardLeases(0).code(), absl::StatusCode::kInvalidArgument);
  absl::Status other = b_->EnsureShardLeases(kShards * 2);
  EXPECT_EQ(other.code(), absl::StatusCode::kFailedPrecondition) << other;
  EXPECT_TRUE(absl::StrContains(other.message(), "same count")) << other;
  absl::Status unfenced = a_->CommitFenced(NumberedGroup(0), LeaseFence{"a", {}});
  EXPECT_EQ(unfenced.code(), absl::StatusCode::kInvalidArgument) << unfenced;
  EXPECT_TRUE(absl::StrContains(unfenced.message(), "p0")) << unfenced;
  EXPECT_EQ(a_->GetPump("p0").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pumptwin::store
