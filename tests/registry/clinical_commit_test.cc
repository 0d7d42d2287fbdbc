// A clinical call's group is not held back by ingest: with ShardOptions::max_groups_in_flight
// ingest groups submitted and the committer busy, the shard still submits the group that
// answers a clinical record, so it joins the next commit with the ingest group queued before
// it instead of waiting for a place first; and frames queued behind the record on the shard
// do not go into (and delay) the record's group.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/core/event_inputs.h"
#include "server/store/telemetry_codec.h"
#include "tests/registry/registry_fixture.h"

namespace pumptwin::server {
namespace {

class ClinicalCommitTest : public RegistryTest {
 protected:
  void SetUp() override {
    store::GroupCommitterOptions co;
    // A commit whose index is at or above release_below_ waits there, after the store
    // write and before its groups are answered.
    co.metrics.on_commit = [this](const store::CommitStats& stats) {
      absl::MutexLock lock(&mu_);
      const size_t index = commits_.size();
      commits_.push_back(stats.groups);
      if (index < release_below_) return;
      waiting_ = index;
      auto released = [this, index]()
                          ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return index < release_below_; };
      mu_.Await(absl::Condition(&released));
      waiting_.reset();
    };
    committer_ = std::make_unique<store::GroupCommitter>(&store_, std::move(co));
    gate_ = std::make_unique<CommitGate>(&store_, committer_.get());
    registry_ = std::make_unique<TwinRegistry>(&store_, gate_.get(), MakeOptions());
    ASSERT_TRUE(registry_->Recover().ok());
    absl::Status st = Register(TestPump());
    ASSERT_TRUE(st.ok()) << st;
  }

  void TearDown() override {
    ReleaseAll();  // a failed assertion must not leave the committer waiting
    RegistryTest::TearDown();
  }

  // Every chunk encoded (on submission of its group) adds its first and last seq.
  RegistryOptions MakeOptions() const override {
    RegistryOptions o = RegistryTest::MakeOptions();
    o.shard.make_chunk = [this](const std::string& id, const std::vector<twin::Sample>& samples) {
      {
        absl::MutexLock lock(&chunk_mu_);
        chunked_.push_back(samples.front().seq);
        chunked_.push_back(samples.back().seq);
      }
      return store::MakeChunk(id, samples);
    };
    return o;
  }
  std::vector<uint64_t> ChunkedSeqs() {
    absl::MutexLock lock(&chunk_mu_);
    return chunked_;
  }

  // The next commit (and every later one) waits until released.
  void HoldFromNext() {
    absl::MutexLock lock(&mu_);
    release_below_ = commits_.size();
  }
  // Waits until a commit after `after` (or any, when none) is held; returns its index.
  size_t WaitHeld(std::optional<size_t> after = std::nullopt) {
    absl::MutexLock lock(&mu_);
    auto held = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return waiting_.has_value() && (!after.has_value() || *waiting_ > *after);
    };
    mu_.Await(absl::Condition(&held));
    return *waiting_;
  }
  // Lets commit `index` go on; the next one is held.
  void ReleaseOne(size_t index) {
    absl::MutexLock lock(&mu_);
    release_below_ = index + 1;
  }
  void ReleaseAll() {
    absl::MutexLock lock(&mu_);
    release_below_ = SIZE_MAX;
  }
  size_t GroupsOf(size_t index) {
    absl::MutexLock lock(&mu_);
    return index < commits_.size() ? commits_[index] : 0;
  }

  // An access-port aspiration of deg-1 stated 30 s after sample `seq` (in order).
  void RecordAfter(uint64_t seq, std::function<void(absl::Status)> done) {
    const absl::Time at = SampleAt(seq).device_time + absl::Seconds(30);
    v1::RecordEventRequest req;
    req.set_type(v1::CLINICAL_EVENT_ACCESS_PORT_ASPIRATION);
    req.set_device_time_ms(absl::ToUnixMillis(at));
    const std::string payload = req.SerializeAsString();
    registry_->Mutate(
        "deg-1",
        [at, payload](twin::Twin&, MutationContext& ctx) {
          return ctx.apply_input(MakeClinicalInput(InputKind::kEvent, at, ctx.server_time, payload),
                                 nullptr);
        },
        std::move(done));
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
  size_t release_below_ ABSL_GUARDED_BY(mu_) = SIZE_MAX;
  std::optional<size_t> waiting_ ABSL_GUARDED_BY(mu_);  // the commit held now
  std::vector<size_t> commits_ ABSL_GUARDED_BY(mu_);    // groups merged, per commit
  mutable absl::Mutex chunk_mu_;
  mutable std::vector<uint64_t> chunked_ ABSL_GUARDED_BY(chunk_mu_);
};

// The record arrives while the shard has its two groups in flight (A committed and held
// before its answer, B queued behind it): its group C is submitted at once and joins B's
// commit.
TEST_F(ClinicalCommitTest, ARecordJoinsTheQueuedIngestGroupWhileTheShardHasNoFreePlace) {
  ASSERT_EQ(MakeOptions().shard.max_groups_in_flight, 2);
  HoldFromNext();
  absl::Notification acked1, acked2, recorded;
  device_link::IngestResult r1, r2;
  absl::Status record_status = absl::UnknownError("not answered");
  IngestAsync(1, 10, [&](device_link::IngestResult r) {
    r1 = std::move(r);
    acked1.Notify();
  });
  const size_t a = WaitHeld();
  IngestAsync(11, 20, [&](device_link::IngestResult r) {
    r2 = std::move(r);
    acked2.Notify();
  });
  ShardBarrier();
  ASSERT_EQ(committer_->queued_groups(), 1u);
  RecordAfter(20, [&](absl::Status s) {
    record_status = s;
    recorded.Notify();
  });
  ShardBarrier();
  EXPECT_EQ(committer_->queued_groups(), 2u) << "the record's group waits for a free place";
  EXPECT_FALSE(recorded.HasBeenNotified());

  ReleaseAll();
  acked1.WaitForNotification();
  acked2.WaitForNotification();
  recorded.WaitForNotification();
  EXPECT_TRUE(r1.status.ok()) << r1.status;
  EXPECT_TRUE(r2.status.ok()) << r2.status;
  EXPECT_TRUE(record_status.ok()) << record_status;
  EXPECT_EQ(GroupsOf(a + 1), 2u) << "B and C in one commit";
  EXPECT_EQ(LastSeq(), 20u);
  ExpectVerifyExact();
}

// Frames queued on the shard behind a clinical record do not delay the record's commit: its
// group is submitted as soon as the record is applied, without them. Telemetry is encoded
// into chunks when its group is submitted, so while A's commit is held (the frame's group
// then has no place) the chunks made so far show exactly what the record's group holds.
TEST_F(ClinicalCommitTest, FramesQueuedBehindARecordAreNotInItsGroup) {
  HoldFromNext();
  absl::Notification acked1, acked2, recorded;
  absl::Status record_status = absl::UnknownError("not answered");
  IngestAsync(1, 10, [&](device_link::IngestResult) { acked1.Notify(); });
  WaitHeld();  // group A (samples 1-10), committed and held
  ASSERT_EQ(ChunkedSeqs(), (std::vector<uint64_t>{1, 10}));
  // The shard is kept busy while a record and then a frame (samples 11-20) queue behind it.
  absl::Notification busy, go_on;
  registry_->Read("deg-1", [&](const twin::Twin*, absl::Status) {
    busy.Notify();
    go_on.WaitForNotification();
  });
  busy.WaitForNotification();
  RecordAfter(10, [&](absl::Status s) {
    record_status = s;
    recorded.Notify();
  });
  IngestAsync(11, 20, [&](device_link::IngestResult) { acked2.Notify(); });
  go_on.Notify();
  ShardBarrier();
  // The record's group C is queued behind A; the frame applied after it formed a group of
  // its own that waits for a place (A and C hold both), so none of 11-20 was encoded yet.
  EXPECT_EQ(committer_->queued_groups(), 1u) << "the record's group was not submitted at once";
  EXPECT_EQ(ChunkedSeqs(), (std::vector<uint64_t>{1, 10}))
      << "samples 11-20 went into the record's group";
  EXPECT_FALSE(recorded.HasBeenNotified());
  EXPECT_FALSE(acked2.HasBeenNotified());
  ReleaseAll();
  acked1.WaitForNotification();
  recorded.WaitForNotification();
  acked2.WaitForNotification();
  EXPECT_TRUE(record_status.ok()) << record_status;
  EXPECT_EQ(ChunkedSeqs(), (std::vector<uint64_t>{1, 10, 11, 20}));
  EXPECT_EQ(LastSeq(), 20u);
  ExpectVerifyExact();
}

}  // namespace
}  // namespace pumptwin::server
