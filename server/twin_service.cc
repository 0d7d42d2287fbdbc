#include "server/twin_service.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "server/convert.h"
#include "server/grpc_status.h"
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
  auto cfg = ToPumpConfig(pump);
  if (!cfg.ok()) return fail(cfg.status());
  if (!req->has_initial_prescription()) {
    return fail(absl::InvalidArgumentError(
        "initial_prescription is required: give the drug and concentration the pump is filled "
        "with at implant (mode THERAPY_MODE_STOPPED if it is not infusing yet)"));
  }
  auto parsed_rx = ToPrescription(req->initial_prescription());
  if (!parsed_rx.ok()) return fail(parsed_rx.status());
  twin::Prescription rx = *std::move(parsed_rx);
  rx.version = 1;
  absl::Time now = deps_.now();
  absl::Time start = pump.implant_time_ms() > 0 ? FromUnixMs(pump.implant_time_ms()) : now;
  auto twin = twin::Twin::Create(*cfg, rx, twin::Microliters(req->initial_reservoir_ul()), start);
  if (!twin.ok()) return fail(twin.status());
  pump.set_name(PumpName(pump.pump_id()));
  if (pump.lifecycle() == v1::PUMP_LIFECYCLE_UNSPECIFIED) {
    pump.set_lifecycle(v1::PUMP_LIFECYCLE_IMPLANTED);
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
