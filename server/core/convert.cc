#include "server/core/convert.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "device_link/input_limits.h"

namespace pumptwin::server {
namespace {

absl::Status NonNegativeFinite(const char* field, double v) {
  if (!std::isfinite(v) || v < 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, "=", v, " must be a finite number >= 0"));
  }
  return absl::OkStatus();
}

// IANA names: "Area/Location[/Sub]" of letters, digits, '_', '-', '+'; never a path that
// leaves the tzdata directory.
bool PlausibleZoneName(absl::string_view name) {
  if (name.empty() || name.size() > 64 || name.front() == '/' || absl::StrContains(name, "..")) {
    return false;
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '/' && c != '_' && c != '-' &&
        c != '+') {
      return false;
    }
  }
  return true;
}

// Loads `name` from the system tzdata. INVALID_ARGUMENT naming `field`.
absl::StatusOr<absl::TimeZone> LoadTzdata(absl::string_view name, absl::string_view field) {
  const std::string shown(name.substr(0, 64));
  if (!PlausibleZoneName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, "='", shown, "' is not an IANA time zone name (e.g. Europe/Berlin; empty: UTC)"));
  }
  absl::TimeZone tz;
  if (!absl::LoadTimeZone(std::string(name), &tz)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, "='", shown,
                     "' is not a known IANA time zone (e.g. Europe/Berlin, "
                     "America/New_York; empty: UTC)"));
  }
  return tz;
}

absl::StatusOr<absl::TimeZone> LoadZoneForTwin(absl::string_view name) {
  return LoadTzdata(name, "time_zone");
}

// Decoded twins resolve their zone through this loader (twin/ does no I/O itself).
const bool kZoneLoaderInstalled = [] {
  twin::LocalZone::SetLoader(&LoadZoneForTwin);
  return true;
}();

}  // namespace

absl::StatusOr<twin::LocalZone> LoadLocalZone(absl::string_view name, absl::string_view field) {
  (void)kZoneLoaderInstalled;
  if (name.empty() || name == "UTC") return twin::LocalZone();
  absl::StatusOr<absl::TimeZone> tz = LoadTzdata(name, field);
  if (!tz.ok()) return tz.status();
  return twin::LocalZone::Intern(name, *tz);
}

absl::StatusOr<twin::Enrolment> ToEnrolment(const v1::Enrolment& e) {
  twin::Enrolment out;
  if (e.interrogation_time_ms() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("enrolment.interrogation_time_ms=", e.interrogation_time_ms(),
                     " is required: the device time (Unix ms) of the last interrogation"));
  }
  out.interrogation_time = FromUnixMs(e.interrogation_time_ms());
  if (absl::Status s =
          NonNegativeFinite("enrolment.calculated_reservoir_ul", e.calculated_reservoir_ul());
      !s.ok())
    return s;
  out.calculated_reservoir = twin::Microliters(e.calculated_reservoir_ul());
  if (e.last_refill_time_ms() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "enrolment.last_refill_time_ms=", e.last_refill_time_ms(), " must be >= 0 (0: unknown)"));
  }
  if (e.last_refill_time_ms() > 0) out.last_refill_time = FromUnixMs(e.last_refill_time_ms());
  if (absl::Status s =
          NonNegativeFinite("enrolment.last_refill_volume_ul", e.last_refill_volume_ul());
      !s.ok())
    return s;
  if (e.last_refill_volume_ul() > 0) {
    out.last_refill_volume = twin::Microliters(e.last_refill_volume_ul());
  }
  if (e.has_battery_indicator_fraction()) {
    out.battery_indicator_fraction = e.battery_indicator_fraction();
  }
  out.battery_eri_shown = e.battery_eri_shown();
  return out;
}

int64_t ToUnixMs(absl::Time t) {
  if (t == absl::InfiniteFuture() || t == absl::InfinitePast()) return 0;
  return absl::ToUnixMillis(t);
}

absl::Time FromUnixMs(int64_t ms) { return absl::FromUnixMillis(ms); }

absl::StatusOr<twin::PumpConfig> ToPumpConfig(const v1::Pump& p) {
  twin::PumpConfig c;
  c.pump_id = p.pump_id();
  if (p.profile() <= v1::PUMP_PROFILE_UNSPECIFIED || p.profile() > v1::PUMP_PROFILE_SENSORIZED) {
    return absl::InvalidArgumentError(
        absl::StrCat("pump.profile=", p.profile(),
                     " is not a known profile (PROGRAMMABLE_PERISTALTIC, PROGRAMMABLE_VALVE, "
                     "CONSTANT_FLOW, SENSORIZED)"));
  }
  c.profile = static_cast<twin::PumpProfile>(p.profile());
  if (absl::Status s = NonNegativeFinite("pump.reservoir_capacity_ul", p.reservoir_capacity_ul());
      !s.ok())
    return s;
  if (absl::Status s = NonNegativeFinite("pump.catheter_length_cm", p.catheter_length_cm());
      !s.ok())
    return s;
  if (absl::Status s =
          NonNegativeFinite("pump.catheter_inner_diameter_mm", p.catheter_inner_diameter_mm());
      !s.ok())
    return s;
  if (p.reporting_interval_ms() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("pump.reporting_interval_ms=", p.reporting_interval_ms(), " must be >= 0"));
  }
  c.reservoir_capacity = twin::Microliters(p.reservoir_capacity_ul());
  c.catheter_length = twin::Millimeters(p.catheter_length_cm() * 10.0);
  c.catheter_inner_diameter = twin::Millimeters(p.catheter_inner_diameter_mm());
  c.implant_time = FromUnixMs(p.implant_time_ms());
  if (p.reporting_interval_ms() > 0)
    c.reporting_interval = absl::Milliseconds(p.reporting_interval_ms());
  absl::StatusOr<twin::LocalZone> zone = LoadLocalZone(p.time_zone());
  if (!zone.ok()) return zone.status();
  c.zone = *zone;
  if (absl::Status s = twin::ValidatePumpConfig(c); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("pump: ", s.message()));
  }
  return c;
}

absl::StatusOr<twin::Prescription> ToPrescription(const v1::Prescription& rx) {
  twin::Prescription out;
  out.drug = rx.drug();
  if (!std::isfinite(rx.concentration_ug_per_ml()) || rx.concentration_ug_per_ml() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("prescription.concentration_ug_per_ml=", rx.concentration_ug_per_ml(),
                     " must be a finite number >= 0"));
  }
  out.concentration = twin::MicrogramsPerMilliliter(rx.concentration_ug_per_ml());
  switch (rx.mode()) {
    case v1::THERAPY_MODE_UNSPECIFIED:
    case v1::THERAPY_MODE_STOPPED:
      out.mode = twin::TherapyMode::kStopped;
      break;
    case v1::THERAPY_MODE_SIMPLE_CONTINUOUS:
      out.mode = twin::TherapyMode::kSimpleContinuous;
      break;
    case v1::THERAPY_MODE_FLEX:
      out.mode = twin::TherapyMode::kFlex;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("prescription.mode=", rx.mode(), " is not a known therapy mode"));
  }
  if (!std::isfinite(rx.rate_ul_per_day())) {
    return absl::InvalidArgumentError("prescription.rate_ul_per_day is not a finite number");
  }
  out.rate = twin::MicrolitersPerDay(rx.rate_ul_per_day());
  out.flex.weekly = rx.flex().weekly();
  for (int i = 0; i < rx.flex().steps_size(); ++i) {
    const auto& st = rx.flex().steps(i);
    if (!std::isfinite(st.rate_ul_per_day())) {
      return absl::InvalidArgumentError(
          absl::StrCat("prescription.flex.steps[", i, "].rate_ul_per_day is not finite"));
    }
    out.flex.steps.push_back(
        {absl::Milliseconds(st.start_offset_ms()), twin::MicrolitersPerDay(st.rate_ul_per_day())});
  }
  if (rx.has_patient_bolus()) {
    const auto& pb = rx.patient_bolus();
    if (!std::isfinite(pb.bolus_volume_ul())) {
      return absl::InvalidArgumentError(
          "prescription.patient_bolus.bolus_volume_ul is not a finite number");
    }
    out.patient_bolus = twin::PatientBolusLimits{
        twin::Microliters(pb.bolus_volume_ul()), absl::Milliseconds(pb.bolus_duration_ms()),
        absl::Milliseconds(pb.lockout_ms()), pb.max_per_24h()};
  }
  out.version = rx.version();
  return out;
}

v1::Prescription FromPrescription(const twin::Prescription& rx) {
  v1::Prescription out;
  out.set_drug(rx.drug);
  out.set_concentration_ug_per_ml(rx.concentration.value());
  out.set_mode(static_cast<v1::TherapyMode>(rx.mode));
  out.set_rate_ul_per_day(rx.rate.value());
  out.mutable_flex()->set_weekly(rx.flex.weekly);
  for (const auto& st : rx.flex.steps) {
    auto* s = out.mutable_flex()->add_steps();
    s->set_start_offset_ms(absl::ToInt64Milliseconds(st.start_offset));
    s->set_rate_ul_per_day(st.rate.value());
  }
  if (rx.patient_bolus) {
    auto* pb = out.mutable_patient_bolus();
    pb->set_bolus_volume_ul(rx.patient_bolus->volume.value());
    pb->set_bolus_duration_ms(absl::ToInt64Milliseconds(rx.patient_bolus->duration));
    pb->set_lockout_ms(absl::ToInt64Milliseconds(rx.patient_bolus->lockout));
    pb->set_max_per_24h(rx.patient_bolus->max_per_24h);
  }
  out.set_version(rx.version);
  return out;
}

v1::LimitViolation FromViolation(const twin::LimitViolation& v) {
  v1::LimitViolation out;
  out.set_field(v.field);
  out.set_value(v.value);
  out.set_limit(v.limit);
  out.set_hard(v.hard);
  out.set_message(v.message);
  out.set_code(v.code);
  return out;
}

v1::Drug FromDrugLimits(const twin::DrugLimits& d) {
  v1::Drug out;
  out.set_key(d.key);
  out.set_display_name(d.display_name);
  out.set_max_concentration_ug_per_ml(d.max_concentration.value());
  out.set_max_daily_dose_ug(d.max_daily_dose.value());
  out.set_soft_max_daily_dose_ug(d.soft_max_daily_dose.value());
  out.set_titration_max_increase_fraction(d.titration_max_increase_fraction);
  out.set_stability_days(absl::ToDoubleHours(d.stability) / 24.0);
  out.set_oral_morphine_equivalence(d.oral_morphine_equivalence);
  out.set_source(d.source);
  return out;
}

v1::Forecast FromForecast(const twin::Forecast& f, const twin::Twin& twin) {
  v1::Forecast out;
  out.set_calculated_low_reservoir_time_ms(ToUnixMs(f.calculated_low_reservoir));
  out.set_calculated_empty_time_ms(ToUnixMs(f.calculated_empty));
  out.set_estimated_low_reservoir_time_ms(ToUnixMs(f.estimated_low_reservoir));
  out.set_estimated_empty_time_ms(ToUnixMs(f.estimated_empty));
  out.set_estimated_empty_earliest_ms(ToUnixMs(f.estimated_empty_earliest));
  out.set_estimated_empty_latest_ms(ToUnixMs(f.estimated_empty_latest));
  out.set_next_refill_due_ms(ToUnixMs(f.next_refill_due));
  out.set_battery_eri_time_ms(ToUnixMs(f.battery_eri));
  out.set_battery_eos_time_ms(ToUnixMs(f.battery_eos));
  out.set_dose_today_delivered_ug(twin.delivered_today().value());
  out.set_dose_today_prescribed_ug(f.dose_today_prescribed.value());
  return out;
}

v1::TwinState FromTwin(const twin::Twin& t) {
  v1::TwinState s;
  s.set_pump_id(t.config().pump_id);
  s.set_device_time_ms(ToUnixMs(t.device_time()));
  if (auto st = t.last_sample_server_time()) s.set_last_sample_server_time_ms(ToUnixMs(*st));
  s.set_last_seq(t.last_seq());
  s.set_calculated_reservoir_ul(t.calculated_reservoir().value());
  s.set_estimated_reservoir_ul(t.estimated_reservoir().value());
  s.set_delivery_ratio(t.delivery_ratio());
  s.set_delivery_ratio_stddev(t.delivery_ratio_stddev());
  s.set_delivered_today_ug(t.delivered_today().value());
  s.set_delivered_24h_ug(t.delivered_24h().value());
  s.set_delivered_total_ul(t.delivered_total().value());
  s.set_battery_charge_fraction(t.battery_charge_fraction());
  s.set_expected_stroke_pressure_mmhg(t.expected_stroke_pressure().value());
  s.set_pressure_baseline_mmhg(t.pressure_baseline().value());
  s.set_clock_skew_ms(absl::ToDoubleMilliseconds(t.clock_skew()));
  if (auto v = t.last_measured_reservoir()) s.set_last_measured_reservoir_ul(v->value());
  if (auto v = t.reservoir_residual()) s.set_reservoir_residual_ul(v->value());
  if (auto v = t.last_stroke_pressure()) s.set_last_stroke_pressure_mmhg(v->value());
  if (auto v = t.pressure_residual()) s.set_pressure_residual_mmhg(v->value());
  if (auto v = t.last_battery_voltage()) s.set_last_battery_voltage_v(v->value());
  for (const twin::DetectorStatus& d : t.detectors()) {
    auto* out = s.add_detectors();
    out->set_type(static_cast<v1::AlertType>(d.type));
    out->set_state(static_cast<v1::DetectorState>(d.state));
    out->set_detail(d.detail);
  }
  *s.mutable_forecast() = FromForecast(t.ForecastAt(t.device_time()), t);
  s.set_prescription_version(t.prescription().version);
  s.set_drug(t.prescription().drug);
  s.set_concentration_ug_per_ml(t.prescription().concentration.value());
  s.set_last_refill_time_ms(ToUnixMs(t.last_refill_time()));
  s.set_time_zone(std::string(t.config().zone.name()));
  s.set_enrolled(t.enrolled());
  s.set_reports_telemetry(t.ReportsTelemetry());
  return s;
}

void FillDiagnosis(const twin::AlertTransition& t, v1::Alert* alert) {
  if (t.diagnosis.cause.empty()) return;
  alert->set_diagnosis(t.diagnosis.cause);
  alert->clear_alternatives();
  for (const twin::DifferentialAlternative& a : t.diagnosis.alternatives) {
    v1::DifferentialAlternative* out = alert->add_alternatives();
    out->set_cause(a.cause);
    out->set_evidence(a.evidence);
    out->set_ruled_out(a.ruled_out);
  }
}

std::string AlertTypeLabel(v1::AlertType type) {
  std::string name = v1::AlertType_Name(type);
  if (absl::StartsWith(name, "ALERT_TYPE_")) name = name.substr(11);
  return absl::AsciiStrToLower(name);
}

std::string SeverityLabel(v1::Severity severity) {
  std::string name = v1::Severity_Name(severity);
  if (absl::StartsWith(name, "SEVERITY_")) name = name.substr(9);
  return absl::AsciiStrToLower(name);
}

absl::StatusOr<std::string> PumpIdFromName(const std::string& name) {
  if (!absl::StartsWith(name, "pumps/") || name.size() <= 6 ||
      name.find('/', 6) != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("name=", device_link::Echo(name),
                     " is not a pump resource name (expected pumps/{pump_id})"));
  }
  std::string id = name.substr(6);
  if (absl::Status s = device_link::ValidateId(id, "name's pump_id"); !s.ok()) return s;
  return id;
}

std::string PumpName(const std::string& pump_id) { return "pumps/" + pump_id; }

}  // namespace pumptwin::server
