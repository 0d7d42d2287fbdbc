#include "tools/ctl/ctl_prescription.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "tools/ctl/ctl_commands.h"
#include "tools/ctl/ctl_format.h"
#include "tools/ctl/units_parse.h"

namespace pumptwin::ctl {

using pumptwin::v1::Prescription;

bool PrescriptionFlags::Any() const {
  return !drug.empty() || !concentration.empty() || !rate.empty() || !steps.empty() || stop ||
         !bolus_volume.empty() || !bolus_duration.empty() || !lockout.empty() || max_per_24h != 0;
}

void AddPrescriptionFlags(CLI::App* cmd, PrescriptionFlags* f) {
  cmd->add_option("--drug", f->drug, "Drug library key, e.g. morphine");
  cmd->add_option("--concentration", f->concentration,
                  absl::StrCat("Concentration: ", kConcentrationUnitsHelp));
  cmd->add_option("--rate", f->rate, absl::StrCat("Simple continuous rate: ", kRateUnitsHelp));
  cmd->add_option("--step", f->steps,
                  "Flex schedule step HH:MM=RATE (DAY-HH:MM=RATE with --weekly), repeatable, "
                  "e.g. --step 00:00=0.4mL/day --step 07:00=0.6mL/day")
      ->allow_extra_args(false);
  cmd->add_flag("--weekly", f->weekly, "Flex steps are offsets within a week (Mon 00:00 UTC)");
  cmd->add_flag("--stop", f->stop, "Mode STOPPED: no infusion");
  cmd->add_option("--effective", f->effective,
                  absl::StrCat("Applies from (default now): ", kTimeHelp));
  cmd->add_option("--reason", f->reason, "Why (kept in the audit log)");
  cmd->add_option("--bolus_volume", f->bolus_volume,
                  absl::StrCat("Patient bolus volume per activation: ", kVolumeUnitsHelp));
  cmd->add_option("--bolus_duration", f->bolus_duration,
                  absl::StrCat("Patient bolus duration: ", kDurationUnitsHelp));
  cmd->add_option("--lockout", f->lockout, "Patient bolus lockout between activations, e.g. 4h");
  cmd->add_option("--max_per_24h", f->max_per_24h, "Patient boluses allowed per 24 h");
}

absl::StatusOr<Prescription> BuildPrescription(const PrescriptionFlags& f, absl::Time now) {
  Prescription p;
  ConcentrationUgPerMl conc;
  RateUlPerDay rate;
  VolumeUl bolus_volume;
  absl::Duration bolus_duration, lockout;
  bool has_conc = false, has_rate = false, has_bolus_volume = false, has_bolus_duration = false,
       has_lockout = false;
  if (auto s = ParseOptionalFlag("--concentration", f.concentration, ParseConcentration, &conc,
                                 &has_conc);
      !s.ok())
    return s;
  if (auto s = ParseOptionalFlag("--rate", f.rate, ParseRate, &rate, &has_rate); !s.ok()) return s;
  if (auto s = ParseOptionalFlag("--bolus_volume", f.bolus_volume, ParseVolume, &bolus_volume,
                                 &has_bolus_volume);
      !s.ok())
    return s;
  if (auto s = ParseOptionalFlag("--bolus_duration", f.bolus_duration, ParseDuration,
                                 &bolus_duration, &has_bolus_duration);
      !s.ok())
    return s;
  if (auto s = ParseOptionalFlag("--lockout", f.lockout, ParseDuration, &lockout, &has_lockout);
      !s.ok())
    return s;
  std::vector<FlexStep> steps;
  for (const std::string& text : f.steps) {
    absl::StatusOr<FlexStep> step = ParseFlexStep(text, f.weekly);
    if (!step.ok()) return FlagError("--step", step.status());
    steps.push_back(*step);
  }
  if (!f.effective.empty()) {
    absl::StatusOr<absl::Time> t = ParseTime(f.effective, now);
    if (!t.ok()) return FlagError("--effective", t.status());
    p.set_effective_time_ms(absl::ToUnixMillis(*t));
  }

  const int modes = (has_rate ? 1 : 0) + (steps.empty() ? 0 : 1) + (f.stop ? 1 : 0);
  if (modes != 1) {
    return absl::InvalidArgumentError(
        "choose exactly one mode: --rate RATE (simple continuous), --step ... (flex), or --stop");
  }
  if (f.weekly && steps.empty()) return absl::InvalidArgumentError("--weekly needs --step");
  if (f.drug.empty())
    return absl::InvalidArgumentError("--drug is required (a drug library key, see `drugs list`)");
  if (!has_conc)
    return absl::InvalidArgumentError(
        absl::StrCat("--concentration is required: ", kConcentrationUnitsHelp));
  p.set_drug(f.drug);
  p.set_concentration_ug_per_ml(conc.ug_per_ml);
  if (has_rate) {
    p.set_mode(pumptwin::v1::THERAPY_MODE_SIMPLE_CONTINUOUS);
    p.set_rate_ul_per_day(rate.ul_per_day);
  } else if (!steps.empty()) {
    absl::StatusOr<std::vector<FlexStep>> sorted = NormalizeFlexSteps(std::move(steps), f.weekly);
    if (!sorted.ok()) return FlagError("--step", sorted.status());
    p.set_mode(pumptwin::v1::THERAPY_MODE_FLEX);
    p.mutable_flex()->set_weekly(f.weekly);
    for (const FlexStep& s : *sorted) {
      auto* step = p.mutable_flex()->add_steps();
      step->set_start_offset_ms(absl::ToInt64Milliseconds(s.start_offset));
      step->set_rate_ul_per_day(s.rate.ul_per_day);
    }
  } else {
    p.set_mode(pumptwin::v1::THERAPY_MODE_STOPPED);
  }
  const bool any_bolus =
      has_bolus_volume || has_bolus_duration || has_lockout || f.max_per_24h != 0;
  if (any_bolus) {
    if (!has_bolus_volume || !has_bolus_duration || !has_lockout || f.max_per_24h == 0) {
      return absl::InvalidArgumentError(
          "patient bolus limits need all of --bolus_volume, --bolus_duration, --lockout, "
          "--max_per_24h");
    }
    auto* b = p.mutable_patient_bolus();
    b->set_bolus_volume_ul(bolus_volume.ul);
    b->set_bolus_duration_ms(absl::ToInt64Milliseconds(bolus_duration));
    b->set_lockout_ms(absl::ToInt64Milliseconds(lockout));
    b->set_max_per_24h(f.max_per_24h);
  }
  p.set_reason(f.reason);
  return p;
}

namespace {

// "07:00", or "Tue-07:00" for weekly schedules.
std::string FormatScheduleOffset(int64_t offset_ms, bool weekly) {
  static constexpr const char* kDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  const int64_t minutes = offset_ms / 60000;
  const int64_t day = minutes / (24 * 60);
  std::string hhmm = absl::StrFormat("%02d:%02d", (minutes / 60) % 24, minutes % 60);
  if (!weekly || day < 0 || day > 6) return hhmm;
  return absl::StrCat(kDays[day], "-", hhmm);
}

}  // namespace

double DailyDoseUg(const Prescription& p) {
  const double ug_per_ul = p.concentration_ug_per_ml() / 1000.0;  // µg per µL
  switch (p.mode()) {
    case pumptwin::v1::THERAPY_MODE_SIMPLE_CONTINUOUS:
      return p.rate_ul_per_day() * ug_per_ul;
    case pumptwin::v1::THERAPY_MODE_FLEX: {
      const auto& steps = p.flex().steps();
      if (steps.empty()) return 0;
      const double period_ms = p.flex().weekly() ? 7 * 86400000.0 : 86400000.0;
      double ul = 0;
      for (int i = 0; i < steps.size(); ++i) {
        const double end = i + 1 < steps.size() ? steps[i + 1].start_offset_ms() : period_ms;
        ul += steps[i].rate_ul_per_day() * (end - steps[i].start_offset_ms()) / 86400000.0;
      }
      return ul * ug_per_ul * 86400000.0 / period_ms;
    }
    default:
      return 0;
  }
}

std::string DescribePrescription(const Prescription& p) {
  std::string out = absl::StrCat(p.drug().empty() ? "-" : p.drug(), " ",
                                 UgPerMlAsMgPerMl(p.concentration_ug_per_ml()), " mg/mL, ");
  switch (p.mode()) {
    case pumptwin::v1::THERAPY_MODE_SIMPLE_CONTINUOUS:
      absl::StrAppend(&out, UlPerDayAsMlPerDay(p.rate_ul_per_day()), " mL/day");
      break;
    case pumptwin::v1::THERAPY_MODE_FLEX: {
      std::vector<std::string> steps;
      for (const auto& s : p.flex().steps()) {
        steps.push_back(absl::StrCat(FormatScheduleOffset(s.start_offset_ms(), p.flex().weekly()),
                                     "=", UlPerDayAsMlPerDay(s.rate_ul_per_day()), " mL/day"));
      }
      absl::StrAppend(&out, p.flex().weekly() ? "weekly" : "daily", " flex [",
                      absl::StrJoin(steps, ", "), "]");
      break;
    }
    case pumptwin::v1::THERAPY_MODE_STOPPED:
      absl::StrAppend(&out, "stopped");
      break;
    default:
      absl::StrAppend(&out, "mode unspecified");
  }
  absl::StrAppend(&out, " (", UgAsMg(DailyDoseUg(p)), " mg/day)");
  if (p.has_patient_bolus()) {
    const auto& b = p.patient_bolus();
    absl::StrAppend(&out, "; patient bolus ", UlAsMl(b.bolus_volume_ul()), " mL over ",
                    FormatDurationMs(b.bolus_duration_ms()), ", lockout ",
                    FormatDurationMs(b.lockout_ms()), ", max ", b.max_per_24h(), "/24h");
  }
  return out;
}

}  // namespace pumptwin::ctl
