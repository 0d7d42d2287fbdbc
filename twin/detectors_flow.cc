// Pocket fill, catheter blockage and leak detectors, the measured-reservoir entry point
// (flow drift itself is in flow_drift.cc), and the shared alert bookkeeping (AlertSink,
// observability).
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "twin/detectors.h"

namespace pumptwin::twin {

Evidence Ev(std::string signal, double observed, double predicted, double threshold,
            std::string unit, std::string note) {
  return Evidence{std::move(signal), observed,        predicted,
                  threshold,         std::move(unit), std::move(note)};
}

DifferentialAlternative Alt(std::string cause, std::string evidence, bool ruled_out) {
  return DifferentialAlternative{std::move(cause), std::move(evidence), ruled_out};
}

void AlertSink::Emit(AlertType type, Severity sev, TransitionKind kind,
                     std::vector<Evidence> evidence, std::string summary, Diagnosis dx) {
  if (out_ == nullptr) return;
  out_->push_back(AlertTransition{type, sev, kind, FromNs(now_), std::move(evidence),
                                  std::move(summary), std::move(dx)});
}

void AlertSink::Raise(AlertType type, Severity severity, std::vector<Evidence> evidence,
                      std::string summary, Diagnosis dx) {
  uint8_t& slot = s_.alert[static_cast<int>(type)];
  if (slot >= static_cast<uint8_t>(severity)) return;
  const TransitionKind kind = slot == 0 ? TransitionKind::kRaised : TransitionKind::kUpdated;
  slot = static_cast<uint8_t>(severity);
  Emit(type, severity, kind, std::move(evidence), std::move(summary), std::move(dx));
}

void AlertSink::Update(AlertType type, std::vector<Evidence> evidence, std::string summary,
                       Diagnosis dx) {
  const uint8_t slot = s_.alert[static_cast<int>(type)];
  if (slot == 0) return;
  Emit(type, static_cast<Severity>(slot), TransitionKind::kUpdated, std::move(evidence),
       std::move(summary), std::move(dx));
}

void AlertSink::Resolve(AlertType type, std::string summary, std::vector<Evidence> evidence) {
  uint8_t& slot = s_.alert[static_cast<int>(type)];
  if (slot == 0) return;
  const Severity sev = static_cast<Severity>(slot);
  slot = 0;
  Emit(type, sev, TransitionKind::kResolved, std::move(evidence), std::move(summary));
}

bool Observable(AlertType type, const PumpSpec& spec) {
  const uint32_t sig = spec.signals;
  switch (type) {
    case AlertType::kFlowDriftOver:
    case AlertType::kFlowDriftUnder:
    case AlertType::kLowReservoir:
    case AlertType::kRunsDryBeforeAlarm:
    case AlertType::kRefillDiscrepancy:
    case AlertType::kDailyDoseLimit:
    case AlertType::kSilentPump:
    case AlertType::kDrugStability:
      return true;  // from the model, refills and reporting alone
    case AlertType::kCatheterBlockage:
    case AlertType::kCatheterLeak:
      return (sig & kSigStrokePressure) != 0;
    case AlertType::kBatteryDepletion:
      return spec.has_battery;
    case AlertType::kPocketFill:
      return (sig & kSigMeasuredReservoir) != 0;
    case AlertType::kMotorStall:
    case AlertType::kNoResumptionAfterMri:
      return spec.has_motor && (sig & kSigEventLog) != 0;
    case AlertType::kPatientBolusLockout:
      return spec.programmable && (sig & kSigEventLog) != 0;
    case AlertType::kClockSkew:
      return (sig & kSigClock) != 0;
    case AlertType::kUnspecified:
      break;
  }
  return false;
}

namespace {

double PocketFillThreshold(const Setup& su, const Tuning& tu) {
  return su.cfg.reservoir_capacity <= tu.pocket_fill_small_capacity ? tu.pocket_fill_small.value()
                                                                    : tu.pocket_fill_large.value();
}

// Differential of a pressure blockage: an empty reservoir is the alternative that the
// measured reservoir (or, without it, the pump's calculated content) separates.
Diagnosis PressureBlockageDx(const ModelState& s, const Setup& su, const Tuning& tu) {
  const double empty = tu.empty_reservoir.value();
  DifferentialAlternative alt;
  if (!std::isnan(s.last_meas_res)) {
    alt = Alt("empty reservoir",
              absl::StrFormat("reservoir reads %.2f mL (empty at or below %.2f mL)",
                              s.last_meas_res / 1000.0, empty / 1000.0),
              s.last_meas_res > empty);
  } else {
    alt = Alt("empty reservoir",
              absl::StrFormat("not measured; the pump calculates %.2f mL", s.calc_ul / 1000.0),
              false);
  }
  (void)su;
  return Diagnosis{"catheter occlusion", {std::move(alt)}};
}

}  // namespace

void ObserveMeasuredReservoir(ModelState& s, const Setup& su, const Tuning& tu, double measured,
                              bool drive_advanced, AlertSink& sink) {
  const double residual = measured - s.est_ul;
  const double prev_residual = s.res_residual;
  const bool prev_fused = s.Has(kFlagFusedLast) && !std::isnan(prev_residual);
  s.Set(kFlagFusedLast, false);
  s.last_meas_res = static_cast<float>(measured);
  s.res_residual = static_cast<float>(residual);
  const bool pocket_window = s.pocket_until != kNoTime && s.t <= s.pocket_until;
  const double thr = PocketFillThreshold(su, tu);
  // The recorded refill time may be rounded and the refill takes minutes: a reading this
  // soon after it that is still far below the new content was taken before the drug went
  // in (its own time is what counts, not the record's). It is no evidence of anything.
  if (pocket_window && residual < -thr &&
      s.t - s.refill_time <= absl::ToInt64Nanoseconds(tu.refill_time_tolerance)) {
    return;
  }
  if (pocket_window) {
    if (residual < -thr) {
      if (++s.pocket_run >= tu.pocket_fill_run) {
        sink.Raise(AlertType::kPocketFill, Severity::kCritical,
                   {Ev("measured_reservoir", measured, s.est_ul, s.est_ul - thr, "uL",
                       "measured after refill vs expected"),
                    Ev("minutes_since_refill", static_cast<double>(s.t - s.refill_time) / 6e10, 0,
                       absl::ToDoubleMinutes(tu.refill_time_tolerance), "min",
                       "readings before the threshold are taken as pre-refill")},
                   absl::StrFormat("possible pocket fill: reservoir %.2f mL below expected",
                                   -residual / 1000.0),
                   Diagnosis{"pocket fill (drug injected outside the reservoir)",
                             {Alt("septum leak",
                                  absl::StrFormat("a septum leak loses drug gradually after the "
                                                  "refill; this shortfall of %.2f mL is there "
                                                  "within %.0f min of it",
                                                  -residual / 1000.0,
                                                  static_cast<double>(s.t - s.refill_time) / 6e10)),
                              Alt("over-infusion",
                                  "over-infusion follows the programmed rate: it cannot remove "
                                  "mL within minutes")}});
        s.est_ul = std::max(0.0, measured);  // the drug is not in the reservoir
        s.pocket_until = kNoTime;
        s.pocket_run = 0;
      }
    } else {
      s.pocket_run = 0;
    }
  } else {
    s.pocket_until = kNoTime;
    // A reservoir only rises by a refill: a reading this far above the estimate is a refill
    // whose record has not been applied yet (a clinician's time rounded up, a record still
    // to come). Held out of the estimate and the flow segments for a few readings, so the
    // refill's expected volume is not taken from after it; fused once it persists.
    if (residual > thr && s.pocket_run < tu.unrecorded_refill_hold) {
      ++s.pocket_run;
      return;
    }
    s.pocket_run = 0;
    if (prev_fused) {
      // Successive residuals, the previous one less its fused part: the difference of two
      // readings' noise plus the (small) ratio error over one interval; variance 2 sd².
      const double e = residual - (1.0 - tu.measured_fusion_gain) * prev_residual;
      LearnMeasuredNoise(s, *su.spec, tu, e / std::sqrt(2.0));
    }
    s.Set(kFlagFusedLast, true);
    s.est_ul = std::clamp(s.est_ul + tu.measured_fusion_gain * residual, 0.0,
                          su.cfg.reservoir_capacity.value());
  }

  // The needle and syringe of a refill move the reading while the session lasts: readings
  // within a clinical session's window do not enter the flow segments (a disturbed segment
  // mean would read as a ratio change, or anchor a change point).
  if (InSession(s, tu)) return;
  ObserveMeasuredFlow(s, su, tu, measured, drive_advanced, sink);
}

void ObserveStrokePressure(ModelState& s, const Setup& su, const Tuning& tu, double p,
                           std::optional<double> pulsation, bool drive_quiet, AlertSink& sink) {
  const double expected = su.expected_stroke.value();
  const double floor = tu.pressure_sd_floor.value();
  if (std::isnan(s.p_base)) {
    s.p_base = static_cast<float>(expected);
    s.p_var = static_cast<float>(floor * floor);
    s.n_pressure = 0;
  }
  const double base = s.p_base;
  const double sd = std::max(std::sqrt(static_cast<double>(s.p_var)), floor);
  const double z = (p - base) / sd;
  s.last_stroke = static_cast<float>(p);
  s.p_residual = static_cast<float>(p - base);
  // A clinical session (needle and syringe in the reservoir, priming) disturbs the peak:
  // such readings neither count toward a blockage or leak nor teach the baseline; only the
  // pump's pressure limit still counts.
  const bool session = InSession(s, tu);
  if (!session && s.n_pressure < UINT8_MAX) ++s.n_pressure;
  const bool warm = s.n_pressure > tu.pressure_warmup_samples;
  const bool blocked = s.active(AlertType::kCatheterBlockage) != Severity::kUnspecified;
  const bool leaking = s.active(AlertType::kCatheterLeak) != Severity::kUnspecified;
  const double limit = su.spec->pressure_limit.value();
  // Missing pulsation data is not evidence of lost pulsation.
  const bool pulsation_lost = pulsation.has_value() && *pulsation < tu.csf_pulsation_min.value();
  const bool drive_known = (su.spec->signals & kSigDriveUnits) != 0 && s.Has(kFlagDriveSeen);

  auto evidence = [&](double threshold, const char* note) {
    std::vector<Evidence> ev{Ev("stroke_pressure_peak", p, base, threshold, "mmHg", note),
                             Ev("pressure_z", z, 0.0, threshold == limit ? 0.0 : tu.blockage_k_sd,
                                "sd", "residual over learned sd")};
    if (pulsation.has_value()) {
      ev.push_back(Ev("csf_pulsation", *pulsation, 0.0, tu.csf_pulsation_min.value(), "mmHg"));
    }
    return ev;
  };

  // Blockage: complete at the pump's pressure limit, partial when sustained above k sd.
  if (p >= limit && !blocked) {
    sink.Raise(AlertType::kCatheterBlockage, Severity::kCritical, evidence(limit, "at pump limit"),
               "complete catheter blockage: stroke pressure at the pump's limit",
               PressureBlockageDx(s, su, tu));
    s.high_run = 0;
  } else if (p >= limit) {
    s.high_run = 0;
  } else if (session) {
    // held: neither counted nor reset
  } else if (!blocked) {
    s.high_run = (warm && z > tu.blockage_k_sd) ? s.high_run + 1 : 0;
    if (s.high_run >= tu.blockage_run) {
      sink.Raise(AlertType::kCatheterBlockage, Severity::kCritical,
                 evidence(base + tu.blockage_k_sd * sd, "sustained above baseline"),
                 absl::StrFormat("partial catheter blockage: stroke pressure %.1f mmHg vs "
                                 "baseline %.1f mmHg",
                                 p, base),
                 PressureBlockageDx(s, su, tu));
      s.high_run = 0;
    }
  } else if (!s.Has(kFlagNoFlowBlockage)) {  // a no-flow blockage resolves on flow only
    s.high_run = z < tu.blockage_resolve_k_sd ? s.high_run + 1 : 0;
    if (s.high_run >= tu.blockage_run) {
      sink.Resolve(AlertType::kCatheterBlockage, "stroke pressure back at baseline",
                   evidence(base + tu.blockage_resolve_k_sd * sd, "resolved"));
      s.high_run = 0;
    }
  }
  // Leak / disconnection: stroke pressure collapses to the no-resistance level and the CSF
  // pulsation is gone, while the reservoir drops normally. A stopped motor also makes no
  // stroke peak: the collapse counts only while the motor is known to run, and lost
  // pulsation counts only when reported (without it, drive units must show the motor runs).
  const bool under = s.active(AlertType::kFlowDriftUnder) != Severity::kUnspecified;
  const bool collapsed = p < tu.leak_fraction * base && z < -tu.leak_k_sd;
  const bool low = collapsed && !under && !drive_quiet && !MotorStopped(s, su, tu) &&
                   (pulsation_lost || (!pulsation.has_value() && drive_known));
  if (session) {
    // held, as for a blockage
  } else if (!leaking) {
    s.low_run = (warm && low) ? s.low_run + 1 : 0;
    if (s.low_run >= tu.leak_run) {
      sink.Raise(
          AlertType::kCatheterLeak, Severity::kCritical,
          evidence(tu.leak_fraction * base, "collapsed to no-resistance level"),
          absl::StrFormat(
              "catheter leak or disconnection: stroke pressure %.1f mmHg vs "
              "baseline %.1f mmHg, %s",
              p, base, pulsation.has_value() ? "CSF pulsation lost" : "CSF pulsation not reported"),
          Diagnosis{"catheter leak or disconnection",
                    {Alt("stopped motor",
                         drive_known ? absl::StrFormat("drive units advanced %d h ago: "
                                                       "the motor runs",
                                                       s.HoursSince(s.drive_adv_hour))
                                     : "no stall reported; drive units not reported",
                         drive_known),
                     Alt("catheter occlusion",
                         "an occlusion raises the stroke peak; here it collapsed", true)}});
      s.low_run = 0;
    }
  } else {
    s.low_run = !low && z > -tu.blockage_resolve_k_sd ? s.low_run + 1 : 0;
    if (s.low_run >= tu.leak_run) {
      sink.Resolve(AlertType::kCatheterLeak, "stroke pressure and pulsation restored",
                   evidence(base - tu.blockage_resolve_k_sd * sd, "resolved"));
      s.low_run = 0;
    }
  }
  // Learn the baseline from samples that look healthy (all of them while warming up).
  const bool healthy = !blocked && !leaking && s.high_run == 0 && s.low_run == 0 &&
                       std::abs(z) < tu.pressure_learn_gate_sd;
  if (!session && (!warm || healthy)) {
    const double a = std::max(tu.pressure_learning_rate, 1.0 / s.n_pressure);
    const double d = p - base;
    double mean = base + a * d;
    mean = std::clamp(mean, tu.baseline_min_factor * expected, tu.baseline_max_factor * expected);
    s.p_base = static_cast<float>(mean);
    s.p_var = static_cast<float>((1.0 - a) * (s.p_var + a * d * d));
  }
}

}  // namespace pumptwin::twin
