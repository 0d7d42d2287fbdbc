// Ingest stage times (ShardOptions::on_ingest_stages, exported as
// pumptwin_ingest_stage_seconds_total): where a frame's durable-ack time went. An injected
// clock is moved only while the store writer is held inside a commit, so every stage has
// one exact expected value.
#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "tests/registry/registry_fixture.h"

namespace pumptwin::server {
namespace {

class IngestStagesTest : public RegistryTest {
 protected:
  // Replaces the registry by one over the same store with this test's clock and stage sink.
  void UseStageClock(int max_groups_in_flight) {
    registry_->Stop();
    RegistryOptions o = Options();
    const absl::Time base = o.shard.now();
    o.shard.now = [this, base] { return base + absl::Milliseconds(clock_ms_.load()); };
    o.shard.max_groups_in_flight = max_groups_in_flight;
    o.shard.on_ingest_stages = [this](const IngestStageTimes& t) {
      absl::MutexLock lock(&mu_);
      total_.frame_parts += t.frame_parts;
      total_.shard_queue += t.shard_queue;
      total_.group_wait += t.group_wait;
      total_.store += t.store;
      total_.ack_return += t.ack_return;
    };
    registry_ = std::make_unique<TwinRegistry>(&store_, gate_.get(), o);
    ASSERT_TRUE(registry_->Recover().ok());
    // The next commit holds the store writer until `release_`.
    store_.SetCommitHook([this] {
      if (!hold_next_commit_.exchange(false)) return;
      in_commit_.Notify();
      release_.WaitForNotification();
    });
  }
  IngestStageTimes Total() {
    absl::MutexLock lock(&mu_);
    return total_;
  }

  std::atomic<int64_t> clock_ms_{0};
  std::atomic<bool> hold_next_commit_{false};
  absl::Notification in_commit_, release_;
  absl::Mutex mu_;
  IngestStageTimes total_ ABSL_GUARDED_BY(mu_);
};

TEST_F(IngestStagesTest, TimeInTheStoreAndWaitingForACommitSlotIsCountedWhereItWasSpent) {
  UseStageClock(/*max_groups_in_flight=*/1);
  hold_next_commit_ = true;
  absl::Notification first_done, second_done;
  IngestAsync(1, 10, [&](device_link::IngestResult r) {
    EXPECT_TRUE(r.status.ok()) << r.status;
    first_done.Notify();
  });
  in_commit_.WaitForNotification();  // frame 1's group is being committed
  IngestAsync(11, 20, [&](device_link::IngestResult r) {
    EXPECT_TRUE(r.status.ok()) << r.status;
    second_done.Notify();
  });
  // Frame 2 is applied (the read runs after it on the shard) but its group cannot go: the
  // only commit slot is frame 1's.
  ASSERT_EQ(LastSeq(), 20u);
  clock_ms_ += 5000;
  release_.Notify();
  first_done.WaitForNotification();
  second_done.WaitForNotification();

  const IngestStageTimes t = Total();
  EXPECT_EQ(t.frame_parts, 2u);
  EXPECT_EQ(t.shard_queue, absl::ZeroDuration());
  EXPECT_EQ(t.group_wait, absl::Seconds(5)) << "frame 2 waited for frame 1's commit";
  EXPECT_EQ(t.store, absl::Seconds(5)) << "frame 1 was in the store writer for 5 s";
  EXPECT_EQ(t.ack_return, absl::ZeroDuration());
}

TEST_F(IngestStagesTest, AFailedCommitReportsNoStageTimes) {
  UseStageClock(/*max_groups_in_flight=*/2);
  store_.FailCommits(absl::UnavailableError("disk full"));
  device_link::IngestResult r = Ingest(1, 10);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable) << r.status;
  EXPECT_EQ(Total().frame_parts, 0u);
}

}  // namespace
}  // namespace pumptwin::server
