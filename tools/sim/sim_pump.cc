// pumpsim's physical pump model (see sim_pump.h).
#include "tools/sim/sim_pump.h"

#include <algorithm>
#include <cmath>

namespace pumptwin::sim {
namespace {

constexpr double kPaPerMmhg = 133.322;
constexpr double kEriFraction = 0.05;  // the pump logs ERI at 5 % of its charge left

double Quantise(double v, double step) { return std::round(v / step) * step; }

}  // namespace

int64_t SimPump::DeviceTime(int64_t true_ms) const {
  return true_ms + clock_offset_ms +
         static_cast<int64_t>(clock_ppm * 1e-6 * static_cast<double>(true_ms - run_start_ms));
}

double SimPump::TrueRatio(int64_t true_ms) const {
  double r = base_ratio;
  if (!FaultActive(true_ms)) return r;
  if (fault.kind == FaultKind::kFlowDrift) {
    double ramp = 1.0;
    if (fault.gradual && fault.ramp_days > 0) {
      ramp = std::min(
          1.0, static_cast<double>(true_ms - fault.start_true_ms) / (fault.ramp_days * kDayMs));
    }
    r *= 1.0 + fault.magnitude * ramp;
  } else if (fault.kind == FaultKind::kOcclusionPartial) {
    r *= 0.97;  // a partly blocked catheter still passes nearly all of the drug
  } else if (fault.kind == FaultKind::kOcclusionComplete) {
    r = 0;
  }
  return r;
}

double SimPump::ResistanceFactor(int64_t true_ms) const {
  if (!FaultActive(true_ms)) return 1.0;
  if (fault.kind == FaultKind::kOcclusionPartial) return fault.magnitude;
  if (fault.kind == FaultKind::kOcclusionComplete) return 1e4;
  return 1.0;
}

double SimPump::BasalRateUlPerDay(int64_t true_ms) const {
  if (flex_steps.empty()) return rx.rate_ul_per_day();
  const int64_t off = ((true_ms % kDayMs) + kDayMs) % kDayMs;
  double rate = flex_steps.front().second;
  for (const auto& [o, r] : flex_steps) {
    if (o <= off) rate = r;
  }
  return rate;
}

double SimPump::ChargeFraction() const {
  return has_battery ? std::max(0.0, 1 - battery_used_mah / battery_capacity_mah) : 1.0;
}

int64_t SimPump::EriTrueMs(int64_t now_ms) const {
  if (!has_battery) return 0;
  if (eri_logged) return eri_true_ms;
  const double per_day_mah =
      idle_ua * 24e-3 + motor_mah_per_ul * (has_motor ? rx.rate_ul_per_day() : 0.0);
  const double left_mah = (ChargeFraction() - kEriFraction) * battery_capacity_mah;
  if (per_day_mah <= 0) return 0;
  const double days = std::max(0.0, left_mah / per_day_mah);
  return now_ms + static_cast<int64_t>(std::min(days, 1e5) * kDayMs);
}

void SimPump::Log(v1::DeviceEventType type, int64_t true_ms, double volume_ul) {
  v1::DeviceEvent e;
  e.set_type(type);
  e.set_device_time_ms(DeviceTime(true_ms));
  if (volume_ul > 0) e.set_value_ul(volume_ul);
  pending_events.push_back(std::move(e));
}

void SimPump::AdvanceTo(int64_t to_ms, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u01(0, 1);
  for (int guard = 0; t_ms < to_ms && guard < 100000; ++guard) {
    // Patient activation (human-like: Poisson, asleep at night, impatient repeats).
    if (ptm_volume_ul > 0 && next_ptm_ms <= t_ms) {
      std::erase_if(ptm_granted_ms, [&](int64_t g) { return g <= t_ms - kDayMs; });
      const bool in_lockout =
          !ptm_granted_ms.empty() && t_ms - ptm_granted_ms.back() < ptm_lockout_ms;
      if (in_lockout || ptm_granted_ms.size() >= ptm_max_per_24h) {
        Log(v1::DEVICE_EVENT_PATIENT_BOLUS_DENIED, t_ms, 0);
      } else {
        ptm_granted_ms.push_back(t_ms);
        Log(v1::DEVICE_EVENT_PATIENT_BOLUS_GRANTED, t_ms, ptm_volume_ul);
        bolus_left_ul += ptm_volume_ul;
        bolus_rate_ul_per_ms = bolus_left_ul / ptm_duration_ms;
      }
      std::exponential_distribution<double> gap(ptm_activations_per_day / kDayMs);
      int64_t next = t_ms + static_cast<int64_t>(gap(rng)) + 1;
      if (u01(rng) < 0.15) next = t_ms + static_cast<int64_t>((0.3 + u01(rng)) * kHourMs);
      const int64_t hour = ((next % kDayMs) + kDayMs) % kDayMs / kHourMs;
      if (hour < 6) next += (7 - hour) * kHourMs;
      next_ptm_ms = next;
    }
    // Motor stall fault, and the pump's own stall behind a completely blocked catheter.
    if (has_motor && FaultActive(t_ms) && next_stall_ms <= t_ms) {
      if (fault.kind == FaultKind::kMotorStall && fault.intermittent) {
        motor_stopped_until_ms = t_ms + static_cast<int64_t>((10.0 / 60 + u01(rng) * 4) * kHourMs);
        next_stall_ms = t_ms + static_cast<int64_t>((1 + 2 * u01(rng)) * kDayMs);
      } else {
        motor_stopped_until_ms = kForever;
        next_stall_ms = kForever;
      }
      if (outcome.pump_alarm_true_ms == 0) outcome.pump_alarm_true_ms = t_ms;
      stall_logged = true;
      Log(v1::DEVICE_EVENT_MOTOR_STALL, t_ms, 0);
    }
    if (motor_stopped_until_ms != 0 && motor_stopped_until_ms <= t_ms) {
      motor_stopped_until_ms = 0;
      if (stall_logged) Log(v1::DEVICE_EVENT_MOTOR_STALL_RECOVERY, t_ms, 0);
      stall_logged = false;
    }
    // Next rate edge.
    int64_t edge = to_ms;
    if (ptm_volume_ul > 0 && next_ptm_ms > t_ms) edge = std::min(edge, next_ptm_ms);
    if (next_stall_ms > t_ms) edge = std::min(edge, next_stall_ms);
    if (motor_stopped_until_ms > t_ms) edge = std::min(edge, motor_stopped_until_ms);
    if (session_until_ms > t_ms) edge = std::min(edge, session_until_ms);
    if (FaultActive(to_ms) && fault.start_true_ms > t_ms)
      edge = std::min(edge, fault.start_true_ms);
    const bool running = Running();
    if (running && bolus_left_ul > 0 && bolus_rate_ul_per_ms > 0) {
      edge = std::min(
          edge, t_ms + std::max<int64_t>(1, static_cast<int64_t>(
                                                std::ceil(bolus_left_ul / bolus_rate_ul_per_ms))));
    }
    if (!flex_steps.empty()) {
      const int64_t day0 = t_ms - (((t_ms % kDayMs) + kDayMs) % kDayMs);
      int64_t next_edge = day0 + kDayMs;
      for (const auto& step : flex_steps) {
        if (day0 + step.first > t_ms) {
          next_edge = day0 + step.first;
          break;
        }
      }
      edge = std::min(edge, next_edge);
    }
    const double dt_ms = static_cast<double>(edge - t_ms);
    double programmed_ul = 0;
    if (running) {
      programmed_ul = BasalRateUlPerDay(t_ms) / kDayMs * dt_ms;
      const double bolus_ul = std::min(bolus_left_ul, bolus_rate_ul_per_ms * dt_ms);
      bolus_left_ul -= bolus_ul;
      programmed_ul += bolus_ul;
    }
    const double delivered_ul = std::min(true_reservoir_ul, programmed_ul * TrueRatio(t_ms));
    true_reservoir_ul -= delivered_ul;
    if (fault.kind == FaultKind::kSeptumLeak && FaultActive(t_ms)) {
      const double leak_ul =
          std::min(true_reservoir_ul, fault.magnitude * rx.rate_ul_per_day() / kDayMs * dt_ms);
      true_reservoir_ul -= leak_ul;
      pocket_ul += leak_ul;
    }
    if (true_reservoir_ul <= 0 && outcome.dry_true_ms == 0) outcome.dry_true_ms = edge;
    calc_reservoir_ul -= std::min(calc_reservoir_ul, programmed_ul);
    drive_units += programmed_ul / stroke_volume_ul;
    if (has_battery) {
      double charge_mah = idle_ua * dt_ms / kHourMs / 1000.0 + motor_mah_per_ul * programmed_ul;
      if (fault.kind == FaultKind::kBatteryEarlyDepletion && FaultActive(t_ms)) {
        charge_mah *= fault.magnitude;
      }
      if (t_ms < session_until_ms) charge_mah += session_ua * dt_ms / kHourMs / 1000.0;
      battery_used_mah += charge_mah;
      interval_charge_mah += charge_mah;
    }
    if (has_motor && calc_reservoir_ul < low_alarm_ul && !low_alarm_logged) {
      low_alarm_logged = true;
      Log(v1::DEVICE_EVENT_LOW_RESERVOIR_ALARM, edge, 0);
      if (fault.kind == FaultKind::kEmptyReservoir && outcome.pump_alarm_true_ms == 0 &&
          outcome.missed_refill_true_ms != 0) {
        outcome.pump_alarm_true_ms = edge;
      }
    }
    t_ms = edge;
  }
}

v1::TelemetrySample SimPump::TakeSample(std::mt19937_64& rng) {
  std::normal_distribution<double> n01(0, 1);
  v1::TelemetrySample s;
  s.set_pump_id(pump_id);
  s.set_seq(++seq);
  s.set_device_time_ms(DeviceTime(t_ms));
  const bool sensorized = profile == v1::PUMP_PROFILE_SENSORIZED;
  const bool running = Running();
  const bool in_session = t_ms < session_until_ms;
  s.set_calculated_reservoir_ul(Quantise(calc_reservoir_ul, 10));
  s.set_cumulative_drive_units(static_cast<uint64_t>(drive_units));
  uint32_t flags = 0;
  if (calc_reservoir_ul < low_alarm_ul) flags |= 1u << 0;
  if (stall_logged) flags |= 1u << 2;
  const double frac = ChargeFraction();
  if (has_battery && frac <= kEriFraction) {
    flags |= 1u << 3;
    if (!eri_logged) {
      Log(v1::DEVICE_EVENT_ELECTIVE_REPLACEMENT, t_ms, 0);
      eri_logged = true;
      eri_true_ms = t_ms;
      if (fault.kind == FaultKind::kBatteryEarlyDepletion && FaultActive(t_ms) &&
          outcome.pump_alarm_true_ms == 0) {
        outcome.pump_alarm_true_ms = t_ms;
      }
    }
  }
  s.set_alarm_flags(flags);
  if (sensorized) {
    double reservoir = true_reservoir_ul + reservoir_noise_ul * n01(rng);
    if (in_session) reservoir += session_reservoir_offset_ul;
    s.set_measured_reservoir_ul(std::max(0.0, Quantise(reservoir, 10)));
    s.set_outlet_pressure_mmhg(Quantise(csf_mmhg + pressure_offset_mmhg + 0.3 * n01(rng), 0.1));
    const double r_m = true_id_mm * 1e-3 / 2;
    const double resistance =
        8 * viscosity_pa_s * catheter_length_cm * 1e-2 / (M_PI * r_m * r_m * r_m * r_m);
    const double flow_m3_s = stroke_volume_ul * 1e-9 / (stroke_ms * 1e-3);
    const double stroke_mmhg = pressure_gain * resistance * flow_m3_s / kPaPerMmhg;
    const bool leak = fault.kind == FaultKind::kCatheterLeak && FaultActive(t_ms);
    const bool dry = true_reservoir_ul <= 0;
    if (running) {
      double peak;
      if (leak) {
        peak = 2.0 + 0.05 * stroke_mmhg + pressure_noise_mmhg * n01(rng);  // open into tissue
      } else if (dry) {
        peak = csf_mmhg + 0.1 * stroke_mmhg + pressure_noise_mmhg * n01(rng);  // pumping gas
      } else {
        peak = csf_mmhg + stroke_mmhg * ResistanceFactor(t_ms) + pressure_noise_mmhg * n01(rng);
      }
      peak += pressure_offset_mmhg;
      if (in_session) peak += 3 + 12 * std::abs(n01(rng)) / 2;  // needle and syringe pressure
      s.set_stroke_pressure_peak_mmhg(
          peak >= pressure_limit_mmhg ? pressure_limit_mmhg : Quantise(std::max(0.0, peak), 0.1));
    }
    s.set_csf_pulsation_mmhg(
        Quantise(std::abs(leak ? 0.1 + 0.05 * n01(rng) : pulsation_mmhg + 0.3 * n01(rng)), 0.1));
    s.set_battery_voltage_v(Quantise(2.45 + 0.8 * std::pow(frac, 0.25) + 0.005 * n01(rng), 0.01));
    const double interval_h =
        std::max<double>(kMinuteMs, static_cast<double>(t_ms - last_sample_ms)) / kHourMs;
    s.set_battery_current_ua(
        Quantise(interval_charge_mah * 1000 / interval_h * (1 + 0.02 * n01(rng)), 0.1));
    s.set_motor_current_ma(running ? Quantise(1.2 + 0.05 * n01(rng), 0.01) : 0.0);
    s.set_temperature_c(Quantise(37.0 + 0.2 * n01(rng), 0.1));
  }
  interval_charge_mah = 0;
  last_sample_ms = t_ms;
  for (auto& e : pending_events) *s.add_events() = std::move(e);
  pending_events.clear();
  return s;
}

void SimPump::Session(double charge_mah, int64_t duration_ms, double reservoir_offset_ul) {
  // The telemetry radio draws its charge evenly over the session (AdvanceTo).
  session_ua = charge_mah * 1000 / (static_cast<double>(duration_ms) / kHourMs);
  session_until_ms = t_ms + duration_ms;
  session_reservoir_offset_ul = reservoir_offset_ul;
  if (has_motor) Log(v1::DEVICE_EVENT_TELEMETRY_SESSION, t_ms, 0);
}

void SimPump::Refill(double withdrawn_ul, double added_ul, double pocket_fraction) {
  (void)withdrawn_ul;  // what the clinician reads; the syringe empties the reservoir
  pocket_ul += added_ul * pocket_fraction;
  true_reservoir_ul = added_ul * (1 - pocket_fraction);
  calc_reservoir_ul = added_ul;
  low_alarm_logged = false;
  last_refill_true_ms = t_ms;
  last_refill_volume_ul = added_ul;
  NoteFill(added_ul);
}

void SimPump::NoteFill(double fill_ul) {
  if (has_motor && base_ratio * (fill_ul - low_alarm_ul) >= fill_ul) dry_before_alarm = true;
}

void SimPump::StartClinicianBolus(double volume_ul, int64_t duration_ms) {
  bolus_left_ul += volume_ul;
  bolus_rate_ul_per_ms = bolus_left_ul / static_cast<double>(duration_ms);
}

void SimPump::Mri(int64_t resume_after_ms) {
  if (!has_motor) return;
  Log(v1::DEVICE_EVENT_MAGNETIC_FIELD, t_ms, 0);
  motor_stopped_until_ms = resume_after_ms >= kForever - t_ms ? kForever : t_ms + resume_after_ms;
}

}  // namespace pumptwin::sim
