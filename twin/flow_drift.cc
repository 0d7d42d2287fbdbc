// Delivery-ratio learning and the flow drift detector (model.md §3-4; the statistics are
// explained in docs/model.md "Delivery-ratio learning" and "Flow drift").
//
// Sensorized pumps: measured-reservoir samples are averaged over segments (a few hours of
// device time, or a programmed volume, whichever comes first). Segment means feed
//  - a two-state Kalman filter on (reservoir level, delivery ratio): the level drops by
//    ratio x programmed volume between segment means; it gives the learned ratio r̂;
//  - two pairs of CUSUMs on the excess drop between consecutive segment means: against the
//    nominal ratio 1 (absolute, labelled accuracy) and against r̂ at the start of the run
//    (shift: a change of the pump's own ratio).
// Refill withdrawals (all profiles) give one ratio observation each (scalar update).
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "twin/detectors.h"

namespace pumptwin::twin {
namespace {

constexpr double kHoursPerDay = 24.0;

// One closed segment: mean measured level and mean programmed total, with the mean's sd.
struct SegmentMean {
  double meas_ul;
  double prog_ul;
  double sd_ul;
  double hours;  // span of the segment (process noise of the ratio)
};

// Standard deviation of the mean of `n` readings: white noise plus quantisation
// (uniform, step²/12), floored for slow sensor error that averaging does not remove.
double SegmentMeanSd(const ModelState& s, const PumpSpec& spec, const Tuning& tu, int n) {
  const double sd = MeasuredReservoirSd(s, spec);
  const double step = spec.measured_reservoir_step.value();
  return std::max(tu.segment_mean_sd_floor.value(),
                  std::sqrt((sd * sd + step * step / 12.0) / std::max(1, n)));
}

float CusumStep(float c, double z, double cap) {
  return static_cast<float>(std::clamp(c + z, 0.0, cap));
}

// Adds one measured sample to the current segment; true (and `out`) when it closed it.
bool AddToSegment(ModelState& s, const Setup& su, const Tuning& tu, double measured,
                  SegmentMean* out) {
  if (std::isnan(s.seg_meas_ul)) {  // first sample after start or refill: anchor only
    s.seg_meas_ul = measured;
    s.seg_prog_ul = s.prog_total_ul;
    s.seg_n = 0;
    s.seg_sum_meas = s.seg_sum_prog = 0;
    s.level_var = 0;  // the anchor is one sample, not a segment mean
  }
  if (s.seg_n == 0) s.seg_hour0 = static_cast<uint16_t>(s.hour_index);
  s.seg_sum_meas += static_cast<float>(measured - s.seg_meas_ul);
  s.seg_sum_prog += static_cast<float>(s.prog_total_ul - s.seg_prog_ul);
  if (s.seg_n < UINT16_MAX) ++s.seg_n;
  const double hours = static_cast<uint16_t>(s.hour_index - s.seg_hour0);  // mod 2^16
  const bool closed = hours >= absl::ToDoubleHours(tu.ratio_segment_time) ||
                      s.prog_total_ul - s.seg_prog_ul >= tu.ratio_segment.value();
  if (!closed) return false;
  *out = SegmentMean{s.seg_meas_ul + s.seg_sum_meas / s.seg_n,
                     s.seg_prog_ul + s.seg_sum_prog / s.seg_n,
                     SegmentMeanSd(s, *su.spec, tu, s.seg_n), hours};
  return true;
}

// Makes `g` the anchor of the next segment; `level_ul` is the filtered level at g.prog_ul.
void Reanchor(ModelState& s, const SegmentMean& g, double level_ul) {
  s.seg_meas_ul = g.meas_ul;
  s.seg_prog_ul = g.prog_ul;
  s.level_off = static_cast<float>(level_ul - g.meas_ul);
  s.seg_n = 0;
  s.seg_sum_meas = s.seg_sum_prog = 0;
}

// Kalman filter step from the anchor to segment mean `g`. Returns false (and leaves the
// ratio alone) when the level rose beyond noise: the reservoir cannot refill itself, so an
// unrecorded refill or a sensor jump; the caller re-anchors.
bool FilterLevelAndRatio(ModelState& s, const Tuning& tu, const SegmentMean& g, double dx) {
  const double q = tu.ratio_drift_sd_per_day;
  const double p_rr = s.ratio_var + q * q * g.hours / kHoursPerDay;
  const double p_vr = s.level_ratio_cov - dx * s.ratio_var;
  const double p_vv = s.level_var - 2.0 * dx * s.level_ratio_cov + dx * dx * s.ratio_var;
  const double level = s.seg_meas_ul + s.level_off - s.ratio * dx;
  const double innovation = g.meas_ul - level;
  const double var = p_vv + g.sd_ul * g.sd_ul;
  if (innovation > tu.reservoir_rise_reanchor_sd * std::sqrt(var)) return false;
  const double k_v = p_vv / var, k_r = p_vr / var;
  s.ratio = std::clamp(s.ratio + k_r * innovation, 0.0, 5.0);
  s.ratio_var = p_rr - k_r * p_vr;
  s.level_var = static_cast<float>((1.0 - k_v) * p_vv);
  s.level_ratio_cov = static_cast<float>((1.0 - k_v) * p_vr);
  Reanchor(s, g, level + k_v * innovation);
  return true;
}

// Excess drop between the anchor and `g` over `ratio` x programmed volume, in sd units.
double ExcessZ(double drop_ul, double dx, double ratio, double sd_ul) {
  return (drop_ul - ratio * dx) / sd_ul;
}

// Steps the absolute (vs 1) and shift (vs r̂ at the run's start) CUSUMs by one segment
// pair: measured drop `drop_ul` for programmed volume `dx`, with sd `sd_ul`.
// `ratio_before`: r̂ before this segment, the reference of a run that starts now.
void StepCusums(ModelState& s, const Tuning& tu, double drop_ul, double dx, double sd_ul,
                double ratio_before) {
  const double k = tu.cusum_slack, cap = tu.cusum_cap;
  s.cusum_hi = CusumStep(s.cusum_hi, ExcessZ(drop_ul, dx, 1.0 + k, sd_ul), cap);
  s.cusum_lo = CusumStep(s.cusum_lo, -ExcessZ(drop_ul, dx, 1.0 - k, sd_ul), cap);
  // A shift needs a settled reference: none starts while the ratio is still being learnt.
  const bool settled = s.ratio_var <= tu.shift_ref_max_sd * tu.shift_ref_max_sd;
  if (!settled) s.shift_hi = s.shift_lo = 0;
  if (s.shift_hi == 0) s.shift_ref_hi = static_cast<float>(ratio_before);
  if (s.shift_lo == 0) s.shift_ref_lo = static_cast<float>(ratio_before);
  if (!settled) return;
  s.shift_hi = CusumStep(s.shift_hi, ExcessZ(drop_ul, dx, s.shift_ref_hi + k, sd_ul), cap);
  s.shift_lo = CusumStep(s.shift_lo, -ExcessZ(drop_ul, dx, s.shift_ref_lo - k, sd_ul), cap);
}

std::vector<Evidence> DriftEvidence(const ModelState& s, const Tuning& tu, double threshold,
                                    bool over, double ratio, double sd, const char* source) {
  const double ref = over ? s.shift_ref_hi : s.shift_ref_lo;
  return {
      Ev("delivery_ratio", s.ratio, 1.0, threshold, "ratio",
         absl::StrFormat("learned true/programmed, sd %.3f", std::sqrt(s.ratio_var))),
      Ev("flow_cusum", over ? s.cusum_hi : s.cusum_lo, 0.0, tu.cusum_threshold, "sd",
         absl::StrCat("CUSUM of excess drop vs ratio 1; last from ", source)),
      Ev("ratio_shift", s.ratio - ref, 0.0, over ? tu.drift_warning_band : -tu.drift_warning_band,
         "ratio", absl::StrFormat("learned ratio minus %.3f at the start of the run", ref)),
      Ev("shift_cusum", over ? s.shift_hi : s.shift_lo, 0.0, tu.cusum_threshold, "sd",
         "CUSUM of excess drop vs the learned ratio (measured reservoir)"),
      Ev("observed_ratio", ratio, 1.0, sd, "ratio",
         absl::StrCat("last observation (", source, "), threshold column = its sd")),
  };
}

// Raise / escalate / resolve over- and under-infusion from the CUSUMs and r̂.
void DecideDrift(ModelState& s, const Tuning& tu, double ratio, double sd, const char* source,
                 AlertSink& sink) {
  if (s.n_ratio_obs < tu.drift_warmup_observations) return;
  const double h = tu.cusum_threshold, w = tu.drift_warning_band;
  // The learned ratio must also be beyond the band by z of its sd, against the nominal 1
  // (absolute) or against its value at the start of the shift run (a difference of two
  // estimates: sd times sqrt 2).
  const double margin = w + tu.drift_band_z * std::sqrt(s.ratio_var);
  const double shift_margin = w + tu.drift_band_z * std::sqrt(2.0 * s.ratio_var);
  const bool over = (s.cusum_hi > h && s.ratio - 1.0 > margin) ||
                    (s.shift_hi > h && s.ratio - s.shift_ref_hi > shift_margin);
  const bool under = (s.cusum_lo > h && 1.0 - s.ratio > margin) ||
                     (s.shift_lo > h && s.shift_ref_lo - s.ratio > shift_margin);
  if (over) {
    const bool crit = s.ratio > 1.0 + tu.drift_critical_band;
    const Severity sev = crit ? Severity::kCritical : Severity::kWarning;
    const double days = static_cast<double>(s.t - s.refill_time) / kNsPerDayD;
    if (s.active(AlertType::kFlowDriftOver) < sev)
      sink.Raise(  // strings only on a change
          AlertType::kFlowDriftOver, sev,
          DriftEvidence(s, tu, 1.0 + (crit ? tu.drift_critical_band : w), true, ratio, sd, source),
          absl::StrFormat("over-infusion: pump delivers %.0f %% of programmed volume",
                          100.0 * s.ratio),
          Diagnosis{"over-infusion (the pump moves more per stroke than programmed)",
                    {Alt("septum or reservoir leak",
                         absl::StrFormat("the reservoir also drops faster, but the drug does not "
                                         "reach the patient; a leak began at a refill (last one "
                                         "%.1f days ago) and does not follow the programmed "
                                         "rate; the next refill's withdrawal and the pocket tell",
                                         days)),
                     Alt("pocket fill",
                         "a pocket fill is a shortfall present right after a refill, not a "
                         "faster drop; the pocket-fill check covers the first 24 h",
                         days > absl::ToDoubleHours(tu.pocket_fill_window) / 24.0)}});
  } else if (s.active(AlertType::kFlowDriftOver) != Severity::kUnspecified &&
             s.ratio < 1.0 + tu.drift_resolve_band && s.cusum_hi < h && s.shift_hi < h) {
    sink.Resolve(AlertType::kFlowDriftOver, "delivery ratio back within band",
                 DriftEvidence(s, tu, 1.0 + tu.drift_resolve_band, true, ratio, sd, source));
  }
  if (under && s.active(AlertType::kFlowDriftUnder) == Severity::kUnspecified) {
    sink.Raise(AlertType::kFlowDriftUnder, Severity::kWarning,
               DriftEvidence(s, tu, 1.0 - w, false, ratio, sd, source),
               absl::StrFormat("under-infusion: pump delivers %.0f %% of programmed volume",
                               100.0 * s.ratio));
  } else if (s.active(AlertType::kFlowDriftUnder) != Severity::kUnspecified &&
             s.ratio > 1.0 - tu.drift_resolve_band && s.cusum_lo < h && s.shift_lo < h) {
    sink.Resolve(AlertType::kFlowDriftUnder, "delivery ratio back within band",
                 DriftEvidence(s, tu, 1.0 - tu.drift_resolve_band, false, ratio, sd, source));
  }
}

void CountObservation(ModelState& s) {
  if (s.n_ratio_obs < UINT16_MAX) ++s.n_ratio_obs;
}

// The reservoir reads empty while the drive advances: the pump delivers nothing. Critical:
// "runs dry before its alarm" while the pump still counts content above its alarm, else the
// low-reservoir alert escalates (the pump's own alarm has sounded).
void ReservoirEmpty(ModelState& s, const Setup& su, const Tuning& tu, double level_ul,
                    const std::string& seen, AlertSink& sink) {
  const double alarm = su.spec->low_reservoir_alarm.value();
  s.est_ul = std::max(0.0, level_ul);  // the measurement is the truth here
  const AlertType type =
      s.calc_ul > alarm ? AlertType::kRunsDryBeforeAlarm : AlertType::kLowReservoir;
  if (s.active(type) == Severity::kCritical) return;
  sink.Raise(type, Severity::kCritical,
             {Ev("measured_reservoir", level_ul, s.calc_ul, tu.empty_reservoir.value(), "uL",
                 "predicted = pump's calculation; threshold = empty"),
              Ev("calculated_reservoir", s.calc_ul, s.calc_ul, alarm, "uL", seen)},
             absl::StrFormat("reservoir empty (%.2f mL measured, pump calculates %.2f mL): "
                             "no drug is delivered",
                             level_ul / 1000.0, s.calc_ul / 1000.0),
             Diagnosis{"empty reservoir",
                       {Alt("catheter occlusion",
                            absl::StrFormat("the reservoir reads %.2f mL: nothing is left to "
                                            "push; an occlusion leaves the reservoir full",
                                            level_ul / 1000.0),
                            true)}});
}

// Drive advanced a clearly measurable volume and the reservoir did not drop (ratio under
// no_flow_segment_ratio and no_flow_z sd below 1). With the reservoir reading empty that is an
// empty reservoir (nothing left to move), otherwise a complete blockage. A no-flow blockage
// resolves when a later segment pair shows flow again (never from pressure alone).
void CheckNoFlow(ModelState& s, const Setup& su, const Tuning& tu, const SegmentMean& g,
                 double drop_ul, double dx, double sd_ul, bool drive_advanced, AlertSink& sink) {
  if (dx <= 0) return;
  const double r = drop_ul / dx;
  if (s.Has(kFlagNoFlowBlockage) && r >= tu.flow_restored_ratio) {
    s.Set(kFlagNoFlowBlockage, false);
    sink.Resolve(AlertType::kCatheterBlockage, "reservoir drops with the drive again",
                 {Ev("segment_ratio", r, 1.0, tu.flow_restored_ratio, "ratio")});
    return;
  }
  if (!drive_advanced || r >= tu.no_flow_segment_ratio || (dx - drop_ul) / sd_ul < tu.no_flow_z) {
    return;
  }
  const double empty = tu.empty_reservoir.value();
  const std::string seen =
      absl::StrFormat("drive advanced %.0f uL programmed, reservoir dropped %.0f uL", dx, drop_ul);
  if (g.meas_ul <= empty) {
    ReservoirEmpty(s, su, tu, g.meas_ul, seen, sink);
    return;
  }
  if (!Observable(AlertType::kCatheterBlockage, *su.spec)) return;
  s.Set(kFlagNoFlowBlockage, true);
  sink.Raise(
      AlertType::kCatheterBlockage, Severity::kCritical,
      {Ev("segment_ratio", r, 1.0, tu.no_flow_segment_ratio, "ratio", seen),
       Ev("measured_reservoir", g.meas_ul, s.est_ul, empty, "uL", "threshold = empty reservoir")},
      "complete blockage: drive advances but reservoir does not drop",
      Diagnosis{"catheter occlusion",
                {Alt("empty reservoir",
                     absl::StrFormat("reservoir reads %.2f mL, above empty (%.2f mL)",
                                     g.meas_ul / 1000.0, empty / 1000.0),
                     true),
                 Alt("reservoir sensor stuck",
                     absl::StrFormat("stroke pressure %.1f mmHg vs baseline %.1f: a "
                                     "normal peak points at the sensor",
                                     OptF(s.last_stroke).value_or(kNaN),
                                     OptF(s.p_base).value_or(kNaN)))}});
}

}  // namespace

void ObserveRatio(ModelState& s, const Tuning& tu, double ratio, double sd, const char* source,
                  AlertSink& sink) {
  // Scalar Kalman update of the ratio on a random walk (the level is re-anchored after it).
  const double prior = s.ratio_var + tu.ratio_process_sd * tu.ratio_process_sd;
  const double gain = prior / (prior + sd * sd);
  s.ratio = std::clamp(s.ratio + gain * (ratio - s.ratio), 0.0, 5.0);
  s.ratio_var = (1.0 - gain) * prior;
  CountObservation(s);
  const double k = tu.cusum_slack, cap = tu.cusum_cap;
  s.cusum_hi = CusumStep(s.cusum_hi, (ratio - 1.0 - k) / sd, cap);
  s.cusum_lo = CusumStep(s.cusum_lo, (1.0 - k - ratio) / sd, cap);
  DecideDrift(s, tu, ratio, sd, source, sink);
}

void ObserveMeasuredFlow(ModelState& s, const Setup& su, const Tuning& tu, double measured_ul,
                         bool drive_advanced, AlertSink& sink) {
  SegmentMean g;
  if (!AddToSegment(s, su, tu, measured_ul, &g)) return;
  const double dx = g.prog_ul - s.seg_prog_ul;
  const double drop = s.seg_meas_ul - g.meas_ul;
  const bool pair = s.level_var > 0;  // the anchor is a segment mean, not one sample
  // Both means' sd: segments span the same time, so the anchor's is taken as this one's.
  const double sd = std::max(std::sqrt(2.0) * g.sd_ul, tu.ratio_obs_sd_floor * dx);
  const double ratio_before = s.ratio;
  // A reservoir reading empty can drop no further: the pair says nothing about the ratio.
  if (g.meas_ul <= tu.empty_reservoir.value()) {
    CheckNoFlow(s, su, tu, g, drop, dx, sd, drive_advanced, sink);
    s.level_var = static_cast<float>(g.sd_ul * g.sd_ul);
    s.level_ratio_cov = 0;
    Reanchor(s, g, g.meas_ul);
    return;
  }
  if (!pair || !FilterLevelAndRatio(s, tu, g, dx)) {  // first segment, or re-anchor
    s.level_var = static_cast<float>(g.sd_ul * g.sd_ul);
    s.level_ratio_cov = 0;
    Reanchor(s, g, g.meas_ul);
    return;
  }
  CountObservation(s);
  StepCusums(s, tu, drop, dx, sd, ratio_before);
  const double r = dx > 0 ? drop / dx : 1.0;
  DecideDrift(s, tu, r, dx > 0 ? sd / dx : 0.0, "measured reservoir", sink);
  CheckNoFlow(s, su, tu, g, drop, dx, sd, drive_advanced, sink);
}

double MeasuredReservoirSd(const ModelState& s, const PumpSpec& spec) {
  return s.meas_sd_dul == 0 ? spec.measured_reservoir_sd.value() : s.meas_sd_dul / 10.0;
}

void LearnMeasuredNoise(ModelState& s, const PumpSpec& spec, const Tuning& tu, double residual_ul) {
  // Starts from the profile's prior widened by meas_noise_prior_factor (a pump noisier than
  // its profile must not look like a drift while it is learnt). A running mean absolute
  // deviation times sqrt(pi/2) (the sd of Gaussian noise; robust, and no square root per
  // sample), residuals clipped at meas_noise_clip_sd so a jump (unrecorded refill) moves it
  // by a bounded step.
  constexpr double kSdPerMad = 1.2533141373155;  // sqrt(pi / 2)
  double sd = s.meas_sd_dul == 0 ? tu.meas_noise_prior_factor * spec.measured_reservoir_sd.value()
                                 : s.meas_sd_dul / 10.0;
  const double c = std::min(std::abs(residual_ul), tu.meas_noise_clip_sd * sd);
  sd += tu.meas_noise_learning_rate * (kSdPerMad * c - sd);
  const double floor = std::max(1.0, spec.measured_reservoir_step.value() * 0.2886751345948);
  sd = std::max(sd, floor);  // quantisation alone: step / sqrt(12)
  s.meas_sd_dul = static_cast<uint16_t>(std::min(sd * 10.0 + 0.5, 65535.0));
}

void RestartFlowSegments(ModelState& s) {
  s.seg_meas_ul = s.seg_prog_ul = kNaN;
  s.seg_n = 0;
}

}  // namespace pumptwin::twin
