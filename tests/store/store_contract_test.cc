// The Store contract, run against every backend: MemStore, RocksDbStore and PostgresStore
// (the last on a PostgreSQL server the test starts itself; a missing PostgreSQL installation
// fails these tests with the package to install).
#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "server/store/mem_store.h"
#include "server/store/postgres_store.h"
#include "server/store/rocksdb_store.h"
#include "store_test_util.h"
#include "tests/store/postgres_test_server.h"

namespace pumptwin::store {
namespace {

using testing::Chunk;
using testing::NumberedGroup;
using testing::ScratchDir;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

enum class Backend { kMem, kRocksDb, kPostgres };

class StoreConformance : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    switch (GetParam()) {
      case Backend::kMem:
        store_ = std::make_unique<MemStore>();
        break;
      case Backend::kRocksDb: {
        auto opened = RocksDbStore::Open({.path = dir_.Sub("db")});
        ASSERT_TRUE(opened.ok()) << opened.status();
        store_ = *std::move(opened);
        break;
      }
      case Backend::kPostgres: {
        absl::StatusOr<pumptwin::testing::PostgresTestServer*> server =
            pumptwin::testing::SharedPostgresTestServer();
        ASSERT_TRUE(server.ok()) << server.status();
        auto opened = PostgresStore::Open(
            {.dsn = (*server)->Dsn(), .schema = pumptwin::testing::NextTestSchema()});
        ASSERT_TRUE(opened.ok()) << opened.status();
        store_ = *std::move(opened);
        break;
      }
    }
  }
  ScratchDir dir_;
  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformance,
                         ::testing::Values(Backend::kMem, Backend::kRocksDb, Backend::kPostgres),
                         [](const auto& info) {
                           switch (info.param) {
                             case Backend::kMem:
                               return "Mem";
                             case Backend::kRocksDb:
                               return "RocksDb";
                             case Backend::kPostgres:
                               return "Postgres";
                           }
                           return "Unknown";
                         });

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
  absl::Status committed = store_->Commit(g);
  ASSERT_TRUE(committed.ok()) << committed;
  EXPECT_EQ(*store_->GetSnapshot("p0"), "snapshot-after-group-3");
  EXPECT_EQ(store_->GetPumpHead("p0")->last_seq, 20u);
}

TEST_P(StoreConformance, KeysAreOrderedBytewiseAndMayHoldAnyByte) {
  // Bytes >= 0x80 sort after ASCII (unsigned), "a" before "a\0", NUL bytes kept.
  const std::vector<std::string> names = {
      std::string("a"), std::string("a\0", 2), std::string("a\0b", 3), "ab", "b", "\x7f", "\x80",
      "\xff\x01"};
  WriteGroup g;
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    g.meta.emplace_back(*it, absl::StrCat("v", it->size()));
    g.pumps.emplace_back(*it, std::string("\0\xff", 2));
  }
  ASSERT_TRUE(store_->Commit(g).ok());
  std::vector<std::string> seen;
  auto collect = [&](absl::string_view k, absl::string_view) {
    seen.emplace_back(k);
    return true;
  };
  ASSERT_TRUE(store_->ScanMetaRange(std::string("a\0", 2), "c", collect).ok());
  EXPECT_EQ(seen,
            (std::vector<std::string>{std::string("a\0", 2), std::string("a\0b", 3), "ab", "b"}));
  seen.clear();
  ASSERT_TRUE(store_->ScanMetaRange("\x7f", "\xff\x02", collect).ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"\x7f", "\x80", "\xff\x01"}));
  seen.clear();
  ASSERT_TRUE(store_->ScanPumps(collect).ok());
  EXPECT_EQ(seen, names);
  EXPECT_EQ(*store_->GetPump(std::string("a\0b", 3)), std::string("\0\xff", 2));
  EXPECT_EQ(store_->GetPump(std::string("a\0c", 3)).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformance, MetaRangeEraseRunsBeforeTheGroupsMetaPuts) {
  WriteGroup g;
  for (const char* k : {"ck/a/1", "ck/a/2", "ck/a/3", "ck/b/1"}) g.meta.emplace_back(k, "old");
  ASSERT_TRUE(store_->Commit(g).ok());
  WriteGroup prune;
  prune.meta_erase_ranges.emplace_back("ck/a/", "ck/a/3");
  prune.meta_erase_ranges.emplace_back("z", "a");  // empty range: erases nothing
  prune.meta.emplace_back("ck/a/2", "new");        // put after the erase of its range
  ASSERT_TRUE(store_->Commit(prune).ok());
  std::vector<std::string> seen;
  ASSERT_TRUE(store_
                  ->ScanMetaRange("ck/", "ck0",
                                  [&](absl::string_view k, absl::string_view v) {
                                    seen.push_back(absl::StrCat(k, "=", v));
                                    return true;
                                  })
                  .ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"ck/a/2=new", "ck/a/3=old", "ck/b/1=old"}));
  EXPECT_EQ(store_->GetMeta("ck/a/1").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformance, ScanCallbacksMayCallTheStore) {
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(store_->Commit(NumberedGroup(i)).ok());
  int nested_ok = 0;
  ASSERT_TRUE(store_
                  ->ScanPumpHeads([&](const PumpHead& h) {
                    absl::StatusOr<std::string> snap = store_->GetSnapshot(h.pump_id);
                    std::vector<uint64_t> firsts;
                    absl::Status replay =
                        store_->ScanTelemetryAfterSeq(h.pump_id, 0, [&](const TelemetryChunk& c) {
                          firsts.push_back(c.first_seq);
                          return true;
                        });
                    if (snap.ok() && replay.ok() && firsts == std::vector<uint64_t>{1, 11}) {
                      ++nested_ok;
                    }
                    return true;
                  })
                  .ok());
  EXPECT_EQ(nested_ok, 3);
}

TEST_P(StoreConformance, LongScansReturnEveryEntryInOrder) {
  WriteGroup g;
  for (int i = 2499; i >= 0; --i) g.pumps.emplace_back(absl::StrFormat("pump-%05d", i), "r");
  for (int i = 0; i < 300; ++i) {
    g.telemetry.push_back(Chunk("long", 1 + 10 * i, 10, kT0 + absl::Minutes(10 * i)));
  }
  ASSERT_TRUE(store_->Commit(g).ok());
  int pumps = 0;
  ASSERT_TRUE(store_
                  ->ScanPumps([&](absl::string_view k, absl::string_view) {
                    EXPECT_EQ(k, absl::StrFormat("pump-%05d", pumps));
                    ++pumps;
                    return true;
                  })
                  .ok());
  EXPECT_EQ(pumps, 2500);
  uint64_t next_first = 1;
  ASSERT_TRUE(store_
                  ->ScanTelemetry("long", absl::InfinitePast(), absl::InfiniteFuture(),
                                  [&](const TelemetryChunk& c) {
                                    EXPECT_EQ(c.first_seq, next_first);
                                    next_first += 10;
                                    return true;
                                  })
                  .ok());
  EXPECT_EQ(next_first, 3001u);
  std::vector<uint64_t> firsts;
  ASSERT_TRUE(store_
                  ->ScanTelemetryAfterSeq("long", 2950,
                                          [&](const TelemetryChunk& c) {
                                            firsts.push_back(c.first_seq);
                                            return true;
                                          })
                  .ok());
  EXPECT_EQ(firsts,
            (std::vector<uint64_t>{2951, 2961, 2971, 2981, 2991}));  // 2941..2950 is not after
}

TEST_P(StoreConformance, ReadersSeeWholeGroupsWhileTheWriterCommits) {
  Store& store = *store_;
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
