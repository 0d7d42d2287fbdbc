// SimPump: pumpsim's own physical model of one implanted pump (NOT the twin's prediction;
// it shares no header or constant with twin/). Every physical quantity is a per-pump value
// drawn by the fleet builder (fleet.h) from wide ranges: delivery ratio, drive units per µL,
// idle and motor current, battery capacity, catheter resistance (Poiseuille on the true inner
// diameter times an occlusion factor), CSF pressure and pulsation, pressure-sensor gain,
// offset and noise, reservoir-sensor noise, device clock offset and drift. The pump keeps its
// own book-keeping (calculated reservoir, drive units) and event log; the log entries leave
// with the next report. Clinic sessions (refill, programming, bolus, interrogation) draw
// charge and disturb the readings taken while they last. Time is integrated exactly between
// rate edges (schedule steps, bolus ends, patient activations). Plain value type.
#ifndef PUMPTWIN_TOOLS_SIM_SIM_PUMP_H_
#define PUMPTWIN_TOOLS_SIM_SIM_PUMP_H_

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "pumptwin/v1/resources.pb.h"
#include "pumptwin/v1/telemetry.pb.h"

namespace pumptwin::sim {

inline constexpr int64_t kMinuteMs = 60000;
inline constexpr int64_t kHourMs = 3600000;
inline constexpr int64_t kDayMs = 86400000;
inline constexpr int64_t kForever = std::numeric_limits<int64_t>::max();

enum class FaultKind {
  kNone,
  kFlowDrift,
  kOcclusionPartial,
  kOcclusionComplete,
  kCatheterLeak,
  kSeptumLeak,
  kBatteryEarlyDepletion,
  kMotorStall,
  kMriNoResumption,
  kPocketFill,
  kEmptyReservoir,
};

struct InjectedFault {
  FaultKind kind = FaultKind::kNone;
  double magnitude = 0;
  bool gradual = false;
  double ramp_days = 0;
  bool intermittent = false;
  int64_t start_true_ms = 0;
};

// What the fault did, observed by the simulator while it ran (true times; 0: not yet).
struct FaultOutcome {
  int64_t pump_alarm_true_ms = 0;       // the pump's own alarm for the fault
  int64_t dry_true_ms = 0;              // the true reservoir reached zero
  int64_t missed_refill_true_ms = 0;    // empty_reservoir: the refill that did not happen
  int64_t expected_resume_true_ms = 0;  // mri_no_resumption: end of the normal resume window
  int64_t visible_refill_true_ms = 0;   // first refill showing it beyond the labelled accuracy
};

struct SimPump {
  // ---- configuration (registered) ----
  std::string pump_id;
  v1::PumpProfile profile = v1::PUMP_PROFILE_UNSPECIFIED;
  int gateway = 0;
  double capacity_ul = 40000;
  double catheter_length_cm = 50;
  double catheter_id_mm = 0.53;    // nominal (registered)
  int64_t sample_interval_ms = 0;  // 0: the pump reports nothing (constant flow)
  v1::Prescription rx;
  uint64_t rx_version = 1;
  // Flex: (offset within day ms, rate µL/day); empty: rx.rate_ul_per_day.
  std::vector<std::pair<int64_t, double>> flex_steps;
  double ptm_volume_ul = 0, ptm_lockout_ms = 0, ptm_max_per_24h = 0, ptm_duration_ms = 0;
  double ptm_activations_per_day = 0;
  // Enrolment: implant before the run (mid-life) or at its start.
  bool mid_life = false;
  int64_t implant_true_ms = 0;
  int64_t last_refill_true_ms = 0;
  double last_refill_volume_ul = 0;

  // ---- true physics (per pump) ----
  double base_ratio = 1.0;   // true delivery / programmed of a healthy pump
  double true_id_mm = 0.53;  // manufacturing tolerance on the inner diameter
  double viscosity_pa_s = 0.7e-3;
  double csf_mmhg = 10, pulsation_mmhg = 3;
  double pressure_gain = 1, pressure_offset_mmhg = 0, pressure_noise_mmhg = 0.8;
  double reservoir_noise_ul = 40;
  double battery_capacity_mah = 2000, idle_ua = 20, motor_mah_per_ul = 3e-5;
  double stroke_volume_ul = 0.25, stroke_ms = 50, pressure_limit_mmhg = 200;
  double low_alarm_ul = 2000;  // the pump's own low-reservoir alarm
  bool has_motor = true, has_battery = true;
  int64_t clock_offset_ms = 0;  // device clock = true + offset + ppm * elapsed
  double clock_ppm = 0;
  int64_t run_start_ms = 0;
  int64_t own_stall_delay_ms = 0;  // complete occlusion: pressure build-up to a stall

  // ---- state ----
  double true_reservoir_ul = 0, calc_reservoir_ul = 0, battery_used_mah = 0;
  double pocket_ul = 0;  // drug lost into the pocket (septum leak, pocket fill)
  double drive_units = 0;
  int64_t t_ms = 0;  // true time of the state
  double bolus_left_ul = 0, bolus_rate_ul_per_ms = 0;
  std::vector<int64_t> ptm_granted_ms;  // granted activations (last 24 h)
  int64_t motor_stopped_until_ms = 0;   // MRI or stall; kForever: for good
  bool stall_logged = false;
  bool eri_logged = false;
  int64_t eri_true_ms = 0;  // when the pump reached its replacement indicator (0: not yet)
  bool low_alarm_logged = false;
  uint64_t seq = 0;
  int64_t next_ptm_ms = 0, next_stall_ms = kForever;
  int64_t next_refill_ms = kForever, next_mri_ms = kForever;
  int64_t next_interrogation_ms = kForever, next_programming_ms = kForever;
  double interval_charge_mah = 0;  // charge used since the last sample
  int64_t last_sample_ms = 0;
  int64_t session_until_ms = 0;  // a clinic session disturbs readings until then
  double session_ua = 0;         // and draws this current until then
  double session_reservoir_offset_ul = 0;
  // A fill after which the true reservoir empties before the calculated one reaches the
  // alarm (a delivery ratio above fill / (fill - alarm)): the twin's "runs dry before its
  // alarm" is then true of this pump even without a fault.
  bool dry_before_alarm = false;
  InjectedFault fault;
  FaultOutcome outcome;
  std::vector<v1::DeviceEvent> pending_events;  // the event log not yet reported

  int64_t DeviceTime(int64_t true_ms) const;
  double TrueRatio(int64_t true_ms) const;
  double ResistanceFactor(int64_t true_ms) const;
  bool FaultActive(int64_t true_ms) const {
    return fault.kind != FaultKind::kNone && true_ms >= fault.start_true_ms;
  }
  bool Running() const { return !has_motor || motor_stopped_until_ms == 0; }
  double BasalRateUlPerDay(int64_t true_ms) const;
  double ChargeFraction() const;
  // When this pump reaches its replacement indicator (true time): when it did, else projected
  // from its charge at `now_ms` at its own idle and programmed-motor drain. 0: no battery.
  int64_t EriTrueMs(int64_t now_ms) const;
  // Integrates physics to `to_ms` (true time), drawing patient activations and stalls.
  void AdvanceTo(int64_t to_ms, std::mt19937_64& rng);
  // The sensor readings now (noise + quantisation), consuming the pending event log.
  v1::TelemetrySample TakeSample(std::mt19937_64& rng);

  // Clinic sessions (physics side; the caller records them via TwinService). Each draws
  // telemetry charge, logs a session event and disturbs readings for `duration_ms`.
  void Session(double charge_mah, int64_t duration_ms, double reservoir_offset_ul);
  void Refill(double withdrawn_ul, double added_ul, double pocket_fraction);
  void NoteFill(double fill_ul);  // sets dry_before_alarm for a fill of the reservoir
  void StartClinicianBolus(double volume_ul, int64_t duration_ms);
  void Mri(int64_t resume_after_ms);  // kForever: never resumes

 private:
  void Log(v1::DeviceEventType type, int64_t true_ms, double volume_ul);
};

}  // namespace pumptwin::sim

#endif  // PUMPTWIN_TOOLS_SIM_SIM_PUMP_H_
