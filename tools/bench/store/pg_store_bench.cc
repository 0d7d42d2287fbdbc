// PostgresStore against RocksDbStore: one durable Commit of a batch of telemetry chunks (100
// samples each, one pump per chunk, the heads updated), on the same disk. The PostgreSQL
// server is a throwaway one started by the benchmark (tests/store/postgres_test_server.h)
// with its data directory under $TMPDIR or /tmp, like the RocksDB directory; it is reached
// over TCP on 127.0.0.1. Besides the client's CPU, it reports the server's CPU per commit
// (all its processes, from /proc). Results and the command: docs/benchmarks.md, "PostgreSQL store".
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "server/store/postgres_store.h"
#include "server/store/rocksdb_store.h"
#include "server/store/telemetry_codec.h"
#include "tests/store/postgres_test_server.h"
#include "tools/bench/store/telemetry_batch.h"

namespace pumptwin::store {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

std::string TmpBase() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp ? tmp : "/tmp";
}

// 100 one-minute samples as a pump sends them (the size of a real chunk).
std::string EncodedChunk() {
  std::vector<twin::Sample> samples(100);
  for (size_t i = 0; i < samples.size(); ++i) {
    twin::Sample& s = samples[i];
    s.seq = 1 + i;
    s.device_time = kT0 + absl::Minutes(static_cast<double>(i));
    s.calculated_reservoir = twin::Microliters(20000.0 - 0.347 * static_cast<double>(i));
    s.measured_reservoir = twin::Microliters(20000.0 - 0.3 * static_cast<double>(i));
    s.cumulative_drive_units = 1000 + 7 * i;
    s.outlet_pressure = twin::Mmhg(12.3);
    s.battery_voltage = twin::Volts(3.05);
    s.temperature_c = 37.1;
  }
  return *EncodeSamples(samples);
}

// `server_cpu` (optional): CPU used so far by the database server, for its cost per commit.
void CommitBatches(benchmark::State& state, Store& store,
                   const std::function<absl::StatusOr<absl::Duration>()>& server_cpu = nullptr) {
  absl::Duration cpu_before;
  if (server_cpu) cpu_before = server_cpu().value_or(absl::ZeroDuration());
  const size_t chunks = static_cast<size_t>(state.range(0));
  const std::string encoded = EncodedChunk();
  uint64_t round = 0;
  size_t bytes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    WriteGroup g = TelemetryBatch(chunks, round, encoded, kT0);
    bytes = g.ByteSize();
    ++round;
    state.ResumeTiming();
    absl::Status s = store.Commit(g);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(chunks));  // chunks/s
  state.counters["commits_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["group_bytes"] = static_cast<double>(bytes);
  if (server_cpu && state.iterations() > 0) {
    const absl::Duration used = server_cpu().value_or(cpu_before) - cpu_before;
    state.counters["server_cpu_us_per_commit"] =
        absl::ToDoubleMicroseconds(used) / static_cast<double>(state.iterations());
  }
}

void BM_RocksDbCommit(benchmark::State& state) {
  std::string dir = TmpBase() + "/pumptwin_bench_XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  {
    auto store = RocksDbStore::Open({.path = dir + "/db"});
    if (!store.ok()) {
      state.SkipWithError(store.status().ToString().c_str());
    } else {
      CommitBatches(state, **store);
    }
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_RocksDbCommit)->Arg(1)->Arg(100)->Arg(1000)->UseRealTime()->MinTime(2.0);

void BM_PostgresCommit(benchmark::State& state) {
  // On the disk, like RocksDB's directory (the tests put their servers on /dev/shm).
  ::setenv("PUMPTWIN_POSTGRES_TEST_DIR", TmpBase().c_str(), /*overwrite=*/0);
  auto server = pumptwin::testing::PostgresTestServer::Start();
  if (!server.ok()) {
    state.SkipWithError(server.status().ToString().c_str());
    return;
  }
  auto store = PostgresStore::Open({.dsn = (*server)->Dsn()});
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return;
  }
  CommitBatches(state, **store, [&] { return (*server)->CpuTime(); });
}
BENCHMARK(BM_PostgresCommit)->Arg(1)->Arg(100)->Arg(1000)->UseRealTime()->MinTime(2.0);

}  // namespace
}  // namespace pumptwin::store

BENCHMARK_MAIN();
