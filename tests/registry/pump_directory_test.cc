// PumpDirectory: StripeOf is deterministic and spreads even ids that differ only in the high
// bits of one character (plain FNV-1a modulo 2 is the parity of the bytes' low bits, so
// such ids all landed on one shard); placement puts a gateway's pumps on one shard, keeps
// the shards balanced within kPlacementSlack, and Insert is the one-twin-per-id check.
#include "server/core/pump_directory.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "pumptwin/v1/resources.pb.h"
#include "server/core/pump_list.h"

namespace pumptwin::server {
namespace {

TEST(PumpDirectory, StripeIsTheSameForTheSameIdInEveryInstance) {
  PumpDirectory a(4), b(4);
  for (int i = 0; i < 100; ++i) {
    const std::string id = absl::StrCat("SYN-", i);
    EXPECT_EQ(a.StripeOf(id), b.StripeOf(id)) << id;
    EXPECT_GE(a.StripeOf(id), 0);
    EXPECT_LT(a.StripeOf(id), 4);
  }
}

TEST(PumpDirectory, IdsDifferingOnlyInHighCharacterBitsSpreadOverStripes) {
  // 'A', 'E', 'I', 'M', ... share their two low bits: FNV-1a alone put all of them on the
  // same stripe of 2 and of 4.
  for (int stripes : {2, 4}) {
    PumpDirectory dir(stripes);
    std::vector<int> count(static_cast<size_t>(stripes), 0);
    for (char c = 'A'; c <= 'Z'; c = static_cast<char>(c + 4)) {
      for (char d = 'A'; d <= 'Z'; d = static_cast<char>(d + 4)) {
        ++count[static_cast<size_t>(dir.StripeOf(std::string("pump-") + c + d))];
      }
    }
    for (int s = 0; s < stripes; ++s) {
      EXPECT_GE(count[static_cast<size_t>(s)], 49 / stripes / 3)
          << "stripe " << s << " of " << stripes << " is nearly empty";
    }
  }
}

v1::Pump Bound(const std::string& id, const std::vector<std::string>& gateways) {
  v1::Pump p;
  p.set_pump_id(id);
  for (const std::string& g : gateways) p.add_gateway_ids(g);
  return p;
}

int MustInsert(PumpDirectory& dir, const v1::Pump& pump) {
  absl::StatusOr<int> shard = dir.Insert(pump);
  EXPECT_TRUE(shard.ok()) << shard.status();
  return shard.value_or(-1);
}

TEST(PumpDirectoryPlacement, AGatewaysPumpsShareOneShardAndGatewaysSpreadOverShards) {
  PumpDirectory dir(4);
  std::vector<int> gateway_shard;
  for (int g = 0; g < 4; ++g) {
    const std::string gw = absl::StrCat("gw-", g);
    const int first = MustInsert(dir, Bound(absl::StrCat(gw, "-p0"), {gw}));
    for (int p = 1; p < 10; ++p) {
      const std::string id = absl::StrCat(gw, "-p", p);
      EXPECT_EQ(MustInsert(dir, Bound(id, {gw})), first) << id;
      EXPECT_EQ(dir.ShardOf(id), first);
    }
    gateway_shard.push_back(first);
  }
  // Each new gateway took the least loaded shard: all four are used once.
  std::sort(gateway_shard.begin(), gateway_shard.end());
  EXPECT_EQ(gateway_shard, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(dir.ShardLoads(), (std::vector<size_t>{10, 10, 10, 10}));
}

TEST(PumpDirectoryPlacement, AGatewayWithThousandsOfPumpsSpreadsInRunsWithinTheSlack) {
  PumpDirectory dir(4);
  const int n = static_cast<int>(PumpDirectory::kPlacementSlack) * 20;
  int switches = 0, last = -1;
  for (int p = 0; p < n; ++p) {
    const int shard = MustInsert(dir, Bound(absl::StrCat("hospital-p", p), {"hospital-relay"}));
    if (shard != last) ++switches;
    last = shard;
  }
  const std::vector<size_t> loads = dir.ShardLoads();
  const auto [lo, hi] = std::minmax_element(loads.begin(), loads.end());
  EXPECT_LE(*hi - *lo, PumpDirectory::kPlacementSlack) << "shards unbalanced";
  // Runs of about kPlacementSlack pumps, not one shard per pump (which would give up the
  // frame-to-one-shard affinity) and not all on one shard.
  EXPECT_GE(switches, 4);
  EXPECT_LE(switches, n / static_cast<int>(PumpDirectory::kPlacementSlack) + 4);
}

TEST(PumpDirectoryPlacement, APumpWithoutGatewayGoesByTheHashOfItsId) {
  PumpDirectory dir(4);
  EXPECT_EQ(MustInsert(dir, Bound("lonely", {})), dir.StripeOf("lonely"));
}

TEST(PumpDirectoryPlacement, InsertRefusesAKnownIdAndPutKeepsTheShardWhenRebound) {
  PumpDirectory dir(2);
  MustInsert(dir, Bound("gw-a-p", {"gw-a"}));
  const int shard_a = dir.ShardOf("gw-a-p");
  MustInsert(dir, Bound("gw-b-p", {"gw-b"}));
  ASSERT_NE(dir.ShardOf("gw-b-p"), shard_a);
  absl::StatusOr<int> again = dir.Insert(Bound("gw-a-p", {"gw-b"}));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(again.status().message().find("gw-a-p"), std::string::npos);
  // Rebinding to gw-b (whose shard differs) does not move the twin.
  EXPECT_EQ(dir.Put(Bound("gw-a-p", {"gw-b"})), shard_a);
  EXPECT_EQ(dir.ShardOf("gw-a-p"), shard_a);
  EXPECT_TRUE(dir.Authorize("gw-b", "gw-a-p").ok());
  EXPECT_EQ(dir.Authorize("gw-a", "gw-a-p").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(dir.ShardLoads(), (std::vector<size_t>{1, 1}));
}

TEST(PumpDirectoryPlacement, EraseAndClearGiveThePlacementBack) {
  PumpDirectory dir(2);
  const int s = MustInsert(dir, Bound("p1", {"gw"}));
  dir.Erase("p1");
  EXPECT_EQ(dir.ShardOf("p1"), -1);
  EXPECT_EQ(dir.ShardLoads(), (std::vector<size_t>{0, 0}));
  MustInsert(dir, Bound("p1", {"gw"}));  // the id is free again
  EXPECT_EQ(dir.ShardOf("p1"), s);
  dir.Clear();
  EXPECT_EQ(dir.ShardOf("p1"), -1);
  EXPECT_EQ(dir.ShardLoads(), (std::vector<size_t>{0, 0}));
  EXPECT_EQ(dir.size(), 0u);
}

TEST(PumpDirectoryGateways, PumpsWithTheSameBindingsShareOneInternedSetInOrder) {
  PumpDirectory dir(2);
  ASSERT_TRUE(dir.Insert(Bound("p1", {"home-7", "clinic-2"})).ok());
  ASSERT_TRUE(dir.Insert(Bound("p2", {"home-7", "clinic-2"})).ok());
  ASSERT_TRUE(dir.Insert(Bound("p3", {"home-7"})).ok());
  ASSERT_TRUE(dir.Insert(Bound("p4", {})).ok());
  auto p1 = dir.Get("p1"), p2 = dir.Get("p2"), p3 = dir.Get("p3"), p4 = dir.Get("p4");
  ASSERT_TRUE(p1 && p2 && p3 && p4);
  EXPECT_EQ(p1->gateways, p2->gateways) << "the same bindings are one interned set";
  EXPECT_NE(p1->gateways, p3->gateways);
  ASSERT_EQ(p1->gateways->size(), 2u);
  EXPECT_EQ(*(*p1->gateways)[0], "home-7");  // registration order: the first places the pump
  EXPECT_EQ(*(*p1->gateways)[1], "clinic-2");
  EXPECT_EQ((*p1->gateways)[0], (*p3->gateways)[0]) << "gateway ids are interned too";
  EXPECT_TRUE(p4->gateways->empty());
  EXPECT_TRUE(dir.Authorize("clinic-2", "p2").ok());
  EXPECT_EQ(dir.Authorize("clinic-2", "p3").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(dir.PumpsOfGateway("home-7"), (std::vector<std::string>{"p1", "p2", "p3"}));
}

// A directory node is the pump id (32 bytes) plus the entry: 48 bytes keep it in glibc's
// 96-byte chunk (docs/benchmarks.md, fleet memory).
TEST(PumpDirectoryGateways, AnEntryFitsItsAllocationChunk) { EXPECT_LE(sizeof(PumpEntry), 48u); }

// ListPumps' selection: every page sequence, for random filters, orders and page sizes,
// concatenates to the matching pumps sorted by the order's key (the reference is a full
// sort of the directory), and a query for an unknown clinic lists nothing.
TEST(PumpList, PagesConcatenateToTheSortedMatchingPumps) {
  PumpDirectory dir(4);
  std::mt19937_64 rng(11);
  const std::vector<std::string> clinics = {"north", "south", "east"};
  struct Ref {
    std::string id, clinic;
    PumpEntry e;
  };
  std::vector<Ref> ref;
  for (int i = 0; i < 400; ++i) {
    v1::Pump p;
    p.set_pump_id(absl::StrCat("p", rng() % 100000, "-", i));
    p.set_clinic(clinics[rng() % clinics.size()]);
    p.set_lifecycle(rng() % 10 == 0 ? v1::PUMP_LIFECYCLE_DECOMMISSIONED
                                    : v1::PUMP_LIFECYCLE_IMPLANTED);
    p.add_gateway_ids("gw");
    dir.Put(p);
    PumpSummary sum;
    sum.worst_severity = static_cast<uint8_t>(rng() % 4);
    sum.silent = rng() % 5 == 0;
    sum.next_refill_due_ms = rng() % 3 == 0 ? 0 : static_cast<int64_t>(rng() % 1000);
    sum.battery_eri_ms = rng() % 2 == 0 ? 0 : static_cast<int64_t>(rng() % 1000);
    dir.UpdateSummary(p.pump_id(), sum);
    ref.push_back({p.pump_id(), p.clinic(), *dir.Get(p.pump_id())});
  }
  // The urgency index follows changes: new summaries, a changed registration, erased pumps.
  for (size_t i = 0; i < ref.size(); ++i) {
    if (rng() % 3 == 0) {
      PumpSummary sum = ref[i].e.summary;
      sum.worst_severity = static_cast<uint8_t>(rng() % 4);
      sum.next_refill_due_ms = static_cast<int64_t>(rng() % 1000);
      dir.UpdateSummary(ref[i].id, sum);
    } else if (rng() % 10 == 0) {
      v1::Pump p;
      p.set_pump_id(ref[i].id);
      p.set_clinic(ref[i].clinic);
      p.set_lifecycle(v1::PUMP_LIFECYCLE_DECOMMISSIONED);
      p.add_gateway_ids("gw");
      dir.Put(p);
    }
    ref[i].e = *dir.Get(ref[i].id);
  }
  for (size_t i = ref.size(); i-- > 0;) {
    if (rng() % 20 == 0) {
      dir.Erase(ref[i].id);
      ref.erase(ref.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  for (int q = 0; q < 60; ++q) {
    v1::ListPumpsRequest req;
    if (q % 3 == 0) req.set_clinic(clinics[rng() % clinics.size()]);
    req.set_order(q % 2 == 0 ? v1::PUMP_ORDER_URGENCY : v1::PUMP_ORDER_UNSPECIFIED);
    req.set_include_decommissioned(q % 4 == 0);
    req.set_alerting_only(q % 5 == 0);
    if (q % 7 == 0) req.set_min_severity(v1::SEVERITY_WARNING);
    req.set_stale_only(q % 11 == 0);
    if (q % 6 == 0) req.set_refill_due_before_ms(500);
    if (q % 9 == 0) req.set_battery_replacement_due_before_ms(700);
    const bool urgency = req.order() == v1::PUMP_ORDER_URGENCY;
    std::vector<ListKey> want;
    for (const Ref& r : ref) {
      const PumpSummary& m = r.e.summary;
      if (!req.include_decommissioned() && r.e.lifecycle == v1::PUMP_LIFECYCLE_DECOMMISSIONED)
        continue;
      if (!req.clinic().empty() && r.clinic != req.clinic()) continue;
      if (req.alerting_only() && m.worst_severity == 0) continue;
      if (req.min_severity() > 0 && m.worst_severity < req.min_severity()) continue;
      if (req.stale_only() && !m.silent) continue;
      if (req.refill_due_before_ms() > 0 &&
          (m.next_refill_due_ms <= 0 || m.next_refill_due_ms >= req.refill_due_before_ms()))
        continue;
      if (req.battery_replacement_due_before_ms() > 0 &&
          (m.battery_eri_ms <= 0 || m.battery_eri_ms >= req.battery_replacement_due_before_ms()))
        continue;
      ListKey k;
      k.id = r.id;
      if (urgency) {
        k.neg_severity = -static_cast<int>(m.worst_severity);
        for (int64_t d : {m.next_refill_due_ms, m.battery_eri_ms}) {
          if (d > 0) k.due_ms = std::min(k.due_ms, d);
        }
      }
      want.push_back(k);
    }
    std::sort(want.begin(), want.end());
    const size_t page_size = 1 + rng() % 40;
    std::vector<std::string> got;
    std::optional<ListKey> after;
    for (int pages = 0; pages < 1000; ++pages) {
      const PumpPage page = SelectPumps(dir, req, after, page_size);
      ASSERT_LE(page.keys.size(), page_size);
      for (const ListKey& k : page.keys) got.push_back(k.id);
      if (!page.more) break;
      ASSERT_EQ(page.keys.size(), page_size);
      after = page.keys.back();
    }
    std::vector<std::string> want_ids;
    for (const ListKey& k : want) want_ids.push_back(k.id);
    EXPECT_EQ(got, want_ids) << "query " << q << " page size " << page_size;
  }
  v1::ListPumpsRequest unknown;
  unknown.set_clinic("nowhere");
  EXPECT_TRUE(SelectPumps(dir, unknown, std::nullopt, 10).keys.empty());
}

}  // namespace
}  // namespace pumptwin::server
