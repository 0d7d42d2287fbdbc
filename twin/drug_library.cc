#include "twin/drug_library.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace pumptwin::twin {
namespace {

DrugLimits Row(const char* key, const char* name, double conc, double daily, double soft,
               double titration, double stability_days, double ome, const char* source) {
  return DrugLimits{key,
                    name,
                    MicrogramsPerMilliliter(conc),
                    MicrogramsPerDay(daily),
                    MicrogramsPerDay(soft),
                    titration,
                    absl::Hours(24 * stability_days),
                    ome,
                    source};
}

// model.md §2. Soft daily maximum = 80 % of the hard one (assumed). Titration guard:
// 20-30 % per 24 h (baclofen titration guidance): 0.20 for baclofen and ziconotide,
// 0.30 otherwise (assumed). Stability: morphine 90 days (label), others (assumed).
std::vector<DrugLimits> DefaultRows() {
  return {
      Row("baclofen", "Baclofen", 2000, 2000, 1600, 0.20, 180, 0,
          "conc 500-2000 ug/mL (label); 2000 ug/day (assumed); stability (assumed)"),
      Row("bupivacaine", "Bupivacaine", 30000, 20000, 16000, 0.30, 90, 0, "PACC 2017 (assumed)"),
      Row("clonidine", "Clonidine", 1000, 600, 480, 0.30, 90, 0, "PACC 2017 (assumed)"),
      Row("fentanyl", "Fentanyl", 10000, 1000, 800, 0.30, 90, 0, "PACC 2017 (assumed)"),
      Row("hydromorphone", "Hydromorphone", 15000, 10000, 8000, 0.30, 90, 0, "PACC 2017 (assumed)"),
      Row("morphine", "Morphine", 20000, 15000, 12000, 0.30, 90, 300,
          "PACC 2017 (assumed); stability 90 days (label); oral:IT 300:1"),
      Row("sufentanil", "Sufentanil", 5000, 500, 400, 0.30, 90, 0, "PACC 2017 (assumed)"),
      Row("ziconotide", "Ziconotide", 100, 19.2, 15.36, 0.20, 60, 0,
          "100 ug/mL, 19.2 ug/day (label); stability (assumed)"),
  };
}

bool Positive(double v) { return std::isfinite(v) && v > 0; }

}  // namespace

absl::StatusOr<DrugLibrary> DrugLibrary::Create(std::vector<DrugLimits> drugs) {
  std::sort(drugs.begin(), drugs.end(),
            [](const DrugLimits& a, const DrugLimits& b) { return a.key < b.key; });
  for (size_t i = 0; i < drugs.size(); ++i) {
    const DrugLimits& d = drugs[i];
    if (d.key.empty()) return absl::InvalidArgumentError("drug.key is empty");
    if (i > 0 && drugs[i - 1].key == d.key) {
      return absl::InvalidArgumentError(absl::StrCat("drug.key '", d.key, "' is duplicated"));
    }
    if (!Positive(d.max_concentration.value()) || !Positive(d.max_daily_dose.value()) ||
        !Positive(d.soft_max_daily_dose.value())) {
      return absl::InvalidArgumentError(
          absl::StrCat("drug '", d.key, "': concentration and daily limits must be > 0"));
    }
    if (d.soft_max_daily_dose > d.max_daily_dose) {
      return absl::InvalidArgumentError(
          absl::StrCat("drug '", d.key, "': soft_max_daily_dose_ug ", d.soft_max_daily_dose.value(),
                       " above max_daily_dose_ug ", d.max_daily_dose.value()));
    }
    if (!std::isfinite(d.titration_max_increase_fraction) ||
        d.titration_max_increase_fraction < 0 || d.stability <= absl::ZeroDuration() ||
        !std::isfinite(d.oral_morphine_equivalence) || d.oral_morphine_equivalence < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("drug '", d.key, "': titration, stability or equivalence invalid"));
    }
  }
  return DrugLibrary(std::move(drugs));
}

const DrugLibrary& DrugLibrary::Default() {
  static const DrugLibrary* kLib = new DrugLibrary(*Create(DefaultRows()));
  return *kLib;
}

absl::StatusOr<DrugLibrary> DrugLibrary::Parse(absl::string_view text) {
  std::vector<DrugLimits> drugs;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (size_t hash = line.find('#'); hash != absl::string_view::npos) line = line.substr(0, hash);
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    std::vector<absl::string_view> f = absl::StrSplit(line, '|');
    if (f.size() != 9) {
      return absl::InvalidArgumentError(
          absl::StrCat("drug library line ", line_no, ": expected 9 fields, got ", f.size()));
    }
    static constexpr const char* kNames[] = {"max_conc_ug_per_ml", "max_daily_ug",
                                             "soft_max_daily_ug",  "titration_fraction",
                                             "stability_days",     "oral_morphine_equivalence"};
    double num[6];
    for (int i = 0; i < 6; ++i) {
      if (!absl::SimpleAtod(absl::StripAsciiWhitespace(f[2 + i]), &num[i])) {
        return absl::InvalidArgumentError(absl::StrCat(
            "drug library line ", line_no, ": ", kNames[i], " '", f[2 + i], "' is not a number"));
      }
    }
    drugs.push_back(DrugLimits{std::string(absl::StripAsciiWhitespace(f[0])),
                               std::string(absl::StripAsciiWhitespace(f[1])),
                               MicrogramsPerMilliliter(num[0]), MicrogramsPerDay(num[1]),
                               MicrogramsPerDay(num[2]), num[3],
                               absl::Nanoseconds(std::llround(num[4] * kNsPerDayD)), num[5],
                               std::string(absl::StripAsciiWhitespace(f[8]))});
  }
  return Create(std::move(drugs));
}

std::string DrugLibrary::Format() const {
  std::string out =
      "# key|display|max_conc_ug_per_ml|max_daily_ug|soft_max_daily_ug|"
      "titration_fraction|stability_days|oral_morphine_equivalence|source\n";
  for (const DrugLimits& d : drugs_) {
    absl::StrAppend(&out, d.key, "|", d.display_name, "|", d.max_concentration.value(), "|",
                    d.max_daily_dose.value(), "|", d.soft_max_daily_dose.value(), "|",
                    d.titration_max_increase_fraction, "|", absl::ToDoubleHours(d.stability) / 24.0,
                    "|", d.oral_morphine_equivalence, "|", d.source, "\n");
  }
  return out;
}

const DrugLimits* DrugLibrary::Find(absl::string_view key) const {
  auto it = std::lower_bound(drugs_.begin(), drugs_.end(), key,
                             [](const DrugLimits& d, absl::string_view k) { return d.key < k; });
  return (it != drugs_.end() && it->key == key) ? &*it : nullptr;
}

MicrogramsPerDay MaxDailyDose(const Prescription& rx) {
  Microliters v = MaxDailyBasalVolume(rx);
  if (rx.patient_bolus.has_value()) {
    v += rx.patient_bolus->volume * static_cast<double>(rx.patient_bolus->max_per_24h);
  }
  const Micrograms dose = v * rx.concentration;
  return MicrogramsPerDay(dose.value());
}

bool HasHardViolation(const std::vector<LimitViolation>& v) {
  return std::any_of(v.begin(), v.end(), [](const LimitViolation& x) { return x.hard; });
}

std::vector<LimitViolation> ValidatePrescription(
    const Prescription& rx, const PumpSpec& spec, const DrugLibrary& library,
    std::optional<MicrogramsPerDay> titration_reference, const PrescriptionBounds& bounds) {
  std::vector<LimitViolation> out;
  auto add = [&out](std::string field, double value, double limit, bool hard, std::string code,
                    std::string message) {
    out.push_back({std::move(field), value, limit, hard, std::move(code), std::move(message)});
  };
  auto check_rate = [&](const std::string& field, MicrolitersPerDay r, bool allow_zero) {
    const double v = r.value();
    if (!std::isfinite(v) || v < 0) {
      add(field, v, 0, true, "INVALID_RATE", field + " must be a finite rate >= 0 uL/day");
    } else if (v == 0 && allow_zero) {
    } else if (v < spec.min_rate.value()) {
      add(field, v, spec.min_rate.value(), true, "HARD_RATE_MIN",
          absl::StrCat(field, " below the pump's minimum ", spec.min_rate.value(), " uL/day"));
    } else if (v > spec.max_rate.value()) {
      add(field, v, spec.max_rate.value(), true, "HARD_RATE_MAX",
          absl::StrCat(field, " above the pump's maximum ", spec.max_rate.value(), " uL/day"));
    }
  };

  const DrugLimits* drug = library.Find(rx.drug);
  if (drug == nullptr) {
    add("prescription.drug", 0, 0, true, "UNKNOWN_DRUG",
        absl::StrCat("drug '", rx.drug, "' is not in the drug library"));
  }
  const double conc = rx.concentration.value();
  if (!Positive(conc)) {
    add("prescription.concentration_ug_per_ml", conc, 0, true, "INVALID_CONCENTRATION",
        "concentration must be finite and > 0 ug/mL");
  } else if (drug != nullptr && conc > drug->max_concentration.value()) {
    add("prescription.concentration_ug_per_ml", conc, drug->max_concentration.value(), true,
        "HARD_CONCENTRATION",
        absl::StrCat("concentration above the ", drug->key, " maximum ",
                     drug->max_concentration.value(), " ug/mL"));
  }

  switch (rx.mode) {
    case TherapyMode::kStopped:
      break;
    case TherapyMode::kSimpleContinuous:
      check_rate("prescription.rate_ul_per_day", rx.rate, /*allow_zero=*/false);
      break;
    case TherapyMode::kFlex: {
      const auto& steps = rx.flex.steps;
      const TimeNs period = SchedulePeriodNs(rx);
      if (steps.empty() || steps.size() > bounds.max_schedule_steps) {
        add("prescription.flex.steps", static_cast<double>(steps.size()),
            static_cast<double>(bounds.max_schedule_steps), true, "INVALID_SCHEDULE",
            "a flex schedule needs 1..max_schedule_steps steps");
        break;
      }
      for (size_t i = 0; i < steps.size(); ++i) {
        const std::string field = absl::StrCat("prescription.flex.steps[", i, "]");
        const TimeNs off = absl::ToInt64Nanoseconds(steps[i].start_offset);
        const TimeNs prev = i == 0 ? -1 : absl::ToInt64Nanoseconds(steps[i - 1].start_offset);
        if ((i == 0 && off != 0) || (i > 0 && off <= prev) || off >= period) {
          add(field + ".start_offset_ms", static_cast<double>(off) / 1e6,
              static_cast<double>(period) / 1e6, true, "INVALID_SCHEDULE",
              "steps must start at 0, increase strictly and stay within the period");
        }
        check_rate(field + ".rate_ul_per_day", steps[i].rate, /*allow_zero=*/true);
      }
      break;
    }
    case TherapyMode::kUnspecified:
    default:
      add("prescription.mode", static_cast<double>(rx.mode), 0, true, "INVALID_MODE",
          "therapy mode must be stopped, simple continuous or flex");
  }
  if (!spec.programmable && (rx.mode == TherapyMode::kFlex || rx.patient_bolus.has_value())) {
    add("prescription.mode", static_cast<double>(rx.mode), 0, true, "NOT_PROGRAMMABLE",
        absl::StrCat(spec.name, " pumps deliver a fixed rate: no flex schedule or patient bolus"));
  }
  if (rx.patient_bolus.has_value()) {
    const PatientBolusLimits& pb = *rx.patient_bolus;
    const double max_ul = spec.max_rate.value();  // one activation never exceeds a day at max rate
    if (!Positive(pb.volume.value()) || pb.volume.value() > max_ul) {
      add("prescription.patient_bolus.bolus_volume_ul", pb.volume.value(), max_ul, true,
          "INVALID_PATIENT_BOLUS", "patient bolus volume must be in (0, max daily rate] uL");
    }
    if (pb.duration < absl::ZeroDuration() || pb.duration > bounds.max_patient_bolus_duration) {
      add("prescription.patient_bolus.bolus_duration_ms", absl::ToDoubleMilliseconds(pb.duration),
          absl::ToDoubleMilliseconds(bounds.max_patient_bolus_duration), true,
          "INVALID_PATIENT_BOLUS", "patient bolus duration out of range");
    }
    if (pb.lockout < pb.duration || pb.lockout > absl::Hours(24)) {
      add("prescription.patient_bolus.lockout_ms", absl::ToDoubleMilliseconds(pb.lockout),
          absl::ToDoubleMilliseconds(pb.duration), true, "INVALID_PATIENT_BOLUS",
          "lockout must be at least the bolus duration and at most 24 h");
    }
    if (pb.max_per_24h == 0 || pb.max_per_24h > bounds.max_patient_boluses_per_24h) {
      add("prescription.patient_bolus.max_per_24h", pb.max_per_24h,
          bounds.max_patient_boluses_per_24h, true, "INVALID_PATIENT_BOLUS",
          "max activations per 24 h must be 1..max_patient_boluses_per_24h");
    }
  }
  if (HasHardViolation(out) || drug == nullptr) return out;

  const double daily = MaxDailyDose(rx).value();
  if (daily > drug->max_daily_dose.value()) {
    add("prescription.daily_dose_ug", daily, drug->max_daily_dose.value(), true, "HARD_DAILY_DOSE",
        absl::StrCat("maximum daily dose ", daily, " ug above the ", drug->key, " hard limit ",
                     drug->max_daily_dose.value(), " ug/day"));
  } else if (daily > drug->soft_max_daily_dose.value()) {
    add("prescription.daily_dose_ug", daily, drug->soft_max_daily_dose.value(), false,
        "SOFT_DAILY_DOSE",
        absl::StrCat("maximum daily dose ", daily, " ug above the ", drug->key, " soft limit ",
                     drug->soft_max_daily_dose.value(), " ug/day"));
  }
  if (titration_reference.has_value() && titration_reference->value() > 0) {
    const double ref = titration_reference->value();
    const double limit = ref * (1.0 + drug->titration_max_increase_fraction);
    if (daily > limit) {
      add("prescription.daily_dose_ug", daily, limit, false, "SOFT_TITRATION",
          absl::StrCat("daily dose increase of ", 100.0 * (daily - ref) / ref,
                       " % within 24 h exceeds the titration guard of ",
                       100.0 * drug->titration_max_increase_fraction, " %"));
    }
  }
  return out;
}

}  // namespace pumptwin::twin
