// CommitGate in shared-log mode (cluster replicas): two gates over one store, each with its
// own committer, as two replicas on one database. A gate publishes to its listeners only what
// it follows from the store, in cursor order; numbers its alerts after what the other
// appended; and a reload (Load after a takeover or a conflicting commit) never skips what it
// had not yet published.
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/core/commit_gate.h"
#include "server/store/group_committer.h"
#include "server/store/mem_store.h"

namespace pumptwin::server {
namespace {

class Recorder : public AlertListener {
 public:
  void OnAlertEvents(const std::vector<v1::AlertEvent>& events) override {
    absl::MutexLock lock(&mu_);
    for (const auto& e : events) cursors_.push_back(e.cursor());
  }
  std::vector<uint64_t> cursors() const {
    absl::MutexLock lock(&mu_);
    return cursors_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<uint64_t> cursors_;
};

// One replica: a committer and a gate serving exactly `pump`.
struct Replica {
  Replica(store::Store* store, std::string pump)
      : committer(store, store::GroupCommitterOptions()), gate(store, &committer) {
    gate.ShareLog([pump](absl::string_view p) { return p == pump; });
    gate.add_listener(&seen);
  }
  // Commits one raised (or resolved) alert of `pump`; returns the commit's status.
  absl::Status Raise(const std::string& pump, bool resolve = false) {
    PendingGroup g;
    AlertDraft d;
    d.pump_id = pump;
    d.clinic = "clinic-a";
    d.transition.type = twin::AlertType::kMotorStall;
    d.transition.severity = twin::Severity::kWarning;
    d.transition.kind = resolve ? twin::TransitionKind::kResolved : twin::TransitionKind::kRaised;
    d.server_time = absl::FromUnixSeconds(1800000000);
    g.alerts.push_back(d);
    absl::Notification done;
    absl::Status result;
    absl::Status submitted = gate.Submit(std::move(g), [&](absl::Status s) {
      result = s;
      done.Notify();
    });
    if (!submitted.ok()) return submitted;
    done.WaitForNotification();
    return result;
  }
  store::GroupCommitter committer;
  CommitGate gate;
  Recorder seen;
};

class SharedLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(a_.gate.Load().ok());
    ASSERT_TRUE(b_.gate.Load().ok());
  }
  store::MemStore store_;
  Replica a_{&store_, "pa"};
  Replica b_{&store_, "pb"};
};

TEST_F(SharedLogTest, AlertsArePublishedOnlyOnceFollowedInCursorOrder) {
  ASSERT_TRUE(a_.Raise("pa").ok());
  EXPECT_TRUE(a_.seen.cursors().empty()) << "published before it was read back from the log";
  ASSERT_TRUE(b_.Raise("pb").ok());  // numbered at commit time, after a's entry: 2
  EXPECT_TRUE(b_.seen.cursors().empty());
  ASSERT_EQ(*b_.gate.Follow(100), 2u);
  EXPECT_EQ(b_.seen.cursors(), (std::vector<uint64_t>{1, 2}));
  ASSERT_EQ(*a_.gate.Follow(100), 2u);
  EXPECT_EQ(a_.seen.cursors(), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(*a_.gate.Follow(100), 0u);  // nothing twice
  // The book of a pump served elsewhere follows the log.
  EXPECT_TRUE(a_.gate.FindActive("pb", v1::ALERT_TYPE_MOTOR_STALL).has_value());
  ASSERT_TRUE(b_.Raise("pb", /*resolve=*/true).ok());
  ASSERT_EQ(*a_.gate.Follow(100), 1u);
  EXPECT_FALSE(a_.gate.FindActive("pb", v1::ALERT_TYPE_MOTOR_STALL).has_value());
}

TEST_F(SharedLogTest, AReloadDoesNotSkipWhatWasNotYetPublished) {
  ASSERT_TRUE(b_.Raise("pb").ok());
  ASSERT_TRUE(b_.Raise("pb", /*resolve=*/true).ok());
  // a reloads (a lease changed) before it followed b's entries.
  ASSERT_TRUE(a_.gate.Load().ok());
  EXPECT_EQ(a_.gate.last_cursor(), 2u);  // its next alert is numbered after them
  ASSERT_EQ(*a_.gate.Follow(100), 2u);
  EXPECT_EQ(a_.seen.cursors(), (std::vector<uint64_t>{1, 2}));
  ASSERT_TRUE(a_.Raise("pa").ok());
  ASSERT_EQ(*a_.gate.Follow(100), 1u);
  EXPECT_EQ(a_.seen.cursors(), (std::vector<uint64_t>{1, 2, 3}));
}

}  // namespace
}  // namespace pumptwin::server
