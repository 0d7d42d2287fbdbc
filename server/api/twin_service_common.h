// Helpers shared by the TwinService method files (twin_service_*.cc): the shape of a
// clinical change of one pump (PumpChange), audit drafts, opaque page tokens, page-size rules, the
// read-modify-write of registrations inside a shard mutation, and the "is this pump archived"
// check. Internal to pumptwin_api. Thread-safety: free functions; RegistrationOverlay is
// internally locked.
#ifndef PUMPTWIN_SERVER_TWIN_SERVICE_COMMON_H_
#define PUMPTWIN_SERVER_TWIN_SERVICE_COMMON_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "pumptwin/v1/resources.pb.h"
#include "server/api/auth.h"
#include "server/core/commit_gate.h"
#include "server/core/pump_directory.h"
#include "server/core/shard.h"
#include "server/store/store.h"

namespace pumptwin::server {

struct TwinServiceDeps;

std::string MessageJson(const google::protobuf::Message& m);

// Who makes a pump-scoped call, and on which pump.
struct PumpCaller {
  Principal who;
  std::string pump_id;
};

// The start of a pump-scoped call: the caller must hold `role`, `name` must be a pump
// resource name, and a caller scoped to a clinic must name a pump of that clinic
// (CheckPumpInScope). Returns the caller and the pump id, or the status to finish with.
absl::StatusOr<PumpCaller> AuthorizePumpCall(const TwinServiceDeps& deps,
                                             const grpc::CallbackServerContext& ctx, Role role,
                                             const std::string& name);
// The same when only the pump id is needed (the read calls).
absl::StatusOr<std::string> AuthorizedPumpId(const TwinServiceDeps& deps,
                                             const grpc::CallbackServerContext& ctx, Role role,
                                             const std::string& name);

// PERMISSION_DENIED when `who` is scoped to a clinic and `pump_id` is registered in
// another one (an unregistered pump passes: the call then answers NOT_FOUND itself).
absl::Status CheckPumpInScope(const PumpDirectory& dir, const Principal& who,
                              const std::string& pump_id);

// The clinic filter of a list or a stream for `who`: `requested` when the caller may see it
// (empty: every clinic), the caller's own clinic when it is scoped and asked for none, and
// PERMISSION_DENIED when a scoped caller asks for another clinic.
absl::StatusOr<std::string> ScopedClinic(const Principal& who, const std::string& requested);

AuditDraft MakeAudit(const Principal& who, absl::Time now, const char* method,
                     const std::string& resource, std::string before_json, std::string after_json,
                     const std::string& reason);

// page_size: 0 -> default, above max -> max, negative -> INVALID_ARGUMENT naming field.
absl::StatusOr<int> PageSize(int32_t requested, int default_size, int max_size,
                             const char* field = "page_size");

// Opaque page tokens: web-safe base64 of "<kind>|<payload>". Decoding a token of another
// kind, or garbage, is INVALID_ARGUMENT ("not a page_token returned by <method>").
std::string EncodePageToken(absl::string_view kind, absl::string_view payload);
absl::StatusOr<std::string> DecodePageToken(absl::string_view token, absl::string_view kind,
                                            absl::string_view method);

// FAILED_PRECONDITION when the directory says the pump is decommissioned (read-only).
absl::Status CheckNotDecommissioned(const PumpDirectory& dir, const std::string& pump_id);

// The registration of a pump as the latest mutation left it: registrations changed by
// a shard mutation whose group is not yet durable are served from here, so two quick
// read-modify-writes of one pump never lose an update. Call Load/Stage/Claim only on the
// pump's shard thread (inside TwinRegistry::Mutate); Release after the commit.
// A change that must write a pump's registration from another shard (DecommissionPump
// writes the old pump's with its successor's) first claims it on its own shard: until
// the claim is staged over or released, Load of that pump answers ABORTED.
// Owned by the TwinServiceImpl whose handlers use it (one per store).
class RegistrationOverlay {
 public:
  absl::StatusOr<v1::Pump> Load(const store::Store& store, const std::string& pump_id);
  // Remembers `pump` as the newest registration; returns a ticket for Release.
  uint64_t Stage(const v1::Pump& pump);
  // Reserves the registration of `pump_id` for one writer; returns a ticket for Stage
  // over it (any Stage replaces the claim) or Release.
  uint64_t Claim(const std::string& pump_id);
  void Release(const std::string& pump_id, uint64_t ticket);

 private:
  struct Staged {
    v1::Pump pump;
    uint64_t ticket = 0;
    bool claimed = false;  // Claim: no registration, Load answers ABORTED
  };
  absl::Mutex mu_;
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<std::string, Staged> staged_ ABSL_GUARDED_BY(mu_);
};

// The audit record of a change: the state before and after it, as JSON.
struct ChangeJson {
  std::string before;
  std::string after;
};

// The registrations a change staged or claimed (pump id, RegistrationOverlay ticket): all are
// released when the call finishes.
using StagedRegistrations = std::vector<std::pair<std::string, uint64_t>>;

// What a clinical change sees on a shard thread (inside TwinRegistry::Mutate): the change's
// pump, and the twin of the shard's pump (the change's pump, except in the second step of
// PumpChange::ApplyAcross).
class PumpChangeScope {
 public:
  PumpChangeScope(twin::Twin& twin, MutationContext& mctx, const Principal& who,
                  const std::string& pump_id, store::Store* store, RegistrationOverlay* overlay,
                  StagedRegistrations* staged)
      : twin_(twin),
        mctx_(mctx),
        who_(who),
        pump_id_(pump_id),
        store_(store),
        overlay_(overlay),
        staged_(staged) {}
  twin::Twin& twin() const { return twin_; }
  MutationContext& mutation() const { return mctx_; }
  const Principal& who() const { return who_; }
  const std::string& pump_id() const { return pump_id_; }
  // The newest registration of the change's pump, or of `pump_id` (RegistrationOverlay::Load).
  absl::StatusOr<v1::Pump> LoadRegistration() const;
  absl::StatusOr<v1::Pump> LoadRegistrationOf(const std::string& pump_id) const;
  // Writes `pump` as the registration of the change's pump (StageRegistration) or of
  // pump.pump_id() (StageRegistrationOf) with the change, and serves it from the overlay
  // until the call finishes.
  void StageRegistration(const v1::Pump& pump);
  void StageRegistrationOf(const v1::Pump& pump);
  // One more audit record of the change, on `resource`, after the change's own.
  void AuditAlso(std::string resource, ChangeJson json);

 private:
  friend class PumpChange;
  void Stage(const std::string& pump_id, const v1::Pump& pump);
  // Reserves the change's pump's registration until the call finishes or the change stages
  // it (RegistrationOverlay::Claim).
  void ClaimRegistration();

  twin::Twin& twin_;
  MutationContext& mctx_;
  const Principal& who_;
  const std::string& pump_id_;
  store::Store* store_;
  RegistrationOverlay* overlay_;
  StagedRegistrations* staged_;
  std::vector<std::pair<std::string, ChangeJson>> also_audited_;
};

// The part of a clinical change that differs per method: on the pump's shard thread,
// validates and applies it to the twin (or registration), fills the response, and returns
// the before/after JSON of its audit record, or the status to finish the call with.
using PumpChangeFn = std::function<absl::StatusOr<ChangeJson>(PumpChangeScope& scope)>;
// The first step of a change across two shards (ApplyAcross): checks the pump on its shard.
using PumpCheckFn = std::function<absl::Status(PumpChangeScope& scope)>;

// The shape of a clinical change of one pump, said once. The constructor takes the reactor
// and authorizes (the caller holds `role`, `name` is a pump resource name); the handler then
// checks the request (`return call.Fail(s)`), and Apply queues the change on the pump's
// shard, audits it as `method` by the caller with `reason` (MakeAudit), and finishes the
// call with the status of the change or of its commit.
class PumpChange {
 public:
  PumpChange(const TwinServiceDeps& deps, RegistrationOverlay* overlay,
             grpc::CallbackServerContext* ctx, Role role, const std::string& name);
  // The authorization status; on failure, finish with Fail(status()).
  const absl::Status& status() const { return status_; }
  bool ok() const { return status_.ok(); }
  const Principal& who() const { return who_; }
  const std::string& pump_id() const { return pump_id_; }
  // Finishes the call with `s` (a failed check of the request).
  grpc::ServerUnaryReactor* Fail(const absl::Status& s);
  // For a pump in service: a decommissioned pump is refused (FAILED_PRECONDITION, NOT_FOUND
  // when unknown) before the change is queued and again on the shard thread.
  grpc::ServerUnaryReactor* Apply(const char* method, std::string reason, PumpChangeFn change);
  // For a change that checks the pump's lifecycle itself (the trial calls, DecommissionPump).
  grpc::ServerUnaryReactor* ApplyAnyLifecycle(const char* method, std::string reason,
                                              PumpChangeFn change);
  // For a change that also writes the registration of `other_pump_id`, serialised with every
  // other change of either pump (DecommissionPump naming a successor): `check` runs on the
  // pump's shard and the pump's registration is claimed; once every earlier change of the
  // pump is durable, `change` runs on the other pump's shard (scope.twin() is the other
  // pump's twin) and commits both in one group. The pump's lifecycle is checked by `check`.
  grpc::ServerUnaryReactor* ApplyAcross(const char* method, std::string reason,
                                        std::string other_pump_id, PumpCheckFn check,
                                        PumpChangeFn change);

 private:
  // The change as a shard mutation: applies `change`, audits it, and records what it staged.
  Shard::MutateFn Mutation(const char* method, std::string reason, PumpChangeFn change,
                           bool refuse_decommissioned,
                           std::shared_ptr<StagedRegistrations> staged) const;
  // Releases what the change staged and finishes the call.
  std::function<void(absl::Status)> Finish(std::shared_ptr<StagedRegistrations> staged) const;
  grpc::ServerUnaryReactor* Queue(const char* method, std::string reason, PumpChangeFn change,
                                  bool refuse_decommissioned);

  const TwinServiceDeps& deps_;
  RegistrationOverlay* overlay_;
  grpc::ServerUnaryReactor* reactor_;
  absl::Status status_;
  Principal who_;
  std::string pump_id_;
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_TWIN_SERVICE_COMMON_H_
