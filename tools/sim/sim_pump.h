// SimPump: pumpsim's own physical model of one implanted pump (NOT the twin's prediction):
// a true delivery ratio, a true catheter resistance (Poiseuille on the true inner diameter
// times an occlusion factor), a true battery (capacity, idle current and drain factor of its
// own, a voltage curve with a knee), a patient-specific CSF pressure and pulsation, and the
// pump's own book-keeping (calculated reservoir) and event log. Sensors add noise and
// quantisation. Time is integrated exactly between rate edges (schedule steps, bolus ends,
// patient activations). Plain value type; thread-compatible.
#ifndef PUMPTWIN_TOOLS_SIM_SIM_PUMP_H_
#define PUMPTWIN_TOOLS_SIM_SIM_PUMP_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "pumptwin/v1/resources.pb.h"
#include "pumptwin/v1/telemetry.pb.h"

namespace pumptwin::sim {

enum class FaultKind {
  kNone, kFlowDrift, kOcclusionPartial, kOcclusionComplete, kCatheterLeak,
  kBatteryEarlyDepletion, kMotorStall, kMriNoResumption, kPocketFill,
};

struct InjectedFault {
  FaultKind kind = FaultKind::kNone;
  double magnitude = 0;
  bool gradual = false;
  double ramp_days = 0;
  bool intermittent = false;
  int64_t start_true_ms = 0;
};

struct SimPump {
  // ---- configuration (registered) ----
  std::string pump_id;
  v1::PumpProfile profile = v1::PUMP_PROFILE_UNSPECIFIED;
  int gateway = 0;
  double capacity_ul = 40000;
  double catheter_length_cm = 50;
  double catheter_id_mm = 0.53;          // nominal (registered)
  int64_t sample_interval_ms = 0;        // 0: the pump reports nothing (constant flow)
  v1::Prescription rx;
  // Flex: (offset within day ms, rate µL/day); empty: rx.rate_ul_per_day.
  std::vector<std::pair<int64_t, double>> flex_steps;
  double ptm_volume_ul = 0, ptm_lockout_ms = 0, ptm_max_per_24h = 0, ptm_duration_ms = 0;
  double ptm_activations_per_day = 0;

  // ---- true physics ----
  double base_ratio = 1.0;               // true delivery / programmed of a healthy pump
  double true_id_mm = 0.53;              // manufacturing tolerance on the inner diameter
  double csf_mmhg = 10, pulsation_mmhg = 3;
  double battery_capacity_mah = 2000, idle_ua = 29, motor_mah_per_ul = 3.4e-5;
  double stroke_volume_ul = 0.25, stroke_ms = 50, pressure_limit_mmhg = 200;
  bool has_motor = true, has_battery = true;
  int64_t clock_offset_ms = 0;           // device clock = true + offset + ppm * elapsed
  double clock_ppm = 0;
  int64_t run_start_ms = 0;

  // ---- state ----
  double true_reservoir_ul = 0, calc_reservoir_ul = 0, battery_used_mah = 0;
  double drive_units = 0;
  int64_t t_ms = 0;                      // true time of the state
  double bolus_left_ul = 0, bolus_rate_ul_per_ms = 0;
  std::vector<int64_t> ptm_granted_ms;   // granted activations (last 24 h)
  int64_t motor_stopped_until_ms = 0;    // MRI or intermittent stall; INT64_MAX: forever
  bool stall_logged = false;
  bool eri_logged = false;
  uint64_t seq = 0;
  int64_t next_ptm_ms = 0, next_stall_ms = 0;
  int64_t next_refill_ms = 0, next_mri_ms = 0;
  double interval_current_charge_mah = 0;  // charge used since the last sample
  InjectedFault fault;
  std::vector<v1::DeviceEvent> pending_events;

  int64_t DeviceTime(int64_t true_ms) const;
  double TrueRatio(int64_t true_ms) const;
  double ResistanceFactor(int64_t true_ms) const;
  bool FaultActive(int64_t true_ms) const {
    return fault.kind != FaultKind::kNone && true_ms >= fault.start_true_ms;
  }
  double BasalRateUlPerDay(int64_t true_ms) const;
  // Integrates physics to `to_ms` (true time), drawing patient activations and stalls.
  void AdvanceTo(int64_t to_ms, std::mt19937_64& rng);
  // The sensor readings now (noise + quantisation), consuming the pending event log.
  v1::TelemetrySample TakeSample(std::mt19937_64& rng);
  // Clinical actions (physics side; the caller records them via TwinService).
  void Refill(double added_ul, double pocket_fraction);
  void StartClinicianBolus(double volume_ul, int64_t duration_ms);
  void Mri(int64_t resume_after_ms);     // INT64_MAX-ish: never resumes
};

}  // namespace pumptwin::sim

#endif  // PUMPTWIN_TOOLS_SIM_SIM_PUMP_H_
