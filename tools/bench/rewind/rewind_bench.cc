// Rewind + replay of one pump, as the shard does it for a late input (docs/model.md
// "Event time"): find the latest checkpoint at or before the late input, read the pump's
// stored telemetry and clinical records after it from a RocksDB store on disk, fold them in
// event-time order with the late input. The pump holds 7 days of 1-minute samples (10 080,
// committed in 60-sample chunks, then compacted) and one refill.
//   BM_RewindWholeWindow: the late sample is 7 days old (replay from the registration: the
//     worst case inside the window, no checkpoint before it).
//   BM_RewindLastDay: the late sample is 1 hour old (replay from the last day's checkpoint).
//   BM_RewindFromRecentInputs: what the shard does instead when the pump keeps its recent
//     inputs in memory (RecentInputs, ShardOptions::rewind_memory_inputs = 512 by default):
//     the late sample is as old as the oldest of them; no store read, no decoding.
// Counters: first_ms (one untimed rewind before the iterations: the first one reads the
// store's blocks from disk), median_ms and p99_ms (wall time) over the iterations after it,
// p99_cpu_ms (the thread's CPU time). REWIND_BENCH_DUMP=<file> appends every
// iteration's wall/CPU time (ms, in run order) to <file>, one line per benchmark. The process runs
// with pumptwind's malloc settings (device_link::TuneProcessForStreaming).
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "device_link/process_tuning.h"
#include "server/core/event_inputs.h"
#include "server/core/recent_inputs.h"
#include "server/core/shard.h"
#include "server/store/rocksdb_store.h"
#include "server/store/telemetry_codec.h"
#include "twin/event_fold.h"
#include "twin/twin.h"

namespace pumptwin::server {
namespace {

constexpr int64_t kStartMs = 1767225600000;  // 2026-01-01
constexpr uint64_t kSamples = 7 * 1440;
const char kPump[] = "bench-pump";

twin::Sample SampleAt(uint64_t seq) {
  twin::Sample s;
  s.seq = seq;
  s.device_time = absl::FromUnixMillis(kStartMs + static_cast<int64_t>(seq) * 60000);
  s.calculated_reservoir = twin::Microliters(40000 - 500.0 * seq / 1440.0);
  s.measured_reservoir = twin::Microliters(40000 - 500.0 * seq / 1440.0 + (seq % 7) * 0.5);
  return s;
}

twin::Twin Genesis() {
  twin::PumpConfig cfg;
  cfg.pump_id = kPump;
  cfg.profile = twin::PumpProfile::kSensorized;
  cfg.reservoir_capacity = twin::Microliters(40000);
  cfg.catheter_length = twin::Millimeters(500);
  cfg.catheter_inner_diameter = twin::Millimeters(0.5);
  cfg.implant_time = absl::FromUnixMillis(kStartMs);
  twin::Prescription rx;
  rx.drug = "morphine";
  rx.concentration = twin::MicrogramsPerMilliliter(10000);
  rx.mode = twin::TherapyMode::kSimpleContinuous;
  rx.rate = twin::MicrolitersPerDay(500);
  rx.version = 1;
  auto t = twin::Twin::Create(cfg, rx, twin::Microliters(40000), absl::FromUnixMillis(kStartMs));
  if (!t.ok()) std::abort();
  return *std::move(t);
}

struct Fixture {
  std::string dir;
  std::unique_ptr<store::RocksDbStore> store;
  Fixture() {
    char tmpl[] = "/tmp/rewind_bench_XXXXXX";
    dir = mkdtemp(tmpl);
    store::RocksDbStoreOptions o;
    o.path = dir + "/data";
    o.now = [] { return absl::Now(); };
    auto st = store::RocksDbStore::Open(o);
    if (!st.ok()) std::abort();
    store = *std::move(st);
    twin::Twin live = Genesis();
    store::WriteGroup g;
    g.meta.emplace_back(absl::StrCat("genesis/", kPump), live.Serialize());
    if (!store->Commit(g).ok()) std::abort();
    const absl::Time server = absl::FromUnixMillis(kStartMs) + absl::Hours(24 * 8);
    for (uint64_t first = 1; first <= kSamples; first += 60) {
      std::vector<twin::Sample> chunk;
      store::WriteGroup group;
      for (uint64_t s = first; s < first + 60 && s <= kSamples; ++s) {
        twin::Sample x = SampleAt(s);
        if (twin::CrossesCheckpoint(live, x.device_time, absl::Hours(24))) {
          group.meta.emplace_back(CheckpointMetaKey(kPump, twin::CheckpointBoundaryAtOrBefore(
                                                               x.device_time, absl::Hours(24))),
                                  live.Serialize());
        }
        if (!live.Observe(x, server, nullptr).ok()) std::abort();
        chunk.push_back(x);
      }
      auto c = store::MakeChunk(kPump, chunk);
      if (!c.ok()) std::abort();
      c->server_time = server;
      group.telemetry.push_back(*std::move(c));
      if (!store->Commit(group).ok()) std::abort();
    }
    // A refill 30 s after the last sample.
    v1::RecordRefillRequest refill;
    refill.set_withdrawn_volume_ul(40000 - 500.0 * 7);
    refill.set_added_volume_ul(38000);
    const absl::Time at = SampleAt(kSamples).device_time + absl::Seconds(30);
    refill.set_device_time_ms(absl::ToUnixMillis(at));
    StoredInput in = MakeClinicalInput(InputKind::kRefill, at, server, refill.SerializeAsString());
    store::WriteGroup g2;
    g2.meta.emplace_back(InputMetaKey(kPump, in.key), InputValue(in));
    if (!store->Commit(g2).ok()) std::abort();
    // A week of history has long been flushed and compacted on a server; without this the
    // first benchmark also measures the compaction of the writes above running behind it.
    if (!store->CompactAll().ok()) std::abort();
  }
  ~Fixture() {
    store.reset();
    std::string cmd = "rm -rf '" + dir + "'";
    if (std::system(cmd.c_str()) != 0) std::abort();
  }
};

// Destroyed at exit: the store closes and its directory is removed.
Fixture& Shared() {
  static Fixture f;
  return f;
}

// One rewind for a late clinical record at `late_time`.
size_t RewindOnce(const store::Store& store, absl::Time late_time) {
  absl::Time from = absl::InfinitePast();
  std::string bytes;
  auto ckpt = FindCheckpoint(store, kPump, late_time);
  if (ckpt.ok()) {
    from = ckpt->first;
    bytes = std::move(ckpt->second);
  } else {
    bytes = *store.GetMeta(absl::StrCat("genesis/", kPump));
  }
  auto twin = twin::Twin::Deserialize(bytes);
  if (!twin.ok()) std::abort();
  PumpHistory history;
  if (!LoadPumpHistory(store, kPump, from, &history).ok()) std::abort();
  std::vector<twin::FoldInput> inputs = history.FoldInputs(std::shared_ptr<const twin::DrugLibrary>(
      std::shared_ptr<void>(), &twin::DrugLibrary::Default()));
  // The late input: a clinical record stated at `late_time` (a late sample with a new seq
  // that old would be a pump clock going back, refused before any rewind).
  v1::RecordEventRequest event;
  event.set_type(v1::CLINICAL_EVENT_ACCESS_PORT_ASPIRATION);
  event.set_device_time_ms(absl::ToUnixMillis(late_time));
  const StoredInput late = MakeClinicalInput(InputKind::kEvent, late_time,
                                             absl::FromUnixMillis(kStartMs) + absl::Hours(24 * 8),
                                             event.SerializeAsString());
  twin::FoldInput f;
  f.key = late.key;
  f.server_time = late.server_time;
  f.apply = [&late](twin::Twin& t, std::vector<twin::AlertTransition>* out) {
    return ApplyStoredInput(late, t, twin::DrugLibrary::Default(), out);
  };
  f.fresh = true;
  // As the shard does (Shard::Rewind): the stored inputs are in order, the late one is
  // merged in.
  const size_t stored = inputs.size();
  inputs.push_back(std::move(f));
  SortAppendedInputs(inputs, stored);
  twin::FoldOptions fo;
  fo.on_checkpoint = [](absl::Time, const twin::Twin& t) {
    benchmark::DoNotOptimize(t.Serialize());
  };
  auto r = twin::Fold(*twin, inputs, fo, nullptr);
  if (!r.ok() || !r->refused.empty()) std::abort();
  return inputs.size();
}

// Runs `rewind` (returns the inputs it folded) once per iteration; counters: inputs, and the
// median and p99 wall time in ms.
template <typename Fn>
void Measure(benchmark::State& state, const char* name, Fn rewind) {
  std::vector<double> ms, cpu_ms;
  size_t inputs = 0;
  auto thread_cpu_ms = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
  };
  // One rewind before the timed ones: the first reads the store's blocks from disk (table
  // and block caches cold after the compaction) and grows the heap; reported as first_ms.
  const auto f0 = std::chrono::steady_clock::now();
  inputs = rewind();
  const double first_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - f0).count();
  for (auto _ : state) {
    const double c0 = thread_cpu_ms();
    auto t0 = std::chrono::steady_clock::now();
    inputs = rewind();
    auto t1 = std::chrono::steady_clock::now();
    cpu_ms.push_back(thread_cpu_ms() - c0);
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  if (const char* dump = std::getenv("REWIND_BENCH_DUMP")) {
    FILE* f = std::fopen(dump, "a");
    if (f != nullptr) {
      std::fprintf(f, "%s", name);
      for (size_t i = 0; i < ms.size(); ++i) std::fprintf(f, " %.3f/%.3f", ms[i], cpu_ms[i]);
      std::fprintf(f, "\n");
      std::fclose(f);
    }
  }
  state.counters["first_ms"] = first_ms;
  std::sort(ms.begin(), ms.end());
  state.counters["inputs"] = static_cast<double>(inputs);
  state.counters["median_ms"] = ms[ms.size() / 2];
  state.counters["p99_ms"] = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  // The thread's CPU time: without the time the shared machine's other processes ran.
  std::sort(cpu_ms.begin(), cpu_ms.end());
  state.counters["p99_cpu_ms"] = cpu_ms[std::min(cpu_ms.size() - 1, cpu_ms.size() * 99 / 100)];
}

void Run(benchmark::State& state, const char* name, absl::Time late_time) {
  const store::Store& store = *Shared().store;
  Measure(state, name, [&] { return RewindOnce(store, late_time); });
}

void BM_RewindWholeWindow(benchmark::State& state) {
  // Just after the first sample: everything of the 7 days is replayed.
  Run(state, "whole_window", SampleAt(1).device_time + absl::Seconds(1));
}
BENCHMARK(BM_RewindWholeWindow)->Unit(benchmark::kMillisecond)->Iterations(200);

void BM_RewindLastDay(benchmark::State& state) {
  Run(state, "last_day", SampleAt(kSamples).device_time - absl::Hours(1));
}
BENCHMARK(BM_RewindLastDay)->Unit(benchmark::kMillisecond)->Iterations(500);

// The 7-day pump's last rewind_memory_inputs samples kept in memory, as a shard keeps them
// for a pump that rewound lately.
struct Recent {
  std::unique_ptr<RecentInputs> recent;
  uint64_t first = 0;  // seq of the oldest sample held
  Recent() {
    const size_t held = ShardOptions().rewind_memory_inputs;
    first = kSamples - held + 1;
    twin::Twin live = Genesis();
    const absl::Time server = absl::FromUnixMillis(kStartMs) + absl::Hours(24 * 8);
    for (uint64_t s = 1; s < first; ++s) {
      if (!live.Observe(SampleAt(s), server, nullptr).ok()) std::abort();
    }
    recent = std::make_unique<RecentInputs>(
        live, twin::InputKey{SampleAt(first - 1).device_time, twin::InputRank::kSample, first - 1},
        SampleAt(first - 1).device_time);
    for (uint64_t s = first; s <= kSamples; ++s) {
      twin::Sample x = SampleAt(s);
      if (!live.Observe(x, server, nullptr).ok()) std::abort();
      recent->AddSample(x, server);
    }
  }
};

void BM_RewindFromRecentInputs(benchmark::State& state) {
  static Recent* r = new Recent();
  const std::shared_ptr<const twin::DrugLibrary> library(std::shared_ptr<void>(),
                                                         &twin::DrugLibrary::Default());
  twin::Sample late = SampleAt(kSamples + 1);
  late.device_time = SampleAt(r->first).device_time + absl::Seconds(1);
  Measure(state, "recent_inputs", [&] {
    twin::FoldInput f;
    f.key = {late.device_time, twin::InputRank::kSample, late.seq};
    f.server_time = absl::FromUnixMillis(kStartMs) + absl::Hours(24 * 8);
    f.sample = &late;
    f.fresh = true;
    RecentInputs::Start start = r->recent->From(f.key, library);
    start.inputs.push_back(f);
    twin::SortInputs(start.inputs);
    twin::FoldOptions fo;
    fo.on_checkpoint = [](absl::Time, const twin::Twin& t) {
      benchmark::DoNotOptimize(t.Serialize());
    };
    auto result = twin::Fold(start.twin, start.inputs, fo, nullptr);
    if (!result.ok()) std::abort();
    return start.inputs.size();
  });
  // What one twin copy of a generation costs (its encoding; the object is about as big).
  state.counters["twin_bytes"] = static_cast<double>(Genesis().Serialize().size());
}
BENCHMARK(BM_RewindFromRecentInputs)->Unit(benchmark::kMillisecond)->Iterations(2000);

}  // namespace
}  // namespace pumptwin::server

// The process settings pumptwind makes first thing (glibc keeps freed buffers instead of
// returning them to the kernel): without them, whether a rewind's few MB of buffers were
// page-faulted in again on every iteration depended on the heap's layout, and about one
// process in three ran the whole-window rewind at 18-20 ms instead of 2-3 ms.
int main(int argc, char** argv) {
  pumptwin::device_link::TuneProcessForStreaming();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
