#include "server/twin_service.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "server/convert.h"
#include "server/grpc_status.h"
#include "server/pump_registration.h"
#include "server/twin_service_common.h"

namespace pumptwin::server {
namespace {

absl::Status ValidatePumpId(const std::string& id, const char* field) {
  if (id.empty() || id.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, "='", id, "' must be 1 to 128 characters"));
  }
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return absl::InvalidArgumentError(absl::StrCat(
          field, "='", id, "' may contain only letters, digits, '-', '_' and '.'"));
    }
  }
  return absl::OkStatus();
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out);
  return out;
}

}  // namespace


grpc::ServerUnaryReactor* TwinServiceImpl::RegisterPump(grpc::CallbackServerContext* ctx,
                                                        const v1::RegisterPumpRequest* req,
                                                        v1::Pump* resp) {
  auto* reactor = ctx->DefaultReactor();
  auto fail = [reactor](const absl::Status& s) { return FinishWith(reactor, s); };
  auto principal = deps_.auth->Check(*ctx, Role::kAdmin);
  if (!principal.ok()) return fail(principal.status());
  v1::Pump pump = req->pump();
  if (absl::Status s = ValidatePumpId(pump.pump_id(), "pump.pump_id"); !s.ok()) return fail(s);
  for (int i = 0; i < pump.gateway_ids_size(); ++i) {
    if (absl::Status s = ValidatePumpId(pump.gateway_ids(i), "pump.gateway_ids[]"); !s.ok()) {
      return fail(s);
    }
  }
  switch (pump.lifecycle()) {
    case v1::PUMP_LIFECYCLE_UNSPECIFIED:
      pump.set_lifecycle(v1::PUMP_LIFECYCLE_IMPLANTED);
      break;
    case v1::PUMP_LIFECYCLE_IMPLANTED:
      break;
    case v1::PUMP_LIFECYCLE_TRIAL:
      if (req->has_enrolment()) {
        return fail(absl::InvalidArgumentError(
            "pump.lifecycle=PUMP_LIFECYCLE_TRIAL cannot have an enrolment: a trial starts at "
            "pump.implant_time_ms (the trial start)"));
      }
      break;
    default:
      return fail(absl::InvalidArgumentError(absl::StrCat(
          "pump.lifecycle=", pump.lifecycle(), " cannot be registered (UNSPECIFIED or "
          "IMPLANTED: an implanted pump; TRIAL: an external trial pump)")));
  }
  const absl::Time now = deps_.now();
  auto lib = DrugLibraryHolder::Current(deps_.drugs);
  auto twin = RegistrationTwin(
      {.pump = &pump,
       .initial_prescription = req->has_initial_prescription() ? &req->initial_prescription() : nullptr,
       .initial_reservoir_ul = req->initial_reservoir_ul(),
       .enrolment = req->has_enrolment() ? &req->enrolment() : nullptr},
      now, deps_.max_device_time_in_future, lib->library);
  if (!twin.ok()) return fail(twin.status());
  pump.set_name(PumpName(pump.pump_id()));
  pump.clear_trial();
  if (pump.lifecycle() == v1::PUMP_LIFECYCLE_TRIAL) {
    pump.mutable_trial()->set_start_time_ms(ToUnixMs(twin->device_time()));
  }
  pump.set_register_time_ms(ToUnixMs(now));
  pump.clear_replaced_by_pump_id();
  AuditDraft audit;
  audit.record.set_server_time_ms(ToUnixMs(now));
  audit.record.set_actor(principal->actor);
  audit.record.set_role(RoleName(principal->role));
  audit.record.set_method("TwinService.RegisterPump");
  audit.record.set_resource(pump.name());
  audit.record.set_after_json(ToJson(pump));
  audit.record.set_reason(req->reason());
  *resp = pump;
  deps_.registry->Register(std::move(pump), *std::move(twin), {std::move(audit)},
                           [reactor](absl::Status s) { reactor->Finish(ToGrpc(s)); });
  return reactor;
}

grpc::ServerUnaryReactor* TwinServiceImpl::GetPump(grpc::CallbackServerContext* ctx,
                                                   const v1::GetPumpRequest* req,
                                                   v1::Pump* resp) {
  auto* reactor = ctx->DefaultReactor();
  auto id = AuthorizedPumpId(*deps_.auth, *ctx, Role::kViewer, req->name());
  if (!id.ok()) return FinishWith(reactor, id.status());
  auto bytes = deps_.store->GetPump(*id);
  if (!bytes.ok()) {
    return FinishWith(reactor, absl::IsNotFound(bytes.status())
                                   ? absl::NotFoundError(absl::StrCat(
                                         "pump '", *id, "' is not registered"))
                                   : bytes.status());
  }
  if (!resp->ParseFromString(*bytes)) {
    return FinishWith(reactor, absl::DataLossError(absl::StrCat(
                                   "registration of pump '", *id, "' does not parse")));
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* TwinServiceImpl::GetTwin(grpc::CallbackServerContext* ctx,
                                                   const v1::GetTwinRequest* req,
                                                   v1::TwinState* resp) {
  auto* reactor = ctx->DefaultReactor();
  auto id = AuthorizedPumpId(*deps_.auth, *ctx, Role::kViewer, req->name());
  if (!id.ok()) return FinishWith(reactor, id.status());
  deps_.registry->Read(*id, [reactor, resp](const twin::Twin* twin, absl::Status s) {
    if (twin != nullptr) *resp = FromTwin(*twin);
    reactor->Finish(ToGrpc(s));
  });
  return reactor;
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kViewer: return "viewer";
    case Role::kClinician: return "clinician";
    case Role::kAdmin: return "admin";
  }
  return "viewer";
}

}  // namespace pumptwin::server
