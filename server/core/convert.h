// The one place mapping pumptwin.v1 protobuf messages to twin/ types and back (telemetry
// samples are mapped in device_link/sample_codec). Validation errors name the proto field.
// Stateless free functions; thread-safe.
#ifndef PUMPTWIN_SERVER_CONVERT_H_
#define PUMPTWIN_SERVER_CONVERT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pumptwin/v1/resources.pb.h"
#include "pumptwin/v1/twin_service.pb.h"
#include "twin/alert_types.h"
#include "twin/pump_profile.h"
#include "twin/therapy.h"
#include "twin/twin.h"

namespace pumptwin::server {

int64_t ToUnixMs(absl::Time t);  // InfiniteFuture/Past -> 0 ("not within horizon")
absl::Time FromUnixMs(int64_t ms);

// Pump registration -> model config. INVALID_ARGUMENT naming `pump.<field>`.
// pump.time_zone is loaded from the system tzdata (absl::LoadTimeZone).
absl::StatusOr<twin::PumpConfig> ToPumpConfig(const v1::Pump& pump);

// An IANA time zone name ("" and "UTC": UTC) loaded and interned for the twin.
// INVALID_ARGUMENT naming `field` for a malformed or unknown zone. This is also the loader
// twin::LocalZone uses to resolve the zone of a decoded twin (installed by this library).
absl::StatusOr<twin::LocalZone> LoadLocalZone(absl::string_view name,
                                              absl::string_view field = "pump.time_zone");

// Enrolment of a pump implanted earlier -> twin enrolment. INVALID_ARGUMENT naming
// `enrolment.<field>` for negative or non-finite values (the twin checks the rest).
absl::StatusOr<twin::Enrolment> ToEnrolment(const v1::Enrolment& e);

absl::StatusOr<twin::Prescription> ToPrescription(const v1::Prescription& rx);
v1::Prescription FromPrescription(const twin::Prescription& rx);

v1::LimitViolation FromViolation(const twin::LimitViolation& v);
v1::Drug FromDrugLimits(const twin::DrugLimits& d);
v1::Forecast FromForecast(const twin::Forecast& f, const twin::Twin& twin);
// Live twin -> TwinState (detectors, forecast at the model time).
v1::TwinState FromTwin(const twin::Twin& twin);

// Sets alert.diagnosis and alert.alternatives from the transition's differential diagnosis
// (left as they are when the transition carries none, e.g. a resolve).
void FillDiagnosis(const twin::AlertTransition& t, v1::Alert* alert);

// "flow_drift_over" style names of the proto enums (for metric labels and alert ids).
std::string AlertTypeLabel(v1::AlertType type);
std::string SeverityLabel(v1::Severity severity);

// Pump resource names: "pumps/{id}" <-> id. INVALID_ARGUMENT with the expected form.
absl::StatusOr<std::string> PumpIdFromName(const std::string& name);
std::string PumpName(const std::string& pump_id);

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_CONVERT_H_
