// Delivery-ratio learning and the flow drift detector (model.md §3-4; the statistics are
// explained in docs/model.md "Delivery-ratio learning" and "Flow drift").
//
// Sensorized pumps: measured-reservoir samples are averaged over segments (a few hours of
// device time, or a programmed volume, whichever comes first). Segment means feed
//  - a two-state Kalman filter on (reservoir level, delivery ratio): the level drops by
//    ratio x programmed volume between segment means; it gives the learned ratio r̂;
//  - two pairs of CUSUMs on the excess drop between consecutive segment means: against the
//    nominal ratio 1 (absolute, labelled accuracy) and against r̂ at the start of the run
//    (shift: a change of the pump's own ratio);
//  - while a shift CUSUM runs, the ratio since its change point (where the run began): the
//    filtered level there minus the latest segment mean, over the programmed volume since.
//    r̂ follows a change only as fast as its random walk allows (days at low rates); the
//    estimate since the change point holds no data from before it.
// Refill withdrawals (all profiles) give one ratio observation each (scalar update).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

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

// The ratio since the change point held in cp_* (docs/model.md "Flow drift"), for one side.
struct ChangeEstimate {
  bool over = false;  // the side: shift_hi (over-infusion) or shift_lo
  double ratio = kNaN;
  double sd = kNaN;
  double ref = kNaN;      // r̂ when the run began (shift_ref_hi / shift_ref_lo)
  double ref_sd = kNaN;   // its sd (taken as sd(r̂) now: the filter's sd changes slowly)
  double volume_ul = 0;   // programmed since the change point
  double pair_sd_ul = 0;  // sd of one segment pair's excess drop (the CUSUMs' unit)
};

bool HoldsChangePoint(const ModelState& s) { return !std::isnan(s.cp_volume_ul); }

void ClearChangePoint(ModelState& s) {
  s.cp_volume_ul = kNaNf;
  s.cp_level_ul = s.cp_sxy = s.cp_sxx = 0;
  s.cp_n = s.cp_level_sd = 0;
  s.Set(kFlagChangeOver, false);
  s.Set(kFlagChangeMidRun, false);
}

// Adds segment mean `g`, `dx` programmed after the previous anchor, to the held regression.
void AddToChange(ModelState& s, const SegmentMean& g, double dx) {
  if (!HoldsChangePoint(s)) return;
  const double d = s.cp_volume_ul + dx;
  s.cp_volume_ul = static_cast<float>(d);
  s.cp_sxy = static_cast<float>(s.cp_sxy + d * (s.cp_level_ul - g.meas_ul));
  s.cp_sxx = static_cast<float>(s.cp_sxx + d * d);
  if (s.cp_n < UINT8_MAX) ++s.cp_n;
}

// The CUSUM family whose runs give change points: the shift CUSUMs once the ratio is
// settled (they run only then), before that the absolute ones (a pump whose learned ratio
// stays uncertain, e.g. a noisy sensor read hourly, has no shift runs).
bool ChangeFromShift(const ModelState& s, const Tuning& tu) {
  return s.ratio_var <= tu.shift_ref_max_sd * tu.shift_ref_max_sd;
}
float ChangeCusum(const ModelState& s, bool shift, bool over) {
  return shift ? (over ? s.shift_hi : s.shift_lo) : (over ? s.cusum_hi : s.cusum_lo);
}

// CUSUM values before a segment pair (both families).
struct CusumsBefore {
  float shift_hi, shift_lo, abs_hi, abs_lo;
  float Get(bool shift, bool over) const {
    return shift ? (over ? shift_hi : shift_lo) : (over ? abs_hi : abs_lo);
  }
};

// Keeps cp_* on the change point of a running CUSUM (ChangeFromShift's family): a run that
// ends releases it; a run that starts in this pair (its CUSUM was 0 before it) takes the
// anchor after the pair (the filtered level at this segment mean) if none is held or the
// holder's CUSUM is no larger (a change of the ratio ends the other side's run within a few
// pairs); when the held run ends, a run of the other side under way takes it then. Not the
// anchor before the pair: a run starts where noise favours it, so the mean before its first
// pair is biased toward the run's side; the one after it is biased against it (a slower
// alert, never a false one). A run under way takes none otherwise (after a refill, say).
void TrackChangePoint(ModelState& s, const Tuning& tu, const CusumsBefore& before) {
  const bool shift = ChangeFromShift(s, tu);
  bool released = false, released_over = false;
  if (HoldsChangePoint(s) && ChangeCusum(s, shift, s.Has(kFlagChangeOver)) == 0) {
    released = true;
    released_over = s.Has(kFlagChangeOver);
    ClearChangePoint(s);
  }
  const bool hi_started = before.Get(shift, true) == 0 && ChangeCusum(s, shift, true) > 0;
  const bool lo_started = before.Get(shift, false) == 0 && ChangeCusum(s, shift, false) > 0;
  bool over = hi_started, mid_run = false;
  if (!hi_started && !lo_started) {
    // The held run ended: a run of the other side under way takes the anchor now (after its
    // change point, so its estimate holds no data from before it).
    if (!released || ChangeCusum(s, shift, !released_over) == 0) return;
    over = !released_over;
    mid_run = true;
  } else if (HoldsChangePoint(s) &&
             ChangeCusum(s, shift, s.Has(kFlagChangeOver)) > ChangeCusum(s, shift, over)) {
    return;
  }
  ClearChangePoint(s);
  s.Set(kFlagChangeOver, over);
  s.Set(kFlagChangeMidRun, mid_run);
  s.cp_volume_ul = 0;
  s.cp_level_ul = static_cast<float>(s.seg_meas_ul + s.level_off);
  const double steps = std::ceil(std::sqrt(std::max(0.0f, s.level_var)) / kCpSdStep);
  s.cp_level_sd = static_cast<uint8_t>(std::min(steps, 255.0));
}

// The ratio since the held change point: the regression through its level, r = Σ d·y / Σ d²
// (y: the drop to each mean since, d: the volume programmed to it). Its variance is
// (Σ d² s² + var(level) (Σ d)²) / (Σ d²)², bounded with Σ d ≤ √(n Σ d²) and each mean's s²
// taken as that of `g`, the latest; plus the unmodelled error of one ratio observation.
ChangeEstimate EstimateSinceChange(const ModelState& s, const Tuning& tu, const SegmentMean& g) {
  ChangeEstimate e;
  if (!HoldsChangePoint(s) || s.cp_n == 0 || !(s.cp_sxx > 0)) return e;
  e.over = s.Has(kFlagChangeOver);
  e.ratio = s.cp_sxy / s.cp_sxx;
  const double level_sd = s.cp_level_sd * kCpSdStep;
  const double floor = tu.ratio_obs_sd_floor;
  e.sd = std::sqrt((g.sd_ul * g.sd_ul + s.cp_n * level_sd * level_sd) / s.cp_sxx + floor * floor);
  e.ref = e.over ? s.shift_ref_hi : s.shift_ref_lo;
  e.ref_sd = std::sqrt(s.ratio_var);
  e.volume_ul = s.cp_volume_ul;
  e.pair_sd_ul = std::sqrt(2.0) * g.sd_ul;
  return e;
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
                                    bool over, double ratio, double sd, const char* source,
                                    const ChangeEstimate* cp) {
  const double ref = over ? s.shift_ref_hi : s.shift_ref_lo;
  std::vector<Evidence> ev = {
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
  if (cp != nullptr && cp->over == over && !std::isnan(cp->ratio)) {
    ev.push_back(Ev("ratio_since_change", cp->ratio, cp->ref,
                    cp->ref * (over ? 1.0 + tu.drift_warning_band : 1.0 - tu.drift_warning_band),
                    "ratio",
                    absl::StrFormat("reservoir drop against the %.0f uL programmed since the "
                                    "shift run began (regression), sd %.3f; predicted = ratio "
                                    "there (sd %.3f)",
                                    cp->volume_ul, cp->sd, cp->ref_sd)));
  }
  return ev;
}

// Whether the run whose change point cp holds has crossed h (its CUSUM holds only excess
// from the change point on) and the ratio since then lies beyond the warning band on
// `over`'s side by drift_band_z of its sd: against the nominal 1, or (a shift run) relative
// to the ratio where the run began (a change of the pump's own ratio by more than the band;
// the reference's sd counts too).
bool ChangeBeyondBand(const ModelState& s, const Tuning& tu, const ChangeEstimate* cp, bool over) {
  if (cp == nullptr || std::isnan(cp->ratio) || cp->over != over) return false;
  const bool shift = ChangeFromShift(s, tu);
  const double h = tu.cusum_threshold, w = tu.drift_warning_band, z = tu.drift_band_z;
  if (ChangeCusum(s, shift, over) <= h) return false;
  const double sign = over ? 1.0 : -1.0;
  // A run's CUSUM holds the excess since the run began, including the pair before the anchor
  // (the anchor is the level after the run's first pair) or, for an anchor taken later (the
  // other side's run ended), everything before it. Every anchor is judged on its own data: its
  // excess drop over (reference ± k) x the volume since must reach h pair sd as well. Without
  // this a single low segment mean after the anchor, checked against an r_cp made of that one
  // mean, raised a critical over-infusion on a healthy pump.
  const double c = (shift ? cp->ref : 1.0) + sign * tu.cusum_slack;
  if (sign * (cp->ratio - c) * cp->volume_ul < h * cp->pair_sd_ul) return false;
  if (sign * (cp->ratio - 1.0) > w + z * cp->sd) return true;
  if (!shift) return false;
  const double bound = cp->ref * (1.0 + sign * w);
  const double shift_sd = std::hypot(cp->sd, (1.0 + sign * w) * cp->ref_sd);
  return sign * (cp->ratio - bound) > z * shift_sd;
}

// Whether the ratio since a change point held on `over`'s side is still beyond the resolve
// band: an alert raised on it does not resolve while r̂ has yet to follow.
bool ChangeHolds(const ModelState& s, const Tuning& tu, bool over) {
  if (!HoldsChangePoint(s) || s.cp_n == 0 || !(s.cp_sxx > 0) || s.Has(kFlagChangeOver) != over) {
    return false;
  }
  const double r = s.cp_sxy / s.cp_sxx;
  return over ? r > 1.0 + tu.drift_resolve_band : r < 1.0 - tu.drift_resolve_band;
}

// Raise / escalate / resolve over- and under-infusion from the CUSUMs and r̂, or from the
// ratio since the change point `cp` (measured reservoir; nullptr: none).
void DecideDrift(ModelState& s, const Tuning& tu, double ratio, double sd, const char* source,
                 AlertSink& sink, const ChangeEstimate* cp = nullptr) {
  if (s.n_ratio_obs < tu.drift_warmup_observations) return;
  const double h = tu.cusum_threshold, w = tu.drift_warning_band;
  // The learned ratio must also be beyond the band by z of its sd, against the nominal 1
  // (absolute) or against its value at the start of the shift run (a difference of two
  // estimates: sd times sqrt 2).
  const double margin = w + tu.drift_band_z * std::sqrt(s.ratio_var);
  const double shift_margin = w + tu.drift_band_z * std::sqrt(2.0 * s.ratio_var);
  const bool over = (s.cusum_hi > h && s.ratio - 1.0 > margin) ||
                    (s.shift_hi > h && s.ratio - s.shift_ref_hi > shift_margin) ||
                    ChangeBeyondBand(s, tu, cp, true);
  const bool under = (s.cusum_lo > h && 1.0 - s.ratio > margin) ||
                     (s.shift_lo > h && s.shift_ref_lo - s.ratio > shift_margin) ||
                     ChangeBeyondBand(s, tu, cp, false);
  // The delivery figure: r̂, or the ratio since the change point where that is further out.
  const auto delivered = [&](bool side) {
    if (cp == nullptr || std::isnan(cp->ratio) || cp->over != side) return s.ratio;
    return side ? std::max(s.ratio, cp->ratio) : std::min(s.ratio, cp->ratio);
  };
  if (over) {
    const double lower = cp != nullptr && cp->over && !std::isnan(cp->ratio)
                             ? cp->ratio - tu.drift_band_z * cp->sd
                             : s.ratio;
    const bool crit = std::max(s.ratio, lower) > 1.0 + tu.drift_critical_band;
    const Severity sev = crit ? Severity::kCritical : Severity::kWarning;
    const double days = static_cast<double>(s.t - s.refill_time) / kNsPerDayD;
    if (s.active(AlertType::kFlowDriftOver) < sev)
      sink.Raise(  // strings only on a change
          AlertType::kFlowDriftOver, sev,
          DriftEvidence(s, tu, 1.0 + (crit ? tu.drift_critical_band : w), true, ratio, sd, source,
                        cp),
          absl::StrFormat("over-infusion: pump delivers %.0f %% of programmed volume",
                          100.0 * delivered(true)),
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
             s.ratio < 1.0 + tu.drift_resolve_band && s.cusum_hi < h && s.shift_hi < h &&
             !ChangeHolds(s, tu, true)) {
    sink.Resolve(AlertType::kFlowDriftOver, "delivery ratio back within band",
                 DriftEvidence(s, tu, 1.0 + tu.drift_resolve_band, true, ratio, sd, source, cp));
  }
  if (under && s.active(AlertType::kFlowDriftUnder) == Severity::kUnspecified) {
    sink.Raise(AlertType::kFlowDriftUnder, Severity::kWarning,
               DriftEvidence(s, tu, 1.0 - w, false, ratio, sd, source, cp),
               absl::StrFormat("under-infusion: pump delivers %.0f %% of programmed volume",
                               100.0 * delivered(false)));
  } else if (s.active(AlertType::kFlowDriftUnder) != Severity::kUnspecified &&
             s.ratio > 1.0 - tu.drift_resolve_band && s.cusum_lo < h && s.shift_lo < h &&
             !ChangeHolds(s, tu, false)) {
    sink.Resolve(AlertType::kFlowDriftUnder, "delivery ratio back within band",
                 DriftEvidence(s, tu, 1.0 - tu.drift_resolve_band, false, ratio, sd, source, cp));
  }
}

void CountObservation(ModelState& s) {
  if (s.n_ratio_obs < UINT8_MAX) ++s.n_ratio_obs;
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
    ClearChangePoint(s);
    return;
  }
  if (!pair || !FilterLevelAndRatio(s, tu, g, dx)) {  // first segment, or re-anchor
    s.level_var = static_cast<float>(g.sd_ul * g.sd_ul);
    s.level_ratio_cov = 0;
    Reanchor(s, g, g.meas_ul);
    ClearChangePoint(s);
    return;
  }
  CountObservation(s);
  const CusumsBefore before{s.shift_hi, s.shift_lo, s.cusum_hi, s.cusum_lo};
  StepCusums(s, tu, drop, dx, sd, ratio_before);
  AddToChange(s, g, dx);
  TrackChangePoint(s, tu, before);
  const double r = dx > 0 ? drop / dx : 1.0;
  const ChangeEstimate cp = EstimateSinceChange(s, tu, g);
  DecideDrift(s, tu, r, dx > 0 ? sd / dx : 0.0, "measured reservoir", sink, &cp);
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
  ClearChangePoint(s);
}

DriftObservability FlowDriftObservability(const ModelState& s, const Setup& su, const Tuning& tu) {
  DriftObservability o;
  const PumpSpec& spec = *su.spec;
  const double rate = su.current->mean_daily_rate.value();
  const double interval_h = absl::ToDoubleHours(su.cfg.reporting_interval);
  if ((spec.signals & kSigMeasuredReservoir) == 0 || !(rate > 0) || !(interval_h > 0)) return o;
  o.known = true;
  o.rate_ul_per_day = rate;
  o.noise_ul = MeasuredReservoirSd(s, spec);
  // A segment closes at the first reading ratio_segment_time or ratio_segment after the one
  // that opened it; the next one opens a reporting interval later.
  const double span_h = std::min(absl::ToDoubleHours(tu.ratio_segment_time),
                                 tu.ratio_segment.value() / rate * kHoursPerDay);
  o.readings = std::floor(span_h / interval_h) + 1;
  o.segment_hours = o.readings * interval_h;
  const double step = spec.measured_reservoir_step.value();
  const double seg_sd =
      std::max(tu.segment_mean_sd_floor.value(),
               std::sqrt((o.noise_ul * o.noise_ul + step * step / 12.0) / o.readings));
  const double dx = rate * o.segment_hours / kHoursPerDay;  // programmed per segment
  const double pair_sd = std::max(std::sqrt(2.0) * seg_sd, tu.ratio_obs_sd_floor * dx);
  // The filtered level where a run begins (its sd: the filter's, else one segment mean's).
  const double level_sd = s.level_var > 0 ? std::sqrt(static_cast<double>(s.level_var)) : seg_sd;
  const double k = tu.cusum_slack, h = tu.cusum_threshold, w = tu.drift_warning_band;
  const double z = tu.drift_band_z, zp = tu.drift_observable_z, fl = tu.ratio_obs_sd_floor;
  // The smallest drift the rule sees in m segment pairs after a change, with probability
  // Φ(zp). Its anchor is the level after the run's first pair; the pair that straddles the
  // change carries only part of the excess, so the run often starts a pair later: j = m - 1.5
  // pairs after the anchor on average (d_i = i dx, Σd² and Σd over them). That data must carry
  // h pair sd of excess over (reference + k), and the ratio since the change point must lie
  // beyond the band by z of the sd the rule computes for it (a bound, with the per-observation
  // floor); the estimate itself scatters with its true sd (regression through the anchor:
  // s²/Σd² + s₀² (Σd)² / (Σd²)²), hence + zp of that in both.
  const auto smallest = [&](double m) {
    const double n = m - tu.drift_observable_pairs_lost;  // pairs after the anchor (mean)
    if (n < 1) return std::numeric_limits<double>::infinity();
    const double sxx = dx * dx * n * (n + 1) * (2 * n + 1) / 6.0;
    const double sum_d = dx * n * (n + 1) / 2.0;
    const double s2 = seg_sd * seg_sd, l2 = level_sd * level_sd;
    const double sd_rule = std::sqrt((s2 + n * l2) / sxx + fl * fl);
    const double sd_est = std::sqrt(s2 / sxx + l2 * sum_d * sum_d / (sxx * sxx));
    return std::max(k + h * pair_sd / (n * dx), w + z * sd_rule) + zp * sd_est;
  };
  o.detectable =
      smallest(std::floor(absl::ToDoubleHours(tu.drift_observable_window) / o.segment_hours));
  // Pairs needed for drift_observable_size: smallest() falls with m; bisection within a year.
  double lo = 0, hi = std::ceil(365 * kHoursPerDay / o.segment_hours);
  if (smallest(hi) > tu.drift_observable_size) {
    o.hours_for_size = std::numeric_limits<double>::infinity();
  } else {
    while (hi - lo > 1) {
      const double mid = std::floor((lo + hi) / 2);
      (smallest(mid) <= tu.drift_observable_size ? hi : lo) = mid;
    }
    o.hours_for_size = hi * o.segment_hours;
  }
  return o;
}

std::string DriftObservabilityText(const DriftObservability& o, const Tuning& tu) {
  if (!o.known) return "";
  const double window_h = absl::ToDoubleHours(tu.drift_observable_window);
  const std::string size = absl::StrFormat("%.0f %%", 100 * tu.drift_observable_size);
  std::string when = "not within a year";
  if (std::isfinite(o.hours_for_size)) {
    when = o.hours_for_size < 48 ? absl::StrFormat("in about %.0f h", o.hours_for_size)
                                 : absl::StrFormat("in about %.1f days", o.hours_for_size / 24);
  }
  const std::string smallest = std::isfinite(o.detectable) && o.detectable < 10
                                   ? absl::StrFormat("%.1f %%", 100 * o.detectable)
                                   : std::string("1000.0 %");
  return absl::StrFormat(
      "detectable within %.0f h: >= %s (%.0f %% of the time); %s %s; this pump: reservoir sd "
      "%.0f uL, %.0f readings per %.1f h segment, %.0f uL/day",
      window_h, smallest, 100 * (0.5 * std::erfc(-tu.drift_observable_z / std::sqrt(2.0))), size,
      when, o.noise_ul, o.readings, o.segment_hours, o.rate_ul_per_day);
}

}  // namespace pumptwin::twin
