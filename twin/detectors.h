// The detectors of model.md §4: small state machines with hysteresis over a ModelState,
// emitting alert transitions through an AlertSink (one active alert per type).
// Internal to twin/ (the facade is twin/twin.h). Pure functions; thread-compatible.
#ifndef PUMPTWIN_TWIN_DETECTORS_H_
#define PUMPTWIN_TWIN_DETECTORS_H_

#include <optional>
#include <string>
#include <vector>

#include "twin/alert_types.h"
#include "twin/model_state.h"
#include "twin/sample.h"

namespace pumptwin::twin {

// Applies raise/update/resolve to the per-type alert slots of a ModelState and appends
// the transitions to `out` (which may be null: transitions are then only applied).
class AlertSink {
 public:
  // `now`: device time stamped on the transitions.
  AlertSink(ModelState& s, TimeNs now, std::vector<AlertTransition>* out)
      : s_(s), now_(now), out_(out) {}
  void set_now(TimeNs now) { now_ = now; }
  // Raises `type` at `severity`, or updates it when active at a lower severity (an active
  // alert never downgrades).
  // `dx`: the differential diagnosis (most likely cause, alternatives), where known.
  void Raise(AlertType type, Severity severity, std::vector<Evidence> evidence, std::string summary,
             Diagnosis dx = {});
  // Emits an update of an active alert (no-op when inactive).
  void Update(AlertType type, std::vector<Evidence> evidence, std::string summary,
              Diagnosis dx = {});
  // Resolves `type` if active.
  void Resolve(AlertType type, std::string summary, std::vector<Evidence> evidence = {});

 private:
  void Emit(AlertType type, Severity sev, TransitionKind kind, std::vector<Evidence> evidence,
            std::string summary, Diagnosis dx = {});
  ModelState& s_;
  TimeNs now_;
  std::vector<AlertTransition>* out_;
};

Evidence Ev(std::string signal, double observed, double predicted, double threshold,
            std::string unit, std::string note = "");
DifferentialAlternative Alt(std::string cause, std::string evidence, bool ruled_out = false);

// --- clinical sessions (detectors_events.cc) ---
// A refill, programming, bolus or interrogation session at the model time: readings in the
// following Tuning::session_window are disturbed (battery current learning skips them).
void MarkSession(ModelState& s);
bool InSession(const ModelState& s, const Tuning& tu);
// The motor is known to be stopped: stalled, MRI-suspended, or drive units reported and not
// advancing for Tuning::motor_stopped_after (and that many strokes at the programmed rate).
bool MotorStopped(const ModelState& s, const Setup& su, const Tuning& tu);

// Whether `spec` reports the signals `type` needs (model.md §1: a detector without its
// signals is "not observable", never healthy).
bool Observable(AlertType type, const PumpSpec& spec);
// Observable and enough data seen; `detail` explains the state.
DetectorState ComputeDetectorState(AlertType type, const ModelState& s, const Setup& su,
                                   const Tuning& tu, std::string* detail);

// --- flow drift (flow_drift.cc) ---
// One observation of the delivery ratio (true/programmed) with its standard deviation,
// spanning a whole refill interval (refill withdrawals).
void ObserveRatio(ModelState& s, const Tuning& tu, double ratio, double sd, const char* source,
                  AlertSink& sink);
// One measured-reservoir sample (after pocket-fill handling): segment means, the
// level/ratio filter, the drift CUSUMs and the no-flow blockage check.
void ObserveMeasuredFlow(ModelState& s, const Setup& su, const Tuning& tu, double measured_ul,
                         bool drive_advanced, AlertSink& sink);
// This pump's measured-reservoir noise sd (learnt; the profile's prior until then), and one
// learning step from a residual (measured - estimated) outside the pocket-fill window.
double MeasuredReservoirSd(const ModelState& s, const PumpSpec& spec);
void LearnMeasuredNoise(ModelState& s, const PumpSpec& spec, const Tuning& tu, double residual_ul);
// After a refill: the next measured sample starts a new chain of segments.
void RestartFlowSegments(ModelState& s);
// What this pump's measured reservoir can show of a flow drift (docs/model.md "What a pump's
// readings can show within 72 h"): from its learned sensor noise, its reporting interval
// and its programmed rate, the smallest relative drift the change-point rule finds within
// Tuning::drift_observable_window (with the probability of drift_observable_z), and the
// time it needs for a drift of drift_observable_size. `known` is false for pumps without a
// measured reservoir, a reporting interval or a programmed rate.
struct DriftObservability {
  bool known = false;
  double detectable = 0;      // fraction (0.15 = 15 %); infinity: none within the window
  double hours_for_size = 0;  // infinity: not within a year
  double noise_ul = 0;        // learned reservoir-sensor sd
  double readings = 0;        // per segment
  double segment_hours = 0;
  double rate_ul_per_day = 0;
};
DriftObservability FlowDriftObservability(const ModelState& s, const Setup& su, const Tuning& tu);
// "detectable within 72 h: drifts >= 23 % ..." (the figures of `o`, for detector details).
std::string DriftObservabilityText(const DriftObservability& o, const Tuning& tu);

// --- pocket fill & catheter (detectors_flow.cc) ---
// `drive_advanced`: drive units advanced in this sample (beyond a stall's reference).
void ObserveMeasuredReservoir(ModelState& s, const Setup& su, const Tuning& tu, double measured_ul,
                              bool drive_advanced, AlertSink& sink);
// `drive_quiet`: drive units are reported and did not advance in this sample although the
// programmed volume since the previous one was Tuning::motor_stopped_strokes strokes or more
// (a stopped motor makes no stroke peak either: that is not a leak).
void ObserveStrokePressure(ModelState& s, const Setup& su, const Tuning& tu, double peak_mmhg,
                           std::optional<double> pulsation_mmhg, bool drive_quiet, AlertSink& sink);

// --- events, battery, time (detectors_events.cc) ---
void ApplyDeviceEvent(ModelState& s, const Setup& su, const Tuning& tu, const DeviceEvent& e,
                      AlertSink& sink);
void ApplyAlarmFlags(ModelState& s, const Setup& su, uint32_t flags, AlertSink& sink);
// `stall_flag`: the sample carries the pump's motor-stall alarm (drive units then never
// count as resumption). The first reading after a stall or MRI start is only a reference.
void ObserveDriveUnits(ModelState& s, uint64_t units, bool stall_flag, bool* advanced,
                       AlertSink& sink);
// `dt_hours`: device time since the previous sample (weights of the time-based averages).
void ObserveBattery(ModelState& s, const Setup& su, const Tuning& tu, std::optional<Volts> voltage,
                    std::optional<double> current_ua, double dt_hours, AlertSink& sink);
void ObserveSkew(ModelState& s, const Tuning& tu, TimeNs server_ns, AlertSink& sink);
double SkewEstimateMs(const ModelState& s);
// Checks that depend on time and state only, evaluated at `now` (device time).
// `low_reservoir_flag`: the current sample carries the pump's low-reservoir alarm.
void TimeChecks(ModelState& s, const Setup& su, const Tuning& tu, TimeNs now,
                bool low_reservoir_flag, AlertSink& sink);
// Runs dry before its alarm, with margins: programmed volume until the estimated content
// is gone (point value and upper/lower bounds at Tuning::runs_dry_z sd).
struct RunsDryMargin {
  double prog_to_empty = 0, prog_to_empty_hi = 0, prog_to_empty_lo = 0;
  double est_sd = 0, ratio_lo = 0;
};
RunsDryMargin RunsDry(const ModelState& s, const Setup& su, const Tuning& tu);
// Battery ERI / EOS instants at the current drain (kNeverNs for pumps without battery).
TimeNs BatteryEriTime(const ModelState& s, const Setup& su, const Tuning& tu);
TimeNs BatteryEosTime(const ModelState& s, const Setup& su, const Tuning& tu);

}  // namespace pumptwin::twin

#endif  // PUMPTWIN_TWIN_DETECTORS_H_
