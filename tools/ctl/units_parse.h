// Parsing of quantities typed by people on the pumptwinctl command line into the base units
// of the pumptwin.v1 contract (µL, µL/day, µg/mL, µg, mm, absl::Duration, absl::Time).
// A number without its unit is always refused, with a message listing the accepted units:
// unit confusion (mg vs µg, mL vs µL, per hour vs per day) is what kills pump patients.
// Pure functions, no state: safe to call from any thread.
#ifndef PUMPTWIN_TOOLS_CTL_UNITS_PARSE_H_
#define PUMPTWIN_TOOLS_CTL_UNITS_PARSE_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pumptwin::ctl {

// Each parsed value carries its unit in its type, so it cannot be passed on bare.
struct VolumeUl {
  double ul = 0;
};
struct RateUlPerDay {
  double ul_per_day = 0;
};
struct ConcentrationUgPerMl {
  double ug_per_ml = 0;
};
struct DoseUg {
  double ug = 0;
};
struct LengthMm {
  double mm = 0;
};

// "0.5mL", "500uL", "500µL" (also "0.5 mL"). Never negative.
absl::StatusOr<VolumeUl> ParseVolume(absl::string_view text);
// "0.5mL/day", "20uL/h", "0.02mL/hr" (per day: /day /d; per hour: /h /hr /hour).
absl::StatusOr<RateUlPerDay> ParseRate(absl::string_view text);
// "10mg/mL", "500ug/mL", "500mcg/mL", "500µg/mL".
absl::StatusOr<ConcentrationUgPerMl> ParseConcentration(absl::string_view text);
// "15mg", "500ug", "500mcg", "500µg".
absl::StatusOr<DoseUg> ParseDose(absl::string_view text);
// "45cm", "0.5mm" (catheter geometry).
absl::StatusOr<LengthMm> ParseLength(absl::string_view text);
// "500ms", "10s", "30m" / "30min", "2h", "1d", "1w", and sums such as "1h30m".
absl::StatusOr<absl::Duration> ParseDuration(absl::string_view text);
// RFC 3339 ("2026-11-22T08:00:00Z", "2026-11-22T09:00:00+01:00"), "now", "now-2h", "now+1d".
absl::StatusOr<absl::Time> ParseTime(absl::string_view text, absl::Time now);

// One step of a flex schedule: "07:00=0.6mL/day" (daily) or "Mon-07:00=0.6mL/day" (weekly,
// offsets from Monday 00:00 UTC).
struct FlexStep {
  absl::Duration start_offset;
  RateUlPerDay rate;
};
absl::StatusOr<FlexStep> ParseFlexStep(absl::string_view text, bool weekly);
// Sorts the steps and checks the schedule: not empty, first step at 00:00 (Mon-00:00 when
// weekly), no two steps at the same offset.
absl::StatusOr<std::vector<FlexStep>> NormalizeFlexSteps(std::vector<FlexStep> steps, bool weekly);

// Human list of the spellings each kind accepts (used in messages and --help).
extern const char kVolumeUnitsHelp[];
extern const char kRateUnitsHelp[];
extern const char kConcentrationUnitsHelp[];
extern const char kDoseUnitsHelp[];
extern const char kLengthUnitsHelp[];
extern const char kDurationUnitsHelp[];
extern const char kTimeHelp[];

}  // namespace pumptwin::ctl

#endif  // PUMPTWIN_TOOLS_CTL_UNITS_PARSE_H_
