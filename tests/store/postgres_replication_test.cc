// "Acknowledged = on a quorum" with PostgresStore on a real replicated PostgreSQL: a primary
// and two streaming standbys on loopback, synchronous_standby_names = 'ANY 1 (s1, s2)' (the
// cluster mode's database, docs/scaling.md). The store acknowledges a group only when its
// COMMIT is confirmed by a standby, so killing the primary (kill -9) and promoting the most
// advanced standby loses no acknowledged group, and with both standbys gone nothing is
// acknowledged at all: the commit waits (invisible to readers) until a standby is back.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/store/postgres_store.h"
#include "store_test_util.h"
#include "tests/store/postgres_test_server.h"

namespace pumptwin::store {
namespace {

using pumptwin::testing::PostgresTestServer;
using testing::NumberedGroup;

class ReplicatedPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto primary = PostgresTestServer::Start();
    ASSERT_TRUE(primary.ok()) << primary.status();
    primary_ = *std::move(primary);
    ASSERT_TRUE(
        primary_->Query("ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (s1, s2)'").ok());
    ASSERT_TRUE(primary_->Query("SELECT pg_reload_conf()").ok());
    for (const char* name : {"s1", "s2"}) {
      auto standby = PostgresTestServer::StartStandby(*primary_, name);
      ASSERT_TRUE(standby.ok()) << standby.status();
      standbys_.push_back(*std::move(standby));
    }
    ASSERT_TRUE(WaitForQuorumStandbys(*primary_, 2)) << primary_->Log();
  }

  // Waits (bounded, 60 s) until `primary` streams to `n` standbys counted in its quorum.
  static bool WaitForQuorumStandbys(const PostgresTestServer& primary, int n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    absl::Duration pause = absl::Milliseconds(5);
    while (absl::Now() < deadline) {
      auto count = primary.Query(
          "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = "
          "'quorum'");
      int have = 0;
      if (count.ok() && absl::SimpleAtoi(*count, &have) && have >= n) return true;
      absl::SleepFor(pause);
      pause = std::min(pause * 2, absl::Milliseconds(100));
    }
    return false;
  }

  // The WAL position a standby received, in bytes.
  static int64_t ReceivedLsn(const PostgresTestServer& standby) {
    auto lsn = standby.Query("SELECT pg_last_wal_receive_lsn() - '0/0'::pg_lsn");
    int64_t bytes = -1;
    if (!lsn.ok() || !absl::SimpleAtoi(*lsn, &bytes)) ADD_FAILURE() << lsn.status();
    return bytes;
  }

  static std::unique_ptr<PostgresStore> Open(const std::string& dsn) {
    auto store = PostgresStore::Open({.dsn = dsn, .schema = "pumptwin"});
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  std::unique_ptr<PostgresTestServer> primary_;
  std::vector<std::unique_ptr<PostgresTestServer>> standbys_;
};

TEST_F(ReplicatedPostgresTest, KillingThePrimaryAndPromotingAStandbyLosesNoAcknowledgedGroup) {
  auto store = Open(primary_->Dsn());
  ASSERT_NE(store, nullptr);
  constexpr int kGroups = 30;
  for (int i = 0; i < kGroups; ++i) ASSERT_TRUE(store->Commit(NumberedGroup(i)).ok()) << i;
  ASSERT_TRUE(primary_->Kill().ok());

  // Promote the standby that received the most WAL (what Patroni or an operator does).
  const size_t best = ReceivedLsn(*standbys_[0]) >= ReceivedLsn(*standbys_[1]) ? 0 : 1;
  PostgresTestServer& promoted = *standbys_[best];
  PostgresTestServer& other = *standbys_[1 - best];
  ASSERT_TRUE(promoted.Promote().ok()) << promoted.Log();
  // The promoted node keeps 'ANY 1 (s1, s2)' (copied with the data directory): it commits
  // nothing, opening a store included, until the other standby follows it.
  ASSERT_TRUE(other.Follow(promoted, best == 0 ? "s2" : "s1").ok()) << other.Log();
  ASSERT_TRUE(WaitForQuorumStandbys(promoted, 1)) << promoted.Log() << other.Log();
  auto after = Open(promoted.Dsn());
  ASSERT_NE(after, nullptr);
  EXPECT_EQ(*after->LastAlertCursor(), static_cast<uint64_t>(kGroups));
  EXPECT_EQ(*after->LastAuditSeq(), static_cast<uint64_t>(kGroups));
  EXPECT_EQ(*after->GetSnapshot("p2"), absl::StrCat("snapshot-after-group-", kGroups - 1));
  EXPECT_EQ(after->GetPumpHead("p0")->last_seq, 100u);  // groups 0, 3, ..., 27: seq 1-100
  ASSERT_TRUE(after->Commit(NumberedGroup(kGroups)).ok());
  EXPECT_EQ(*after->LastAlertCursor(), static_cast<uint64_t>(kGroups) + 1);
}

TEST_F(ReplicatedPostgresTest, NothingIsAcknowledgedThatNoStandbyConfirmed) {
  auto store = Open(primary_->Dsn());
  auto reader = Open(primary_->Dsn());
  ASSERT_NE(store, nullptr);
  ASSERT_NE(reader, nullptr);
  ASSERT_TRUE(store->Commit(NumberedGroup(0)).ok());
  ASSERT_TRUE(standbys_[0]->Stop().ok());
  ASSERT_TRUE(store->Commit(NumberedGroup(1)).ok()) << "one standby of two is a quorum";

  ASSERT_TRUE(standbys_[1]->Stop().ok());
  absl::Notification answered;
  absl::Status status = absl::UnknownError("not answered");
  std::thread committer([&] {
    status = store->Commit(NumberedGroup(2));
    answered.Notify();
  });
  // The commit is flushed on the primary and waits there for a standby's confirmation.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  bool waiting = false;
  while (!waiting && absl::Now() < deadline && !answered.HasBeenNotified()) {
    auto n = primary_->Query("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'");
    waiting = n.ok() && *n == "1";
    if (!waiting) absl::SleepFor(absl::Milliseconds(20));  // polling the server's state
  }
  EXPECT_TRUE(waiting) << "the commit did not wait for a standby";
  EXPECT_FALSE(answered.HasBeenNotified()) << "acknowledged without a standby: " << status;
  EXPECT_EQ(*reader->LastAlertCursor(), 2u) << "the unconfirmed group is visible";

  // A standby back: the waiting commit is confirmed and acknowledged.
  ASSERT_TRUE(standbys_[1]->Restart().ok()) << standbys_[1]->Log();
  committer.join();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(*reader->LastAlertCursor(), 3u);
}

}  // namespace
}  // namespace pumptwin::store
