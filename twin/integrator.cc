#include "twin/integrator.h"

#include <algorithm>
#include <cmath>

namespace pumptwin::twin {
namespace {

constexpr double kMinIdleDrainUa = 1.0;  // floor of a learned idle drain, µA

// Removes `prog_ul` of programmed volume from the reservoirs and books it.
void Deliver(ModelState& s, const Setup& setup, double prog_ul, double dose_fraction) {
  if (prog_ul <= 0) return;
  s.prog_total_ul += prog_ul;
  const double c = std::min(prog_ul, s.calc_ul);
  s.calc_ul -= c;
  const double e = std::min(prog_ul * s.ratio, s.est_ul);
  s.est_ul -= e;
  s.est_total_ul += e;
  const double dose =
      e * dose_fraction * setup.current->rx.concentration.value() / kMicrolitersPerMilliliter;
  s.dose_today_ug += dose;
  s.dose_hour_ug[s.hour_index % kDoseBuckets] += static_cast<float>(dose);
  if (setup.spec->has_battery) s.battery_used_mah += setup.spec->motor_mah_per_ul * prog_ul;
}

void SwitchToPending(std::shared_ptr<const Setup>& setup, const ModelState& s) {
  auto next = std::make_shared<Setup>(*setup);
  next->current = setup->pending;
  next->pending.reset();
  next->pending_at = kNoTime;
  (void)s;
  setup = std::move(next);
}

}  // namespace

bool Suspended(const ModelState& s) {
  return s.Has(kFlagStalled) || s.Has(kFlagMriSuspended) || s.Has(kFlagEos);
}

void Advance(ModelState& s, std::shared_ptr<const Setup>& setup, TimeNs to) {
  while (s.t < to) {
    if (setup->pending != nullptr && setup->pending_at <= s.t) SwitchToPending(setup, s);
    const Setup& su = *setup;
    TimeNs end = to;
    if (su.pending != nullptr) end = std::min(end, su.pending_at);
    const TimeNs next_hour = (static_cast<TimeNs>(s.hour_index) + 1) * kNsPerHour;
    end = std::min(end, next_hour);
    const BasalPiece basal = PlanBasalAt(*su.current, s.t, su.cfg.zone);
    end = std::min(end, basal.next_edge);
    const bool bolus = s.bolus_end > s.t;
    if (bolus) end = std::min(end, s.bolus_end);

    const TimeNs dt = end - s.t;
    if (!Suspended(s)) {
      const double basal_ul = VolumeUl(basal.rate.value(), dt);
      const double bolus_ul = bolus ? VolumeUl(s.bolus_rate, dt) : 0.0;
      const double total = basal_ul + bolus_ul;
      const double dose_fraction =
          (bolus && s.Has(kFlagBolusNoDose) && total > 0) ? basal_ul / total : 1.0;
      Deliver(s, su, total, dose_fraction);
    }
    if (su.spec->has_battery) {
      s.battery_used_mah += IdleDrainUa(s, su) * 1e-3 * (static_cast<double>(dt) / kNsPerHour);
    }
    s.t = end;
    if (bolus && s.bolus_end <= s.t) {
      s.bolus_rate = 0;
      s.Set(kFlagBolusNoDose, false);
    }
    if (s.t == next_hour) {
      ++s.hour_index;
      s.dose_hour_ug[s.hour_index % kDoseBuckets] = 0;
      if (s.hour_index % 24 == 0) s.dose_today_ug = 0;
    }
  }
  if (setup->pending != nullptr && setup->pending_at <= s.t) SwitchToPending(setup, s);
}

void StartBolus(ModelState& s, const Setup& setup, Microliters volume, absl::Duration duration,
                bool counts_as_dose) {
  const TimeNs dur = absl::ToInt64Nanoseconds(duration);
  if (dur <= 0) {
    if (!Suspended(s)) Deliver(s, setup, volume.value(), counts_as_dose ? 1.0 : 0.0);
    return;
  }
  double remaining = 0;
  bool no_dose = !counts_as_dose;
  TimeNs end = s.t + dur;
  if (s.bolus_end > s.t) {
    remaining = VolumeUl(s.bolus_rate, s.bolus_end - s.t);
    end = std::max(end, s.bolus_end);
    no_dose = no_dose && s.Has(kFlagBolusNoDose);
  }
  s.bolus_end = end;
  s.bolus_rate = (remaining + volume.value()) / (static_cast<double>(end - s.t) / kNsPerDayD);
  s.Set(kFlagBolusNoDose, no_dose);
}

double Delivered24hUg(const ModelState& s) {
  // All 25 buckets = the current hour, the 23 before it and the hour 24 h ago, of which
  // only the part after t - 24 h counts (uniform within the hour).
  const int h = s.hour_index;
  double sum = 0;
  for (float b : s.dose_hour_ug) sum += b;
  const double into = static_cast<double>(s.t - static_cast<TimeNs>(h) * kNsPerHour) / kNsPerHour;
  return sum - into * s.dose_hour_ug[(h + 1) % kDoseBuckets];
}

MicrolitersPerDay ProgrammedRateNow(const ModelState& s, const Setup& setup) {
  if (Suspended(s)) return MicrolitersPerDay(0);
  double r = PlanBasalAt(*setup.current, s.t, setup.cfg.zone).rate.value();
  if (s.bolus_end > s.t) r += s.bolus_rate;
  return MicrolitersPerDay(r);
}

double DrainMahPerDay(const ModelState& s, const Setup& su) {
  return IdleDrainUa(s, su) * 24e-3 +
         su.spec->motor_mah_per_ul * su.current->mean_daily_rate.value();
}

bool DrainLearned(const ModelState& s) {
  return !std::isnan(s.cur_base) && (s.n_current > 0 || s.Has(kFlagDrainFromHistory));
}

double IdleDrainUa(const ModelState& s, const Setup& su) {
  const PumpSpec& spec = *su.spec;
  if (!DrainLearned(s)) return spec.idle_current_ua;
  // cur_base is the total drain; the motor's share at the programmed rate is modelled per
  // µL. A floor keeps a rate change from driving the idle share to nothing.
  const double motor_ua = spec.motor_mah_per_ul * su.current->mean_daily_rate.value() / 24e-3;
  return std::max(static_cast<double>(s.cur_base) - motor_ua, kMinIdleDrainUa);
}

double BatteryFraction(const ModelState& s, const PumpSpec& spec) {
  if (!spec.has_battery) return 1.0;
  return std::max(0.0, 1.0 - s.battery_used_mah / spec.battery_capacity.value());
}

}  // namespace pumptwin::twin
