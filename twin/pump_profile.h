// The pump model table: one PumpSpec row per pump profile (model.md §1), and the
// per-pump PumpConfig (geometry, implant time, reporting interval).
// Specs are static constant data; PumpConfig is a plain value type. Thread-compatible.
// Every number in the table carries its source: (label), (paper) or (assumed).
#ifndef PUMPTWIN_TWIN_PUMP_PROFILE_H_
#define PUMPTWIN_TWIN_PUMP_PROFILE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "twin/local_zone.h"
#include "twin/units.h"

namespace pumptwin::twin {

// Mirrors pumptwin.v1.PumpProfile.
enum class PumpProfile : uint8_t {
  kUnspecified = 0,
  kProgrammablePeristaltic = 1,  // SynchroMed II class
  kProgrammableValve = 2,        // Prometra II class
  kConstantFlow = 3,             // Codman 3000 class, no battery
  kSensorized = 4,               // connected pump with sensors
};
inline constexpr int kNumPumpProfiles = 5;

// Signals a profile reports (bit set). Detectors declare what they need from these.
enum SignalBits : uint32_t {
  kSigCalculatedReservoir = 1u << 0,
  kSigMeasuredReservoir = 1u << 1,
  kSigDriveUnits = 1u << 2,
  kSigStrokePressure = 1u << 3,  // stroke peak + CSF pulsation + mean outlet pressure
  kSigBatteryVoltage = 1u << 4,
  kSigBatteryCurrent = 1u << 5,
  kSigMotorCurrent = 1u << 6,
  kSigTemperature = 1u << 7,
  kSigAlarms = 1u << 8,
  kSigEventLog = 1u << 9,  // stalls, patient boluses, ERI/EOS, MRI, sessions
  kSigClock = 1u << 10,    // the pump keeps a device clock
};

// One row of the pump model table. All rates in µL/day, volumes in µL.
struct PumpSpec {
  PumpProfile profile;
  absl::string_view name;
  uint32_t signals;            // SignalBits
  bool programmable;           // false: fixed rate set at manufacture
  bool has_motor;              // stalls under MRI / magnetic field
  MicrolitersPerDay min_rate;  // lowest programmable non-zero rate
  MicrolitersPerDay max_rate;
  double labeled_accuracy;          // |true/programmed - 1| the label allows
  Microliters low_reservoir_alarm;  // the pump's own alarm volume
  Microliters tubing_volume;        // internal pump tubing (priming bolus part)
  Microliters stroke_volume;        // volume per drive unit (rotor step / valve cycle)
  double stroke_duration_ms;        // duration of one stroke (pressure transient)
  Mmhg pressure_limit;              // stroke pressure at which the drive cannot push
  // Battery (has_battery false: all below ignored).
  bool has_battery;
  MilliampHours battery_capacity;
  double idle_current_ua;   // electronics, sensors, radio idle
  double motor_mah_per_ul;  // drive energy per µL pumped
  MilliampHours telemetry_session_charge;
  double eri_fraction;              // charge fraction at elective replacement indicator
  double eos_fraction;              // charge fraction at end of service (pump stops)
  absl::Duration max_service_life;  // hard stop regardless of charge
  absl::Duration eri_to_eos;        // labelled time between ERI and EOS
  Volts eri_voltage;                // sensorized: voltage at/below which ERI is reached
  // Sensor noise (used by detectors to normalise residuals).
  Microliters measured_reservoir_sd;
  Microliters measured_reservoir_step;  // resolution of one reading (quantisation)
  Mmhg stroke_pressure_sd;
};

// The table row of `profile`; nullptr for kUnspecified or out-of-range values.
const PumpSpec* FindPumpSpec(PumpProfile profile);
absl::string_view PumpProfileName(PumpProfile profile);

// Catheter/physiology constants used for expected stroke pressure (Poiseuille).
struct HydraulicsConfig {
  // Dynamic viscosity of aqueous drug solution at 37 °C (assumed: water, 0.69 mPa·s).
  double viscosity_pa_s = 0.69e-3;
  // Lumbar CSF pressure, supine (paper: normal 7-15 mmHg; mid value assumed).
  Mmhg csf_pressure = Mmhg(10.0);
};

// Per-pump configuration, fixed at registration (catheter geometry changes only with a
// recorded catheter revision).
struct PumpConfig {
  std::string pump_id;
  PumpProfile profile = PumpProfile::kUnspecified;
  LocalZone zone;  // the patient's time zone (flex steps are local time); default UTC
  Microliters reservoir_capacity;
  Millimeters catheter_length;
  Millimeters catheter_inner_diameter;
  absl::Time implant_time = absl::UnixEpoch();
  absl::Duration reporting_interval = absl::Hours(1);  // 0: silence never alerts

  bool operator==(const PumpConfig&) const = default;
};

// INVALID_ARGUMENT naming the field and the limit when the config is unusable.
absl::Status ValidatePumpConfig(const PumpConfig& cfg);

// Internal volume of the catheter: π r² L.
Microliters CatheterVolume(Millimeters length, Millimeters inner_diameter);

// Priming bolus volume: pump tubing + catheter internal volume (model.md §2).
Microliters PrimingVolume(const PumpSpec& spec, const PumpConfig& cfg);

// Expected peak outlet pressure of one drive stroke: CSF pressure + Poiseuille
// resistance × stroke flow, resistance = 8 µ L / (π r⁴).
Mmhg ExpectedStrokePressure(const PumpSpec& spec, const PumpConfig& cfg,
                            const HydraulicsConfig& hyd = HydraulicsConfig());

}  // namespace pumptwin::twin

#endif  // PUMPTWIN_TWIN_PUMP_PROFILE_H_
