#include "server/core/clinical_time.h"

#include "absl/strings/str_cat.h"
#include "device_link/sample_codec.h"
#include "server/core/convert.h"

namespace pumptwin::server {

absl::Duration MaxClinicalTimeInFuture() {
  return device_link::ValidationLimits().max_device_time_in_future;
}

absl::Status CheckClinicalTimeNotInFuture(absl::string_view field, int64_t time_ms,
                                          absl::Time server_now) {
  if (time_ms <= 0) return absl::OkStatus();
  const absl::Time latest = server_now + MaxClinicalTimeInFuture();
  if (FromUnixMs(time_ms) <= latest) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, "=", time_ms, " (",
                   absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", FromUnixMs(time_ms), absl::UTCTimeZone()),
                   ") is more than ", absl::FormatDuration(MaxClinicalTimeInFuture()),
                   " after the server time (",
                   absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", server_now, absl::UTCTimeZone()),
                   "); check the date (0: now)"));
}

}  // namespace pumptwin::server
