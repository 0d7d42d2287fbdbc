#include "server/api/twin_service.h"

#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "device_link/input_limits.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/impl/codegen/server_callback_handlers.h"
#include "server/api/call_forwarder.h"
#include "server/api/twin_service_common.h"
#include "server/core/convert.h"
#include "server/core/pump_registration.h"

namespace pumptwin::server {
namespace {

// A request that does not parse. gRPC's generated handlers answer such a call UNIMPLEMENTED
// with an empty message; these handlers instead hand the method an empty request carrying
// this mark (an unknown field with the largest field number, never declared), and the
// method answers INVALID_ARGUMENT. A client that sends the mark itself gets the same answer.
constexpr int kUnparseableMark = 536870911;

void MarkUnparseable(google::protobuf::Message* m) {
  m->Clear();
  m->GetReflection()->MutableUnknownFields(m)->AddVarint(kUnparseableMark, 1);
}

bool IsUnparseable(const google::protobuf::Message& m) {
  const google::protobuf::UnknownFieldSet& u = m.GetReflection()->GetUnknownFields(m);
  return !u.empty() && u.field(u.field_count() - 1).number() == kUnparseableMark;
}

absl::Status Unparseable(const google::protobuf::Message& m) {
  return absl::InvalidArgumentError(
      absl::StrCat("could not parse request: it is not a valid ", m.GetDescriptor()->full_name(),
                   " (check the message type; string fields must be UTF-8)"));
}

// Wraps a generated callback handler: a request that fails to parse is passed on marked
// (above) instead of failing the call before the method sees it.
template <typename Req, typename Resp, typename Inner>
class ParseTolerantHandler final : public grpc::internal::MethodHandler {
 public:
  explicit ParseTolerantHandler(Inner* inner) : inner_(inner) {}
  void RunHandler(const HandlerParameter& param) override { inner_->RunHandler(param); }
  void* Deserialize(grpc_call* call, grpc_byte_buffer* req, grpc::Status* status,
                    void** handler_data) override {
    void* request = inner_->Deserialize(call, req, status, handler_data);
    if (status->ok()) return request;
    Req* marked = nullptr;
    if constexpr (std::is_same_v<Inner, grpc::internal::CallbackUnaryHandler<Req, Resp>>) {
      // The unary handler keeps its request in the holder it allocated.
      marked = static_cast<grpc::MessageHolder<Req, Resp>*>(*handler_data)->request();
    } else {
      // The streaming handler destroyed its request; give it one in the call's arena.
      marked = new (grpc::g_core_codegen_interface->grpc_call_arena_alloc(call, sizeof(Req))) Req();
    }
    MarkUnparseable(marked);
    *status = grpc::Status::OK;
    return marked;
  }

 private:
  std::unique_ptr<Inner> inner_;
};

template <typename Resp>
class FinishedWriter final : public grpc::ServerWriteReactor<Resp> {
 public:
  explicit FinishedWriter(const absl::Status& s) { this->Finish(ToGrpc(s)); }
  void OnDone() override { delete this; }
};

int MethodIndex(const char* method) {
  static const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          "pumptwin.v1.TwinService");
  return service->FindMethodByName(method)->index();
}

}  // namespace

template <typename Req, typename Resp>
void TwinServiceImpl::TolerateUnparseable(const char* method,
                                          grpc::ServerUnaryReactor* (TwinServiceImpl::*fn)(
                                              grpc::CallbackServerContext*, const Req*, Resp*)) {
  using Inner = grpc::internal::CallbackUnaryHandler<Req, Resp>;
  const std::string path = absl::StrCat("/pumptwin.v1.TwinService/", method);
  auto* inner = new Inner([this, fn, path](grpc::CallbackServerContext* ctx, const Req* req,
                                           Resp* resp) -> grpc::ServerUnaryReactor* {
    if (IsUnparseable(*req)) return FinishWith(ctx->DefaultReactor(), Unparseable(*req));
    if (deps_.forwarder != nullptr) {
      if (std::optional<std::string> owner = deps_.forwarder->Destination(*ctx, *req)) {
        grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
        deps_.forwarder->Forward(ctx, reactor, *owner, path, req, resp);
        return reactor;
      }
    }
    return (this->*fn)(ctx, req, resp);
  });
  MarkMethodCallback(MethodIndex(method), new ParseTolerantHandler<Req, Resp, Inner>(inner));
}

template <typename Req, typename Resp>
void TwinServiceImpl::TolerateUnparseable(const char* method,
                                          grpc::ServerWriteReactor<Resp>* (TwinServiceImpl::*fn)(
                                              grpc::CallbackServerContext*, const Req*)) {
  using Inner = grpc::internal::CallbackServerStreamingHandler<Req, Resp>;
  auto* inner = new Inner([this, fn](grpc::CallbackServerContext* ctx,
                                     const Req* req) -> grpc::ServerWriteReactor<Resp>* {
    if (IsUnparseable(*req)) return new FinishedWriter<Resp>(Unparseable(*req));
    return (this->*fn)(ctx, req);
  });
  MarkMethodCallback(MethodIndex(method), new ParseTolerantHandler<Req, Resp, Inner>(inner));
}

TwinServiceImpl::TwinServiceImpl(TwinServiceDeps deps) : deps_(std::move(deps)) {
  using S = TwinServiceImpl;
  TolerateUnparseable("RegisterPump", &S::RegisterPump);
  TolerateUnparseable("GetPump", &S::GetPump);
  TolerateUnparseable("ListPumps", &S::ListPumps);
  TolerateUnparseable("DecommissionPump", &S::DecommissionPump);
  TolerateUnparseable("SetPrescription", &S::SetPrescription);
  TolerateUnparseable("GetPrescriptionHistory", &S::GetPrescriptionHistory);
  TolerateUnparseable("ReplayTwin", &S::ReplayTwin);
  TolerateUnparseable("RecordRefill", &S::RecordRefill);
  TolerateUnparseable("RecordEvent", &S::RecordEvent);
  TolerateUnparseable("GetTwin", &S::GetTwin);
  TolerateUnparseable("WatchTwin", &S::WatchTwin);
  TolerateUnparseable("GetTelemetry", &S::GetTelemetry);
  TolerateUnparseable("ListAlerts", &S::ListAlerts);
  TolerateUnparseable("WatchAlerts", &S::WatchAlerts);
  TolerateUnparseable("AcknowledgeAlert", &S::AcknowledgeAlert);
  TolerateUnparseable("ListDrugs", &S::ListDrugs);
  TolerateUnparseable("ListAuditRecords", &S::ListAuditRecords);
  TolerateUnparseable("RecordTrialOutcome", &S::RecordTrialOutcome);
  TolerateUnparseable("ImplantAfterTrial", &S::ImplantAfterTrial);
  TolerateUnparseable("EndTrial", &S::EndTrial);
}

grpc::ServerUnaryReactor* TwinServiceImpl::RegisterPump(grpc::CallbackServerContext* ctx,
                                                        const v1::RegisterPumpRequest* req,
                                                        v1::Pump* resp) {
  auto* reactor = ctx->DefaultReactor();
  auto fail = [reactor](const absl::Status& s) { return FinishWith(reactor, s); };
  auto principal = deps_.auth->Check(*ctx, Role::kAdmin);
  if (!principal.ok()) return fail(principal.status());
  v1::Pump pump = req->pump();
  if (absl::Status s = device_link::ValidateId(pump.pump_id(), "pump.pump_id"); !s.ok()) {
    return fail(s);
  }
  if (pump.gateway_ids_size() > device_link::kMaxGatewayIdsPerPump) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("pump.gateway_ids has ", pump.gateway_ids_size(), " entries; at most ",
                     device_link::kMaxGatewayIdsPerPump, " gateways may report for a pump")));
  }
  for (int i = 0; i < pump.gateway_ids_size(); ++i) {
    if (absl::Status s = device_link::ValidateId(pump.gateway_ids(i), "pump.gateway_ids[]");
        !s.ok()) {
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
      return fail(absl::InvalidArgumentError(
          absl::StrCat("pump.lifecycle=", pump.lifecycle(),
                       " cannot be registered (UNSPECIFIED or "
                       "IMPLANTED: an implanted pump; TRIAL: an external trial pump)")));
  }
  const absl::Time now = deps_.now();
  auto lib = DrugLibraryHolder::Current(deps_.drugs);
  auto twin = RegistrationTwin(
      {.pump = &pump,
       .initial_prescription =
           req->has_initial_prescription() ? &req->initial_prescription() : nullptr,
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
  AuditDraft audit = MakeAudit(*principal, now, "RegisterPump", pump.name(), /*before_json=*/"",
                               MessageJson(pump), req->reason());
  *resp = pump;
  deps_.registry->Register(std::move(pump), *std::move(twin), {std::move(audit)},
                           [reactor](absl::Status s) { reactor->Finish(ToGrpc(s)); });
  return reactor;
}

grpc::ServerUnaryReactor* TwinServiceImpl::GetPump(grpc::CallbackServerContext* ctx,
                                                   const v1::GetPumpRequest* req, v1::Pump* resp) {
  auto* reactor = ctx->DefaultReactor();
  auto id = AuthorizedPumpId(deps_, *ctx, Role::kViewer, req->name());
  if (!id.ok()) return FinishWith(reactor, id.status());
  auto bytes = deps_.store->GetPump(*id);
  if (!bytes.ok()) {
    return FinishWith(reactor,
                      absl::IsNotFound(bytes.status())
                          ? absl::NotFoundError(absl::StrCat("pump '", *id, "' is not registered"))
                          : bytes.status());
  }
  if (!resp->ParseFromString(*bytes)) {
    return FinishWith(reactor, absl::DataLossError(absl::StrCat("registration of pump '", *id,
                                                                "' does not parse")));
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* TwinServiceImpl::GetTwin(grpc::CallbackServerContext* ctx,
                                                   const v1::GetTwinRequest* req,
                                                   v1::TwinState* resp) {
  auto* reactor = ctx->DefaultReactor();
  auto id = AuthorizedPumpId(deps_, *ctx, Role::kViewer, req->name());
  if (!id.ok()) return FinishWith(reactor, id.status());
  deps_.registry->Read(*id, [reactor, resp](const twin::Twin* twin, absl::Status s) {
    if (twin != nullptr) *resp = FromTwin(*twin);
    reactor->Finish(ToGrpc(s));
  });
  return reactor;
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kClinician:
      return "clinician";
    case Role::kAdmin:
      return "admin";
  }
  return "viewer";
}

}  // namespace pumptwin::server
