// Internal state of one twin (not part of the public API; use twin/twin.h).
// Setup: the immutable, shared part (pump config, therapy plan) - copied on write.
// ModelState: the compact per-twin numbers the integrator and detectors mutate.
// Both are plain data; thread-compatible. Field lists are visited by the codec, so
// adding a field here and in a Visit function is all serialisation needs (new fields go in
// a new VisitVn read only from that format version on, so older states still decode).
#ifndef PUMPTWIN_TWIN_MODEL_STATE_H_
#define PUMPTWIN_TWIN_MODEL_STATE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <type_traits>
#include <vector>

#include "twin/alert_types.h"
#include "twin/drug_library.h"
#include "twin/pump_profile.h"
#include "twin/therapy.h"
#include "twin/tuning.h"

namespace pumptwin::twin {

inline constexpr TimeNs kNoTime = INT64_MIN;
inline constexpr uint64_t kNoDriveUnits = UINT64_MAX;
inline constexpr int kDoseBuckets = 25;  // hourly, rolling 24 h + the partly-expired hour
inline constexpr int kPtmRing = 24;      // granted patient boluses remembered (max/24 h)
inline constexpr uint16_t kPtmEmpty = 0xFFFF;
// Minute stamp of a grant, modulo 65535 (45 days): ages are only compared within 48 h.
inline uint16_t PtmStamp(TimeNs t) { return static_cast<uint16_t>((t / 60'000'000'000) % 65535); }
inline int PtmAgeMinutes(uint16_t now, uint16_t then) { return (now - then + 65535) % 65535; }

// Mirrors pumptwin.v1.PumpLifecycle-ish phase of the twin (model.md §1).
enum class TwinPhase : uint8_t { kImplanted = 0, kTrial = 1, kTrialEnded = 2 };

struct TherapyPlan {
  Prescription rx;
  std::shared_ptr<const DrugLimits> drug;  // interned (twin/plan_pool.h), never null
  // Derived (not serialised): recomputed from rx by DerivePlan.
  MicrolitersPerDay mean_daily_rate;
  TimeNs stability_ns = 0;
  TimeNs period_ns = kNsPerDay;  // schedule period and origin (flex)
  TimeNs origin_ns = 0;
  std::vector<TimeNs> step_start_ns;  // flex step offsets, ns
};

// BasalAt on the compiled plan (no Duration conversions: the integrator's hot path); flex
// steps in the local time of `zone`.
BasalPiece PlanBasalAt(const TherapyPlan& plan, TimeNs t, const LocalZone& zone);

// Plans are immutable and interned (twin/plan_pool.h): equal plans are one object.
using PlanRef = std::shared_ptr<const TherapyPlan>;

struct Setup {
  PumpConfig cfg;
  PlanRef current;  // never null
  PlanRef pending;  // null: none
  TimeNs pending_at = kNoTime;
  MicrogramsPerDay titration_base;  // daily dose at the start of the titration window
  TimeNs titration_base_time = kNoTime;
  TwinPhase phase = TwinPhase::kImplanted;
  // Derived (not serialised): recomputed by DeriveSetup.
  const PumpSpec* spec = nullptr;
  Mmhg expected_stroke;
  // implant + service life - ERI-to-EOS (the EOS cap is this + ERI-to-EOS: not stored, so
  // that make_shared<Setup> fits glibc's 208-byte chunk, 16 bytes less per twin).
  TimeNs eri_cap_ns = kNeverNs;
};

// Recomputes the derived fields of `s` (its plans are derived when interned) and `plan`.
void DeriveSetup(Setup& s, const Tuning& tuning);
void DerivePlan(TherapyPlan& plan);

enum StateFlags : uint32_t {
  kFlagStalled = 1u << 0,
  kFlagMriSuspended = 1u << 1,
  kFlagEos = 1u << 2,
  kFlagEriReported = 1u << 3,
  kFlagSilent = 1u << 4,
  kFlagStallLong = 1u << 5,    // stall > 48 h update sent
  kFlagBolusNoDose = 1u << 6,  // active bolus is priming (fills catheter, no patient dose)
  kFlagSkewReady = 1u << 7,    // a full skew window has been observed
  kFlagEarlyDepletion = 1u << 8,
  // Format version 3 (detectors that learn each pump, docs/detection.md):
  kFlagDriveRefPending = 1u << 9,    // stall/MRI started: the next drive-unit reading is the
                                     // reference (it may still count steps made before it)
  kFlagNoFlowBlockage = 1u << 10,    // blockage raised from "drive advances, no reservoir drop"
  kFlagDriveSeen = 1u << 11,         // drive_adv_hour holds a real advance
  kFlagDepletionPending = 1u << 12,  // battery level above its threshold since cur_hour0
  kFlagSession = 1u << 13,           // session_min holds a clinical session
  kFlagCurrentWarm = 1u << 14,       // the battery-current baseline is learnt
  kFlagFusedLast = 1u << 15,         // the last measured reading was fused into the estimate
  // Format version 3, second flag word (flags_hi):
  kFlagEnrolled = 1u << 16,     // started at an enrolment interrogation, not at implant
  kFlagNoSampleYet = 1u << 17,  // registered, no sample yet: last_server is the registration
  // cur_base holds this pump's mean drain since implant, learned from the battery indicator
  // at enrolment (pumps that report no current, or before their first current reading).
  kFlagDrainFromHistory = 1u << 18,
  // Format version 4: the change point held in cp_* is that of the over-infusion side
  // (shift_hi); clear: of the under-infusion side (shift_lo).
  kFlagChangeOver = 1u << 19,
  // Format version 4: the change point was taken while its run was under way (the other
  // side's run ended), not where the run began.
  kFlagChangeMidRun = 1u << 20,
};

inline constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();
inline constexpr double kCpSdStep = 0.25;  // µL, ModelState::cp_level_sd
inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct ModelState {
  TimeNs t = 0;                  // model device time
  TimeNs last_server = kNoTime;  // server time of the last sample (kFlagNoSampleYet:
                                 // of the registration; silence counts from there)
  uint64_t last_seq = 0;
  TimeNs refill_time = 0;    // last refill (or twin start)
  double calc_ul = 0;        // pump's calculated reservoir (floors at 0)
  double est_ul = 0;         // twin's estimated reservoir (floors at 0)
  double prog_total_ul = 0;  // programmed volume pumped, lifetime (unclamped)
  double est_total_ul = 0;   // estimated delivered volume, lifetime (== est drops)
  double prog_at_refill_ul = 0;
  double fill_ul = 0;        // reservoir content right after the last refill
  double dose_today_ug = 0;  // since 00:00 UTC of the model day
  double bolus_rate = 0;     // µL/day on top of basal until bolus_end
  TimeNs bolus_end = 0;
  double battery_used_mah = 0;
  double ratio = 1.0;  // learned true/programmed
  double ratio_var = 0;
  double seg_meas_ul = kNaN;   // previous measured segment: mean measured reservoir
  double seg_prog_ul = kNaN;   //                            mean programmed total
  float skew_cur_ms = kNaNf;   // max(device - server) in the current window (double before
  float skew_prev_ms = kNaNf;  // ... in the previous window              format version 4)
  TimeNs skew_window_start = kNoTime;
  uint64_t last_drive_units = kNoDriveUnits;
  TimeNs stall_since = kNoTime;
  TimeNs mri_since = kNoTime;
  TimeNs ptm_last_grant = kNoTime;
  TimeNs ptm_violation = kNoTime;
  TimeNs pocket_until = kNoTime;
  float dose_hour_ug[kDoseBuckets] = {};
  int32_t hour_index = 0;  // floor(t / 1 h)
  float cusum_hi = 0, cusum_lo = 0;
  float p_base = kNaNf, p_var = 0;  // stroke-pressure baseline (mmHg, mmHg²)
  float current_ratio = 1.0f;       // EWMA measured/modelled battery current
  float last_meas_res = kNaNf, res_residual = kNaNf;
  float last_stroke = kNaNf, p_residual = kNaNf;
  float last_voltage = kNaNf;
  float shift_ref_hi = 1.0f;      // learned ratio when the current high-side run started
  uint16_t ptm_grants[kPtmRing];  // PtmStamp of granted activations (kPtmEmpty: none)
  uint32_t n_grants = 0, n_denials = 0;
  // Format version 4 narrowed the counters below (saturating; uint32_t n_stalls and n_mri,
  // uint16_t the others before): a count only ever gates a warm-up, a run length of a few
  // samples or a lifetime statistic.
  uint16_t n_stalls = 0, n_current = 0;
  uint8_t n_mri = 0, n_ratio_obs = 0, n_pressure = 0;
  uint8_t high_run = 0, low_run = 0, pocket_run = 0;  // pocket_run outside a refill's
                                                      // window: readings held as a refill
                                                      // not yet recorded
  uint16_t flags = 0;
  uint8_t alert[kNumAlertTypes] = {};  // active severity per AlertType (0: none)
  uint8_t flags_hi = 0;  // StateFlags bits 16-23 (format version 3; fills padding here)

  // --- format version 2: measured-reservoir flow (twin/flow_drift.cc). Compact types: the
  // whole twin stays within 512 bytes. Offsets are relative to the previous segment's
  // means (seg_meas_ul, seg_prog_ul), which anchor the current segment.
  uint16_t seg_hour0 = 0;     // hour_index (mod 2^16) at the segment's first sample
  uint16_t seg_n = 0;         // samples in the current segment
  uint8_t cp_n = 0;           // format version 4: segment means in cp_sxy, cp_sxx (saturating)
  uint8_t cp_level_sd = 0;    // format version 4: sd of cp_level_ul in kCpSdStep (rounded up,
                              // saturating)
  float seg_sum_meas = 0;     // sum over the segment of (measured - seg_meas_ul), µL
  float seg_sum_prog = 0;     // sum of (programmed total - seg_prog_ul), µL
  float level_off = 0;        // filtered level at seg_prog_ul minus seg_meas_ul, µL
  float level_var = 0;        // its variance (µL²; 0: the anchor is a single sample)
  float level_ratio_cov = 0;  // covariance of level and ratio (µL)
  float shift_hi = 0, shift_lo = 0;  // shift CUSUMs (sd units)
  float shift_ref_lo = 1.0f;         // learned ratio when the current low-side run started

  // --- format version 3: each pump's own baselines (docs/detection.md "Learning each pump").
  // current_ratio (above) is the short-term battery current over cur_base.
  float cur_base = kNaNf;       // learned battery current of this pump, µA (robust); or
                                // kFlagDrainFromHistory: its mean drain since implant
  float cur_var = 0;            // its per-sample variance, µA²
  uint16_t cur_hour0 = 0;       // hour_index (mod 2^16) of the first current sample;
                                // once warm: since when the level is above threshold
  uint16_t meas_sd_dul = 0;     // learned measured-reservoir noise sd, 0.1 µL (0: prior)
  uint16_t session_min = 0;     // PtmStamp of the last clinical session (kFlagSession)
  uint16_t drive_adv_hour = 0;  // hour_index (mod 2^16) of the last drive advance

  // --- format version 4: the ratio since the change point (twin/flow_drift.cc). While a shift
  // CUSUM runs (kFlagChangeOver tells the side), a regression through the filtered reservoir
  // level where its run began over the segment means since: drop d_i·r against programmed
  // volume d_i. The bytes come from narrower skew fields and counters: the twin keeps its size.
  float cp_volume_ul = kNaNf;  // programmed from the change point to the segment anchor
                               // (seg_prog_ul); NaN: none held
  float cp_level_ul = 0;       // filtered level at the change point, µL
  float cp_sxy = 0;            // sum of d_i x (cp_level_ul - mean_i), µL²
  float cp_sxx = 0;            // sum of d_i², µL²
  // cp_n, cp_level_sd: declared after seg_n (they fill its padding).

  ModelState() {
    for (uint16_t& g : ptm_grants) g = kPtmEmpty;
  }
  // Granted activations in the 24 h before `t` (minute resolution).
  uint32_t GrantsIn24h(TimeNs t) const {
    const uint16_t now = PtmStamp(t);
    uint32_t n = 0;
    for (uint16_t g : ptm_grants) n += (g != kPtmEmpty && PtmAgeMinutes(now, g) < 24 * 60) ? 1 : 0;
    return n;
  }

  uint32_t AllFlags() const { return flags | (static_cast<uint32_t>(flags_hi) << 16); }
  static_assert(kFlagDrainFromHistory < (1u << 24), "flags_hi holds bits 16-23");
  bool Has(uint32_t f) const { return (AllFlags() & f) != 0; }
  void Set(uint32_t f, bool on) {
    const uint32_t all = on ? (AllFlags() | f) : (AllFlags() & ~f);
    flags = static_cast<uint16_t>(all & 0xffffu);
    flags_hi = static_cast<uint8_t>(all >> 16);
  }
  Severity active(AlertType a) const { return static_cast<Severity>(alert[static_cast<int>(a)]); }

  // Calls v(field) for every field, in serialisation order. `legacy`: the field widths of
  // format versions 1-3 (read into a wider temporary, then narrowed).
  template <typename V>
  void Visit(V&& v, bool legacy = false) {
    v(t);
    v(last_server);
    v(last_seq);
    v(refill_time);
    v(calc_ul);
    v(est_ul);
    v(prog_total_ul);
    v(est_total_ul);
    v(prog_at_refill_ul);
    v(fill_ul);
    v(dose_today_ug);
    v(bolus_rate);
    v(bolus_end);
    v(battery_used_mah);
    v(ratio);
    v(ratio_var);
    v(seg_meas_ul);
    v(seg_prog_ul);
    Widened<double>(v, skew_cur_ms, legacy);
    Widened<double>(v, skew_prev_ms, legacy);
    v(skew_window_start);
    v(last_drive_units);
    v(stall_since);
    v(mri_since);
    v(ptm_last_grant);
    v(ptm_violation);
    v(pocket_until);
    for (float& f : dose_hour_ug) v(f);
    v(hour_index);
    v(cusum_hi);
    v(cusum_lo);
    v(p_base);
    v(p_var);
    v(current_ratio);
    v(last_meas_res);
    v(res_residual);
    v(last_stroke);
    v(p_residual);
    v(last_voltage);
    v(shift_ref_hi);
    for (uint16_t& g : ptm_grants) v(g);
    v(n_grants);
    v(n_denials);
    Widened<uint32_t>(v, n_stalls, legacy);
    Widened<uint32_t>(v, n_mri, legacy);
    Widened<uint16_t>(v, n_ratio_obs, legacy);
    Widened<uint16_t>(v, n_pressure, legacy);
    v(n_current);
    Widened<uint16_t>(v, high_run, legacy);
    Widened<uint16_t>(v, low_run, legacy);
    Widened<uint16_t>(v, pocket_run, legacy);
    v(flags);
    for (uint8_t& a : alert) v(a);
  }
  // Fields added in format version 2, serialised after Visit's.
  template <typename V>
  void VisitV2(V&& v) {
    v(seg_hour0);
    v(seg_n);
    v(seg_sum_meas);
    v(seg_sum_prog);
    v(level_off);
    v(level_var);
    v(level_ratio_cov);
    v(shift_hi);
    v(shift_lo);
    v(shift_ref_lo);
  }
  // Fields added in format version 3, serialised after VisitV2's.
  template <typename V>
  void VisitV3(V&& v) {
    v(cur_base);
    v(cur_var);
    v(cur_hour0);
    v(meas_sd_dul);
    v(session_min);
    v(drive_adv_hour);
    v(flags_hi);
  }
  // Fields added in format version 4, serialised after VisitV3's.
  template <typename V>
  void VisitV4(V&& v) {
    v(cp_volume_ul);
    v(cp_level_ul);
    v(cp_sxy);
    v(cp_sxx);
    v(cp_n);
    v(cp_level_sd);
  }
  // v(field) on a temporary of type `Wide` (an older format's width): writing widens, reading
  // narrows (saturating for integers; NaN stays NaN).
  template <typename Wide, typename T, typename V>
  static void Widened(V& v, T& f, bool wide) {
    if (!wide) {
      v(f);
      return;
    }
    Wide w = static_cast<Wide>(f);
    v(w);
    if constexpr (std::is_integral_v<T>) {
      f = static_cast<T>(std::min<Wide>(w, std::numeric_limits<T>::max()));
    } else {
      f = static_cast<T>(w);
    }
  }
  // Hours (mod 2^16) from the hour stamp `h0` to the model's current hour.
  uint16_t HoursSince(uint16_t h0) const { return static_cast<uint16_t>(hour_index - h0); }
};

inline std::optional<double> OptF(float f) {
  return std::isnan(f) ? std::nullopt : std::optional<double>(f);
}

}  // namespace pumptwin::twin

#endif  // PUMPTWIN_TWIN_MODEL_STATE_H_
