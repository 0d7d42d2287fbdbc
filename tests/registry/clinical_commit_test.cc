// A clinical call's group is not held back by the ingest groups in flight: with
// ShardOptions::max_groups_in_flight ingest groups submitted and the committer busy, the
// shard still submits the group that answers a clinical record, so it joins the next
// commit with the ingest group queued before it instead of waiting for a place first.
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/core/event_inputs.h"
#include "tests/registry/registry_fixture.h"

namespace pumptwin::server {
namespace {

class ClinicalCommitTest : public RegistryTest {
 protected:
  void SetUp() override {
    store::GroupCommitterOptions co;
    // While `hold_` is set the committer stops after its next commit, before answering it.
    co.metrics.on_commit = [this](const store::CommitStats& stats) {
      absl::MutexLock lock(&mu_);
      commits_.push_back(stats.groups);
      if (!hold_) return;
      held_ = true;
      held_index_ = commits_.size() - 1;
      mu_.Await(absl::Condition(
          +[](bool* hold) { return !*hold; }, &hold_));
    };
    committer_ = std::make_unique<store::GroupCommitter>(&store_, std::move(co));
    gate_ = std::make_unique<CommitGate>(&store_, committer_.get());
    registry_ = std::make_unique<TwinRegistry>(&store_, gate_.get(), MakeOptions());
    ASSERT_TRUE(registry_->Recover().ok());
    absl::Status st = Register(TestPump());
    ASSERT_TRUE(st.ok()) << st;
  }

  // Returns once the shard of deg-1 has run every task posted before and the flush after
  // them (a read runs in the shard's next round of tasks, after that flush).
  void ShardBarrier() {
    for (int i = 0; i < 2; ++i) {
      absl::Notification done;
      registry_->Read("deg-1", [&](const twin::Twin*, absl::Status) { done.Notify(); });
      done.WaitForNotification();
    }
  }

  absl::Mutex mu_;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  size_t held_index_ ABSL_GUARDED_BY(mu_) = 0;  // the held commit in commits_
  std::vector<size_t> commits_ ABSL_GUARDED_BY(mu_);  // groups merged, per commit
};

TEST_F(ClinicalCommitTest, ARecordJoinsTheQueuedIngestGroupWhileTheShardHasNoFreePlace) {
  ASSERT_EQ(MakeOptions().shard.max_groups_in_flight, 2);
  {
    absl::MutexLock lock(&mu_);
    hold_ = true;
  }
  absl::Notification acked1, acked2;
  device_link::IngestResult r1, r2;
  // Group A: committed, then held before its answer (the shard counts it in flight).
  IngestAsync(1, 10, [&](device_link::IngestResult r) {
    r1 = std::move(r);
    acked1.Notify();
  });
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&held_));
  }
  // Group B: the second in flight, queued behind A.
  IngestAsync(11, 20, [&](device_link::IngestResult r) {
    r2 = std::move(r);
    acked2.Notify();
  });
  ShardBarrier();
  ASSERT_EQ(committer_->queued_groups(), 1u);

  // A clinical record (in order): its group C is submitted although two are in flight.
  const absl::Time at = SampleAt(20).device_time + absl::Seconds(30);
  v1::RecordEventRequest req;
  req.set_type(v1::CLINICAL_EVENT_ACCESS_PORT_ASPIRATION);
  req.set_device_time_ms(absl::ToUnixMillis(at));
  absl::Notification recorded;
  absl::Status record_status = absl::UnknownError("not answered");
  registry_->Mutate(
      "deg-1",
      [&](twin::Twin&, MutationContext& ctx) {
        return ctx.apply_input(
            MakeClinicalInput(InputKind::kEvent, at, ctx.server_time, req.SerializeAsString()),
            nullptr);
      },
      [&](absl::Status s) {
        record_status = s;
        recorded.Notify();
      });
  ShardBarrier();
  EXPECT_EQ(committer_->queued_groups(), 2u) << "the record's group waits for a free place";
  EXPECT_FALSE(recorded.HasBeenNotified());

  {
    absl::MutexLock lock(&mu_);
    hold_ = false;
  }
  acked1.WaitForNotification();
  acked2.WaitForNotification();
  recorded.WaitForNotification();
  EXPECT_TRUE(r1.status.ok()) << r1.status;
  EXPECT_TRUE(r2.status.ok()) << r2.status;
  EXPECT_TRUE(record_status.ok()) << record_status;
  {
    absl::MutexLock lock(&mu_);
    // The commit after the held one carries B and C.
    ASSERT_GT(commits_.size(), held_index_ + 1);
    EXPECT_EQ(commits_[held_index_ + 1], 2u);
  }
  EXPECT_EQ(LastSeq(), 20u);
  ExpectVerifyExact();
}

}  // namespace
}  // namespace pumptwin::server
