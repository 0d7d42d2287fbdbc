// The prescription flags shared by `prescription set`, `whatif` and `pumps register`, their
// conversion into a pumptwin.v1.Prescription (units parsed and checked before anything is
// sent), and its human rendering. Value types and pure functions: thread-compatible.
#ifndef PUMPTWIN_TOOLS_CTL_CTL_PRESCRIPTION_H_
#define PUMPTWIN_TOOLS_CTL_CTL_PRESCRIPTION_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pumptwin/v1/resources.pb.h"

namespace pumptwin::ctl {

struct PrescriptionFlags {
  std::string drug;
  std::string concentration;       // "10mg/mL"
  std::string rate;                // simple continuous: "0.5mL/day"
  std::vector<std::string> steps;  // flex: "07:00=0.6mL/day"
  bool weekly = false;
  bool stop = false;      // mode STOPPED
  std::string effective;  // time; empty: now
  std::string reason;
  std::string bolus_volume;  // patient bolus: per activation
  std::string bolus_duration;
  std::string lockout;
  uint32_t max_per_24h = 0;

  // True when any therapy flag was given (whatif/register: absent means "none").
  bool Any() const;
};

void AddPrescriptionFlags(CLI::App* cmd, PrescriptionFlags* flags);

// Parses every unit first (so a unit mistake is what the user hears about), then checks
// that exactly one mode was chosen and that drug and concentration are present.
absl::StatusOr<pumptwin::v1::Prescription> BuildPrescription(const PrescriptionFlags& flags,
                                                             absl::Time now);

// "morphine 10 mg/mL, 0.5 mL/day (5 mg/day)" and similar one-line summaries.
std::string DescribePrescription(const pumptwin::v1::Prescription& p);
// Daily dose of a prescription in µg (flex: averaged over the schedule period).
double DailyDoseUg(const pumptwin::v1::Prescription& p);

}  // namespace pumptwin::ctl

#endif  // PUMPTWIN_TOOLS_CTL_CTL_PRESCRIPTION_H_
