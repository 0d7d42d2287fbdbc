// GroupCommitter: merging into fewer commits (counted by the metrics hook), bounded queue,
// failure fan-out, clean shutdown. Synchronisation by Notification/Mutex only, never sleeps.
#include "server/store/group_committer.h"

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/store/mem_store.h"
#include "store_test_util.h"

namespace pumptwin::store {
namespace {

using testing::NumberedGroup;

// Blocks the first Commit inside the store until released, so that later submissions queue up.
struct BlockFirstCommit {
  explicit BlockFirstCommit(MemStore& store) {
    store.SetCommitHook([this] {
      if (first.exchange(false)) {
        entered.Notify();
        release.WaitForNotification();
      }
    });
  }
  std::atomic<bool> first{true};
  absl::Notification entered, release;
};

struct Counters {
  absl::Mutex mu;
  int commits ABSL_GUARDED_BY(mu) = 0;
  size_t groups ABSL_GUARDED_BY(mu) = 0;
  int rejected ABSL_GUARDED_BY(mu) = 0;
  GroupCommitMetrics Hooks() {
    return {.on_commit =
                [this](const CommitStats& s) {
                  absl::MutexLock lock(&mu);
                  ++commits;
                  groups += s.groups;
                },
            .on_rejected =
                [this](size_t) {
                  absl::MutexLock lock(&mu);
                  ++rejected;
                }};
  }
};

// Counts `done` calls and lets a test wait for N of them.
struct DoneCounter {
  absl::Mutex mu;
  int ok ABSL_GUARDED_BY(mu) = 0;
  int failed ABSL_GUARDED_BY(mu) = 0;
  GroupCommitter::DoneFn Fn() {
    return [this](absl::Status s) {
      absl::MutexLock lock(&mu);
      (s.ok() ? ok : failed)++;
    };
  }
  void WaitFor(int n) {
    absl::MutexLock lock(&mu);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return ok + failed >= n; };
    mu.Await(absl::Condition(&reached));
  }
};

TEST(GroupCommitter, ConcurrentSubmissionsShareOneCommit) {
  MemStore store;
  BlockFirstCommit block(store);
  Counters counters;
  DoneCounter done;
  GroupCommitter committer(&store, {.metrics = counters.Hooks()});
  ASSERT_TRUE(committer.Submit(NumberedGroup(0), done.Fn()).ok());
  block.entered.WaitForNotification();  // commit #1 is in the store, holding group 0
  constexpr int kThreads = 4, kPerThread = 25;
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Distinct pumps per thread keep each pump's chunks in seq order.
        WriteGroup g = NumberedGroup(1 + t + kThreads * i, 1000);
        ASSERT_TRUE(committer.Submit(std::move(g), done.Fn()).ok());
      }
    });
  }
  for (std::thread& p : producers) p.join();
  block.release.Notify();
  done.WaitFor(1 + kThreads * kPerThread);
  absl::MutexLock lock(&counters.mu);
  EXPECT_EQ(counters.commits, 2);  // group 0 alone, then all 100 queued ones in one fsync
  EXPECT_EQ(counters.groups, 1u + kThreads * kPerThread);
  EXPECT_EQ(store.commit_count(), 2);
  EXPECT_EQ(*store.LastAlertCursor(), 1u + kThreads * kPerThread);
}

TEST(GroupCommitter, FullQueueRefusesWithResourceExhaustedAndBlockingSubmitWaits) {
  MemStore store;
  BlockFirstCommit block(store);
  Counters counters;
  DoneCounter done;
  GroupCommitter committer(&store, {.max_queued_groups = 2, .metrics = counters.Hooks()});
  ASSERT_TRUE(committer.Submit(NumberedGroup(0), done.Fn()).ok());
  block.entered.WaitForNotification();
  ASSERT_TRUE(committer.Submit(NumberedGroup(1), done.Fn()).ok());
  ASSERT_TRUE(committer.Submit(NumberedGroup(2), done.Fn()).ok());
  absl::Status full = committer.Submit(NumberedGroup(3), done.Fn());
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  absl::Notification blocking_returned;
  std::thread blocking([&] {
    EXPECT_TRUE(committer.SubmitBlocking(NumberedGroup(3), done.Fn()).ok());
    blocking_returned.Notify();
  });
  EXPECT_FALSE(blocking_returned.HasBeenNotified());
  block.release.Notify();
  blocking_returned.WaitForNotification();
  blocking.join();
  done.WaitFor(4);
  absl::MutexLock lock(&counters.mu);
  EXPECT_EQ(counters.rejected, 1);
  EXPECT_EQ(*store.LastAlertCursor(), 4u);
}

TEST(GroupCommitter, AFailedCommitLatchesUntilClearedAndOnlyProbesGoThrough) {
  MemStore store;
  BlockFirstCommit block(store);
  DoneCounter done;
  Counters counters;
  GroupCommitter committer(&store, {.metrics = counters.Hooks()});
  store.FailCommits(absl::UnavailableError("disk full (injected)"));
  ASSERT_TRUE(committer.Submit(NumberedGroup(0), done.Fn()).ok());
  block.entered.WaitForNotification();
  // Queued behind the failing commit: they may continue it, so they fail without being
  // tried (a store that recovered in between would otherwise get a gap).
  ASSERT_TRUE(committer.Submit(NumberedGroup(1), done.Fn()).ok());
  ASSERT_TRUE(committer.Submit(NumberedGroup(2), done.Fn()).ok());
  block.release.Notify();
  done.WaitFor(3);
  {
    absl::MutexLock lock(&done.mu);
    EXPECT_EQ(done.failed, 3);
    EXPECT_EQ(done.ok, 0);
  }
  {
    absl::MutexLock lock(&counters.mu);
    EXPECT_EQ(counters.commits, 1) << "only the first group may reach the store";
  }
  store.ClearFailure();
  EXPECT_EQ(committer.failure().code(), absl::StatusCode::kUnavailable);
  absl::Status refused = committer.Submit(NumberedGroup(3), done.Fn());
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(refused.message().find("disk full (injected)"), std::string::npos) << refused;
  // A probe is committed while latched and does not lift the latch.
  ASSERT_TRUE(committer.SubmitProbe(NumberedGroup(4), done.Fn()).ok());
  done.WaitFor(4);
  EXPECT_EQ(*store.LastAlertCursor(), 5u);
  EXPECT_EQ(committer.Submit(NumberedGroup(5), done.Fn()).code(), absl::StatusCode::kUnavailable);
  committer.ClearFailure();
  EXPECT_TRUE(committer.failure().ok());
  ASSERT_TRUE(committer.Submit(NumberedGroup(5), done.Fn()).ok());
  done.WaitFor(5);
  absl::MutexLock lock(&done.mu);
  EXPECT_EQ(done.ok, 2);
  EXPECT_EQ(*store.LastAlertCursor(), 6u);
}

TEST(GroupCommitter, MalformedGroupIsRefusedAtSubmit) {
  MemStore store;
  GroupCommitter committer(&store, {});
  WriteGroup bad;
  bad.alerts.emplace_back(0, "reserved cursor");
  EXPECT_EQ(committer.Submit(std::move(bad), nullptr).code(), absl::StatusCode::kInvalidArgument);
}

TEST(GroupCommitter, ShutdownCommitsWhatWasQueuedThenRefuses) {
  MemStore store;
  BlockFirstCommit block(store);
  DoneCounter done;
  GroupCommitter committer(&store, {});
  ASSERT_TRUE(committer.Submit(NumberedGroup(0), done.Fn()).ok());
  block.entered.WaitForNotification();
  for (int i = 1; i < 10; ++i) ASSERT_TRUE(committer.Submit(NumberedGroup(i), done.Fn()).ok());
  std::thread stopper([&] { committer.Shutdown(); });
  block.release.Notify();
  stopper.join();
  {
    absl::MutexLock lock(&done.mu);
    EXPECT_EQ(done.ok, 10);
  }
  EXPECT_EQ(*store.LastAlertCursor(), 10u);
  EXPECT_EQ(committer.Submit(NumberedGroup(10), done.Fn()).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace pumptwin::store
