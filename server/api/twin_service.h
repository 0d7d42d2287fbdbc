// TwinService: the clinical API (dashboards, hospital systems, pumptwinctl) over the twin
// registry, the commit gate and the store. Every method of the contract is implemented; a
// request that does not parse answers INVALID_ARGUMENT on every method.
// Thread-safe: gRPC calls arrive on many threads; state lives in the registry.
#ifndef PUMPTWIN_SERVER_TWIN_SERVICE_H_
#define PUMPTWIN_SERVER_TWIN_SERVICE_H_

#include <functional>
#include <string>

#include "absl/time/time.h"
#include "device_link/sample_codec.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "server/api/auth.h"
#include "server/api/twin_service_common.h"
#include "server/core/commit_gate.h"
#include "server/core/drug_library_holder.h"
#include "server/core/twin_registry.h"
#include "server/store/store.h"

namespace pumptwin::server {

class AlertHub;
class CallForwarder;
class TwinWatchHub;

// Initial metadata key of a server stream that was accepted (WatchAlerts, WatchTwin): a
// proxy can tell an open stream from a refused one before the first message.
inline constexpr char kStreamOpenMetadata[] = "pumptwin-stream-open";

struct TwinServiceDeps {
  TwinRegistry* registry = nullptr;
  CommitGate* gate = nullptr;
  store::Store* store = nullptr;
  const Authorizer* auth = nullptr;          // required
  AlertHub* alert_hub = nullptr;             // WatchAlerts (UNIMPLEMENTED without it)
  TwinWatchHub* twin_watch_hub = nullptr;    // WatchTwin (UNIMPLEMENTED without it)
  const DrugLibraryHolder* drugs = nullptr;  // nullptr: built-in defaults
  std::function<absl::Time()> now = [] { return absl::Now(); };
  // Implant, interrogation and refill times of a registration may be at most this far
  // ahead of the server time: the bound telemetry device times have.
  // Cluster mode: calls about a pump another replica serves go there (nullptr: none).
  CallForwarder* forwarder = nullptr;
  absl::Duration max_device_time_in_future =
      device_link::ValidationLimits().max_device_time_in_future;
};

class TwinServiceImpl final : public pumptwin::v1::TwinService::CallbackService {
 public:
  // Every method answers a request that does not parse (bad wire format, a string field
  // that is not UTF-8) with INVALID_ARGUMENT "could not parse request ...", not gRPC's
  // default UNIMPLEMENTED with an empty message (see twin_service.cc).
  explicit TwinServiceImpl(TwinServiceDeps deps);

  // Every method of the contract. Definitions live in twin_service_*.cc by area.
  grpc::ServerUnaryReactor* RegisterPump(grpc::CallbackServerContext* ctx,
                                         const v1::RegisterPumpRequest* req,
                                         v1::Pump* resp) override;
  grpc::ServerUnaryReactor* GetPump(grpc::CallbackServerContext* ctx, const v1::GetPumpRequest* req,
                                    v1::Pump* resp) override;
  grpc::ServerUnaryReactor* ListPumps(grpc::CallbackServerContext* ctx,
                                      const v1::ListPumpsRequest* req,
                                      v1::ListPumpsResponse* resp) override;
  grpc::ServerUnaryReactor* DecommissionPump(grpc::CallbackServerContext* ctx,
                                             const v1::DecommissionPumpRequest* req,
                                             v1::Pump* resp) override;
  grpc::ServerUnaryReactor* SetPrescription(grpc::CallbackServerContext* ctx,
                                            const v1::SetPrescriptionRequest* req,
                                            v1::SetPrescriptionResponse* resp) override;
  grpc::ServerUnaryReactor* GetPrescriptionHistory(
      grpc::CallbackServerContext* ctx, const v1::GetPrescriptionHistoryRequest* req,
      v1::GetPrescriptionHistoryResponse* resp) override;
  grpc::ServerUnaryReactor* ReplayTwin(grpc::CallbackServerContext* ctx,
                                       const v1::ReplayTwinRequest* req,
                                       v1::ReplayTwinResponse* resp) override;
  grpc::ServerUnaryReactor* RecordRefill(grpc::CallbackServerContext* ctx,
                                         const v1::RecordRefillRequest* req,
                                         v1::RecordRefillResponse* resp) override;
  grpc::ServerUnaryReactor* RecordEvent(grpc::CallbackServerContext* ctx,
                                        const v1::RecordEventRequest* req,
                                        v1::RecordEventResponse* resp) override;
  grpc::ServerUnaryReactor* GetTwin(grpc::CallbackServerContext* ctx, const v1::GetTwinRequest* req,
                                    v1::TwinState* resp) override;
  grpc::ServerWriteReactor<v1::TwinState>* WatchTwin(grpc::CallbackServerContext* ctx,
                                                     const v1::WatchTwinRequest* req) override;
  grpc::ServerUnaryReactor* GetTelemetry(grpc::CallbackServerContext* ctx,
                                         const v1::GetTelemetryRequest* req,
                                         v1::GetTelemetryResponse* resp) override;
  grpc::ServerUnaryReactor* ListAlerts(grpc::CallbackServerContext* ctx,
                                       const v1::ListAlertsRequest* req,
                                       v1::ListAlertsResponse* resp) override;
  grpc::ServerWriteReactor<v1::AlertEvent>* WatchAlerts(grpc::CallbackServerContext* ctx,
                                                        const v1::WatchAlertsRequest* req) override;
  grpc::ServerUnaryReactor* AcknowledgeAlert(grpc::CallbackServerContext* ctx,
                                             const v1::AcknowledgeAlertRequest* req,
                                             v1::Alert* resp) override;
  grpc::ServerUnaryReactor* ListDrugs(grpc::CallbackServerContext* ctx,
                                      const v1::ListDrugsRequest* req,
                                      v1::ListDrugsResponse* resp) override;
  grpc::ServerUnaryReactor* ListAuditRecords(grpc::CallbackServerContext* ctx,
                                             const v1::ListAuditRecordsRequest* req,
                                             v1::ListAuditRecordsResponse* resp) override;
  grpc::ServerUnaryReactor* RecordTrialOutcome(grpc::CallbackServerContext* ctx,
                                               const v1::RecordTrialOutcomeRequest* req,
                                               v1::Pump* resp) override;
  grpc::ServerUnaryReactor* ImplantAfterTrial(grpc::CallbackServerContext* ctx,
                                              const v1::ImplantAfterTrialRequest* req,
                                              v1::Pump* resp) override;
  grpc::ServerUnaryReactor* EndTrial(grpc::CallbackServerContext* ctx,
                                     const v1::EndTrialRequest* req, v1::Pump* resp) override;

 private:
  // Replaces the generated handler of `method` with one that lets a request that does
  // not parse reach `fn` as INVALID_ARGUMENT (twin_service.cc).
  template <typename Req, typename Resp>
  void TolerateUnparseable(const char* method,
                           grpc::ServerUnaryReactor* (TwinServiceImpl::*fn)(
                               grpc::CallbackServerContext*, const Req*, Resp*));
  template <typename Req, typename Resp>
  void TolerateUnparseable(const char* method,
                           grpc::ServerWriteReactor<Resp>* (TwinServiceImpl::*fn)(
                               grpc::CallbackServerContext*, const Req*));

  TwinServiceDeps deps_;
  // Registrations changed by mutations whose group is not yet durable, for this service's
  // handlers (twin_service_common.h).
  RegistrationOverlay overlay_;
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_TWIN_SERVICE_H_
