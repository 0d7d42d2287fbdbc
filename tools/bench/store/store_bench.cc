// Store kernels: chunk encode/decode cost and size, fsync'd group commits at various group
// sizes, and the recovery scans. Results and the command: docs/benchmarks.md, "Store kernels".
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "benchmark/benchmark.h"
#include "server/store/group_committer.h"
#include "server/store/rocksdb_store.h"
#include "server/store/telemetry_codec.h"
#include "tools/bench/store/telemetry_batch.h"

namespace pumptwin::store {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

// Realistic telemetry: 1 min apart, ms stamps; modelled reservoir as a full-precision double
// (XOR path), measured values with device resolution (decimal path).
std::vector<twin::Sample> Samples(uint64_t first_seq, size_t n) {
  std::vector<twin::Sample> out(n);
  for (size_t i = 0; i < n; ++i) {
    twin::Sample& s = out[i];
    const double k = static_cast<double>(first_seq + i);
    s.seq = first_seq + i;
    s.device_time = kT0 + absl::Minutes(k);
    s.calculated_reservoir =
        twin::Microliters(20000.0 - k * 0.34722222222 * (1 + 1e-7 * std::sin(k)));
    s.measured_reservoir = twin::Microliters(std::round((20000.0 - k * 0.3472) * 10) / 10);
    s.cumulative_drive_units = 1000 + 7 * (first_seq + i);
    s.outlet_pressure = twin::Mmhg(std::round((12 + 2 * std::sin(k / 7)) * 10) / 10);
    s.battery_voltage = twin::Volts(std::round((3.1 - k * 1e-6) * 1000) / 1000);
    s.motor_current_ma = std::round((1.5 + 0.1 * std::cos(k)) * 100) / 100;
    s.temperature_c = std::round((37 + 0.2 * std::sin(k / 60)) * 10) / 10;
  }
  return out;
}

void BM_EncodeChunk(benchmark::State& state) {
  const auto samples = Samples(1, static_cast<size_t>(state.range(0)));
  size_t bytes = 0;
  for (auto _ : state) {
    absl::StatusOr<std::string> out = EncodeSamples(samples);
    bytes = out->size();
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.counters["bytes_per_sample"] =
      static_cast<double>(bytes) / static_cast<double>(state.range(0));
}
BENCHMARK(BM_EncodeChunk)->Arg(10)->Arg(100)->Arg(1000);

void BM_DecodeChunk(benchmark::State& state) {
  const std::string bytes = *EncodeSamples(Samples(1, static_cast<size_t>(state.range(0))));
  std::vector<twin::Sample> out;
  for (auto _ : state) {
    benchmark::DoNotOptimize(DecodeSamples(bytes, &out));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_DecodeChunk)->Arg(100)->Arg(1000);

struct BenchDir {
  BenchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        absl::StrCat(tmp != nullptr && *tmp ? tmp : "/tmp", "/pumptwin_bench_XXXXXX");
    path = ::mkdtemp(pattern.data());
  }
  ~BenchDir() { std::filesystem::remove_all(path); }
  std::string path;
};

// One Commit (one fsync) of `chunks` chunks of 100 samples, each of another pump.
void BM_CommitGroup(benchmark::State& state) {
  const size_t chunks = static_cast<size_t>(state.range(0));
  BenchDir dir;
  auto store = RocksDbStore::Open({.path = dir.path + "/db"});
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return;
  }
  const std::string encoded = *EncodeSamples(Samples(1, 100));
  uint64_t round = 0;
  for (auto _ : state) {
    state.PauseTiming();
    WriteGroup g = TelemetryBatch(chunks, round, encoded, kT0);
    ++round;
    state.ResumeTiming();
    absl::Status s = (*store)->Commit(g);
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(chunks) * 100);
  state.counters["fsyncs_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_CommitGroup)->Arg(1)->Arg(10)->Arg(100)->Arg(1000)->UseRealTime()->MinTime(2.0);

// Producers submit one 100-sample chunk per group through the GroupCommitter; the writer
// merges whatever queued during the previous fsync. Reports samples/s and groups per fsync.
void BM_GroupCommitter(benchmark::State& state) {
  const int64_t in_flight = state.range(0);  // groups a producer keeps outstanding
  BenchDir dir;
  auto store = RocksDbStore::Open({.path = dir.path + "/db"});
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return;
  }
  const std::string encoded = *EncodeSamples(Samples(1, 100));
  absl::Mutex mu;
  int64_t outstanding = 0, commits = 0, groups = 0;
  GroupCommitter committer(store->get(), {.metrics = {.on_commit = [&](const CommitStats& s) {
                                            absl::MutexLock lock(&mu);
                                            ++commits;
                                            groups += static_cast<int64_t>(s.groups);
                                          }}});
  uint64_t n = 0;
  const absl::Time start = absl::Now();
  for (auto _ : state) {
    {
      absl::MutexLock lock(&mu);
      auto room = [&]() { return outstanding < in_flight; };
      mu.Await(absl::Condition(&room));
      ++outstanding;
    }
    WriteGroup g;
    g.telemetry.push_back({.pump_id = absl::StrCat("pump-", n % 100000),
                           .first_seq = 1 + n,
                           .last_seq = 100 + n,
                           .first_device_time = kT0 + absl::Minutes(n),
                           .last_device_time = kT0 + absl::Minutes(n + 99),
                           .server_time = kT0,
                           .encoded = encoded});
    ++n;
    absl::Status s = committer.Submit(std::move(g), [&](absl::Status) {
      absl::MutexLock lock(&mu);
      --outstanding;
    });
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  committer.Shutdown();  // waits for the last fsync: the rate below counts durable samples only
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  state.counters["durable_samples_per_s"] = static_cast<double>(state.iterations()) * 100 / seconds;
  state.SetItemsProcessed(state.iterations() * 100);
  state.counters["groups_per_fsync"] =
      static_cast<double>(groups) / static_cast<double>(std::max<int64_t>(commits, 1));
}
BENCHMARK(BM_GroupCommitter)->Arg(1)->Arg(64)->Arg(1024)->UseRealTime()->MinTime(2.0);

// Restart: a store with `kRecoveryPumps` twins, each with an 800-byte snapshot (a serialised
// twin is 724-788 bytes, docs/benchmarks.md "Twin model kernels") of incompressible bytes, a
// head and one 10-sample chunk; compacted, so reads come from SSTs. Built once, shared.
constexpr int64_t kRecoveryPumps = 200000;
struct RecoveryFixture {
  RecoveryFixture() {
    auto opened = RocksDbStore::Open({.path = dir.path + "/db"});
    if (!opened.ok()) std::abort();
    store = *std::move(opened);
    const std::string encoded = *EncodeSamples(Samples(1, 10));
    std::mt19937_64 rng(1);
    for (int64_t base = 0; base < kRecoveryPumps; base += 5000) {
      WriteGroup g;
      for (int64_t p = base; p < std::min(kRecoveryPumps, base + 5000); ++p) {
        const std::string id = absl::StrCat("pump-", p);
        g.telemetry.push_back({.pump_id = id,
                               .first_seq = 1,
                               .last_seq = 10,
                               .first_device_time = kT0,
                               .last_device_time = kT0 + absl::Minutes(9),
                               .server_time = kT0,
                               .encoded = encoded});
        std::string snapshot(800, '\0');
        for (char& ch : snapshot) ch = static_cast<char>(rng());
        g.snapshots.emplace_back(id, std::move(snapshot));
      }
      if (!store->Commit(g).ok()) std::abort();
    }
    if (!store->CompactAll().ok()) std::abort();
  }
  BenchDir dir;  // removed at exit, after the store closed
  std::unique_ptr<RocksDbStore> store;
};
RocksDbStore* RecoveryStore() {
  static RecoveryFixture fixture;
  return fixture.store.get();
}

// The sequential part of a restart: every snapshot and every head, one thread.
void BM_RecoveryScan(benchmark::State& state) {
  RocksDbStore* store = RecoveryStore();
  for (auto _ : state) {
    int64_t seen = 0, bytes = 0;
    (void)store->ScanAllSnapshots([&](absl::string_view, absl::string_view v) {
      bytes += static_cast<int64_t>(v.size());
      return true;
    });
    (void)store->ScanPumpHeads([&](const PumpHead&) {
      ++seen;
      return true;
    });
    benchmark::DoNotOptimize(bytes);
    if (seen != kRecoveryPumps) state.SkipWithError("missing heads");
  }
  state.SetItemsProcessed(state.iterations() * kRecoveryPumps);
}
BENCHMARK(BM_RecoveryScan)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

// The per-twin part, only for twins whose snapshot lags their head: one backward seek, one
// chunk read and decoded. Pumps visited by numeric id, i.e. scattered in key order.
void BM_RecoveryReplayPerLaggingTwin(benchmark::State& state) {
  RocksDbStore* store = RecoveryStore();
  int64_t p = 0;
  std::vector<twin::Sample> samples;
  for (auto _ : state) {
    const std::string id = absl::StrCat("pump-", p++ % kRecoveryPumps);
    absl::Status s = store->ScanTelemetryAfterSeq(
        id, 5, [&](const TelemetryChunk& c) { return DecodeSamples(c.encoded, &samples).ok(); });
    if (!s.ok() || samples.size() != 10) state.SkipWithError("replay failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RecoveryReplayPerLaggingTwin)->UseRealTime();

}  // namespace
}  // namespace pumptwin::store

BENCHMARK_MAIN();
