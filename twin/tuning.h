// Tuning of the twin: detector thresholds, learning rates and sample plausibility limits.
// Every default below is documented in docs/model.md with its source: (label), (paper),
// (practice) or (assumed). Plain value type; thread-compatible. The twin keeps one
// process-wide default instance; nothing here is per pump.
#ifndef PUMPTWIN_TWIN_TUNING_H_
#define PUMPTWIN_TWIN_TUNING_H_

#include <cstdint>

#include "absl/time/time.h"
#include "twin/pump_profile.h"
#include "twin/units.h"

namespace pumptwin::twin {

struct Tuning {
  // --- delivery ratio learning (Kalman filter on true/programmed; docs/model.md §3) ---
  double ratio_prior_sd = 0.0725;  // labelled ±14.5 % read as 2 sd (assumed)
  // Enrolment mid-life: the pump's history is unknown (a catheter or drive fault may already
  // be under way), so the prior is twice as wide as at implant (assumed).
  double enrol_ratio_prior_sd = 0.145;
  double ratio_process_sd = 0.02;        // random walk per refill observation (assumed)
  double ratio_drift_sd_per_day = 0.01;  // random walk per sqrt(day), measured reservoir (assumed)
  double ratio_obs_sd_floor = 0.01;      // unmodelled error of one ratio observation (assumed)
  // A measured-reservoir segment closes after this much device time or programmed volume,
  // whichever comes first (assumed); its mean is one observation of the reservoir level.
  absl::Duration ratio_segment_time = absl::Hours(6);
  Microliters ratio_segment = Microliters(1000);
  Microliters segment_mean_sd_floor = Microliters(5);  // slow error averaging keeps (assumed)
  double reservoir_rise_reanchor_sd = 10;  // rise beyond this many sd: unrecorded refill (assumed)
  Microliters refill_withdrawal_sd = Microliters(500);  // syringe read-out (assumed)
  Microliters min_refill_ratio_volume =
      Microliters(2000);               // below: refill gives no ratio (assumed)
  double measured_fusion_gain = 0.02;  // pull of the estimate toward a measurement (assumed)
  // Measured-reservoir noise is learnt per pump (EWMA of clipped residuals, from the
  // profile's sd times the prior factor) (assumed).
  double meas_noise_learning_rate = 0.03;
  double meas_noise_prior_factor = 1.5;
  double meas_noise_clip_sd = 3.0;

  // --- flow drift (model.md §4) ---
  double drift_critical_band = 0.145;  // labelled accuracy (label)
  double drift_warning_band = 0.10;    // (model.md)
  double drift_resolve_band = 0.07;    // hysteresis (assumed)
  double cusum_slack = 0.05;           // k, in ratio units: half the warning band (assumed)
  double cusum_threshold = 5.0;        // h, in sd units (assumed; ARL0 >> 1 pump-year)
  double cusum_cap = 20.0;             // keeps recovery time bounded (assumed)
  // Shift CUSUMs (measured reservoir): the same k, h and cap, against the learned ratio at
  // the start of the run instead of the nominal 1. Either CUSUM alarms only while the learned
  // ratio (or its change over the run) lies beyond the warning band by drift_band_z of its sd.
  double drift_band_z = 2.0;          // (assumed)
  double shift_ref_max_sd = 0.03;     // no shift run before the ratio's sd is below (assumed)
  int drift_warmup_observations = 2;  // (assumed)
  // Observability of a drift on this pump (docs/model.md "What a pump's readings can show
  // within 72 h"): the flow-drift detector states the smallest drift it finds within
  // drift_observable_window with the one-sided probability of drift_observable_z, from the
  // pump's own learned sensor noise, reporting interval and rate; a drift of
  // drift_observable_size that it cannot find in that window is "not observable" there.
  absl::Duration drift_observable_window = absl::Hours(72);  // the clinical goal (practice)
  double drift_observable_size = 0.15;                       // the goal's drift (practice)
  double drift_observable_z = 1.645;                         // found 95 % of the time (assumed)
  // Segment pairs after a change that carry no data after the change point's anchor, on
  // average: the run's first pair and half the one that straddles the change (docs/model.md;
  // checked against the rule on the unit-test pump).
  double drift_observable_pairs_lost = 1.5;

  // --- catheter blockage / leak (stroke pressure) ---
  double pressure_learning_rate = 0.02;  // EWMA of baseline mean and variance (assumed)
  Mmhg pressure_sd_floor = Mmhg(1.0);    // (assumed)
  double pressure_learn_gate_sd = 3.0;   // learn only from samples within this (assumed)
  // Learned baseline stays within [min,max] x the Poiseuille model: wide, because catheter
  // geometry on record and CSF pressure differ between patients (assumed).
  double baseline_min_factor = 0.25;
  double baseline_max_factor = 4.0;
  int pressure_warmup_samples = 24;    // (assumed: a day of hourly samples)
  double blockage_k_sd = 4.0;          // partial: above baseline + k sd (assumed)
  int blockage_run = 6;                // sustained for this many samples (assumed)
  double blockage_resolve_k_sd = 2.0;  // (assumed)
  double no_flow_segment_ratio = 0.3;  // drive advancing, reservoir not dropping (assumed)
  double no_flow_z = 7.0;              // ... and that many sd below a ratio of 1 (assumed)
  double leak_fraction = 0.5;          // stroke pressure below this x baseline (assumed)
  double leak_k_sd = 4.0;              // and below baseline - k sd (assumed)
  Mmhg csf_pulsation_min = Mmhg(0.5);  // below: catheter tip out of CSF (assumed)
  int leak_run = 6;                    // (assumed)
  // The motor counts as stopped when drive units have not advanced for this long nor for
  // motor_stopped_strokes strokes at the programmed rate (assumed).
  absl::Duration motor_stopped_after = absl::Hours(2);
  double motor_stopped_strokes = 10;

  // --- battery (docs/detection.md "Learning each pump": the baseline is the pump's own) ---
  absl::Duration eri_warning_horizon = absl::Hours(24 * 180);  // ~6 months advised (label)
  double eri_resolve_factor = 1.2;  // a raised forecast resolves beyond 1.2 x the horizon (assumed)
  // Early depletion is a drain this many times the pump's own learned baseline (recalls of
  // 2009/2011 were about this); the detector alarms once the short-term level is confidently
  // above early_depletion_alarm_factor, so that a 1.5x drain is found, not half of the time.
  double early_depletion_factor = 1.5;           // (assumed, recall notices)
  double early_depletion_alarm_factor = 1.3;     // alarm threshold on level/baseline (assumed)
  double early_depletion_resolve_factor = 1.15;  // resolve below, with the margin (assumed)
  double current_z = 3.0;                        // margin in sd of the level (assumed)
  absl::Duration early_depletion_persist = absl::Hours(6);  // held this long (assumed)
  int current_warmup_samples = 24;  // baseline needs this many samples (assumed)
  absl::Duration current_warmup_time = absl::Hours(24);        // ... over this long (assumed)
  absl::Duration current_level_tau = absl::Hours(6);           // short-term level (assumed)
  absl::Duration current_baseline_tau = absl::Hours(24 * 30);  // baseline follows ageing (assumed)
  double current_gate_sd = 3.0;             // baseline learns from samples within (assumed)
  double current_clip_sd = 2.5;             // warm-up: residuals clipped here (Huber) (assumed)
  double current_sd_floor_fraction = 0.01;  // sd floor, fraction of the baseline (assumed)
  double current_level_clip = 3.0;          // one sample moves the level by at most this ratio
  // A pump whose own baseline is already this far above the profile's idle-current prior
  // upper bound is depleting from enrolment on (prior: pump_profile.cc, wide) (assumed).
  double current_prior_max_ua = 100.0;  // idle 8-40 µA seen in the field; x 2.5 (assumed)
  // Enrolment: the battery indicator over the time since implant gives the pump's own mean
  // drain once that time is long enough for the indicator's 5 % steps to matter little;
  // clamped to [drain_history_min_ua, current_prior_max_ua] (assumed).
  absl::Duration drain_history_min = absl::Hours(24 * 90);
  double drain_history_min_ua = 5.0;  // below the lowest idle current seen (8 µA) (assumed)

  // --- clinical sessions (refill, programming, bolus, interrogation) ---
  // Readings within this long after a session are disturbed (telemetry radio, needle and
  // syringe pressure, motor priming): the battery-current and stroke-pressure baselines and
  // detectors skip them. A refill takes up to about 45 min (assumed).
  absl::Duration session_window = absl::Minutes(60);
  // A recorded refill time may be rounded (clinicians record to 5 min) and the refill takes
  // minutes: measured-reservoir readings this soon after it that still lie below the
  // post-refill expectation by more than the pocket-fill threshold are pre-refill readings,
  // not evidence (assumed).
  absl::Duration refill_time_tolerance = absl::Minutes(15);

  // --- reservoir ---
  Microliters low_reservoir_hysteresis = Microliters(500);  // (assumed)
  Microliters runs_dry_hysteresis = Microliters(500);       // (assumed)
  double runs_dry_z = 2.0;  // margin in sd of ratio and estimate (assumed)
  // A reservoir reading at or below this is empty (residual volume + sensor offset): drive
  // advancing without a drop is then an empty reservoir, not an occlusion (assumed).
  Microliters empty_reservoir = Microliters(500);
  double flow_restored_ratio = 0.7;  // no-flow blockage resolves above this (assumed)
  Microliters refill_discrepancy_min = Microliters(2000);       // (practice guidance)
  double refill_discrepancy_fraction = 0.145;                   // of volume delivered (practice)
  absl::Duration pocket_fill_window = absl::Hours(24);          // checks after a refill (assumed)
  Microliters pocket_fill_small = Microliters(1000);            // 20 mL pump (paper)
  Microliters pocket_fill_large = Microliters(2000);            // 40 mL pump (paper)
  Microliters pocket_fill_small_capacity = Microliters(20000);  // <= this: "small" (paper)
  int pocket_fill_run = 2;                                      // consecutive samples (assumed)
  // Readings above the estimate by more than the pocket-fill threshold, outside a refill's
  // window, are held out of the estimate for at most this many readings (a refill not yet
  // recorded) (assumed).
  int unrecorded_refill_hold = 12;

  // --- events ---
  absl::Duration stall_overinfusion_after = absl::Hours(48);  // (label)
  // A pump resumes when the scan ends; delays of 2-24 h are reported (label, 2008 field
  // notice): a warning once readings taken 2 h after the scan show no delivery, critical at 24 h.
  absl::Duration mri_resume_expected = absl::Hours(2);     // (label: 2-24 h delay)
  absl::Duration mri_resume_deadline = absl::Hours(24);    // (label: 2-24 h delay)
  absl::Duration lockout_tolerance = absl::Seconds(60);    // pump clock granularity (assumed)
  absl::Duration bolus_violation_clear = absl::Hours(24);  // (assumed)
  double daily_dose_resolve_fraction = 0.95;               // (assumed)

  // --- silence and clock ---
  double silent_after_intervals = 3.0;               // k x reporting interval (assumed)
  absl::Duration skew_window = absl::Hours(24);      // windowed max of device - server (assumed)
  absl::Duration skew_threshold = absl::Minutes(5);  // (assumed)
  double skew_resolve_fraction = 0.8;                // (assumed)

  HydraulicsConfig hydraulics;
};

// Plausibility limits of one telemetry sample: values outside are rejected with
// INVALID_ARGUMENT naming the field and the limit (assumed, deliberately generous).
struct SampleLimits {
  double reservoir_over_capacity = 1.10;  // reservoir readings up to capacity x this
  Mmhg min_pressure = Mmhg(-50);
  Mmhg max_pressure = Mmhg(1000);
  Mmhg max_pulsation = Mmhg(200);
  Volts max_voltage = Volts(10);
  double max_battery_current_ua = 1e6;
  double max_motor_current_ma = 5000;
  double min_temperature_c = -40;
  double max_temperature_c = 100;
  absl::Duration max_gap = absl::Hours(24 * 366 * 10);  // one sample jump (10 years)
  size_t max_events = 10000;
  uint64_t max_drive_units_per_ul = 100;  // drive-unit jump vs capacity (assumed)
};

const Tuning& DefaultTuning();
const SampleLimits& DefaultSampleLimits();

}  // namespace pumptwin::twin

#endif  // PUMPTWIN_TWIN_TUNING_H_
