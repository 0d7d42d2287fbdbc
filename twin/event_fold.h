// Event-time fold: a twin is a deterministic fold over its inputs ordered by event time
// (docs/model.md "Event time"). Samples (with their pump event-log entries) are ordered by
// pump time, clinical records by their stated time, server-time ticks that changed the
// twin by the model time they were applied at; ties are broken by rank (sample, clinical,
// tick) and then by a per-input tie value (sample: seq; clinical: a hash of the record;
// tick: its server time). The same inputs folded in this order give the same twin,
// byte for byte, whatever order they arrived in.
// Live ingest, recovery and `pumptwind --verify` all fold through Fold(); twin/ knows no
// storage format, so clinical records and ticks come as closures that apply themselves.
// Pure: no I/O, no clock. Thread-compatible.
#ifndef PUMPTWIN_TWIN_EVENT_FOLD_H_
#define PUMPTWIN_TWIN_EVENT_FOLD_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "twin/alert_types.h"
#include "twin/sample.h"
#include "twin/twin.h"

namespace pumptwin::twin {

enum class InputRank : uint8_t { kSample = 0, kClinical = 1, kTick = 2 };

// The total order of a pump's inputs.
struct InputKey {
  absl::Time time;
  InputRank rank = InputRank::kSample;
  uint64_t tie = 0;

  bool operator==(const InputKey&) const = default;
  friend bool operator<(const InputKey& a, const InputKey& b) {
    if (a.time != b.time) return a.time < b.time;
    if (a.rank != b.rank) return a.rank < b.rank;
    return a.tie < b.tie;
  }
};

struct FoldInput {
  InputKey key;
  absl::Time server_time;          // the server time it was (first) applied with
  const Sample* sample = nullptr;  // rank kSample
  // Rank kClinical / kTick: applies the record to the twin.
  std::function<absl::Status(Twin& twin, std::vector<AlertTransition>* out)> apply;
  // Not stored yet: if it does not apply it is left out (and reported) instead of failing
  // the fold.
  bool fresh = false;
};

struct FoldOptions {
  // Checkpoint boundaries: multiples of this since the Unix epoch (0: no checkpoints).
  absl::Duration checkpoint_every = absl::Hours(24);
  // Called with the twin as it is before the first input at or after a boundary, when the
  // model time is before that boundary (one call per crossing: the latest boundary crossed).
  // The checkpoint therefore holds exactly the inputs before the boundary.
  std::function<void(absl::Time boundary, const Twin& twin)> on_checkpoint;
};

struct FoldResult {
  size_t applied = 0;
  // Fresh inputs that did not apply: their key and why.
  std::vector<std::pair<InputKey, absl::Status>> refused;
};

// Sorts by InputKey (stable: equal keys keep their order).
void SortInputs(std::vector<FoldInput>& inputs);

// The checkpoint boundary at or before `t` (a multiple of `every` since the epoch).
absl::Time CheckpointBoundaryAtOrBefore(absl::Time t, absl::Duration every);

// Whether an input at `input_time` applied to `twin` now is the first past a checkpoint
// boundary (live ingest takes the checkpoint by the same rule as Fold).
bool CrossesCheckpoint(const Twin& twin, absl::Time input_time, absl::Duration every);

// Applies `sorted` to `twin` in order. A stored input that does not apply is DATA_LOSS
// (the inputs and the starting twin do not belong together).
absl::StatusOr<FoldResult> Fold(Twin& twin, absl::Span<const FoldInput> sorted,
                                const FoldOptions& options, std::vector<AlertTransition>* out);

}  // namespace pumptwin::twin

#endif  // PUMPTWIN_TWIN_EVENT_FOLD_H_
