#include "twin/therapy.h"

#include <algorithm>

namespace pumptwin::twin {
namespace {

int64_t FloorMod(int64_t a, int64_t b) {
  const int64_t m = a % b;
  return m < 0 ? m + b : m;
}

TimeNs OriginNs(const Prescription& rx) { return rx.flex.weekly ? kMondayOriginNs : 0; }

}  // namespace

TimeNs SchedulePeriodNs(const Prescription& rx) {
  return (rx.mode == TherapyMode::kFlex && rx.flex.weekly) ? kNsPerWeek : kNsPerDay;
}

BasalPiece BasalAt(const Prescription& rx, TimeNs t) {
  switch (rx.mode) {
    case TherapyMode::kSimpleContinuous:
      return {rx.rate, kNeverNs};
    case TherapyMode::kFlex: {
      const auto& steps = rx.flex.steps;
      if (steps.empty()) return {MicrolitersPerDay(0), kNeverNs};
      const TimeNs period = SchedulePeriodNs(rx);
      const TimeNs offset = FloorMod(t - OriginNs(rx), period);
      // Last step whose start is <= offset (steps are sorted, first at 0).
      auto it = std::upper_bound(steps.begin(), steps.end(), offset,
                                 [](TimeNs off, const ScheduleStep& s) {
                                   return off < absl::ToInt64Nanoseconds(s.start_offset);
                                 });
      const ScheduleStep& cur = *(it == steps.begin() ? it : it - 1);
      const TimeNs next_start =
          it == steps.end() ? period : absl::ToInt64Nanoseconds(it->start_offset);
      return {cur.rate, t + (next_start - offset)};
    }
    case TherapyMode::kStopped:
    case TherapyMode::kUnspecified:
      break;
  }
  return {MicrolitersPerDay(0), kNeverNs};
}

Microliters BasalVolume(const Prescription& rx, TimeNs from, TimeNs to) {
  double v = 0.0;
  TimeNs t = from;
  while (t < to) {
    const BasalPiece p = BasalAt(rx, t);
    const TimeNs end = std::min(to, p.next_edge);
    v += VolumeUl(p.rate.value(), end - t);
    t = end;
  }
  return Microliters(v);
}

Microliters PeriodVolume(const Prescription& rx) {
  const TimeNs start = rx.mode == TherapyMode::kFlex ? OriginNs(rx) : 0;
  return BasalVolume(rx, start, start + SchedulePeriodNs(rx));
}

MicrolitersPerDay MeanDailyRate(const Prescription& rx) {
  const double days = static_cast<double>(SchedulePeriodNs(rx)) / kNsPerDayD;
  return MicrolitersPerDay(PeriodVolume(rx).value() / days);
}

Microliters MaxDailyBasalVolume(const Prescription& rx) {
  if (rx.mode != TherapyMode::kFlex || !rx.flex.weekly) return PeriodVolume(rx);
  Microliters best(0);
  for (int d = 0; d < 7; ++d) {
    const TimeNs start = kMondayOriginNs + d * kNsPerDay;
    best = std::max(best, BasalVolume(rx, start, start + kNsPerDay));
  }
  return best;
}

}  // namespace pumptwin::twin
