// What only the RocksDB backend has: persistence across reopen, retention by compaction,
// memtables. The Store contract itself is in store_contract_test.cc.
#include "server/store/rocksdb_store.h"

#include <memory>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "store_test_util.h"

namespace pumptwin::store {
namespace {

using testing::Chunk;
using testing::NumberedGroup;
using testing::ScratchDir;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

TEST(RocksDbStore, EverythingSurvivesReopen) {
  ScratchDir dir;
  {
    auto store = RocksDbStore::Open({.path = dir.Sub("db")});
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 20; ++i) ASSERT_TRUE((*store)->Commit(NumberedGroup(i)).ok());
  }
  auto store = RocksDbStore::Open({.path = dir.Sub("db"), .create_if_missing = false});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(*(*store)->LastAlertCursor(), 20u);
  EXPECT_EQ(*(*store)->GetSnapshot("p1"), "snapshot-after-group-19");
  EXPECT_EQ((*store)->GetPumpHead("p2")->last_seq, 60u);
  EXPECT_EQ(*(*store)->GetMeta("pumptwin.store.format_version"), "1");
  EXPECT_NE((*store)->compression_description().find("telemetry=LZ4+ZSTD"), std::string::npos)
      << (*store)->compression_description();
}

TEST(RocksDbStore, FlushMemtablesHandsTheirMemoryBackAndKeepsEveryGroup) {
  ScratchDir dir;
  auto store = RocksDbStore::Open({.path = dir.Sub("db")});
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE((*store)->Commit(NumberedGroup(i)).ok());
  auto before = (*store)->ApproximateSizes();
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_TRUE((*store)->FlushMemtables().ok());
  auto after = (*store)->ApproximateSizes();
  ASSERT_TRUE(after.ok()) << after.status();
  // An empty memtable keeps one arena block per column family; the groups' bytes are gone.
  EXPECT_LT(after->memtable_bytes, before->memtable_bytes / 2)
      << before->memtable_bytes << " -> " << after->memtable_bytes;
  EXPECT_EQ(*(*store)->LastAlertCursor(), 20u);
  EXPECT_EQ(*(*store)->GetSnapshot("p1"), "snapshot-after-group-19");
  EXPECT_EQ((*store)->GetPumpHead("p2")->last_seq, 60u);
}

TEST(RocksDbStore, ACommitWritesEachChunkOnceAndOneHeadPerPump) {
  ScratchDir dir;
  auto store = RocksDbStore::Open({.path = dir.Sub("db")});
  ASSERT_TRUE(store.ok()) << store.status();
  auto before = (*store)->MemtableEntries();
  ASSERT_TRUE(before.ok()) << before.status();
  WriteGroup g;  // five chunks of two pumps, as a merged shard group carries them
  for (int i = 0; i < 3; ++i)
    g.telemetry.push_back(Chunk("a", 1 + 10 * i, 10, kT0 + absl::Minutes(i)));
  for (int i = 0; i < 2; ++i)
    g.telemetry.push_back(Chunk("b", 1 + 10 * i, 10, kT0 + absl::Minutes(i)));
  g.snapshots.emplace_back("a", "snap");
  ASSERT_TRUE((*store)->Commit(g).ok());
  auto after = (*store)->MemtableEntries();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(*after - *before, 5u /*chunks*/ + 2u /*heads*/ + 1u /*snapshot*/);
  // The head is the newest chunk's, whatever order the puts went in.
  EXPECT_EQ((*store)->GetPumpHead("a")->last_seq, 30u);
  EXPECT_EQ((*store)->GetPumpHead("b")->last_seq, 20u);
}

TEST(RocksDbStore, OpeningAMissingStoreWithoutCreateFails) {
  ScratchDir dir;
  auto store = RocksDbStore::Open({.path = dir.Sub("nothing"), .create_if_missing = false});
  EXPECT_FALSE(store.ok());
}

TEST(RocksDbStore, UnknownFormatVersionIsRefused) {
  ScratchDir dir;
  {
    auto store = RocksDbStore::Open({.path = dir.Sub("db")});
    WriteGroup g;
    g.meta.emplace_back("pumptwin.store.format_version", "2");
    ASSERT_TRUE((*store)->Commit(g).ok());
  }
  auto store = RocksDbStore::Open({.path = dir.Sub("db")});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
}

TEST(RocksDbStore, CompactionDropsChunksOlderThanRetentionAndKeepsRecentOnes) {
  ScratchDir dir;
  absl::Mutex mu;
  absl::Time now = kT0;  // the injected server clock
  auto clock = [&] {
    absl::MutexLock lock(&mu);
    return now;
  };
  auto store = RocksDbStore::Open(
      {.path = dir.Sub("db"), .now = clock, .telemetry_retention = absl::Hours(24 * 30)});
  ASSERT_TRUE(store.ok()) << store.status();
  // 60 daily chunks, the last one ending just before kT0 + 60 days.
  for (int day = 0; day < 60; ++day) {
    WriteGroup g;
    g.telemetry.push_back(Chunk("p", 1 + 10 * day, 10, kT0 + absl::Hours(24 * day)));
    ASSERT_TRUE((*store)->Commit(g).ok());
  }
  {
    absl::MutexLock lock(&mu);
    now = kT0 + absl::Hours(24 * 60);  // cutoff = kT0 + 30 days
  }
  ASSERT_TRUE((*store)->CompactAll().ok());
  std::vector<absl::Time> firsts;
  ASSERT_TRUE((*store)
                  ->ScanTelemetry("p", absl::InfinitePast(), absl::InfiniteFuture(),
                                  [&](const TelemetryChunk& c) {
                                    firsts.push_back(c.first_device_time);
                                    return true;
                                  })
                  .ok());
  ASSERT_EQ(firsts.size(), 30u);  // days 30..59 (each chunk ends 9 min after its day starts)
  EXPECT_EQ(firsts.front(), kT0 + absl::Hours(24 * 30));
  EXPECT_EQ((*store)->GetPumpHead("p")->last_seq, 600u);  // resume point outlives retention
}

}  // namespace
}  // namespace pumptwin::store
