// Replay of stored telemetry into a twin: the one procedure behind recovery (snapshot +
// later telemetry) and `pumptwind --verify` (genesis + all telemetry). Chunks carry the
// server time the samples were applied with, so a replay is byte-exact.
// Stateless functions; thread-safe as far as the Store is.
#ifndef PUMPTWIN_SERVER_REPLAY_H_
#define PUMPTWIN_SERVER_REPLAY_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "server/store/store.h"
#include "twin/twin.h"

namespace pumptwin::server {

// Applies every stored sample of `pump_id` with seq > twin.last_seq(); returns how many.
// DATA_LOSS when a stored sample no longer applies (a damaged or foreign store).
// `head_seq`: the pump's stored head seq when the caller already knows it (recovery scans
// the heads once instead of one lookup per twin; 0 = no telemetry); nullopt: looked up.
absl::StatusOr<size_t> ReplayTelemetry(const store::Store& store, const std::string& pump_id,
                                       twin::Twin& twin,
                                       std::optional<uint64_t> head_seq = std::nullopt);

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_REPLAY_H_
