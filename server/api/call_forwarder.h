// CallForwarder: in cluster mode, a TwinService call about one pump that reaches a replica
// not serving that pump is forwarded to the replica that does, and the owner's answer
// (response or status) is the caller's. So a dashboard, the web app or a hospital system
// may call any replica. One hop only: a forwarded call carries the `pumptwin-forwarded-by`
// metadata, and a replica never forwards such a call again (it answers it itself:
// UNAVAILABLE, naming the owner when one is known; the caller retries).
// The caller's `authorization` metadata and deadline go with the call: the owner
// authenticates, authorises, validates and audits it as if called directly.
// WatchTwin, a stream about up to 1 000 pumps, is relayed: one upstream WatchTwin per
// replica serving some of them (RelayWatchTwin).
// Fleet reads that each replica answers for its own pumps (ListPumps) ask every other live
// replica with FanOut, the same way (one hop, the caller's credentials), and merge.
#ifndef PUMPTWIN_SERVER_API_CALL_FORWARDER_H_
#define PUMPTWIN_SERVER_API_CALL_FORWARDER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/message.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "pumptwin/v1/twin_service.pb.h"

namespace pumptwin::server {

inline constexpr char kForwardedByHeader[] = "pumptwin-forwarded-by";

struct CallForwarderOptions {
  std::string replica;  // this replica's name (the forwarded-by value)
  // The address of the replica serving `pump_id` when it is not this one and is known;
  // nullopt: serve the call here (this replica serves it, or nobody does right now).
  std::function<std::optional<std::string>(absl::string_view pump_id)> owner_address;
  // The addresses of the other live replicas (fleet reads ask each of them).
  std::function<std::vector<std::string>()> peers;
  // Transport to the other replicas (insecure, or TLS as configured).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  std::function<void()> on_forward;  // counts forwarded calls (metrics); may be empty
  // This replica's own address (a relayed watch reaches this replica's pumps through it).
  std::string self_address;
};

class CallForwarder {
 public:
  explicit CallForwarder(CallForwarderOptions options) : options_(std::move(options)) {}

  // The pump a request is about: RegisterPumpRequest.pump.pump_id, else the id in its
  // `name` ("pumps/{id}" or "pumps/{id}/alerts/{alert}"); empty when it has neither.
  static std::string PumpOf(const google::protobuf::Message& request);

  // Where to send the call, or nullopt to serve it here.
  std::optional<std::string> Destination(const grpc::CallbackServerContext& ctx,
                                         const google::protobuf::Message& request) const;

  // Was this call forwarded by another replica (answer it here, for this replica's pumps)?
  static bool IsForwarded(const grpc::CallbackServerContext& ctx) {
    return ctx.client_metadata().count(kForwardedByHeader) > 0;
  }

  // The other live replicas a fleet read asks; empty outside cluster mode and for a call
  // that was itself forwarded.
  std::vector<std::string> FanOutTargets(const grpc::CallbackServerContext& ctx) const {
    if (!options_.peers || IsForwarded(ctx)) return {};
    return options_.peers();
  }

  // One answer of a fan-out: the replica's address, its status and response.
  template <typename Resp>
  struct PeerAnswer {
    std::string address;
    grpc::Status status;
    Resp response;
  };

  // Calls `method` with `request` on every address in `targets` at once; `done` runs once,
  // on the thread of the last answer, with every answer (in the order of `targets`).
  template <typename Req, typename Resp>
  void FanOut(const grpc::CallbackServerContext& ctx, const std::vector<std::string>& targets,
              const std::string& method, const Req& request,
              std::function<void(std::vector<PeerAnswer<Resp>>)> done) {
    struct State {
      Req request;
      std::vector<PeerAnswer<Resp>> answers;
      std::vector<std::unique_ptr<grpc::ClientContext>> calls;
      std::vector<std::unique_ptr<grpc::TemplatedGenericStub<Req, Resp>>> stubs;
      std::atomic<size_t> pending{0};
      std::function<void(std::vector<PeerAnswer<Resp>>)> done;
    };
    auto state = std::make_shared<State>();
    state->request = request;
    state->answers.resize(targets.size());
    state->done = std::move(done);
    state->pending = targets.size();
    for (size_t i = 0; i < targets.size(); ++i) {
      state->answers[i].address = targets[i];
      state->calls.push_back(std::make_unique<grpc::ClientContext>());
      Prepare(ctx, state->calls.back().get());
      state->stubs.push_back(
          std::make_unique<grpc::TemplatedGenericStub<Req, Resp>>(ChannelTo(targets[i])));
    }
    for (size_t i = 0; i < targets.size(); ++i) {
      state->stubs[i]->UnaryCall(state->calls[i].get(), method, grpc::StubOptions(),
                                 &state->request, &state->answers[i].response,
                                 [state, i](grpc::Status s) {
                                   state->answers[i].status = std::move(s);
                                   if (state->pending.fetch_sub(1) == 1) {
                                     state->done(std::move(state->answers));
                                   }
                                 });
    }
  }

  // Where each pump of a watch is served: its owner's address, or this replica's own
  // address for the pumps served here (or by nobody right now). Empty outside cluster mode
  // and for a call that was itself forwarded.
  std::optional<std::string> WatchDestination(const grpc::CallbackServerContext& ctx,
                                              const std::string& pump_id) const {
    if (!options_.owner_address || IsForwarded(ctx)) return std::nullopt;
    std::optional<std::string> owner = options_.owner_address(pump_id);
    return owner.has_value() ? owner : std::optional<std::string>(options_.self_address);
  }

  // Is `address` (from WatchDestination) another replica's?
  bool IsElsewhere(const std::string& address) const { return address != options_.self_address; }

  // WatchTwin for pumps several replicas (or another one) serve: `names_by_address` (from
  // WatchDestination) gets one upstream WatchTwin each, with the caller's credentials and
  // deadline and the request's min_interval_ms; every TwinState is relayed as it comes, with
  // one in flight per upstream (a slow caller slows the upstreams; nothing piles up here).
  // The watch ends when every upstream has ended: with the first error (the others are
  // cancelled), else OK; a caller that goes away cancels them all.
  grpc::ServerWriteReactor<v1::TwinState>* RelayWatchTwin(
      grpc::CallbackServerContext* ctx, const v1::WatchTwinRequest& request,
      const std::map<std::string, std::vector<std::string>>& names_by_address);

  // Forwards `request` as `method` ("/pumptwin.v1.TwinService/GetTwin") to `address`; the
  // reactor finishes with the owner's status once it answers (`response` filled).
  template <typename Req, typename Resp>
  void Forward(grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* reactor,
               const std::string& address, const std::string& method, const Req* request,
               Resp* response) {
    auto call = std::make_shared<grpc::ClientContext>();
    Prepare(*ctx, call.get());
    auto stub = std::make_shared<grpc::TemplatedGenericStub<Req, Resp>>(ChannelTo(address));
    if (options_.on_forward) options_.on_forward();
    stub->UnaryCall(call.get(), method, grpc::StubOptions(), request, response,
                    [call, stub, reactor](grpc::Status s) { reactor->Finish(s); });
  }

 private:
  void Prepare(const grpc::CallbackServerContext& in, grpc::ClientContext* out) const;
  std::shared_ptr<grpc::Channel> ChannelTo(const std::string& address);

  const CallForwarderOptions options_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_API_CALL_FORWARDER_H_
