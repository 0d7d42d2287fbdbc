// Alert, severity and detector-state vocabulary of the twin, plus the AlertTransition
// value the twin emits. Enum values mirror pumptwin.v1 (resources.proto) one to one, so
// the server converts with a static_cast after a range check.
// Plain value types; thread-compatible.
#ifndef PUMPTWIN_TWIN_ALERT_TYPES_H_
#define PUMPTWIN_TWIN_ALERT_TYPES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pumptwin::twin {

// Mirrors pumptwin.v1.AlertType.
enum class AlertType : uint8_t {
  kUnspecified = 0,
  kFlowDriftOver = 1,
  kFlowDriftUnder = 2,
  kCatheterBlockage = 3,
  kCatheterLeak = 4,
  kBatteryDepletion = 5,
  kLowReservoir = 6,
  kRunsDryBeforeAlarm = 7,
  kRefillDiscrepancy = 8,
  kPocketFill = 9,
  kMotorStall = 10,
  kNoResumptionAfterMri = 11,
  kPatientBolusLockout = 12,
  kDailyDoseLimit = 13,
  kSilentPump = 14,
  kClockSkew = 15,
  kDrugStability = 16,
};
inline constexpr int kNumAlertTypes = 17;  // including kUnspecified (index 0, unused)

// Mirrors pumptwin.v1.Severity.
enum class Severity : uint8_t { kUnspecified = 0, kInfo = 1, kWarning = 2, kCritical = 3 };

// Mirrors pumptwin.v1.AlertTransitionKind (the twin never emits kAcknowledged: that
// is a clinician action handled by the server).
enum class TransitionKind : uint8_t { kUnspecified = 0, kRaised = 1, kUpdated = 2, kResolved = 4 };

// Mirrors pumptwin.v1.DetectorState.
enum class DetectorState : uint8_t {
  kUnspecified = 0,
  kOk = 1,
  kAlerting = 2,
  kNotObservable = 3,  // the pump profile lacks the detector's signals
  kUnknown = 4,        // pump silent: no recent data
  kWarmingUp = 5,      // observable, not enough data yet
};

// One piece of evidence behind an alert: what was seen, what the model predicted, and
// the threshold that was crossed. `unit` names the unit of observed/predicted/threshold.
struct Evidence {
  std::string signal;
  double observed = 0.0;
  double predicted = 0.0;
  double threshold = 0.0;
  std::string unit;
  std::string note;

  bool operator==(const Evidence&) const = default;
};

// A cause the twin considered for an alert and did not name first, with the evidence that
// separates it from the named cause (mirrors pumptwin.v1.DifferentialAlternative).
struct DifferentialAlternative {
  std::string cause;       // e.g. "catheter occlusion"
  std::string evidence;    // what speaks for or against it, with the numbers
  bool ruled_out = false;  // the evidence excludes it (rather than making it less likely)

  bool operator==(const DifferentialAlternative&) const = default;
};

// The differential diagnosis of an alert: the most likely cause and the alternatives.
struct Diagnosis {
  std::string cause;
  std::vector<DifferentialAlternative> alternatives;

  bool operator==(const Diagnosis&) const = default;
};

// A change of one alert of one pump: at most one active alert per (pump, type).
struct AlertTransition {
  AlertType type = AlertType::kUnspecified;
  Severity severity = Severity::kUnspecified;
  TransitionKind kind = TransitionKind::kUnspecified;
  absl::Time device_time = absl::UnixEpoch();  // model (device) time of the transition
  std::vector<Evidence> evidence;
  std::string summary;
  Diagnosis diagnosis;  // empty cause: none given (raise and update carry one where known)

  bool operator==(const AlertTransition&) const = default;
};

struct DetectorStatus {
  AlertType type = AlertType::kUnspecified;
  DetectorState state = DetectorState::kUnspecified;
  std::string detail;

  bool operator==(const DetectorStatus&) const = default;
};

// Stable lower-case name, e.g. "flow_drift_over"; "unspecified" for out-of-range values.
absl::string_view AlertTypeName(AlertType type);
absl::string_view SeverityName(Severity severity);

}  // namespace pumptwin::twin

#endif  // PUMPTWIN_TWIN_ALERT_TYPES_H_
