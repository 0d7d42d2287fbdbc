// Plausibility check of one telemetry sample against SampleLimits and the pump config.
// Pure function; thread-safe.
#ifndef PUMPTWIN_TWIN_SAMPLE_CHECK_H_
#define PUMPTWIN_TWIN_SAMPLE_CHECK_H_

#include "absl/status/status.h"
#include "twin/pump_profile.h"
#include "twin/sample.h"
#include "twin/therapy.h"
#include "twin/tuning.h"

namespace pumptwin::twin {

// OK, or INVALID_ARGUMENT naming the field, the value and the limit; FAILED_PRECONDITION
// when the sample's device time is before `model_time`.
absl::Status CheckSample(const Sample& s, absl::Time server_time, const PumpConfig& cfg,
                         TimeNs model_time, const SampleLimits& limits);

// Device/server times the model accepts: [1970-01-01, 2200-01-01).
bool TimeInRange(absl::Time t);

}  // namespace pumptwin::twin

#endif  // PUMPTWIN_TWIN_SAMPLE_CHECK_H_
