// The time-based snapshot policy: a twin with samples newer than its stored snapshot gets a
// new snapshot at the first tick snapshot_interval (1 h by default) after the last one, not
// before, so a crash replays at most an interval's worth of a slow reporter's samples.
#include <string>

#include "gtest/gtest.h"
#include "tests/registry/registry_fixture.h"

namespace pumptwin::server {
namespace {

class SnapshotPolicyTest : public RegistryTest {
 protected:
  // The seq the stored snapshot of deg-1 has applied, once every group submitted before
  // now is committed (a duplicate sample's ack comes after its group's commit, and the
  // committer keeps a shard's groups in order).
  uint64_t StoredSnapshotSeq(uint64_t barrier_seq) {
    device_link::IngestResult barrier = Ingest(barrier_seq, barrier_seq);
    EXPECT_TRUE(barrier.status.ok()) << barrier.status;
    absl::StatusOr<std::string> bytes = store_.GetSnapshot("deg-1");
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    if (!bytes.ok()) return UINT64_MAX;
    absl::StatusOr<twin::Twin> t = twin::Twin::Deserialize(*bytes);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? t->last_seq() : UINT64_MAX;
  }
};

TEST_F(SnapshotPolicyTest, ATwinBehindItsSnapshotIsSnapshottedOneIntervalLater) {
  const absl::Time registered = Options().shard.now();
  ASSERT_TRUE(Ingest(1, 10).status.ok());  // 10 samples: far below the 256-sample cadence
  EXPECT_EQ(StoredSnapshotSeq(10), 0u);    // still the registration's snapshot
  registry_->Tick(registered + absl::Minutes(59));
  EXPECT_EQ(StoredSnapshotSeq(10), 0u) << "snapshotted before the interval";
  registry_->Tick(registered + absl::Minutes(60));
  EXPECT_EQ(StoredSnapshotSeq(10), 10u) << "no snapshot one interval after the last";
  // Nothing new since: later ticks write nothing more (the snapshot stays at seq 10 while
  // the barrier's duplicate sample changes nothing).
  registry_->Tick(registered + absl::Hours(3));
  EXPECT_EQ(StoredSnapshotSeq(10), 10u);
}

}  // namespace
}  // namespace pumptwin::server
