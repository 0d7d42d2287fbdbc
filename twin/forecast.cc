#include "twin/forecast.h"

#include <algorithm>
#include <cmath>

#include "twin/detectors.h"
#include "twin/integrator.h"

namespace pumptwin::twin {
namespace {

// Walks pieces of constant programmed rate from `t` until `need` µL are pumped or `limit`
// is reached. Returns the crossing time or kNeverNs; `need` is reduced by what was pumped.
TimeNs Walk(const Prescription& rx, const LocalZone& zone, double bolus_rate, TimeNs bolus_end,
            TimeNs& t, TimeNs limit, double& need) {
  while (t < limit) {
    const BasalPiece b = BasalAt(rx, t, zone);
    TimeNs end = std::min(limit, b.next_edge);
    double rate = b.rate.value();
    if (bolus_end > t) {
      end = std::min(end, bolus_end);
      rate += bolus_rate;
    }
    const double v = VolumeUl(rate, end - t);
    if (v >= need && rate > 0) {
      return t + static_cast<TimeNs>(std::ceil(need / rate * kNsPerDayD));
    }
    need -= v;
    t = end;
  }
  return kNeverNs;
}

}  // namespace

TimeNs TimeToProgram(const ModelState& s, const Setup& su, double volume_ul, TimeNs horizon) {
  if (volume_ul <= 0) return s.t;
  if (Suspended(s)) return kNeverNs;
  double need = volume_ul;
  TimeNs t = s.t;
  const TimeNs limit = s.t + horizon;
  TimeNs hit = kNeverNs;
  // Until the pending therapy (if any) takes over, with the active bolus.
  if (su.pending != nullptr) {
    hit = Walk(su.current->rx, su.cfg.zone, s.bolus_rate, s.bolus_end, t,
               std::min(su.pending_at, limit), need);
    if (hit != kNeverNs) return hit;
  }
  const Prescription& rx = su.pending != nullptr ? su.pending->rx : su.current->rx;
  // Finish the bolus, then skip whole schedule periods in closed form.
  if (s.bolus_end > t) {
    hit = Walk(rx, su.cfg.zone, s.bolus_rate, s.bolus_end, t, std::min(limit, s.bolus_end), need);
    if (hit != kNeverNs) return hit;
  }
  const double per = PeriodVolume(rx).value();
  if (per <= 0) return kNeverNs;
  const TimeNs period = SchedulePeriodNs(rx);
  const double whole = std::floor(need / per) - 1;
  if (whole > 0) {
    if (whole * static_cast<double>(period) > static_cast<double>(limit - t)) return kNeverNs;
    t += static_cast<TimeNs>(whole) * period;
    need -= whole * per;
  }
  return Walk(rx, su.cfg.zone, 0, 0, t, limit, need);
}

Forecast ComputeForecast(const ModelState& s, const Setup& su, const Tuning& tu,
                         const ForecastConfig& fc) {
  Forecast f;
  const TimeNs horizon = absl::ToInt64Nanoseconds(fc.horizon);
  const double alarm = su.spec->low_reservoir_alarm.value();
  auto at = [&](double prog_ul) { return FromNs(TimeToProgram(s, su, prog_ul, horizon)); };
  const double r = std::max(s.ratio, fc.min_ratio);
  const double sd = std::sqrt(s.ratio_var);
  const double r_hi = r + fc.band_sd * sd;
  const double r_lo = std::max(r - fc.band_sd * sd, fc.min_ratio);

  f.calculated_low_reservoir = at(s.calc_ul - alarm);
  f.calculated_empty = at(s.calc_ul);
  f.estimated_low_reservoir = at((s.est_ul - alarm) / r);
  f.estimated_empty = at(s.est_ul / r);
  f.estimated_empty_earliest = at(s.est_ul / r_hi);
  f.estimated_empty_latest = at(s.est_ul / r_lo);
  const absl::Time stability_end = FromNs(s.refill_time) + su.current->drug->stability;
  f.next_refill_due =
      std::min({f.calculated_low_reservoir, f.estimated_low_reservoir, stability_end});
  f.battery_eri = FromNs(BatteryEriTime(s, su, tu));
  f.battery_eos = FromNs(BatteryEosTime(s, su, tu));
  f.dose_today_delivered = Micrograms(s.dose_today_ug);
  const TimeNs day_start = FloorDiv(s.t, kNsPerDay) * kNsPerDay;
  f.dose_today_prescribed =
      BasalVolume(su.current->rx, day_start, day_start + kNsPerDay) * su.current->rx.concentration;
  return f;
}

}  // namespace pumptwin::twin
