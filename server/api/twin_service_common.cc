#include "server/api/twin_service_common.h"

#include <memory>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "device_link/input_limits.h"
#include "google/protobuf/util/json_util.h"
#include "server/api/twin_service.h"
#include "server/core/convert.h"

namespace pumptwin::server {

absl::StatusOr<PumpCaller> AuthorizePumpCall(const TwinServiceDeps& deps,
                                             const grpc::CallbackServerContext& ctx, Role role,
                                             const std::string& name) {
  auto principal = deps.auth->Check(ctx, role);
  if (!principal.ok()) return principal.status();
  auto id = PumpIdFromName(name);
  if (!id.ok()) return id.status();
  if (absl::Status s = CheckPumpInScope(deps.registry->directory(), *principal, *id); !s.ok()) {
    return s;
  }
  return PumpCaller{*std::move(principal), *std::move(id)};
}

absl::StatusOr<std::string> AuthorizedPumpId(const TwinServiceDeps& deps,
                                             const grpc::CallbackServerContext& ctx, Role role,
                                             const std::string& name) {
  auto caller = AuthorizePumpCall(deps, ctx, role, name);
  if (!caller.ok()) return caller.status();
  return std::move(caller->pump_id);
}

absl::Status CheckPumpInScope(const PumpDirectory& dir, const Principal& who,
                              const std::string& pump_id) {
  if (who.clinic.empty()) return absl::OkStatus();
  std::optional<PumpEntry> entry = dir.Get(pump_id);
  if (!entry.has_value()) return absl::OkStatus();
  std::string clinic = dir.ClinicName(entry->clinic_id);
  if (who.SeesClinic(clinic)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("pump '", pump_id, "' is not a pump of clinic '",
                                                  who.clinic, "', the only clinic '", who.actor,
                                                  "' may see"));
}

absl::StatusOr<std::string> ScopedClinic(const Principal& who, const std::string& requested) {
  if (who.clinic.empty()) return requested;
  if (requested.empty() || requested == who.clinic) return who.clinic;
  return absl::PermissionDeniedError(absl::StrCat("clinic='", device_link::Echo(requested), "': '",
                                                  who.actor, "' may see clinic '", who.clinic,
                                                  "' only"));
}

std::string MessageJson(const google::protobuf::Message& m) {
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out);
  return out;
}

AuditDraft MakeAudit(const Principal& who, absl::Time now, const char* method,
                     const std::string& resource, std::string before_json, std::string after_json,
                     const std::string& reason) {
  return MakeAuditDraft({.actor = who.actor,
                         .role = RoleName(who.role),
                         .method = absl::StrCat("TwinService.", method),
                         .resource = resource,
                         .before_json = std::move(before_json),
                         .after_json = std::move(after_json),
                         .reason = reason,
                         .server_time = now});
}

absl::StatusOr<int> PageSize(int32_t requested, int default_size, int max_size, const char* field) {
  if (requested < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, "=", requested, " must be >= 0 (0: default ", default_size,
                     ", larger than ", max_size, ": ", max_size, ")"));
  }
  if (requested == 0) return default_size;
  return requested > max_size ? max_size : requested;
}

std::string EncodePageToken(absl::string_view kind, absl::string_view payload) {
  return absl::WebSafeBase64Escape(absl::StrCat(kind, "|", payload));
}

absl::StatusOr<std::string> DecodePageToken(absl::string_view token, absl::string_view kind,
                                            absl::string_view method) {
  std::string raw;
  const std::string prefix = absl::StrCat(kind, "|");
  if (!absl::WebSafeBase64Unescape(token, &raw) || !absl::StartsWith(raw, prefix)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_token=", device_link::Echo(token), " is not a page_token returned by ", method,
        "; pass the next_page_token of the previous page unchanged, or empty for the first"));
  }
  return raw.substr(prefix.size());
}

absl::Status CheckNotDecommissioned(const PumpDirectory& dir, const std::string& pump_id) {
  auto e = dir.Get(pump_id);
  if (!e.has_value()) {
    return absl::NotFoundError(absl::StrCat("pump '", pump_id, "' is not registered"));
  }
  if (e->lifecycle == v1::PUMP_LIFECYCLE_DECOMMISSIONED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "pump '", pump_id, "' is decommissioned (archived, read-only); nothing was changed"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Pump> RegistrationOverlay::Load(const store::Store& store,
                                                   const std::string& pump_id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = staged_.find(pump_id);
    if (it != staged_.end()) {
      if (it->second.claimed) {
        return absl::AbortedError(
            absl::StrCat("pump '", pump_id,
                         "' is being decommissioned by another call; nothing was changed, "
                         "retry"));
      }
      return it->second.pump;
    }
  }
  auto bytes = store.GetPump(pump_id);
  if (!bytes.ok()) {
    if (absl::IsNotFound(bytes.status())) {
      return absl::NotFoundError(absl::StrCat("pump '", pump_id, "' is not registered"));
    }
    return bytes.status();
  }
  v1::Pump pump;
  if (!pump.ParseFromString(*bytes)) {
    return absl::DataLossError(absl::StrCat("registration of pump '", pump_id, "' does not parse"));
  }
  return pump;
}

uint64_t RegistrationOverlay::Stage(const v1::Pump& pump) {
  absl::MutexLock lock(&mu_);
  uint64_t ticket = next_ticket_++;
  staged_.insert_or_assign(pump.pump_id(), Staged{pump, ticket});
  return ticket;
}

uint64_t RegistrationOverlay::Claim(const std::string& pump_id) {
  absl::MutexLock lock(&mu_);
  uint64_t ticket = next_ticket_++;
  Staged claim;
  claim.ticket = ticket;
  claim.claimed = true;
  staged_.insert_or_assign(pump_id, std::move(claim));
  return ticket;
}

void RegistrationOverlay::Release(const std::string& pump_id, uint64_t ticket) {
  absl::MutexLock lock(&mu_);
  auto it = staged_.find(pump_id);
  if (it != staged_.end() && it->second.ticket == ticket) staged_.erase(it);
}

absl::StatusOr<v1::Pump> PumpChangeScope::LoadRegistration() const {
  return overlay_->Load(*store_, pump_id_);
}

absl::StatusOr<v1::Pump> PumpChangeScope::LoadRegistrationOf(const std::string& pump_id) const {
  return overlay_->Load(*store_, pump_id);
}

void PumpChangeScope::StageRegistration(const v1::Pump& pump) { Stage(pump_id_, pump); }

void PumpChangeScope::StageRegistrationOf(const v1::Pump& pump) { Stage(pump.pump_id(), pump); }

void PumpChangeScope::Stage(const std::string& pump_id, const v1::Pump& pump) {
  mctx_.extra.pumps.emplace_back(pump_id, pump.SerializeAsString());
  staged_->emplace_back(pump_id, overlay_->Stage(pump));
}

void PumpChangeScope::ClaimRegistration() {
  staged_->emplace_back(pump_id_, overlay_->Claim(pump_id_));
}

void PumpChangeScope::AuditAlso(std::string resource, ChangeJson json) {
  also_audited_.emplace_back(std::move(resource), std::move(json));
}

PumpChange::PumpChange(const TwinServiceDeps& deps, RegistrationOverlay* overlay,
                       grpc::CallbackServerContext* ctx, Role role, const std::string& name)
    : deps_(deps), overlay_(overlay), reactor_(ctx->DefaultReactor()) {
  auto caller = AuthorizePumpCall(deps, *ctx, role, name);
  if (!caller.ok()) {
    status_ = caller.status();
    return;
  }
  who_ = std::move(caller->who);
  pump_id_ = std::move(caller->pump_id);
}

grpc::ServerUnaryReactor* PumpChange::Fail(const absl::Status& s) {
  return FinishWith(reactor_, s);
}

grpc::ServerUnaryReactor* PumpChange::Apply(const char* method, std::string reason,
                                            PumpChangeFn change) {
  return Queue(method, std::move(reason), std::move(change), /*refuse_decommissioned=*/true);
}

grpc::ServerUnaryReactor* PumpChange::ApplyAnyLifecycle(const char* method, std::string reason,
                                                        PumpChangeFn change) {
  return Queue(method, std::move(reason), std::move(change), /*refuse_decommissioned=*/false);
}

grpc::ServerUnaryReactor* PumpChange::ApplyAcross(const char* method, std::string reason,
                                                  std::string other_pump_id, PumpCheckFn check,
                                                  PumpChangeFn change) {
  auto staged = std::make_shared<StagedRegistrations>();
  auto first = [st = deps_.store, overlay = overlay_, staged, who = who_, pump_id = pump_id_,
                check = std::move(check)](twin::Twin& t, MutationContext& mctx) -> absl::Status {
    PumpChangeScope scope(t, mctx, who, pump_id, st, overlay, staged.get());
    if (absl::Status s = check(scope); !s.ok()) return s;
    scope.ClaimRegistration();
    return absl::OkStatus();
  };
  TwinRegistry* registry = deps_.registry;
  deps_.registry->Mutate(pump_id_, std::move(first),
                         [registry, other = std::move(other_pump_id),
                          second = Mutation(method, std::move(reason), std::move(change),
                                            /*refuse_decommissioned=*/false, staged),
                          finish = Finish(staged)](absl::Status s) {
                           if (!s.ok()) return finish(s);
                           // On the pump's shard thread: post to the other pump's without blocking
                           // (never block one shard on another).
                           registry->Mutate(other, second, finish, /*block=*/false);
                         });
  return reactor_;
}

Shard::MutateFn PumpChange::Mutation(const char* method, std::string reason, PumpChangeFn change,
                                     bool refuse_decommissioned,
                                     std::shared_ptr<StagedRegistrations> staged) const {
  return [dir = &deps_.registry->directory(), st = deps_.store, overlay = overlay_,
          staged = std::move(staged), refuse_decommissioned, method, who = who_, pump_id = pump_id_,
          reason = std::move(reason),
          change = std::move(change)](twin::Twin& t, MutationContext& mctx) -> absl::Status {
    if (refuse_decommissioned) {
      if (absl::Status s = CheckNotDecommissioned(*dir, pump_id); !s.ok()) return s;
    }
    PumpChangeScope scope(t, mctx, who, pump_id, st, overlay, staged.get());
    auto json = change(scope);
    if (!json.ok()) return json.status();
    mctx.audit.push_back(MakeAudit(who, mctx.server_time, method, PumpName(pump_id),
                                   std::move(json->before), std::move(json->after), reason));
    for (auto& [resource, also] : scope.also_audited_) {
      mctx.audit.push_back(MakeAudit(who, mctx.server_time, method, resource,
                                     std::move(also.before), std::move(also.after), reason));
    }
    return absl::OkStatus();
  };
}

std::function<void(absl::Status)> PumpChange::Finish(
    std::shared_ptr<StagedRegistrations> staged) const {
  return [reactor = reactor_, overlay = overlay_, staged = std::move(staged)](absl::Status s) {
    for (const auto& [pump_id, ticket] : *staged) overlay->Release(pump_id, ticket);
    reactor->Finish(ToGrpc(s));
  };
}

grpc::ServerUnaryReactor* PumpChange::Queue(const char* method, std::string reason,
                                            PumpChangeFn change, bool refuse_decommissioned) {
  if (refuse_decommissioned) {
    if (absl::Status s = CheckNotDecommissioned(deps_.registry->directory(), pump_id_); !s.ok()) {
      return Fail(s);
    }
  }
  auto staged = std::make_shared<StagedRegistrations>();
  deps_.registry->Mutate(
      pump_id_,
      Mutation(method, std::move(reason), std::move(change), refuse_decommissioned, staged),
      Finish(staged));
  return reactor_;
}

}  // namespace pumptwin::server
