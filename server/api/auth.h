// Authorization of TwinService calls: who is calling (actor), with which role, and which
// clinic's pumps they may see. Authorizer is the seam; the token-file implementation maps
// bearer tokens to roles and clinics.
// OpenAuthorizer (no tokens configured: loopback demo and tests) lets everyone act as
// admin under the actor name "anonymous" and is refused on non-loopback listeners.
// Implementations are thread-safe.
#ifndef PUMPTWIN_SERVER_AUTH_H_
#define PUMPTWIN_SERVER_AUTH_H_

#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/server_context.h"

namespace pumptwin::server {

// Ordered: a higher role may do everything a lower one may.
enum class Role : int { kViewer = 1, kClinician = 2, kAdmin = 3 };

struct Principal {
  std::string actor;  // e.g. token name "dr.smith" or "anonymous"
  Role role = Role::kViewer;
  // The one clinic whose pumps, alerts and twins this principal may see and change; empty:
  // every clinic (admins, and viewer/clinician tokens given to fleet-wide systems).
  std::string clinic;

  bool SeesClinic(const std::string& pump_clinic) const {
    return clinic.empty() || clinic == pump_clinic;
  }
};

class Authorizer {
 public:
  virtual ~Authorizer() = default;
  // UNAUTHENTICATED (no/unknown token) or PERMISSION_DENIED (role too low), with a
  // message naming the required role.
  virtual absl::StatusOr<Principal> Check(const grpc::CallbackServerContext& ctx,
                                          Role required) const = 0;
};

class OpenAuthorizer final : public Authorizer {
 public:
  absl::StatusOr<Principal> Check(const grpc::CallbackServerContext&, Role) const override {
    return Principal{"anonymous", Role::kAdmin};
  }
};

const char* RoleName(Role role);

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_AUTH_H_
