// Event-log, alarm-flag, battery, clock-skew and time-driven detectors, and the
// detector-state summary.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "twin/detectors.h"
#include "twin/integrator.h"

namespace pumptwin::twin {
namespace {

double Hours(TimeNs dt) { return static_cast<double>(dt) / kNsPerHour; }
// absl::ToDoubleHours without its general division (per-sample paths).
double HoursOf(absl::Duration d) { return Hours(absl::ToInt64Nanoseconds(d)); }

// The battery-current baseline has enough samples over enough device time.
bool CurrentWarm(const ModelState& s) { return s.Has(kFlagCurrentWarm); }

// Drain factor for the forecasts: the pump's short-term drain over its own baseline (>= 1:
// a pump below its baseline keeps the modelled drain).
double DrainFactor(const ModelState& s) {
  return CurrentWarm(s) ? std::max(1.0, static_cast<double>(s.current_ratio)) : 1.0;
}
double Days(TimeNs dt) { return static_cast<double>(dt) / kNsPerDayD; }

void StartStall(ModelState& s, const Setup& su, AlertSink& sink, const char* how) {
  if (!su.spec->has_motor) return;
  if (!s.Has(kFlagStalled)) {
    s.Set(kFlagStalled, true);
    s.Set(kFlagStallLong, false);
    s.stall_since = s.t;
    if (s.n_stalls < UINT16_MAX) ++s.n_stalls;
    // Drive units of this sample may still count strokes made before the stall: the first
    // reading from now on is the reference that resumption is judged against.
    s.Set(kFlagDriveRefPending, true);
  }
  sink.Raise(AlertType::kMotorStall, Severity::kCritical, {Ev("motor_stall", 1, 0, 0, "flag", how)},
             "motor stall: pump not delivering",
             Diagnosis{"motor stall (the pump reports it)",
                       {Alt("catheter occlusion",
                            "an occlusion stops flow, not the drive: the pump's own stall "
                            "report names the motor; pressure and reservoir tell them apart "
                            "on sensorized pumps")}});
}

void Resume(ModelState& s, AlertSink& sink, const char* how) {
  if (s.Has(kFlagStalled)) {
    s.Set(kFlagStalled, false);
    sink.Resolve(AlertType::kMotorStall, absl::StrCat("delivery resumed (", how, ")"),
                 {Ev("stall_hours", Hours(s.t - s.stall_since), 0, 0, "h", how)});
    s.stall_since = kNoTime;
  }
  if (s.Has(kFlagMriSuspended)) {
    s.Set(kFlagMriSuspended, false);
    sink.Resolve(AlertType::kNoResumptionAfterMri, absl::StrCat("delivery resumed (", how, ")"),
                 {Ev("hours_since_mri", Hours(s.t - s.mri_since), 0, 0, "h", how)});
    s.mri_since = kNoTime;
  }
}

void PatientBolusGranted(ModelState& s, const Setup& su, const Tuning& tu, const DeviceEvent& e,
                         AlertSink& sink) {
  ++s.n_grants;
  const auto& pb = su.current->rx.patient_bolus;
  std::vector<Evidence> ev;
  if (!pb.has_value()) {
    ev.push_back(Ev("patient_bolus_configured", 0, 0, 0, "flag", "no patient bolus prescribed"));
  } else {
    const TimeNs lockout = absl::ToInt64Nanoseconds(pb->lockout - tu.lockout_tolerance);
    if (s.ptm_last_grant != kNoTime && s.t - s.ptm_last_grant < lockout) {
      ev.push_back(Ev("minutes_since_last_grant",
                      static_cast<double>(s.t - s.ptm_last_grant) / 6e10, 0,
                      absl::ToDoubleMinutes(pb->lockout), "min", "granted inside lockout"));
    }
    // A day without grants empties the ring, so stamps never alias (they wrap at 45 days).
    if (s.ptm_last_grant == kNoTime || s.t - s.ptm_last_grant >= kNsPerDay) {
      for (uint16_t& g : s.ptm_grants) g = kPtmEmpty;
    }
    const uint32_t in_window = s.GrantsIn24h(s.t);
    if (in_window >= pb->max_per_24h) {
      ev.push_back(Ev("grants_in_24h", in_window + 1.0, 0, pb->max_per_24h, "count",
                      "granted over the daily maximum"));
    }
    // Remember this grant in place of the oldest (or an empty slot).
    const uint16_t now = PtmStamp(s.t);
    uint16_t* slot = &s.ptm_grants[0];
    for (uint16_t& g : s.ptm_grants) {
      if (g == kPtmEmpty) {
        slot = &g;
        break;
      }
      if (PtmAgeMinutes(now, g) > PtmAgeMinutes(now, *slot)) slot = &g;
    }
    *slot = now;
    const Microliters v = e.volume.value_or(pb->volume);
    StartBolus(s, su, v, pb->duration, /*counts_as_dose=*/true);
  }
  s.ptm_last_grant = s.t;
  if (!ev.empty()) {
    s.ptm_violation = s.t;
    sink.Raise(AlertType::kPatientBolusLockout, Severity::kCritical, std::move(ev),
               "pump granted a patient bolus it should have denied: pump fault");
  }
}

}  // namespace

void ApplyDeviceEvent(ModelState& s, const Setup& su, const Tuning& tu, const DeviceEvent& e,
                      AlertSink& sink) {
  switch (e.type) {
    case DeviceEventType::kPatientBolusGranted:
      PatientBolusGranted(s, su, tu, e, sink);
      break;
    case DeviceEventType::kPatientBolusDenied:
      ++s.n_denials;
      break;
    case DeviceEventType::kMotorStall:
      StartStall(s, su, sink, "event log");
      break;
    case DeviceEventType::kMotorStallRecovery:
      Resume(s, sink, "stall recovery event");
      break;
    case DeviceEventType::kDeliveryResumed:
      Resume(s, sink, "delivery resumed event");
      break;
    case DeviceEventType::kElectiveReplacement:
      s.Set(kFlagEriReported, true);
      break;
    case DeviceEventType::kEndOfService:
      s.Set(kFlagEriReported, true);
      s.Set(kFlagEos, su.spec->has_battery);
      break;
    case DeviceEventType::kMagneticField:
      if (su.spec->has_motor) {
        s.Set(kFlagMriSuspended, true);
        if (s.mri_since == kNoTime) s.mri_since = s.t;
        s.Set(kFlagDriveRefPending, true);  // as for a stall: judge resumption from the scan on
        if (s.n_mri < UINT8_MAX) ++s.n_mri;
      }
      break;
    case DeviceEventType::kTelemetrySession:
      if (su.spec->has_battery) s.battery_used_mah += su.spec->telemetry_session_charge.value();
      MarkSession(s);
      break;
    case DeviceEventType::kLowReservoirAlarm:
      sink.Raise(AlertType::kLowReservoir, Severity::kWarning,
                 {Ev("calculated_reservoir", s.calc_ul, s.calc_ul,
                     su.spec->low_reservoir_alarm.value(), "uL", "pump's own alarm (event log)")},
                 "low reservoir: pump alarm");
      break;
    case DeviceEventType::kBolusStart:  // the clinical record (RecordEvent) drives the model
      MarkSession(s);                   // ... but the pump's own entry dates the session
      break;
    case DeviceEventType::kReservoirRefill:  // the clinical record (RecordRefill) drives the
                                             // model; the server re-keys an approximate one
                                             // to this entry's time
    case DeviceEventType::kBolusEnd:
    case DeviceEventType::kMemoryError:  // no model effect; kept in telemetry
    case DeviceEventType::kUnspecified:
      break;
  }
}

void ApplyAlarmFlags(ModelState& s, const Setup& su, uint32_t flags, AlertSink& sink) {
  if ((flags & kAlarmMotorStall) != 0 && !s.Has(kFlagStalled))
    StartStall(s, su, sink, "alarm flag");
  if ((flags & kAlarmEri) != 0) s.Set(kFlagEriReported, true);
  if ((flags & kAlarmEos) != 0) {
    s.Set(kFlagEriReported, true);
    s.Set(kFlagEos, su.spec->has_battery);
  }
  if ((flags & kAlarmLowReservoir) != 0 &&
      s.active(AlertType::kLowReservoir) == Severity::kUnspecified) {
    sink.Raise(AlertType::kLowReservoir, Severity::kWarning,
               {Ev("calculated_reservoir", s.calc_ul, s.calc_ul,
                   su.spec->low_reservoir_alarm.value(), "uL", "pump's own alarm (flag)")},
               "low reservoir: pump alarm");
  }
}

void ObserveDriveUnits(ModelState& s, uint64_t units, bool stall_flag, bool* advanced,
                       AlertSink& sink) {
  *advanced = s.last_drive_units != kNoDriveUnits && units > s.last_drive_units;
  if (s.Has(kFlagStalled) || s.Has(kFlagMriSuspended)) {
    if (s.Has(kFlagDriveRefPending)) {
      // The first reading since the stall or scan start is the reference: steps it counts
      // may predate the stall, so it is no evidence of resumption.
      s.Set(kFlagDriveRefPending, false);
      *advanced = false;
    } else if (*advanced && !stall_flag) {
      Resume(s, sink, "drive units advancing since the stall");
    } else {
      *advanced = false;  // the pump still reports its stall alarm
    }
  }
  if (*advanced) {
    s.drive_adv_hour = static_cast<uint16_t>(s.hour_index);
    s.Set(kFlagDriveSeen, true);
  }
  s.last_drive_units = units;  // a decrease (counter reset) re-anchors
}

void MarkSession(ModelState& s) {
  s.session_min = PtmStamp(s.t);
  s.Set(kFlagSession, true);
}

bool InSession(const ModelState& s, const Tuning& tu) {
  return s.Has(kFlagSession) &&
         PtmAgeMinutes(PtmStamp(s.t), s.session_min) <= 60.0 * HoursOf(tu.session_window);
}

bool MotorStopped(const ModelState& s, const Setup& su, const Tuning& tu) {
  if (s.Has(kFlagStalled) || s.Has(kFlagMriSuspended) || s.Has(kFlagEos)) return true;
  if ((su.spec->signals & kSigDriveUnits) == 0 || !s.Has(kFlagDriveSeen)) return false;
  const double rate = su.current->mean_daily_rate.value();
  const double stroke_h =
      rate > 0 ? su.spec->stroke_volume.value() / rate * 24.0 : 1e9;  // hours per stroke
  const double quiet_h =
      std::max(absl::ToDoubleHours(tu.motor_stopped_after), tu.motor_stopped_strokes * stroke_h);
  return s.HoursSince(s.drive_adv_hour) > quiet_h;
}

void ObserveBattery(ModelState& s, const Setup& su, const Tuning& tu, std::optional<Volts> voltage,
                    std::optional<double> current_ua, double dt_hours, AlertSink& sink) {
  const PumpSpec& spec = *su.spec;
  if (!spec.has_battery) return;
  (void)sink;
  if (voltage.has_value() && (spec.signals & kSigBatteryVoltage) != 0) {
    s.last_voltage = static_cast<float>(voltage->value());
    if (spec.eri_voltage.value() > 0 && *voltage <= spec.eri_voltage) s.Set(kFlagEriReported, true);
  }
  if (!current_ua.has_value() || (spec.signals & kSigBatteryCurrent) == 0) return;
  // A session (refill, programming, bolus, interrogation) draws charge through the radio and
  // the motor: its readings say nothing about the pump's own drain.
  if (s.Has(kFlagSession)) {
    if (InSession(s, tu)) return;
    s.Set(kFlagSession, false);  // past its window (also keeps the minute stamp from wrapping)
  }
  const double x = *current_ua;
  if (std::isnan(s.cur_base) || s.n_current == 0) {
    s.cur_base = static_cast<float>(std::max(x, 1e-3));
    s.Set(kFlagDrainFromHistory, false);  // the pump's own current from now on
    s.cur_var = 0;
    s.cur_hour0 = static_cast<uint16_t>(s.hour_index);
    s.current_ratio = 1.0f;
    s.n_current = 1;
    s.Set(kFlagDepletionPending, false);
    s.Set(kFlagCurrentWarm, false);
    return;
  }
  const double base = s.cur_base;
  const double sd =
      std::max(std::sqrt(static_cast<double>(s.cur_var)), tu.current_sd_floor_fraction * base);
  const double d = x - base;
  if (s.n_current < UINT16_MAX) ++s.n_current;
  if (!CurrentWarm(s)) {
    // Warm-up: a running mean and variance of Huber-clipped residuals (a robust estimate of
    // this pump's own drain, whatever its idle current).
    const double a = 1.0 / s.n_current;
    const double c = std::clamp(d, -tu.current_clip_sd * sd, tu.current_clip_sd * sd);
    const double dc = s.n_current <= 3 ? d : c;  // too few samples for an sd yet
    s.cur_base = static_cast<float>(base + a * dc);
    s.cur_var = static_cast<float>((1.0 - a) * (s.cur_var + a * dc * dc));
    s.current_ratio = 1.0f;
    if (s.n_current >= tu.current_warmup_samples &&
        s.HoursSince(s.cur_hour0) >= absl::ToDoubleHours(tu.current_warmup_time)) {
      s.Set(kFlagCurrentWarm, true);
    }
    return;
  }
  // Warm: the baseline follows slow ageing from samples that look like it; the level (a
  // time-weighted mean of current / baseline, one sample moving it by at most
  // current_level_clip) follows a change within hours.
  // Time-based weights dt / (tau + dt): an EWMA with time constant tau whatever the
  // reporting interval (1 - exp(-dt/tau) to first order, without an exp per sample).
  const double w_base = dt_hours / (HoursOf(tu.current_baseline_tau) + dt_hours);
  if (std::abs(d) < tu.current_gate_sd * sd) {
    s.cur_base = static_cast<float>(base + w_base * d);
    s.cur_var = static_cast<float>((1.0 - w_base) * (s.cur_var + w_base * d * d));
  }
  const double w = dt_hours / (HoursOf(tu.current_level_tau) + dt_hours);
  const double r = std::clamp(x / base, 0.0, tu.current_level_clip);
  s.current_ratio = static_cast<float>(s.current_ratio + w * (r - s.current_ratio));
  const bool flagged = s.Has(kFlagEarlyDepletion);
  const bool prior_high = static_cast<double>(s.cur_base) > tu.current_prior_max_ua;
  // Cheap exits: below the alarm factor nothing is pending; a flagged pump above the
  // resolve factor stays flagged (the margins only widen these bands).
  if (!flagged && !prior_high && s.current_ratio <= tu.early_depletion_alarm_factor) {
    s.Set(kFlagDepletionPending, false);
    return;
  }
  if (flagged && (prior_high || s.current_ratio >= tu.early_depletion_resolve_factor)) return;
  // The level's sd: one sample's relative sd through an EWMA of weight w.
  const double level_sd = sd / base * std::sqrt(w / std::max(2.0 - w, 1e-9));
  const double z = tu.current_z;
  const bool high = s.current_ratio - z * level_sd > tu.early_depletion_alarm_factor || prior_high;
  if (!flagged) {
    if (!high) {
      s.Set(kFlagDepletionPending, false);
    } else if (!s.Has(kFlagDepletionPending)) {
      s.Set(kFlagDepletionPending, true);
      s.cur_hour0 = static_cast<uint16_t>(s.hour_index);  // warm: reused as the pending start
    } else if (s.HoursSince(s.cur_hour0) >= HoursOf(tu.early_depletion_persist)) {
      s.Set(kFlagEarlyDepletion, true);
      s.Set(kFlagDepletionPending, false);
    }
  } else if (s.current_ratio + z * level_sd < tu.early_depletion_resolve_factor) {
    s.Set(kFlagEarlyDepletion, false);
  }
}

double SkewEstimateMs(const ModelState& s) {
  if (std::isnan(s.skew_prev_ms)) return std::isnan(s.skew_cur_ms) ? 0.0 : s.skew_cur_ms;
  // float ms: a resolution under 1 ms up to 4.6 h of skew (the threshold is 5 min)
  if (std::isnan(s.skew_cur_ms)) return s.skew_prev_ms;
  return std::max(s.skew_cur_ms, s.skew_prev_ms);
}

void ObserveSkew(ModelState& s, const Tuning& tu, TimeNs server_ns, AlertSink& sink) {
  // Transport delays only make device - server smaller, so the windowed maximum is the
  // best estimate of the true offset (buffered, late samples cannot fake a skew).
  const float sample_ms = static_cast<float>(static_cast<double>(s.t - server_ns) / 1e6);
  const TimeNs window = absl::ToInt64Nanoseconds(tu.skew_window);
  if (s.skew_window_start == kNoTime) {
    s.skew_window_start = server_ns;
    s.skew_cur_ms = sample_ms;
  } else if (server_ns - s.skew_window_start >= window) {
    s.skew_prev_ms = s.skew_cur_ms;
    s.skew_cur_ms = sample_ms;
    s.skew_window_start = server_ns;
    s.Set(kFlagSkewReady, true);
  } else {
    s.skew_cur_ms = std::isnan(s.skew_cur_ms) ? sample_ms : std::max(s.skew_cur_ms, sample_ms);
  }
  if (!s.Has(kFlagSkewReady)) return;
  const double est = SkewEstimateMs(s);
  const double thr = absl::ToDoubleMilliseconds(tu.skew_threshold);
  const bool active = s.active(AlertType::kClockSkew) != Severity::kUnspecified;
  if (std::abs(est) > thr && !active) {
    sink.Raise(AlertType::kClockSkew, Severity::kInfo,
               {Ev("clock_skew", est, 0, thr, "ms", "device minus server, windowed maximum")},
               absl::StrFormat("pump clock off by %.1f min", est / 60000.0));
  } else if (active && std::abs(est) < tu.skew_resolve_fraction * thr) {
    sink.Resolve(AlertType::kClockSkew, "pump clock back in sync",
                 {Ev("clock_skew", est, 0, thr, "ms")});
  }
}

TimeNs BatteryEriTime(const ModelState& s, const Setup& su, const Tuning& /*tu*/) {
  const PumpSpec& spec = *su.spec;
  if (!spec.has_battery) return kNeverNs;
  // The labelled service life bounds a forecast made from the profile prior only: a pump's
  // own drain (its current, its indicator since implant) says when its battery ends.
  const TimeNs cap = DrainLearned(s) ? kNeverNs : su.eri_cap_ns;
  if (s.Has(kFlagEriReported)) return std::min(s.t, su.eri_cap_ns);
  const double factor = DrainFactor(s);
  const double per_day = factor * DrainMahPerDay(s, su);
  const double left =
      spec.battery_capacity.value() * (1.0 - spec.eri_fraction) - s.battery_used_mah;
  if (left <= 0) return std::min(s.t, cap);
  const double days = left / per_day;
  const TimeNs t =
      days * kNsPerDayD > 1e18 ? kNeverNs : s.t + static_cast<TimeNs>(days * kNsPerDayD);
  return std::min(t, cap);
}

TimeNs BatteryEosTime(const ModelState& s, const Setup& su, const Tuning& tu) {
  const PumpSpec& spec = *su.spec;
  if (!spec.has_battery) return kNeverNs;
  const TimeNs cap =
      DrainLearned(s) ? kNeverNs : su.eri_cap_ns + absl::ToInt64Nanoseconds(spec.eri_to_eos);
  if (s.Has(kFlagEos)) return s.t;
  const double factor = DrainFactor(s);
  const double per_day = factor * DrainMahPerDay(s, su);
  const double left =
      spec.battery_capacity.value() * (1.0 - spec.eos_fraction) - s.battery_used_mah;
  if (left <= 0) return std::min(s.t, cap);
  const double days = left / per_day;
  const TimeNs t =
      days * kNsPerDayD > 1e18 ? kNeverNs : s.t + static_cast<TimeNs>(days * kNsPerDayD);
  // After a reported ERI the label gives 90 days to EOS.
  const TimeNs after_eri = s.Has(kFlagEriReported) ? BatteryEriTime(s, su, tu) +
                                                         absl::ToInt64Nanoseconds(spec.eri_to_eos)
                                                   : kNeverNs;
  return std::min({t, cap, after_eri});
}

RunsDryMargin RunsDry(const ModelState& s, const Setup& su, const Tuning& tu) {
  RunsDryMargin m;
  const double sd_r = std::sqrt(s.ratio_var), z = tu.runs_dry_z;
  // The estimate's error: the ratio's error over the volume programmed since the refill,
  // or (measured reservoir) the sensor's noise when that is smaller.
  m.est_sd = sd_r * std::max(0.0, s.prog_total_ul - s.prog_at_refill_ul);
  if ((su.spec->signals & kSigMeasuredReservoir) != 0 && !std::isnan(s.last_meas_res)) {
    m.est_sd = std::min(m.est_sd, su.spec->measured_reservoir_sd.value());
  }
  m.ratio_lo = std::max(s.ratio - z * sd_r, 1e-3);
  m.prog_to_empty = s.est_ul / s.ratio;
  m.prog_to_empty_hi = (s.est_ul + z * m.est_sd) / m.ratio_lo;
  m.prog_to_empty_lo = std::max(0.0, s.est_ul - z * m.est_sd) / (s.ratio + z * sd_r);
  return m;
}

void TimeChecks(ModelState& s, const Setup& su, const Tuning& tu, TimeNs now,
                bool low_reservoir_flag, AlertSink& sink) {
  const PumpSpec& spec = *su.spec;
  // Motor stall lasting beyond 48 h: overinfusion risk on restart (label).
  if (s.Has(kFlagStalled) && !s.Has(kFlagStallLong) &&
      now - s.stall_since > absl::ToInt64Nanoseconds(tu.stall_overinfusion_after)) {
    s.Set(kFlagStallLong, true);
    sink.Update(
        AlertType::kMotorStall,
        {Ev("stall_hours", Hours(now - s.stall_since), 0,
            absl::ToDoubleHours(tu.stall_overinfusion_after), "h", "label: overinfusion risk")},
        "motor stall > 48 h: risk of overinfusion when it restarts");
  }
  // No resumption after MRI: a warning once a reading taken `mri_resume_expected` after the
  // scan (the model time: data, not the silence since) still shows no delivery; critical at
  // `mri_resume_deadline`. A silent pump's readings are still to come (a gateway outage):
  // its silence is the alert, and the deadline is judged on the readings when they arrive.
  if (s.Has(kFlagMriSuspended) && s.mri_since != kNoTime) {
    const Severity active = s.active(AlertType::kNoResumptionAfterMri);
    if (active != Severity::kCritical && !s.Has(kFlagSilent) &&
        now - s.mri_since > absl::ToInt64Nanoseconds(tu.mri_resume_deadline)) {
      sink.Raise(AlertType::kNoResumptionAfterMri, Severity::kCritical,
                 {Ev("hours_since_mri", Hours(now - s.mri_since), 0,
                     absl::ToDoubleHours(tu.mri_resume_deadline), "h", "no delivery evidence")},
                 "delivery has not resumed after MRI");
    } else if (active == Severity::kUnspecified && !s.Has(kFlagDriveRefPending) &&
               s.t - s.mri_since > absl::ToInt64Nanoseconds(tu.mri_resume_expected)) {
      sink.Raise(AlertType::kNoResumptionAfterMri, Severity::kWarning,
                 {Ev("hours_since_mri", Hours(s.t - s.mri_since), 0,
                     absl::ToDoubleHours(tu.mri_resume_expected), "h",
                     "no delivery evidence in the readings since the scan")},
                 absl::StrFormat("delivery has not resumed %.1f h after MRI (a pump resumes when "
                                 "the scan ends; delays of 2-24 h are reported): interrogate the "
                                 "pump",
                                 Hours(s.t - s.mri_since)));
    }
  }
  // Drug past its stability window.
  const double age_days = Days(now - s.refill_time);
  const double stab_days = static_cast<double>(su.current->stability_ns) / kNsPerDayD;
  if (age_days > stab_days && s.active(AlertType::kDrugStability) == Severity::kUnspecified) {
    sink.Raise(AlertType::kDrugStability, Severity::kWarning,
               {Ev("days_since_refill", age_days, 0, stab_days, "days", su.current->drug->key)},
               absl::StrFormat("%s in the reservoir for %.0f days, beyond its %.0f-day stability",
                               su.current->drug->key, age_days, stab_days));
  }
  // Patient-bolus fault clears after a quiet day.
  if (s.ptm_violation != kNoTime &&
      s.active(AlertType::kPatientBolusLockout) != Severity::kUnspecified &&
      now - s.ptm_violation > absl::ToInt64Nanoseconds(tu.bolus_violation_clear)) {
    sink.Resolve(AlertType::kPatientBolusLockout, "no further out-of-limit grants for 24 h");
    s.ptm_violation = kNoTime;
  }
  if (now != s.t) return;  // the rest needs the model at `now` (not from Tick)

  // Arguments of Raise/Resolve (strings, evidence) are only built when the alert state
  // changes: this runs on every sample.
  const double alarm = spec.low_reservoir_alarm.value();
  const auto none = Severity::kUnspecified;
  if (s.calc_ul < alarm && s.active(AlertType::kLowReservoir) == none) {
    sink.Raise(AlertType::kLowReservoir, Severity::kWarning,
               {Ev("calculated_reservoir", s.calc_ul, s.calc_ul, alarm, "uL")},
               absl::StrFormat("low reservoir: %.1f mL calculated", s.calc_ul / 1000.0));
  } else if (s.active(AlertType::kLowReservoir) != none && !low_reservoir_flag &&
             s.calc_ul > alarm + tu.low_reservoir_hysteresis.value()) {
    sink.Resolve(AlertType::kLowReservoir, "reservoir above alarm volume");
  }
  // Runs dry before its alarm: the estimated content, delivered at ratio r, runs out
  // before the pump's calculated reservoir reaches its alarm volume. Both are driven by the
  // same programmed volume, so this compares est/r with calc - alarm. Raised only when it
  // holds with a margin of runs_dry_z sd of both the ratio and the estimate (a ratio still
  // near its prior cannot raise it), and resolved only when the opposite holds with the
  // same margin plus the hysteresis volume.
  // A pump without telemetry has no alarm the server hears: the model running its
  // reservoir dry is itself the alert, and it holds until a refill.
  if (spec.signals == 0 && s.est_ul <= 0) {
    if (s.active(AlertType::kRunsDryBeforeAlarm) == none) {
      sink.Raise(AlertType::kRunsDryBeforeAlarm, Severity::kCritical,
                 {Ev("estimated_reservoir", s.est_ul, 0, 0, "uL",
                     "model only: the pump reports no telemetry"),
                  Ev("programmed_since_refill", s.prog_total_ul - s.prog_at_refill_ul, s.fill_ul,
                     s.fill_ul, "uL", "threshold = volume in the reservoir after the refill")},
                 "reservoir empty by the model: the pump has run dry (no telemetry)");
    }
  } else if (s.n_ratio_obs > 0 && s.ratio > 0) {
    const RunsDryMargin m = RunsDry(s, su, tu);
    const double to_alarm = s.calc_ul - alarm;
    const bool active = s.active(AlertType::kRunsDryBeforeAlarm) != none;
    if (to_alarm > 0 && m.prog_to_empty_hi < to_alarm && !active) {
      sink.Raise(AlertType::kRunsDryBeforeAlarm, Severity::kCritical,
                 {Ev("estimated_reservoir", s.est_ul, s.calc_ul, alarm, "uL",
                     absl::StrFormat("predicted = calculated; sd %.0f uL", m.est_sd)),
                  Ev("delivery_ratio", s.ratio, 1.0, m.ratio_lo, "ratio",
                     "threshold = learned ratio minus its margin"),
                  Ev("programmed_volume_to_empty", m.prog_to_empty, to_alarm, to_alarm, "uL",
                     absl::StrFormat("upper bound %.0f uL; threshold = programmed volume to "
                                     "the pump's alarm",
                                     m.prog_to_empty_hi))},
                 "pump will run dry before its low-reservoir alarm",
                 Diagnosis{"pump delivers more than it counts (over-infusion)",
                           {Alt("septum or reservoir leak",
                                "also empties the reservoir early; told apart at the refill "
                                "(fluid in the pocket) or by a drop that does not follow the "
                                "programmed rate")}});
    } else if (active && m.prog_to_empty_lo > to_alarm + tu.runs_dry_hysteresis.value()) {
      sink.Resolve(AlertType::kRunsDryBeforeAlarm, "estimated empty date after the pump's alarm");
    }
  }
  // Daily dose above the drug library maximum (estimated delivery, rolling 24 h).
  const double d24 = Delivered24hUg(s);
  const double max_daily = su.current->drug->max_daily_dose.value();
  const bool dose_active = s.active(AlertType::kDailyDoseLimit) != none;
  if (d24 > max_daily && !dose_active) {
    sink.Raise(AlertType::kDailyDoseLimit, Severity::kCritical,
               {Ev("delivered_24h", d24, 0, max_daily, "ug", su.current->drug->key)},
               absl::StrFormat("%.1f ug delivered in 24 h, above the %s maximum of %.1f ug", d24,
                               su.current->drug->key, max_daily));
  } else if (dose_active && d24 < tu.daily_dose_resolve_fraction * max_daily) {
    sink.Resolve(AlertType::kDailyDoseLimit, "24 h dose back below the daily maximum");
  }
  // Battery depletion.
  if (spec.has_battery) {
    const TimeNs eri = BatteryEriTime(s, su, tu);
    const double days_to_eri = eri == kNeverNs ? 1e9 : Days(eri - s.t);
    const double frac = BatteryFraction(s, spec);
    const double horizon_days = absl::ToDoubleHours(tu.eri_warning_horizon) / 24.0;
    Severity sev = none;
    const char* summary = "battery within model";
    if (s.Has(kFlagEos)) {
      sev = Severity::kCritical;
      summary = "end of service: pump has stopped";
    } else if (s.Has(kFlagEriReported) || frac <= spec.eri_fraction) {
      sev = Severity::kCritical;
      summary = "elective replacement indicator: pump stops within about 90 days";
    } else if (days_to_eri <= horizon_days ||
               (s.active(AlertType::kBatteryDepletion) != none &&
                days_to_eri <= horizon_days * tu.eri_resolve_factor)) {
      // Hysteresis: a forecast that moves by days around the horizon does not flap.
      sev = Severity::kWarning;
      summary = "battery ERI forecast within 180 days: schedule replacement";
    } else if (s.Has(kFlagEarlyDepletion)) {
      sev = Severity::kWarning;
      summary = "battery draining faster than its model (early depletion)";
    }
    const Severity active = s.active(AlertType::kBatteryDepletion);
    if (sev > active || (sev == none && active != none)) {
      std::vector<Evidence> ev{
          Ev("days_to_eri", days_to_eri, 0, horizon_days, "days"),
          Ev("battery_charge_fraction", frac, frac, spec.eri_fraction, "fraction")};
      if (s.n_current > 0) {
        ev.push_back(Ev("battery_current_ratio", s.current_ratio, 1.0,
                        tu.early_depletion_alarm_factor, "ratio",
                        "short-term drain / this pump's own learned baseline"));
        ev.push_back(Ev("battery_current_baseline", s.cur_base, spec.idle_current_ua,
                        tu.current_prior_max_ua, "uA",
                        "learned from this pump; predicted = profile prior"));
      }
      if (sev == none) {
        sink.Resolve(AlertType::kBatteryDepletion, summary, std::move(ev));
      } else {
        Diagnosis dx;
        if (s.Has(kFlagEarlyDepletion) && !s.Has(kFlagEos) && !s.Has(kFlagEriReported)) {
          dx = Diagnosis{
              "early battery depletion (drain above this pump's own baseline)",
              {Alt("clinical session (refill, programming, interrogation)",
                   absl::StrFormat("sessions are excluded for %.0f min and the drain held for "
                                   "%.0f h; a session lasts minutes",
                                   absl::ToDoubleMinutes(tu.session_window),
                                   absl::ToDoubleHours(tu.early_depletion_persist)),
                   true),
               Alt("higher programmed rate (motor energy)",
                   "the motor draws about 1 uA per mL/day: a rate change moves the drain by "
                   "percent, not by half",
                   true)}};
        } else {
          dx = Diagnosis{s.Has(kFlagEos) || s.Has(kFlagEriReported)
                             ? "battery at end of life (pump's own indicator)"
                             : "battery nearing elective replacement (model forecast)",
                         {}};
        }
        sink.Raise(AlertType::kBatteryDepletion, sev, std::move(ev), summary, std::move(dx));
      }
    }
  }
}

// When a condition this profile cannot see between refills will be known (observability
// matrix, docs/detection.md); empty: the profile cannot see it at all.
const char* WhenKnown(AlertType type, const PumpSpec& spec) {
  switch (type) {
    case AlertType::kFlowDriftOver:
    case AlertType::kFlowDriftUnder:
    case AlertType::kRunsDryBeforeAlarm:
      return "at the next refill (the withdrawn volume measures the delivery ratio)";
    case AlertType::kCatheterBlockage:
      return spec.has_motor && (spec.signals & kSigEventLog) != 0
                 ? "at the pump's own stall alarm (complete) or at the next refill (volume left "
                   "over)"
                 : "at the next refill (volume left over) or when symptoms return";
    case AlertType::kCatheterLeak:
      return "at the next refill or when symptoms return (a leak delivers into the tissue)";
    case AlertType::kPocketFill:
      return "at the next refill, by the withdrawn volume (or symptoms)";
    case AlertType::kBatteryDepletion:
      return "at the pump's own ERI indicator (no current telemetry)";
    default:
      return "";
  }
}

DetectorState ComputeDetectorState(AlertType type, const ModelState& s, const Setup& su,
                                   const Tuning& tu, std::string* detail) {
  const PumpSpec& spec = *su.spec;
  const bool measured = (spec.signals & kSigMeasuredReservoir) != 0;
  // Flow drift on a measured reservoir: what this pump's readings can show within the goal's
  // window is part of every state's detail; a goal-sized drift they cannot show in time makes
  // the detector "not observable" for it, never "ok".
  const bool drift = type == AlertType::kFlowDriftOver || type == AlertType::kFlowDriftUnder;
  const DriftObservability obs =
      drift && measured ? FlowDriftObservability(s, su, tu) : DriftObservability{};
  const std::string obs_text = DriftObservabilityText(obs, tu);
  const auto with_obs = [&](std::string d) {
    return obs_text.empty() ? d : d.empty() ? obs_text : absl::StrCat(d, "; ", obs_text);
  };
  if (s.active(type) != Severity::kUnspecified) {
    *detail = with_obs(absl::StrCat("alert active (", SeverityName(s.active(type)), ")"));
    return DetectorState::kAlerting;
  }
  // Conditions this profile sees only at a refill (or through the pump's own alarms): not
  // observable between them, and the detail says when the twin will know.
  const bool refill_only =
      ((type == AlertType::kFlowDriftOver || type == AlertType::kFlowDriftUnder ||
        type == AlertType::kRunsDryBeforeAlarm) &&
       !measured) ||
      (type == AlertType::kBatteryDepletion && spec.has_battery &&
       (spec.signals & kSigBatteryCurrent) == 0 && !s.Has(kFlagEriReported));
  if (!Observable(type, spec) || refill_only) {
    const char* when = WhenKnown(type, spec);
    *detail = *when == 0
                  ? absl::StrCat(spec.name, " pumps do not report the signals this detector needs")
                  : absl::StrCat(spec.name, " pumps do not report it between visits; known ", when);
    if (refill_only && type != AlertType::kBatteryDepletion && s.n_ratio_obs > 0) {
      absl::StrAppend(detail, absl::StrFormat("; last refill ratio %.3f (sd %.3f)", s.ratio,
                                              std::sqrt(s.ratio_var)));
    }
    return DetectorState::kNotObservable;
  }
  if (s.Has(kFlagSilent) && type != AlertType::kSilentPump) {
    *detail = with_obs("pump silent: no recent data");
    return DetectorState::kUnknown;
  }
  switch (type) {
    case AlertType::kFlowDriftOver:
    case AlertType::kFlowDriftUnder:
      if (s.n_ratio_obs < std::max(1, tu.drift_warmup_observations)) {
        *detail = with_obs(
            absl::StrCat("learning: ", s.n_ratio_obs, " delivery-ratio observations so far"));
        return DetectorState::kWarmingUp;
      }
      if (obs.known && !(obs.detectable <= tu.drift_observable_size)) {
        *detail = absl::StrFormat(
            "flow drift of %.0f %% not observable within %.0f h at this pump's noise; %s",
            100 * tu.drift_observable_size, absl::ToDoubleHours(tu.drift_observable_window),
            obs_text);
        return DetectorState::kNotObservable;
      }
      break;
    case AlertType::kRunsDryBeforeAlarm:
      if (s.n_ratio_obs < 1 || s.ratio_var > tu.shift_ref_max_sd * tu.shift_ref_max_sd) {
        *detail = absl::StrFormat("learning: delivery ratio %.3f, sd %.3f (enough below %.3f)",
                                  s.ratio, std::sqrt(s.ratio_var), tu.shift_ref_max_sd);
        return DetectorState::kWarmingUp;
      }
      break;
    case AlertType::kCatheterBlockage:
    case AlertType::kCatheterLeak:
      if (s.n_pressure <= tu.pressure_warmup_samples) {
        *detail = absl::StrCat("learning: ", s.n_pressure, " of ", tu.pressure_warmup_samples,
                               " stroke-pressure samples for this pump's baseline");
        return DetectorState::kWarmingUp;
      }
      break;
    case AlertType::kBatteryDepletion:
      if ((spec.signals & kSigBatteryCurrent) != 0 && !CurrentWarm(s)) {
        *detail = absl::StrCat("learning this pump's own drain: ", s.n_current, " of ",
                               tu.current_warmup_samples, " current samples, ",
                               s.n_current > 0 ? s.HoursSince(s.cur_hour0) : 0, " of ",
                               absl::ToDoubleHours(tu.current_warmup_time), " h");
        return DetectorState::kWarmingUp;
      }
      break;
    case AlertType::kClockSkew:
      if (!s.Has(kFlagSkewReady)) {
        *detail = "learning: first skew window not complete";
        return DetectorState::kWarmingUp;
      }
      break;
    default:
      break;
  }
  *detail = obs_text;
  return DetectorState::kOk;
}

}  // namespace pumptwin::twin
