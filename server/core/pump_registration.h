// The twin a registration starts with: a new implant (or trial) at pump.implant_time_ms,
// or an enrolment at the pump's last interrogation (docs/api.md "Enrolment"). Shared by
// RegisterPump and ImplantAfterTrial. Internal to pumptwin_server; stateless.
#ifndef PUMPTWIN_SERVER_PUMP_REGISTRATION_H_
#define PUMPTWIN_SERVER_PUMP_REGISTRATION_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pumptwin/v1/twin_service.pb.h"
#include "twin/drug_library.h"
#include "twin/twin.h"

namespace pumptwin::server {

// INVALID_ARGUMENT naming `field` when `time_ms` is later than now + max_future (a
// mistyped date would move the model past every later sample).
absl::Status CheckNotTooFarAhead(const char* field, int64_t time_ms, absl::Time now,
                                 absl::Duration max_future);

struct RegistrationInput {
  const v1::Pump* pump = nullptr;
  const v1::Prescription* initial_prescription = nullptr;  // null: missing
  double initial_reservoir_ul = 0;
  const v1::Enrolment* enrolment = nullptr;  // null: a new implant
};

// Validates every field (INVALID_ARGUMENT naming it) against `library` and returns the
// twin, registered at `now` (silence counts from there until the first sample).
absl::StatusOr<twin::Twin> RegistrationTwin(const RegistrationInput& in, absl::Time now,
                                            absl::Duration max_future,
                                            const twin::DrugLibrary& library);

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_PUMP_REGISTRATION_H_
