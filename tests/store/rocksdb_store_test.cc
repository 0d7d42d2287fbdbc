// Store behaviour, run against both backends (RocksDbStore and MemStore), plus what only the
// RocksDB backend has: persistence across reopen, retention by compaction, reads while writing.
#include "server/store/rocksdb_store.h"

#include <atomic>
#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "server/store/mem_store.h"
#include "store_test_util.h"

namespace pumptwin::store {
namespace {

using testing::Chunk;
using testing::NumberedGroup;
using testing::ScratchDir;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

class StoreConformance : public ::testing::TestWithParam<bool /*rocksdb*/> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      auto opened = RocksDbStore::Open({.path = dir_.Sub("db")});
      ASSERT_TRUE(opened.ok()) << opened.status();
      store_ = *std::move(opened);
    } else {
      store_ = std::make_unique<MemStore>();
    }
  }
  ScratchDir dir_;
  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformance, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "RocksDb" : "Mem"; });

TEST_P(StoreConformance, CommittedGroupIsReadableEverywhere) {
  WriteGroup g = NumberedGroup(0);
  g.pumps.emplace_back("p0", "registration");
  g.meta.emplace_back("next_alert", "2");
  ASSERT_TRUE(store_->Commit(g).ok());
  EXPECT_EQ(*store_->GetPump("p0"), "registration");
  EXPECT_EQ(*store_->GetSnapshot("p0"), "snapshot-after-group-0");
  EXPECT_EQ(*store_->GetMeta("next_alert"), "2");
  EXPECT_EQ(*store_->GetPumpHead("p0"), (PumpHead{"p0", 10, g.telemetry[0].last_device_time}));
  EXPECT_EQ(*store_->LastAlertCursor(), 1u);
  EXPECT_EQ(*store_->LastAuditSeq(), 1u);
  EXPECT_EQ(store_->GetPump("p1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetPumpHead("p1").status().code(), absl::StatusCode::kNotFound);
  std::vector<TelemetryChunk> chunks;
  ASSERT_TRUE(store_
                  ->ScanTelemetry("p0", absl::InfinitePast(), absl::InfiniteFuture(),
                                  [&](const TelemetryChunk& c) {
                                    chunks.push_back(c);
                                    return true;
                                  })
                  .ok());
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0], g.telemetry[0]);  // every field, server_time included
  EXPECT_EQ(chunks[0].server_time, absl::FromUnixSeconds(1800000000));
}

TEST_P(StoreConformance, TelemetryTimeRangeSelectsOverlappingChunksOfThatPumpOnly) {
  WriteGroup g;
  for (int i = 0; i < 5; ++i) {  // chunks of 10 one-minute samples, 10 minutes apart
    g.telemetry.push_back(Chunk("ab", 1 + 10 * i, 10, kT0 + absl::Minutes(10 * i)));
    g.telemetry.push_back(Chunk("abc", 1 + 10 * i, 10, kT0 + absl::Minutes(10 * i)));
  }
  ASSERT_TRUE(store_->Commit(g).ok());
  // Several chunks of a pump in one group: the head is the last chunk's.
  for (const char* pump : {"ab", "abc"}) {
    EXPECT_EQ(*store_->GetPumpHead(pump), (PumpHead{pump, 50, g.telemetry[9].last_device_time}));
  }
  std::vector<uint64_t> firsts;
  auto collect = [&](const TelemetryChunk& c) {
    EXPECT_EQ(c.pump_id, "ab");
    firsts.push_back(c.first_seq);
    return true;
  };
  // [15 min, 31 min): chunk 1 (10..19 min) overlaps, 2, and 3 (starts at 30).
  ASSERT_TRUE(
      store_->ScanTelemetry("ab", kT0 + absl::Minutes(15), kT0 + absl::Minutes(31), collect).ok());
  EXPECT_EQ(firsts, (std::vector<uint64_t>{11, 21, 31}));
  firsts.clear();
  ASSERT_TRUE(
      store_->ScanTelemetry("ab", kT0 + absl::Minutes(9.5), kT0 + absl::Minutes(10), collect).ok());
  EXPECT_TRUE(firsts.empty());
  ASSERT_TRUE(store_
                  ->ScanTelemetry("ab", absl::InfinitePast(), absl::InfiniteFuture(),
                                  [&](const TelemetryChunk& c) {
                                    firsts.push_back(c.first_seq);
                                    return firsts.size() < 2;
                                  })
                  .ok());
  EXPECT_EQ(firsts, (std::vector<uint64_t>{1, 11}));  // early stop
}

TEST_P(StoreConformance, ReplayAfterSeqReturnsLaterSamplesInOrder) {
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(store_->Commit(NumberedGroup(i, 1)).ok());
  std::vector<uint64_t> seqs;
  ASSERT_TRUE(ScanSamplesAfterSeq(*store_, "p0", 45, [&](const twin::Sample& s) {
                seqs.push_back(s.seq);
                return true;
              }).ok());
  std::vector<uint64_t> want;
  for (uint64_t s = 46; s <= 60; ++s) want.push_back(s);
  EXPECT_EQ(seqs, want);
  EXPECT_EQ(store_->GetPumpHead("p0")->last_seq, 60u);
  seqs.clear();
  ASSERT_TRUE(ScanSamplesAfterSeq(*store_, "p0", 60, [&](const twin::Sample& s) {
                seqs.push_back(s.seq);
                return true;
              }).ok());
  EXPECT_TRUE(seqs.empty());
}

TEST_P(StoreConformance, AlertAndAuditScansResumeStrictlyAfterTheCursor) {
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(store_->Commit(NumberedGroup(i)).ok());
  auto alerts = store_->ScanAlertsAfter(4, 3);
  ASSERT_TRUE(alerts.ok());
  ASSERT_EQ(alerts->size(), 3u);
  EXPECT_EQ((*alerts)[0], (std::pair<uint64_t, std::string>{5, "alert-4"}));
  EXPECT_EQ((*alerts)[2].first, 7u);
  EXPECT_EQ(store_->ScanAuditAfter(10, 100)->size(), 0u);
  EXPECT_EQ(store_->ScanAuditAfter(0, 100)->size(), 10u);
  EXPECT_EQ(*store_->LastAlertCursor(), 10u);
}

TEST_P(StoreConformance, RecoveryScansSeeEveryPump) {
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(store_->Commit(NumberedGroup(i)).ok());
  std::vector<PumpHead> heads;
  ASSERT_TRUE(store_
                  ->ScanPumpHeads([&](const PumpHead& h) {
                    heads.push_back(h);
                    return true;
                  })
                  .ok());
  ASSERT_EQ(heads.size(), 3u);
  for (const PumpHead& h : heads) EXPECT_EQ(h.last_seq, 30u) << h.pump_id;
  std::vector<std::string> snaps;
  ASSERT_TRUE(store_
                  ->ScanAllSnapshots([&](absl::string_view k, absl::string_view v) {
                    snaps.push_back(absl::StrCat(k, "=", v));
                    return true;
                  })
                  .ok());
  EXPECT_EQ(snaps,
            (std::vector<std::string>{"p0=snapshot-after-group-6", "p1=snapshot-after-group-7",
                                      "p2=snapshot-after-group-8"}));
}

TEST_P(StoreConformance, MalformedGroupIsRefusedAndLeavesNothing) {
  WriteGroup g = NumberedGroup(0);
  g.telemetry.push_back(Chunk(std::string(256, 'x'), 1, 1, kT0));  // pump id too long
  EXPECT_EQ(store_->Commit(g).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->GetSnapshot("p0").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*store_->LastAlertCursor(), 0u);
  g = NumberedGroup(0);
  g.alerts.emplace_back(0, "cursor 0 is reserved");
  EXPECT_EQ(store_->Commit(g).code(), absl::StatusCode::kInvalidArgument);
  g = NumberedGroup(0);
  std::swap(g.telemetry[0].first_seq, g.telemetry[0].last_seq);
  EXPECT_EQ(store_->Commit(g).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->GetPumpHead("p0").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformance, LaterPutInOneGroupWins) {
  WriteGroup g = NumberedGroup(0);
  g.Append(NumberedGroup(3));  // same pump p0, next chunk
  ASSERT_TRUE(store_->Commit(g).ok());
  EXPECT_EQ(*store_->GetSnapshot("p0"), "snapshot-after-group-3");
  EXPECT_EQ(store_->GetPumpHead("p0")->last_seq, 20u);
}

// ---- RocksDB only ------------------------------------------------------------------------

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

TEST(RocksDbStore, ReadersSeeWholeGroupsWhileTheWriterCommits) {
  ScratchDir dir;
  auto opened = RocksDbStore::Open({.path = dir.Sub("db")});
  ASSERT_TRUE(opened.ok());
  RocksDbStore& store = **opened;
  constexpr int kGroups = 150;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < kGroups; ++i) EXPECT_TRUE(store.Commit(NumberedGroup(i)).ok());
    done = true;
  });
  auto reader = [&] {
    int checks = 0;
    while (!done || checks < 5) {
      ++checks;
      // Alerts are contiguous up to the last visible cursor.
      const uint64_t last = *store.LastAlertCursor();
      auto alerts = store.ScanAlertsAfter(0, kGroups + 1);
      ASSERT_TRUE(alerts.ok());
      ASSERT_GE(alerts->size(), last);
      for (size_t i = 0; i < alerts->size(); ++i) ASSERT_EQ((*alerts)[i].first, i + 1);
      // A visible head implies its chunk is visible (same atomic group).
      for (const char* pump : {"p0", "p1", "p2"}) {
        absl::StatusOr<PumpHead> head = store.GetPumpHead(pump);
        if (!head.ok()) continue;
        uint64_t seen = 0;
        ASSERT_TRUE(store
                        .ScanTelemetryAfterSeq(pump, head->last_seq - 1,
                                               [&](const TelemetryChunk& c) {
                                                 seen = std::max(seen, c.last_seq);
                                                 return true;
                                               })
                        .ok());
        ASSERT_GE(seen, head->last_seq);
      }
    }
  };
  std::thread r1(reader), r2(reader);
  writer.join();
  r1.join();
  r2.join();
  EXPECT_EQ(*store.LastAlertCursor(), static_cast<uint64_t>(kGroups));
}

}  // namespace
}  // namespace pumptwin::store
