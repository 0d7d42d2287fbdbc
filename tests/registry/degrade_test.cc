// TwinRegistry under store failure: a failed commit acks nothing, the registry degrades
// (ingest and changes answer UNAVAILABLE, reads keep working), and once writes succeed
// again it reloads every twin from the store and serves as if the failed batch never
// arrived. In-process, over the MemStore with injected commit failures.
#include <atomic>
#include <functional>
#include <memory>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/core/commit_gate.h"
#include "server/core/convert.h"
#include "server/core/twin_registry.h"
#include "server/store/group_committer.h"
#include "server/store/mem_store.h"
#include "server/store/telemetry_codec.h"
#include "tests/registry/registry_fixture.h"

namespace pumptwin::server {
namespace {

class DegradeTest : public RegistryTest {};

TEST_F(DegradeTest, FailedCommitAcksNothingDegradesAndRecoversFromTheStore) {
  auto ok = Ingest(1, 10);
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  ASSERT_EQ(ok.durable.size(), 1u);
  EXPECT_EQ(ok.durable[0].highest_durable_seq, 10u);

  store_.FailCommits(absl::UnavailableError("disk full"));
  auto failed = Ingest(11, 20);
  EXPECT_EQ(failed.status.code(), absl::StatusCode::kUnavailable) << failed.status;
  EXPECT_TRUE(failed.durable.empty()) << "nothing may be acked that is not stored";
  EXPECT_TRUE(registry_->degraded());
  // While degraded: ingest is refused at once, reads still answer.
  auto refused = Ingest(11, 20);
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_GE(LastSeq(), 10u);
  // Writes still fail: revival does not pretend.
  EXPECT_FALSE(registry_->TryRevive().ok());
  EXPECT_TRUE(registry_->degraded());

  store_.ClearFailure();
  ASSERT_TRUE(registry_->TryRevive().ok());
  EXPECT_FALSE(registry_->degraded());
  // The twin came back from the store: exactly what was acknowledged.
  EXPECT_EQ(LastSeq(), 10u);
  auto resent = Ingest(11, 20);
  ASSERT_TRUE(resent.status.ok()) << resent.status;
  EXPECT_EQ(resent.durable[0].highest_durable_seq, 20u);
  EXPECT_EQ(LastSeq(), 20u);
  auto head = store_.GetPumpHead("deg-1");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->last_seq, 20u);
}

// A group formed after a failing one (same pump, next samples) must not be stored even when
// the store takes writes again by the time it is committed: the store would have a gap that
// no resume point shows, and the gateway would never resend the lost samples.
TEST_F(DegradeTest, AGroupFormedAfterAFailedOneIsNeverStored) {
  ASSERT_TRUE(Ingest(1, 10).status.ok());
  absl::Notification entered, release;
  std::atomic<bool> block{true};
  store_.SetCommitHook([&] {
    if (block.exchange(false)) {
      entered.Notify();
      release.WaitForNotification();
    }
  });
  store_.FailCommits(absl::UnavailableError("I/O error (injected)"));
  absl::Notification first_done, second_done;
  device_link::IngestResult first, second;
  IngestAsync(11, 20, [&](device_link::IngestResult r) {
    first = std::move(r);
    first_done.Notify();
  });
  entered.WaitForNotification();  // 11..20 is inside the failing commit
  IngestAsync(21, 30, [&](device_link::IngestResult r) {
    second = std::move(r);
    second_done.Notify();
  });
  // 21..30 continues the failing group; let the shard submit it behind the blocked commit.
  EXPECT_GE(LastSeq(), 30u);
  store_.ClearFailure();  // the store would take 21..30 now
  release.Notify();
  first_done.WaitForNotification();
  second_done.WaitForNotification();
  store_.SetCommitHook(nullptr);  // it refers to this test's locals
  EXPECT_EQ(first.status.code(), absl::StatusCode::kUnavailable) << first.status;
  EXPECT_EQ(second.status.code(), absl::StatusCode::kUnavailable) << second.status;
  EXPECT_TRUE(second.durable.empty());
  auto head = store_.GetPumpHead("deg-1");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->last_seq, 10u) << "a later group was stored after a lost one";
  ASSERT_TRUE(registry_->TryRevive().ok());
  EXPECT_EQ(LastSeq(), 10u);
  auto resent = Ingest(11, 30);
  ASSERT_TRUE(resent.status.ok()) << resent.status;
  EXPECT_EQ(resent.durable[0].highest_durable_seq, 30u);
}

// A chunk that does not encode fails its whole group: nothing of it is acknowledged, the
// registry degrades, and no later group is stored behind the lost one.
TEST_F(DegradeTest, AChunkThatDoesNotEncodeFailsTheGroupAndAcksNothing) {
  ASSERT_TRUE(Ingest(1, 10).status.ok());
  auto fail_encode = std::make_shared<std::atomic<bool>>(false);
  RegistryOptions o = Options();
  o.shard.make_chunk = [fail_encode](const std::string& id,
                                     const std::vector<twin::Sample>& samples) {
    if (fail_encode->load()) {
      return absl::StatusOr<store::TelemetryChunk>(absl::InvalidArgumentError("injected"));
    }
    return store::MakeChunk(id, samples);
  };
  registry_->Stop();
  registry_ = std::make_unique<TwinRegistry>(&store_, gate_.get(), o);
  ASSERT_TRUE(registry_->Recover().ok());
  fail_encode->store(true);
  auto failed = Ingest(11, 20);
  EXPECT_EQ(failed.status.code(), absl::StatusCode::kUnavailable) << failed.status;
  EXPECT_TRUE(failed.durable.empty()) << "samples that were not stored were acknowledged";
  EXPECT_TRUE(registry_->degraded());
  auto head = store_.GetPumpHead("deg-1");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->last_seq, 10u);
  fail_encode->store(false);
  ASSERT_TRUE(registry_->TryRevive().ok());
  EXPECT_EQ(LastSeq(), 10u);
  auto resent = Ingest(11, 20);
  ASSERT_TRUE(resent.status.ok()) << resent.status;
  EXPECT_EQ(resent.durable[0].highest_durable_seq, 20u);
}

}  // namespace
}  // namespace pumptwin::server
