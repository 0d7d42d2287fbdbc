#include "server/core/replay.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "server/store/telemetry_codec.h"

namespace pumptwin::server {

// Replays the stored telemetry after the twin's last seq (chunks carry the server time
// the samples were applied with, so the replay is exact). Returns the samples replayed.
absl::StatusOr<size_t> ReplayTelemetry(const store::Store& store, const std::string& pump_id,
                                       twin::Twin& twin, std::optional<uint64_t> head_seq) {
  if (!head_seq.has_value()) {
    auto head = store.GetPumpHead(pump_id);
    if (absl::IsNotFound(head.status())) return 0;
    if (!head.ok()) return head.status();
    head_seq = head->last_seq;
  }
  if (*head_seq <= twin.last_seq()) return 0;
  size_t replayed = 0;
  absl::Status inner = absl::OkStatus();
  std::vector<twin::Sample> samples;
  std::vector<twin::AlertTransition> transitions;
  absl::Status scan = store.ScanTelemetryAfterSeq(
      pump_id, twin.last_seq(), [&](const store::TelemetryChunk& chunk) {
        inner = store::DecodeSamples(chunk.encoded, &samples);
        if (!inner.ok()) return false;
        for (const twin::Sample& s : samples) {
          if (s.seq <= twin.last_seq()) continue;
          inner = twin.Observe(s, chunk.server_time, &transitions);
          if (!inner.ok()) {
            inner = absl::DataLossError(absl::StrCat("replay of pump '", pump_id, "' seq ", s.seq,
                                                     " failed: ", inner.message()));
            return false;
          }
          ++replayed;
        }
        return true;
      });
  if (!scan.ok()) return scan;
  if (!inner.ok()) return inner;
  if (!transitions.empty()) {
    Log(LogLevel::kWarning, "replay_transitions",
        {{"pump", pump_id},
         {"count", transitions.size()},
         {"note", "alert transitions during replay; they were committed before the crash"}});
  }
  return replayed;
}

}  // namespace pumptwin::server
