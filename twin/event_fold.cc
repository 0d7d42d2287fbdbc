#include "twin/event_fold.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace pumptwin::twin {

void SortInputs(std::vector<FoldInput>& inputs) {
  std::stable_sort(inputs.begin(), inputs.end(),
                   [](const FoldInput& a, const FoldInput& b) { return a.key < b.key; });
}

absl::Time CheckpointBoundaryAtOrBefore(absl::Time t, absl::Duration every) {
  if (every <= absl::ZeroDuration()) return absl::InfinitePast();
  const int64_t every_ns = absl::ToInt64Nanoseconds(every);
  const int64_t ns = absl::ToUnixNanos(t);
  int64_t q = ns / every_ns;
  if (ns % every_ns < 0) --q;
  return absl::FromUnixNanos(q * every_ns);
}

bool CrossesCheckpoint(const Twin& twin, absl::Time input_time, absl::Duration every) {
  if (every <= absl::ZeroDuration()) return false;
  return CheckpointBoundaryAtOrBefore(input_time, every) > twin.device_time();
}

absl::StatusOr<FoldResult> Fold(Twin& twin, absl::Span<const FoldInput> sorted,
                                const FoldOptions& options, std::vector<AlertTransition>* out) {
  FoldResult result;
  const bool checkpoints =
      options.checkpoint_every > absl::ZeroDuration() && options.on_checkpoint != nullptr;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const FoldInput& in = sorted[i];
    if (checkpoints && CrossesCheckpoint(twin, in.key.time, options.checkpoint_every)) {
      options.on_checkpoint(CheckpointBoundaryAtOrBefore(in.key.time, options.checkpoint_every),
                            twin);
    }
    absl::Status st;
    if (in.sample != nullptr) {
      st = twin.Observe(*in.sample, in.server_time, out);
    } else if (in.apply) {
      // A record that fails leaves the twin as it was (the twin's calls change nothing
      // on error, and a copy guards the rest).
      Twin before = twin;
      st = in.apply(twin, out);
      if (!st.ok()) twin = std::move(before);
    } else {
      st = absl::InvalidArgumentError("input has neither a sample nor a record");
    }
    if (!st.ok()) {
      if (in.fresh) {
        result.refused.emplace_back(in.key, std::move(st));
        continue;
      }
      return absl::DataLossError(absl::StrCat("stored input at ", absl::FormatTime(in.key.time),
                                              " (rank ", static_cast<int>(in.key.rank), ", ",
                                              in.key.tie, ") does not apply: ", st.message()));
    }
    ++result.applied;
  }
  return result;
}

}  // namespace pumptwin::twin
