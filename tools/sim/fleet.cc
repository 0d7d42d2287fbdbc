// Fleet construction and ground truth (sim_parts.h).
#include <algorithm>
#include <cmath>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"
#include "tools/sim/sim_parts.h"

namespace pumptwin::sim {
namespace {

// Reporting interval of a pump that reports: 1-60 min, most at 15-60 min.
int64_t DrawReportingIntervalMs(std::mt19937_64& rng) {
  static constexpr struct {
    int minutes;
    double weight;
  } kChoices[] = {{1, 0.01}, {2, 0.01}, {5, 0.04}, {10, 0.10}, {15, 0.24}, {30, 0.25}, {60, 0.35}};
  double u = Uniform(rng, 0, 1);
  for (const auto& c : kChoices) {
    if (u < c.weight) return c.minutes * kMinuteMs;
    u -= c.weight;
  }
  return 60 * kMinuteMs;
}

// Draws one pump of `profile` with its therapy and true physics.
SimPump MakePump(int index, v1::PumpProfile profile, int64_t start_ms, const std::string& prefix,
                 uint32_t pumps_per_gateway, std::mt19937_64& rng) {
  std::normal_distribution<double> n01(0, 1);
  SimPump p;
  p.pump_id = absl::StrFormat("%s-%05d", prefix, index);
  p.profile = profile;
  p.gateway = index / static_cast<int>(std::max<uint32_t>(1, pumps_per_gateway));
  p.run_start_ms = start_ms;
  p.t_ms = start_ms;
  p.last_sample_ms = start_ms;
  p.capacity_ul = Uniform(rng, 0, 1) < 0.5 ? 20000 : 40000;
  p.catheter_length_cm = Uniform(rng, 35, 75);
  p.catheter_id_mm = 0.53;
  p.true_id_mm = 0.53 * Uniform(rng, 0.95, 1.05);
  p.viscosity_pa_s = Uniform(rng, 0.65e-3, 0.85e-3);  // drug and temperature
  p.base_ratio = std::clamp(1 + 0.03 * n01(rng), 0.92, 1.08);
  p.csf_mmhg = Uniform(rng, 5, 18);
  p.pulsation_mmhg = Uniform(rng, 1, 6);
  p.pressure_gain = Uniform(rng, 0.7, 1.4);
  p.pressure_offset_mmhg = Uniform(rng, -2, 2);
  p.pressure_noise_mmhg = Uniform(rng, 0.3, 1.5);
  p.reservoir_noise_ul = Uniform(rng, 15, 80);
  p.clock_offset_ms = static_cast<int64_t>(Uniform(rng, -180, 180) * 1000);
  p.clock_ppm = Uniform(rng, -50, 50);
  p.has_motor = profile != v1::PUMP_PROFILE_CONSTANT_FLOW;
  p.has_battery = p.has_motor;
  p.idle_ua = Uniform(rng, 8, 40);
  p.battery_capacity_mah = Uniform(rng, 1500, 2600);
  p.motor_mah_per_ul = Uniform(rng, 1e-5, 6e-5);
  p.low_alarm_ul = Uniform(rng, 0, 1) < 0.5 ? 2000 : 1000;
  if (profile == v1::PUMP_PROFILE_PROGRAMMABLE_VALVE) {
    p.stroke_volume_ul = Uniform(rng, 0.5, 3.0);  // 0.33..2 drive units per µL
  } else {
    p.stroke_volume_ul = 1 / Uniform(rng, 2, 8);  // 2..8 drive units per µL
  }
  p.sample_interval_ms =
      profile == v1::PUMP_PROFILE_CONSTANT_FLOW ? 0 : DrawReportingIntervalMs(rng);
  p.own_stall_delay_ms = static_cast<int64_t>(Uniform(rng, 0.2, 6) * kHourMs);
  // Therapy: drug, rate such that the reservoir lasts >= ~6 weeks.
  const double max_rate = (p.capacity_ul - 5000) / 45;
  const double u = Uniform(rng, 0, 1);
  auto* rx = &p.rx;
  rx->set_mode(v1::THERAPY_MODE_SIMPLE_CONTINUOUS);
  if (u < 0.4) {
    rx->set_drug("morphine");
    rx->set_concentration_ug_per_ml(10000);
  } else if (u < 0.7) {
    rx->set_drug("baclofen");
    rx->set_concentration_ug_per_ml(1000);
  } else if (u < 0.85) {
    rx->set_drug("hydromorphone");
    rx->set_concentration_ug_per_ml(5000);
  } else {
    rx->set_drug("ziconotide");
    rx->set_concentration_ug_per_ml(25);
  }
  double rate = std::round(std::max(100.0, max_rate * Uniform(rng, 0.3, 0.9)));
  if (rx->drug() == "ziconotide") rate = std::min(rate, 450.0);
  if (profile == v1::PUMP_PROFILE_CONSTANT_FLOW) rate = p.capacity_ul > 30000 ? 750 : 400;
  rx->set_rate_ul_per_day(rate);
  const bool programmable = profile != v1::PUMP_PROFILE_CONSTANT_FLOW;
  if (programmable && Uniform(rng, 0, 1) < 0.3) {  // flex: more by day, less at night
    rx->set_mode(v1::THERAPY_MODE_FLEX);
    p.flex_steps = {{0, std::round(rate * 0.8)},
                    {8 * kHourMs, std::round(rate * 1.2)},
                    {20 * kHourMs, std::round(rate * 0.9)}};
    for (const auto& [off, r] : p.flex_steps) {
      auto* st = rx->mutable_flex()->add_steps();
      st->set_start_offset_ms(off);
      st->set_rate_ul_per_day(r);
    }
  }
  if (programmable && rx->drug() == "morphine" && Uniform(rng, 0, 1) < 0.4) {
    p.ptm_volume_ul = std::round(Uniform(rng, 10, 25));
    p.ptm_duration_ms = 10 * kMinuteMs;
    p.ptm_lockout_ms = 3 * kHourMs;
    p.ptm_max_per_24h = 4;
    p.ptm_activations_per_day = Uniform(rng, 1, 3.5);
    auto* pb = rx->mutable_patient_bolus();
    pb->set_bolus_volume_ul(p.ptm_volume_ul);
    pb->set_bolus_duration_ms(static_cast<int64_t>(p.ptm_duration_ms));
    pb->set_lockout_ms(static_cast<int64_t>(p.ptm_lockout_ms));
    pb->set_max_per_24h(4);
    p.next_ptm_ms = start_ms + static_cast<int64_t>(Uniform(rng, 0, 1) * kDayMs);
  }
  p.true_reservoir_ul = p.calc_reservoir_ul = p.capacity_ul;
  return p;
}

// Mid-life enrolment: the pump has been implanted for years; its battery has spent what its
// idle and motor currents drew since, and its reservoir is part-way through a refill cycle.
void MakeMidLife(SimPump& p, const Scenario& sc, int64_t start_ms, std::mt19937_64& rng) {
  p.mid_life = true;
  double years = Uniform(rng, sc.enrolment_years_min(), sc.enrolment_years_max());
  if (p.has_battery) {
    const double per_year_mah =
        p.idle_ua * 8.766 + p.motor_mah_per_ul * p.rx.rate_ul_per_day() * 365;
    years = std::min(years, 0.75 * p.battery_capacity_mah / per_year_mah);
    p.battery_used_mah = years * per_year_mah;
  }
  p.implant_true_ms = start_ms - static_cast<int64_t>(years * 365 * kDayMs);
  p.drive_units = years * 365 * p.rx.rate_ul_per_day() / p.stroke_volume_ul;
}

}  // namespace

double Uniform(std::mt19937_64& rng, double lo, double hi) {
  return std::uniform_real_distribution<double>(lo, hi)(rng);
}

int64_t ExponentialGapMs(std::mt19937_64& rng, double per_year) {
  if (per_year <= 0) return kForever / 2;
  return static_cast<int64_t>(
      std::exponential_distribution<double>(per_year / (365.0 * kDayMs))(rng));
}

FaultKind ParseFaultKind(absl::string_view k) {
  if (k == "flow_drift") return FaultKind::kFlowDrift;
  if (k == "occlusion_partial") return FaultKind::kOcclusionPartial;
  if (k == "occlusion_complete") return FaultKind::kOcclusionComplete;
  if (k == "catheter_leak") return FaultKind::kCatheterLeak;
  if (k == "septum_leak") return FaultKind::kSeptumLeak;
  if (k == "battery_early_depletion") return FaultKind::kBatteryEarlyDepletion;
  if (k == "motor_stall") return FaultKind::kMotorStall;
  if (k == "mri_no_resumption") return FaultKind::kMriNoResumption;
  if (k == "pocket_fill") return FaultKind::kPocketFill;
  if (k == "empty_reservoir") return FaultKind::kEmptyReservoir;
  return FaultKind::kNone;
}

std::string ProfileName(v1::PumpProfile p) {
  switch (p) {
    case v1::PUMP_PROFILE_PROGRAMMABLE_PERISTALTIC:
      return "programmable_peristaltic";
    case v1::PUMP_PROFILE_PROGRAMMABLE_VALVE:
      return "programmable_valve";
    case v1::PUMP_PROFILE_CONSTANT_FLOW:
      return "constant_flow";
    case v1::PUMP_PROFILE_SENSORIZED:
      return "sensorized";
    default:
      return "unspecified";
  }
}

bool Applicable(FaultKind k, const SimPump& p) {
  switch (k) {
    case FaultKind::kBatteryEarlyDepletion:
      return p.has_battery;
    case FaultKind::kMotorStall:
    case FaultKind::kMriNoResumption:
      return p.has_motor;
    default:
      return true;
  }
}

int64_t RefillIntervalMs(const SimPump& p, std::mt19937_64& rng) {
  double d = Uniform(rng, 42, 182);
  const double stability_days = p.rx.drug() == "baclofen"     ? 180
                                : p.rx.drug() == "ziconotide" ? 60
                                                              : 90;
  d = std::min(d, stability_days - 7);
  const double daily_ul = p.rx.rate_ul_per_day() * (p.flex_steps.empty() ? 1.0 : 1.2) +
                          p.ptm_volume_ul * p.ptm_max_per_24h;
  d = std::min(d, (std::min(p.capacity_ul, p.true_reservoir_ul) - 4000) / daily_ul);
  return static_cast<int64_t>(std::max(7.0, d) * kDayMs);
}

Fleet BuildFleet(const RunOptions& o, const Scenario& sc, int64_t start_ms, std::mt19937_64& rng) {
  Fleet fleet;
  fleet.start_ms = start_ms;
  fleet.end_ms = start_ms + static_cast<int64_t>(o.days * kDayMs);
  for (uint32_t i = 0; i < o.pumps; ++i) {
    const double u = Uniform(rng, 0, 1);
    const v1::PumpProfile prof = u < 0.35   ? v1::PUMP_PROFILE_SENSORIZED
                                 : u < 0.70 ? v1::PUMP_PROFILE_PROGRAMMABLE_PERISTALTIC
                                 : u < 0.85 ? v1::PUMP_PROFILE_PROGRAMMABLE_VALVE
                                            : v1::PUMP_PROFILE_CONSTANT_FLOW;
    fleet.pumps.push_back(
        MakePump(static_cast<int>(i), prof, start_ms, o.pump_prefix, sc.pumps_per_gateway(), rng));
    SimPump& p = fleet.pumps.back();
    p.implant_true_ms = start_ms;
    if (Uniform(rng, 0, 1) < sc.enrolment_fraction()) {
      MakeMidLife(p, sc, start_ms, rng);
      // Part-way through a refill cycle: refilled `phase` of an interval ago.
      const int64_t interval = RefillIntervalMs(p, rng);
      const double phase = Uniform(rng, 0, 0.8);
      const double added = std::round(p.capacity_ul * Uniform(rng, 0.9, 1.0) / 500) * 500;
      const double used = phase * static_cast<double>(interval) / kDayMs * p.rx.rate_ul_per_day();
      p.true_reservoir_ul = std::max(1000.0, added - used * p.base_ratio);
      p.calc_reservoir_ul = std::max(1000.0, added - used);
      p.last_refill_true_ms =
          start_ms - static_cast<int64_t>(phase * static_cast<double>(interval));
      p.last_refill_volume_ul = added;
      p.next_refill_ms = ClinicHours(
          start_ms + std::max<int64_t>(kDayMs, static_cast<int64_t>((1 - phase) * interval)), rng);
    } else {
      p.last_refill_true_ms = start_ms;
      p.last_refill_volume_ul = p.capacity_ul;
      p.next_refill_ms = ClinicHours(start_ms + RefillIntervalMs(p, rng), rng);
    }
    p.next_refill_ms = std::max(p.next_refill_ms, start_ms + kHourMs);
    p.NoteFill(p.last_refill_volume_ul);
    if (p.has_motor) {
      p.next_mri_ms =
          ClinicHours(start_ms + kHourMs + ExponentialGapMs(rng, sc.mri_per_pump_year()), rng);
      p.next_programming_ms = NextSessionMs(start_ms, sc.programming_per_pump_year(), rng);
    }
    p.next_interrogation_ms = NextSessionMs(start_ms, sc.interrogations_per_pump_year(), rng);
  }
  fleet.gateways = fleet.pumps.empty() ? 0 : fleet.pumps.back().gateway + 1;
  fleet.refills_true_ms.resize(fleet.pumps.size());

  // Faults on distinct pumps.
  std::vector<size_t> order(fleet.pumps.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  auto assign = [&](const Fault& f, const std::string& profile) {
    const FaultKind kind = ParseFaultKind(f.kind());
    for (uint32_t c = 0; c < f.count(); ++c) {
      SimPump* pick = nullptr;
      for (size_t idx : order) {
        SimPump& p = fleet.pumps[idx];
        if (p.fault.kind != FaultKind::kNone || !Applicable(kind, p)) continue;
        if (!profile.empty() && ProfileName(p.profile) != profile) continue;
        pick = &p;
        break;
      }
      if (pick == nullptr) {
        std::fprintf(stderr, "pumpsim: no pump left for fault %s (%s)\n", f.kind().c_str(),
                     profile.c_str());
        return;
      }
      SimPump& p = *pick;
      p.fault.kind = kind;
      p.fault.magnitude =
          Uniform(rng, f.magnitude_min(), std::max(f.magnitude_min(), f.magnitude_max()));
      p.fault.gradual = f.gradual();
      p.fault.ramp_days = Uniform(rng, f.ramp_days(), std::max(f.ramp_days(), f.ramp_days_max()));
      p.fault.intermittent = f.intermittent();
      const double day =
          Uniform(rng, f.start_day_min(), std::max(f.start_day_min(), f.start_day_max()));
      p.fault.start_true_ms = start_ms + static_cast<int64_t>(day * kDayMs);
      switch (kind) {
        case FaultKind::kMotorStall:
          p.next_stall_ms = p.fault.start_true_ms;
          break;
        case FaultKind::kOcclusionComplete:
          if (p.has_motor) p.next_stall_ms = p.fault.start_true_ms + p.own_stall_delay_ms;
          break;
        case FaultKind::kMriNoResumption:
          p.next_mri_ms = ClinicHours(p.fault.start_true_ms, rng);
          p.fault.start_true_ms = p.next_mri_ms;
          break;
        case FaultKind::kPocketFill:
          p.next_refill_ms = ClinicHours(p.fault.start_true_ms, rng);
          p.fault.start_true_ms = p.next_refill_ms;
          break;
        default:
          break;
      }
    }
  };
  static const char* kProfiles[] = {"sensorized", "programmable_peristaltic", "programmable_valve",
                                    "constant_flow"};
  for (const Fault& f : sc.faults()) {
    if (!f.every_profile()) {
      assign(f, f.profile());
      continue;
    }
    for (const char* prof : kProfiles) {
      SimPump probe;
      probe.has_motor = probe.has_battery = std::string(prof) != "constant_flow";
      if (Applicable(ParseFaultKind(f.kind()), probe)) assign(f, prof);
    }
  }
  return fleet;
}

absl::Status WriteGroundTruth(const std::string& path, const RunOptions& o, const Scenario& sc,
                              const Fleet& fleet) {
  if (path.empty()) return absl::OkStatus();
  std::ofstream gt(path, std::ios::trunc);
  if (!gt) return absl::InternalError(absl::StrCat("cannot write ", path));
  auto write = [&](const GroundTruth& g) {
    std::string line;
    (void)google::protobuf::util::MessageToJsonString(g, &line);
    gt << line << "\n";
  };
  GroundTruth run;
  run.set_record("run");
  run.set_run_start_ms(fleet.start_ms);
  run.set_days(o.days);
  run.set_pumps(o.pumps);
  run.set_seed(o.seed);
  run.set_scenario(sc.name());
  write(run);
  auto device = [](const SimPump& p, int64_t t) { return t == 0 ? 0 : p.DeviceTime(t); };
  for (size_t i = 0; i < fleet.pumps.size(); ++i) {
    const SimPump& p = fleet.pumps[i];
    GroundTruth g;
    g.set_record("pump");
    g.set_pump_id(p.pump_id);
    g.set_profile(ProfileName(p.profile));
    g.set_enrolment_device_ms(p.DeviceTime(fleet.start_ms));
    g.set_mid_life(p.mid_life);
    g.set_reporting_interval_ms(p.sample_interval_ms);
    g.set_dry_before_alarm(p.dry_before_alarm);
    g.set_battery_eri_device_ms(device(p, p.EriTrueMs(fleet.end_ms)));
    write(g);
  }
  for (size_t i = 0; i < fleet.pumps.size(); ++i) {
    const SimPump& p = fleet.pumps[i];
    if (p.fault.kind == FaultKind::kNone) continue;
    const InjectedFault& f = p.fault;
    GroundTruth g;
    g.set_record("fault");
    g.set_pump_id(p.pump_id);
    g.set_profile(ProfileName(p.profile));
    int64_t start = f.start_true_ms;
    std::string kind;
    switch (f.kind) {
      case FaultKind::kFlowDrift: {
        kind = f.magnitude >= 0 ? "flow_drift_over" : "flow_drift_under";
        if (std::abs(f.magnitude) < 0.10) kind += "_within_label";
        if (f.gradual) kind += "_ramp";
        if (std::abs(f.magnitude) >= 0.15) {
          const double days_to_15 = f.gradual ? f.ramp_days * 0.15 / std::abs(f.magnitude) : 0;
          g.set_reached_15pct_device_ms(
              p.DeviceTime(start + static_cast<int64_t>(days_to_15 * kDayMs)));
        }
        break;
      }
      case FaultKind::kOcclusionPartial:
        kind = "occlusion_partial";
        break;
      case FaultKind::kOcclusionComplete:
        kind = "occlusion_complete";
        break;
      case FaultKind::kCatheterLeak:
        kind = "catheter_leak";
        break;
      case FaultKind::kSeptumLeak:
        kind = "septum_leak";
        break;
      case FaultKind::kBatteryEarlyDepletion:
        kind = "battery_early_depletion";
        break;
      case FaultKind::kMotorStall:
        kind = f.intermittent ? "motor_stall_intermittent" : "motor_stall_permanent";
        break;
      case FaultKind::kMriNoResumption:
        kind = "mri_no_resumption";
        g.set_expected_resume_device_ms(device(p, p.outcome.expected_resume_true_ms));
        break;
      case FaultKind::kPocketFill:
        kind = "pocket_fill";
        break;
      case FaultKind::kEmptyReservoir:
        kind = "empty_reservoir";
        // The fault is the pump running dry; alerts count from the missed refill on.
        start = p.outcome.dry_true_ms != 0 ? p.outcome.dry_true_ms : fleet.end_ms + kDayMs;
        g.set_window_start_device_ms(device(p, p.outcome.missed_refill_true_ms));
        break;
      case FaultKind::kNone:
        break;
    }
    g.set_kind(kind);
    g.set_magnitude(f.magnitude);
    g.set_gradual(f.gradual);
    g.set_start_true_ms(start);
    g.set_start_device_ms(p.DeviceTime(start));
    for (int64_t r : fleet.refills_true_ms[i]) {
      if (r > start) {
        g.set_next_refill_device_ms(p.DeviceTime(r));
        break;
      }
    }
    g.set_pump_alarm_device_ms(device(p, p.outcome.pump_alarm_true_ms));
    g.set_visible_refill_device_ms(device(p, p.outcome.visible_refill_true_ms));
    write(g);
  }
  gt.flush();
  if (!gt) return absl::InternalError(absl::StrCat("writing ", path, " failed"));
  return absl::OkStatus();
}

}  // namespace pumptwin::sim
