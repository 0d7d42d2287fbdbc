// DrugLibrary: per-drug hard and soft limits (model.md §2), and ValidatePrescription,
// which checks a prescription against the library and the pump profile and returns every
// violation (field, value, limit, hard/soft, stable code, message).
// A DrugLibrary is immutable after construction; share it freely (thread-safe for reads).
#ifndef PUMPTWIN_TWIN_DRUG_LIBRARY_H_
#define PUMPTWIN_TWIN_DRUG_LIBRARY_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "twin/pump_profile.h"
#include "twin/therapy.h"
#include "twin/units.h"

namespace pumptwin::twin {

struct DrugLimits {
  std::string key;  // "morphine"
  std::string display_name;
  MicrogramsPerMilliliter max_concentration;     // hard
  MicrogramsPerDay max_daily_dose;               // hard
  MicrogramsPerDay soft_max_daily_dose;          // soft: needs acknowledgement
  double titration_max_increase_fraction = 0.0;  // soft: daily-dose increase within 24 h
  absl::Duration stability;                      // in-pump stability window
  double oral_morphine_equivalence = 0.0;        // display factor, 0 if n/a
  std::string source;                            // where the numbers come from
  bool operator==(const DrugLimits&) const = default;
};

class DrugLibrary {
 public:
  // INVALID_ARGUMENT on an empty/duplicate key or a non-finite/non-positive limit, or a
  // soft daily maximum above the hard one.
  static absl::StatusOr<DrugLibrary> Create(std::vector<DrugLimits> drugs);

  // The default table of model.md §2 (PACC 2017 values marked (assumed) until checked).
  static const DrugLibrary& Default();

  // Text format, one drug per line, '#' starts a comment, fields separated by '|':
  //   key|display name|max_conc_ug_per_ml|max_daily_ug|soft_max_daily_ug|
  //   titration_fraction|stability_days|oral_morphine_equivalence|source
  // INVALID_ARGUMENT naming the line and field on any malformed line.
  static absl::StatusOr<DrugLibrary> Parse(absl::string_view text);
  // Inverse of Parse (round-trips exactly for values that print in 17 significant digits).
  std::string Format() const;

  const DrugLimits* Find(absl::string_view key) const;
  const std::vector<DrugLimits>& drugs() const { return drugs_; }

 private:
  explicit DrugLibrary(std::vector<DrugLimits> drugs) : drugs_(std::move(drugs)) {}
  std::vector<DrugLimits> drugs_;  // sorted by key
};

struct LimitViolation {
  std::string field;  // e.g. "prescription.daily_dose_ug"
  double value = 0.0;
  double limit = 0.0;
  bool hard = false;  // hard: reject; soft: warn, needs acknowledgement
  std::string code;   // stable id, e.g. "SOFT_DAILY_DOSE"
  std::string message;
  bool operator==(const LimitViolation&) const = default;
};

// Structural caps that are not clinical limits (assumed; generous).
struct PrescriptionBounds {
  size_t max_schedule_steps = 96;  // 13/day (label) × 7, rounded up
  absl::Duration max_patient_bolus_duration = absl::Hours(24);
  uint32_t max_patient_boluses_per_24h = 24;
};

// Maximum daily dose the prescription allows: the largest basal day plus every patient
// bolus allowed in 24 h.
MicrogramsPerDay MaxDailyDose(const Prescription& rx);

// Every violation of `rx` against `library` and `spec`. `titration_reference` is the
// daily dose in force at the start of the 24 h titration window (nullopt: no guard).
std::vector<LimitViolation> ValidatePrescription(
    const Prescription& rx, const PumpSpec& spec, const DrugLibrary& library,
    std::optional<MicrogramsPerDay> titration_reference,
    const PrescriptionBounds& bounds = PrescriptionBounds());

bool HasHardViolation(const std::vector<LimitViolation>& v);

}  // namespace pumptwin::twin

#endif  // PUMPTWIN_TWIN_DRUG_LIBRARY_H_
