// ListPumps' selection (server/core/pump_list.h) over a directory of 1 M pumps, the
// clinic worklist's first page: by urgency, by id, one clinic of 50, and a page deep in the
// list. BM_FullSort is the method it replaced (copy every entry, key every match, sort the
// page out of all of them), run side by side for the ratio. docs/benchmarks.md, "Worklist".
#include <algorithm>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "server/core/pump_directory.h"
#include "server/core/pump_list.h"

namespace pumptwin::server {
namespace {

constexpr int kPumps = 1'000'000;
constexpr int kClinics = 50;

const PumpDirectory& Fleet() {
  static PumpDirectory* dir = [] {
    auto* d = new PumpDirectory(8);
    d->Reserve(kPumps);
    std::mt19937_64 rng(7);
    for (int i = 0; i < kPumps; ++i) {
      v1::Pump p;
      p.set_pump_id(absl::StrCat("pump-", rng() % 100000000, "-", i));
      p.set_clinic(absl::StrCat("clinic-", i % kClinics));
      p.set_lifecycle(v1::PUMP_LIFECYCLE_IMPLANTED);
      p.add_gateway_ids(absl::StrCat("gw-", i / 50));
      d->Put(p);
      PumpSummary s;
      s.worst_severity = rng() % 20 == 0 ? static_cast<uint8_t>(1 + rng() % 3) : 0;
      s.next_refill_due_ms = 1'800'000'000'000 + static_cast<int64_t>(rng() % 10'000'000'000);
      s.battery_eri_ms = 1'900'000'000'000 + static_cast<int64_t>(rng() % 100'000'000'000);
      d->UpdateSummary(p.pump_id(), s);
    }
    return d;
  }();
  return *dir;
}

v1::ListPumpsRequest Request(int which) {
  v1::ListPumpsRequest r;
  if (which != 1) r.set_order(v1::PUMP_ORDER_URGENCY);
  if (which == 2) r.set_clinic("clinic-7");
  return r;
}

// 0: urgency, 1: id, 2: urgency in one clinic of 50.
void BM_FirstPage(benchmark::State& state) {
  const PumpDirectory& dir = Fleet();
  const v1::ListPumpsRequest req = Request(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    PumpPage page = SelectPumps(dir, req, std::nullopt, 100);
    benchmark::DoNotOptimize(page.keys.data());
  }
  state.SetLabel(state.range(0) == 0 ? "urgency" : state.range(0) == 1 ? "id" : "one clinic");
}
BENCHMARK(BM_FirstPage)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

// The 101st page by urgency (after 10,000 pumps).
void BM_DeepPage(benchmark::State& state) {
  const PumpDirectory& dir = Fleet();
  const v1::ListPumpsRequest req = Request(0);
  std::optional<ListKey> after;
  for (int i = 0; i < 100; ++i) after = SelectPumps(dir, req, after, 100).keys.back();
  for (auto _ : state) {
    PumpPage page = SelectPumps(dir, req, after, 100);
    benchmark::DoNotOptimize(page.keys.data());
  }
}
BENCHMARK(BM_DeepPage)->Unit(benchmark::kMillisecond);

// The replaced method, first page by urgency: every entry copied out of the directory,
// a key for every match, then the page sorted out of all keys.
void BM_FullSort(benchmark::State& state) {
  const PumpDirectory& dir = Fleet();
  for (auto _ : state) {
    std::vector<std::pair<std::string, PumpEntry>> entries;
    dir.ForEach([&](const std::string& id, const PumpEntry& e) { entries.emplace_back(id, e); });
    std::vector<ListKey> keys;
    for (const auto& [id, e] : entries) {
      if (e.lifecycle == v1::PUMP_LIFECYCLE_DECOMMISSIONED) continue;
      ListKey k;
      k.id = id;
      k.neg_severity = -static_cast<int>(e.summary.worst_severity);
      for (int64_t d : {e.summary.next_refill_due_ms, e.summary.battery_eri_ms}) {
        if (d > 0) k.due_ms = std::min(k.due_ms, d);
      }
      keys.push_back(std::move(k));
    }
    const size_t n = std::min<size_t>(keys.size(), 100);
    std::partial_sort(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(n), keys.end());
    benchmark::DoNotOptimize(keys.data());
  }
}
BENCHMARK(BM_FullSort)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pumptwin::server

BENCHMARK_MAIN();
