// Time rules of clinical records (RecordRefill, RecordEvent, SetPrescription): how far
// ahead of the server clock a stated time may be (the bound telemetry has,
// device_link::ValidationLimits::max_device_time_in_future) and how far back it may be
// applied in its place (the history window, docs/model.md "Event time").
// Pure functions; thread-safe.
#ifndef PUMPTWIN_SERVER_CLINICAL_TIME_H_
#define PUMPTWIN_SERVER_CLINICAL_TIME_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pumptwin::server {

// The bound telemetry has: a device time more than this after the server clock is refused.
absl::Duration MaxClinicalTimeInFuture();

// INVALID_ARGUMENT when `time_ms` (> 0; 0 means "now" and always passes) is later than
// server_now + MaxClinicalTimeInFuture(); the message names the field and the limit.
absl::Status CheckClinicalTimeNotInFuture(absl::string_view field, int64_t time_ms,
                                          absl::Time server_now);

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_CLINICAL_TIME_H_
