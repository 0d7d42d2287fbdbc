// The write group of the store benchmarks' durable commits: `chunks` chunks of 100 one-minute
// samples (`encoded`), one per pump "pump-<i>", the `round`-th chunk of each pump.
#ifndef PUMPTWIN_TOOLS_BENCH_STORE_TELEMETRY_BATCH_H_
#define PUMPTWIN_TOOLS_BENCH_STORE_TELEMETRY_BATCH_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/store/store.h"

namespace pumptwin::store {

inline WriteGroup TelemetryBatch(size_t chunks, uint64_t round, const std::string& encoded,
                                 absl::Time t0) {
  WriteGroup g;
  for (size_t c = 0; c < chunks; ++c) {
    g.telemetry.push_back({.pump_id = absl::StrCat("pump-", c),
                           .first_seq = 1 + 100 * round,
                           .last_seq = 100 + 100 * round,
                           .first_device_time = t0 + absl::Minutes(100.0 * round),
                           .last_device_time = t0 + absl::Minutes(100.0 * round + 99),
                           .server_time = t0,
                           .encoded = encoded});
  }
  return g;
}

}  // namespace pumptwin::store

#endif  // PUMPTWIN_TOOLS_BENCH_STORE_TELEMETRY_BATCH_H_
