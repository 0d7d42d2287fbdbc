// Therapy description (prescription, flex schedule, patient-bolus limits) and the exact
// schedule arithmetic the integrator uses: basal rate at an instant, the next rate edge,
// and programmed volume over an interval (closed form, no time steps).
// Plain value types and pure functions; thread-compatible.
#ifndef PUMPTWIN_TWIN_THERAPY_H_
#define PUMPTWIN_TWIN_THERAPY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "twin/local_zone.h"
#include "twin/units.h"

namespace pumptwin::twin {

// Mirrors pumptwin.v1.TherapyMode.
enum class TherapyMode : uint8_t {
  kUnspecified = 0,
  kStopped = 1,
  kSimpleContinuous = 2,
  kFlex = 3,
};

// From `start_offset` (since 00:00 of the day, or Monday 00:00 of the week, in the pump's
// time zone: UTC unless the pump has one) until the next step, infuse at `rate`.
struct ScheduleStep {
  absl::Duration start_offset;
  MicrolitersPerDay rate;
  bool operator==(const ScheduleStep&) const = default;
};

struct FlexSchedule {
  bool weekly = false;
  std::vector<ScheduleStep> steps;  // sorted by start_offset, first at 0
  bool operator==(const FlexSchedule&) const = default;
};

struct PatientBolusLimits {
  Microliters volume;        // per activation
  absl::Duration duration;   // delivery time of one activation (0: instantaneous)
  absl::Duration lockout;    // minimum interval between granted activations
  uint32_t max_per_24h = 0;  // granted activations in any 24 h window
  bool operator==(const PatientBolusLimits&) const = default;
};

struct Prescription {
  std::string drug;  // drug library key, e.g. "morphine"
  MicrogramsPerMilliliter concentration;
  TherapyMode mode = TherapyMode::kStopped;
  MicrolitersPerDay rate;  // kSimpleContinuous
  FlexSchedule flex;       // kFlex
  std::optional<PatientBolusLimits> patient_bolus;
  uint64_t version = 0;  // assigned by the server
  bool operator==(const Prescription&) const = default;
};

// Device time as nanoseconds since the Unix epoch: the model's internal clock (compact,
// exact, and covers 1970..2262).
using TimeNs = int64_t;
inline constexpr TimeNs kNsPerHour = 3'600'000'000'000;
inline constexpr TimeNs kNsPerDay = 24 * kNsPerHour;
inline constexpr TimeNs kNsPerWeek = 7 * kNsPerDay;
inline constexpr TimeNs kNeverNs = INT64_MAX;
// 1970-01-05 00:00 UTC was a Monday: weekly schedules are anchored there.
inline constexpr TimeNs kMondayOriginNs = 4 * kNsPerDay;
inline constexpr double kNsPerDayD = 86'400e9;

inline TimeNs ToNs(absl::Time t) { return absl::ToUnixNanos(t); }
inline absl::Time FromNs(TimeNs ns) {
  return ns == kNeverNs ? absl::InfiniteFuture() : absl::FromUnixNanos(ns);
}
inline int64_t FloorDiv(int64_t a, int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

// Volume pumped at `rate_ul_per_day` over `dt_ns` nanoseconds.
inline double VolumeUl(double rate_ul_per_day, TimeNs dt_ns) {
  return rate_ul_per_day * (static_cast<double>(dt_ns) / kNsPerDayD);
}

// The programmed basal rate in force at `t` and the first instant after `t` at which it
// may change (kNeverNs when it never does).
struct BasalPiece {
  MicrolitersPerDay rate;
  TimeNs next_edge = kNeverNs;
};
BasalPiece BasalAt(const Prescription& rx, TimeNs t);

// A basal lookup `at_wall(t_wall)` evaluated on the wall clock of `zone` (flex steps are
// local time): the piece ends at its next step or at the zone's next offset change (DST),
// whichever comes first. UTC: `at_wall(t)` unchanged.
template <typename F>
BasalPiece LocalBasal(TimeNs t, const LocalZone& zone, F&& at_wall) {
  if (zone.is_utc()) return at_wall(t);
  int64_t offset = 0, next_change = kNeverNs;
  zone.OffsetAt(t, &offset, &next_change);
  BasalPiece p = at_wall(t + offset);
  if (p.next_edge != kNeverNs) p.next_edge -= offset;
  if (next_change < p.next_edge) p.next_edge = next_change;
  return p;
}
// BasalAt with flex steps in the local time of `zone`.
inline BasalPiece BasalAt(const Prescription& rx, TimeNs t, const LocalZone& zone) {
  if (rx.mode != TherapyMode::kFlex) return BasalAt(rx, t);
  return LocalBasal(t, zone, [&rx](TimeNs w) { return BasalAt(rx, w); });
}

// Programmed basal volume over [from, to) (exact, piecewise closed form).
Microliters BasalVolume(const Prescription& rx, TimeNs from, TimeNs to);

// Schedule period (a day or a week; a day for non-flex modes) and its basal volume.
TimeNs SchedulePeriodNs(const Prescription& rx);
Microliters PeriodVolume(const Prescription& rx);
// Mean programmed basal volume per day (period volume / days in period).
MicrolitersPerDay MeanDailyRate(const Prescription& rx);
// Largest basal volume of any single calendar day of the pattern (UTC days).
Microliters MaxDailyBasalVolume(const Prescription& rx);

}  // namespace pumptwin::twin

#endif  // PUMPTWIN_TWIN_THERAPY_H_
