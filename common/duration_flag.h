// DurationFlag: an absl flag type for durations that also accepts days. Everything
// absl::ParseDuration takes ("90s", "1h30m", "inf", "0") plus a leading number of days:
// "400d", "1.5d", "2d12h". Header-only.
#ifndef PUMPTWIN_TOOLS_COMMON_DURATION_FLAG_H_
#define PUMPTWIN_TOOLS_COMMON_DURATION_FLAG_H_

#include <cmath>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pumptwin::tools {

struct DurationFlag {
  DurationFlag(absl::Duration d = absl::ZeroDuration()) : value(d) {}  // NOLINT: implicit
  absl::Duration value;
};

// Parses `text` as described above into `out`. False (and out unchanged) otherwise.
inline bool ParseDurationWithDays(absl::string_view text, absl::Duration* out) {
  absl::Duration days = absl::ZeroDuration();
  absl::string_view rest = text;
  if (const size_t d = rest.find('d'); d != absl::string_view::npos) {
    double n = 0;
    if (d == 0 || !absl::SimpleAtod(rest.substr(0, d), &n) || !std::isfinite(n) || n < 0) {
      return false;
    }
    days = absl::Hours(24) * n;
    rest.remove_prefix(d + 1);
    if (rest.empty()) {
      *out = days;
      return true;
    }
  }
  absl::Duration parsed;
  if (!absl::ParseDuration(rest, &parsed)) return false;
  if (days > absl::ZeroDuration() && parsed < absl::ZeroDuration()) return false;
  *out = days + parsed;
  return true;
}

inline bool AbslParseFlag(absl::string_view text, DurationFlag* flag, std::string* error) {
  if (ParseDurationWithDays(text, &flag->value)) return true;
  *error = absl::StrCat("'", text,
                        "' is not a duration: a number with a unit, e.g. 400d, 12h, 30m, 10s, "
                        "250ms, 1h30m, or inf");
  return false;
}

inline std::string AbslUnparseFlag(const DurationFlag& flag) {
  const absl::Duration day = absl::Hours(24);
  if (flag.value > absl::ZeroDuration() && flag.value != absl::InfiniteDuration() &&
      flag.value % day == absl::ZeroDuration()) {
    return absl::StrCat(flag.value / day, "d");
  }
  return absl::FormatDuration(flag.value);
}

}  // namespace pumptwin::tools

#endif  // PUMPTWIN_TOOLS_COMMON_DURATION_FLAG_H_
