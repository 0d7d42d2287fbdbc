#include "twin/pump_profile.h"

#include <array>
#include <cmath>
#include <numbers>

#include "absl/strings/str_cat.h"

namespace pumptwin::twin {
namespace {

constexpr uint32_t kProgrammableSignals =
    kSigCalculatedReservoir | kSigDriveUnits | kSigAlarms | kSigEventLog | kSigClock;
constexpr uint32_t kSensorizedSignals = kProgrammableSignals | kSigMeasuredReservoir |
                                        kSigStrokePressure | kSigBatteryVoltage |
                                        kSigBatteryCurrent | kSigMotorCurrent | kSigTemperature;

absl::Duration Years(double y) { return absl::Hours(24 * 365.25 * y); }

// The pump model table (model.md §1). Sources:
//  (label)   SynchroMed II labeling / field safety notices: 48 µL/day..24 mL/day programmable
//            range is quoted as (assumed) in model.md; ±14.5 % accuracy, 2 mL low-reservoir
//            alarm, 0.140 mL pump tubing, 7-year hard stop, ERI->EOS 90 days.
//  (assumed) everything else: battery capacities and currents were chosen so that the
//            battery reaches ERI after about 5 years at 10 mL/day and hits the 7-year hard
//            stop at 0.5 mL/day (label: 5-7 years depending on daily volume), and so that
//            ERI->EOS is about 90 days at 0.5 mL/day. Stroke volumes/durations, pressure
//            limits and sensor noise are engineering guesses to be replaced by vendor data.
const std::array<PumpSpec, 4>& Table() {
  static const std::array<PumpSpec, 4> kTable = {{
      {PumpProfile::kProgrammablePeristaltic,
       "programmable_peristaltic",
       kProgrammableSignals,
       /*programmable=*/true,
       /*has_motor=*/true,
       MicrolitersPerDay(48),
       MicrolitersPerDay(24000),
       0.145,
       Microliters(2000),
       Microliters(140),
       Microliters(0.25),
       50.0,
       Mmhg(200),
       /*has_battery=*/true,
       MilliampHours(2000),
       29.0,
       3.4e-5,
       MilliampHours(0.05),
       0.05,
       0.018,
       Years(7),
       absl::Hours(24 * 90),
       Volts(0),
       Microliters(0),
       Microliters(0),
       Mmhg(0)},
      {PumpProfile::kProgrammableValve,
       "programmable_valve",
       kProgrammableSignals,
       true,
       true,
       MicrolitersPerDay(24),
       MicrolitersPerDay(28800),
       0.10,
       Microliters(2000),
       Microliters(140),
       Microliters(2.0),
       100.0,
       Mmhg(200),
       true,
       MilliampHours(2000),
       20.0,
       2.0e-5,
       MilliampHours(0.05),
       0.04,
       0.018,
       Years(10),
       absl::Hours(24 * 90),
       Volts(0),
       Microliters(0),
       Microliters(0),
       Mmhg(0)},
      {PumpProfile::kConstantFlow,
       "constant_flow",
       /*signals=*/0,
       /*programmable=*/false,
       /*has_motor=*/false,
       MicrolitersPerDay(250),
       MicrolitersPerDay(3000),
       0.15,
       Microliters(2000),
       Microliters(100),
       Microliters(0),
       0.0,
       Mmhg(0),
       /*has_battery=*/false,
       MilliampHours(0),
       0.0,
       0.0,
       MilliampHours(0),
       0.0,
       0.0,
       absl::InfiniteDuration(),
       absl::ZeroDuration(),
       Volts(0),
       Microliters(0),
       Microliters(0),
       Mmhg(0)},
      {PumpProfile::kSensorized,
       "sensorized",
       kSensorizedSignals,
       true,
       true,
       MicrolitersPerDay(48),
       MicrolitersPerDay(24000),
       0.145,
       Microliters(2000),
       Microliters(140),
       Microliters(0.25),
       50.0,
       Mmhg(200),
       true,
       MilliampHours(2400),
       35.0,
       3.4e-5,
       MilliampHours(0.05),
       0.05,
       0.018,
       Years(7),
       absl::Hours(24 * 90),
       Volts(2.6),
       Microliters(50),
       Microliters(10),
       Mmhg(1.0)},
  }};
  return kTable;
}

}  // namespace

const PumpSpec* FindPumpSpec(PumpProfile profile) {
  for (const PumpSpec& s : Table()) {
    if (s.profile == profile) return &s;
  }
  return nullptr;
}

absl::string_view PumpProfileName(PumpProfile profile) {
  const PumpSpec* s = FindPumpSpec(profile);
  return s == nullptr ? absl::string_view("unspecified") : s->name;
}

absl::Status ValidatePumpConfig(const PumpConfig& cfg) {
  // Plausibility ranges for a registration (assumed: implanted pumps are 10-60 mL,
  // intrathecal catheters 10-150 cm long with 0.1-2 mm bore).
  constexpr double kMinCapacityUl = 5000, kMaxCapacityUl = 60000;
  constexpr double kMinCatheterMm = 100, kMaxCatheterMm = 1500;
  constexpr double kMinBoreMm = 0.1, kMaxBoreMm = 2.0;
  if (cfg.pump_id.empty()) return absl::InvalidArgumentError("pump_config.pump_id is empty");
  if (FindPumpSpec(cfg.profile) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("pump_config.profile ", static_cast<int>(cfg.profile), " is not a profile"));
  }
  auto in_range = [](double v, double lo, double hi) {
    return std::isfinite(v) && v >= lo && v <= hi;
  };
  if (!in_range(cfg.reservoir_capacity.value(), kMinCapacityUl, kMaxCapacityUl)) {
    return absl::InvalidArgumentError(absl::StrCat("pump_config.reservoir_capacity_ul ",
                                                   cfg.reservoir_capacity.value(), " outside [",
                                                   kMinCapacityUl, ", ", kMaxCapacityUl, "]"));
  }
  if (!in_range(cfg.catheter_length.value(), kMinCatheterMm, kMaxCatheterMm)) {
    return absl::InvalidArgumentError(absl::StrCat("pump_config.catheter_length_mm ",
                                                   cfg.catheter_length.value(), " outside [",
                                                   kMinCatheterMm, ", ", kMaxCatheterMm, "]"));
  }
  if (!in_range(cfg.catheter_inner_diameter.value(), kMinBoreMm, kMaxBoreMm)) {
    return absl::InvalidArgumentError(
        absl::StrCat("pump_config.catheter_inner_diameter_mm ", cfg.catheter_inner_diameter.value(),
                     " outside [", kMinBoreMm, ", ", kMaxBoreMm, "]"));
  }
  if (cfg.reporting_interval < absl::ZeroDuration() ||
      cfg.reporting_interval > absl::Hours(24 * 366)) {
    return absl::InvalidArgumentError("pump_config.reporting_interval outside [0, 366 days]");
  }
  if (cfg.implant_time < absl::UnixEpoch() ||
      cfg.implant_time > absl::FromUnixSeconds(7258118400)) {  // 2200-01-01
    return absl::InvalidArgumentError("pump_config.implant_time outside [1970, 2200)");
  }
  return absl::OkStatus();
}

Microliters CatheterVolume(Millimeters length, Millimeters inner_diameter) {
  const double r_mm = inner_diameter.value() / 2.0;
  // mm³ == µL
  return Microliters(std::numbers::pi * r_mm * r_mm * length.value());
}

Microliters PrimingVolume(const PumpSpec& spec, const PumpConfig& cfg) {
  return spec.tubing_volume + CatheterVolume(cfg.catheter_length, cfg.catheter_inner_diameter);
}

Mmhg ExpectedStrokePressure(const PumpSpec& spec, const PumpConfig& cfg,
                            const HydraulicsConfig& hyd) {
  constexpr double kPascalPerMmhg = 133.322;
  if (spec.stroke_duration_ms <= 0) return hyd.csf_pressure;
  const double length_m = cfg.catheter_length.value() * 1e-3;
  const double r_m = cfg.catheter_inner_diameter.value() * 0.5e-3;
  const double resistance =
      8.0 * hyd.viscosity_pa_s * length_m / (std::numbers::pi * std::pow(r_m, 4));
  const double flow_m3_s = spec.stroke_volume.value() * 1e-9 / (spec.stroke_duration_ms * 1e-3);
  return hyd.csf_pressure + Mmhg(resistance * flow_m3_s / kPascalPerMmhg);
}

}  // namespace pumptwin::twin
