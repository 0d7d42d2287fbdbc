// TwinService.WatchAlerts: replay from the store after `from_cursor`, then live events from
// the AlertHub, with no gap and no duplicate across the switch (subscribe first, replay up
// to the hub position, then drain the subscription; every write is deduplicated by cursor).
// TwinService.WatchTwin: TwinState per change, coalesced per pump (TwinWatchHub).
// One reactor per call; its state is guarded by its mutex; one Write outstanding at a time.
// The store is read (replay) only on gRPC threads, never on the hub's delivery thread.
#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "server/api/alert_hub.h"
#include "server/api/call_forwarder.h"
#include "server/api/stream_end.h"
#include "server/api/twin_service.h"
#include "server/api/twin_watch_hub.h"
#include "server/core/convert.h"

namespace pumptwin::server {
namespace {

constexpr size_t kReplayBatch = 256;

class WatchAlertsReactor final : public grpc::ServerWriteReactor<v1::AlertEvent> {
 public:
  WatchAlertsReactor(store::Store* store, AlertHub* hub, const v1::WatchAlertsRequest& req)
      : store_(store), hub_(hub), last_sent_(req.from_cursor()) {
    filter_.clinic = req.clinic();
    filter_.min_severity = req.min_severity();
  }

  void Start(grpc::CallbackServerContext* ctx) {
    auto sub = hub_->Subscribe(
        filter_, [this] { Wake(); }, &replay_upto_);
    absl::MutexLock lock(&mu_);
    if (!sub.ok()) {
      FinishLocked(ToGrpc(sub.status()));  // refused: no "stream open" marker
      return;
    }
    sub_ = *std::move(sub);
    replay_after_ = last_sent_;
    // Subscribed: tell the client now (headers), not only with the first event, and tell a
    // proxy (the HTTP gateway) that the stream is open.
    ctx->AddInitialMetadata(std::string(kStreamOpenMetadata), "1");
    StartSendInitialMetadata();
    PumpLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (ok) {
      last_sent_ = current_->cursor();
    } else {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    }
    // Also finishes a call whose end was requested while this write was outstanding (a
    // cancel or shutdown during a write to a stalled client): without it the call never
    // ends and the server's shutdown waits for it forever.
    PumpLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
  }

  void OnDone() override {
    std::shared_ptr<AlertSubscription> sub;
    {
      absl::MutexLock lock(&mu_);
      sub = std::move(sub_);
    }
    if (sub != nullptr) hub_->Unsubscribe(sub);  // no wake runs after this
    delete this;
  }

 private:
  // The hub's delivery thread: write what is buffered, but never read the store there
  // (the replay goes on from Start and OnWriteDone, on gRPC threads).
  void Wake() {
    absl::MutexLock lock(&mu_);
    if (replay_after_ < replay_upto_ && !end_.requested()) return;
    PumpLocked();
  }

  // Writes the next event if none is outstanding; ends the stream on a terminal status.
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (end_.requested()) {
      if (!writing_) end_.AfterWrite(this);
      return;
    }
    if (writing_ || sub_ == nullptr) return;
    for (;;) {
      if (pending_.empty()) {
        if (absl::Status s = Refill(); !s.ok()) {
          FinishLocked(ToGrpc(s));
          return;
        }
        if (pending_.empty()) return;  // caught up: wait for a wake
      }
      AlertEventPtr ev = std::move(pending_.front());
      pending_.pop_front();
      if (ev->cursor() <= last_sent_) continue;  // replay and live overlap: dedupe
      current_ = std::move(ev);                  // shared with the hub: written, not copied
      writing_ = true;
      StartWrite(current_.get());
      return;
    }
  }

  // Next events: from the store while replaying, then from the subscription.
  absl::Status Refill() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (replay_after_ < replay_upto_) {
      auto batch = store_->ScanAlertsAfter(replay_after_, kReplayBatch);
      if (!batch.ok()) {
        return absl::UnavailableError(
            absl::StrCat("cannot read alert history: ", batch.status().message(),
                         "; resume with from_cursor=", last_sent_));
      }
      if (batch->empty()) {
        replay_after_ = replay_upto_;
        break;
      }
      for (auto& [cursor, bytes] : *batch) {
        replay_after_ = cursor;
        if (cursor > replay_upto_) {
          replay_after_ = replay_upto_;
          break;  // the live buffer has it
        }
        auto ev = std::make_shared<v1::AlertEvent>();
        if (!ev->ParseFromString(bytes)) {
          return absl::DataLossError(
              absl::StrCat("alert event at cursor ", cursor, " does not parse"));
        }
        if (filter_.Matches(*ev)) pending_.push_back(std::move(ev));
      }
      if (!pending_.empty()) return absl::OkStatus();
    }
    std::vector<AlertEventPtr> live;
    absl::Status s = sub_->Take(kReplayBatch, &live);
    if (absl::IsResourceExhausted(s)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "WatchAlerts: this subscriber fell more than ", hub_->buffer_events(),
          " events behind and was dropped (ingest is never slowed); resume from cursor ",
          last_sent_, " (from_cursor=", last_sent_, ")"));
    }
    if (!s.ok()) {
      return absl::UnavailableError(absl::StrCat(s.message(), "; resume from cursor ", last_sent_,
                                                 " (from_cursor=", last_sent_, ")"));
    }
    for (auto& ev : live) pending_.push_back(std::move(ev));
    return absl::OkStatus();
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    end_.Request(this, std::move(status), writing_);
  }

  store::Store* const store_;
  AlertHub* const hub_;
  AlertFilter filter_;
  absl::Mutex mu_;
  std::shared_ptr<AlertSubscription> sub_ ABSL_GUARDED_BY(mu_);
  uint64_t replay_upto_ = 0;  // hub position at subscription (set before mu_ is used)
  uint64_t replay_after_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_sent_ ABSL_GUARDED_BY(mu_);
  std::deque<AlertEventPtr> pending_ ABSL_GUARDED_BY(mu_);
  AlertEventPtr current_ ABSL_GUARDED_BY(mu_);  // the event being written
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  StreamEnd end_ ABSL_GUARDED_BY(mu_);
};

template <typename Resp>
class FailedWriter final : public grpc::ServerWriteReactor<Resp> {
 public:
  explicit FailedWriter(const absl::Status& s) { this->Finish(ToGrpc(s)); }
  void OnDone() override { delete this; }
};

class WatchTwinReactor final : public grpc::ServerWriteReactor<v1::TwinState> {
 public:
  explicit WatchTwinReactor(TwinWatchHub* hub) : hub_(hub) {}

  void Start(std::vector<std::string> ids, absl::Duration interval) {
    watch_ = std::make_shared<TwinWatch>(
        std::move(ids), interval, [this](const v1::TwinState& s) { OnState(s); },
        [this](absl::Status s) {
          absl::MutexLock lock(&mu_);
          FinishLocked(ToGrpc(s));
        });
    if (absl::Status s = hub_->Add(watch_); !s.ok()) {
      absl::MutexLock lock(&mu_);
      FinishLocked(ToGrpc(s));
    }
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    if (end_.AfterWrite(this)) return;
    WriteNextLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
  }

  void OnDone() override {
    watch_->Detach();  // no callback after this
    hub_->Remove(watch_);
    delete this;
  }

 private:
  void OnState(const v1::TwinState& state) {
    absl::MutexLock lock(&mu_);
    if (end_.requested()) return;
    auto [it, fresh] = latest_.insert_or_assign(state.pump_id(), state);  // coalesce
    if (fresh) order_.push_back(state.pump_id());
    WriteNextLocked();
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || end_.requested() || order_.empty()) return;
    auto it = latest_.find(order_.front());
    order_.pop_front();
    current_ = std::move(it->second);
    latest_.erase(it);
    writing_ = true;
    StartWrite(&current_);
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    end_.Request(this, std::move(status), writing_);
  }

  TwinWatchHub* const hub_;
  std::shared_ptr<TwinWatch> watch_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, v1::TwinState> latest_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);
  v1::TwinState current_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  StreamEnd end_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerWriteReactor<v1::AlertEvent>* TwinServiceImpl::WatchAlerts(
    grpc::CallbackServerContext* ctx, const v1::WatchAlertsRequest* req) {
  auto principal = deps_.auth->Check(*ctx, Role::kViewer);
  if (!principal.ok()) return new FailedWriter<v1::AlertEvent>(principal.status());
  // A caller scoped to a clinic receives that clinic's alerts only.
  auto clinic = ScopedClinic(*principal, req->clinic());
  if (!clinic.ok()) return new FailedWriter<v1::AlertEvent>(clinic.status());
  if (deps_.alert_hub == nullptr) {
    return new FailedWriter<v1::AlertEvent>(
        absl::UnimplementedError("WatchAlerts: no alert hub in this server"));
  }
  if (req->min_severity() < 0 || !v1::Severity_IsValid(req->min_severity())) {
    return new FailedWriter<v1::AlertEvent>(absl::InvalidArgumentError(
        absl::StrCat("min_severity=", req->min_severity(), " is not a Severity value")));
  }
  v1::WatchAlertsRequest scoped = *req;
  scoped.set_clinic(*clinic);
  auto* reactor = new WatchAlertsReactor(deps_.store, deps_.alert_hub, scoped);
  reactor->Start(ctx);
  return reactor;
}

grpc::ServerWriteReactor<v1::TwinState>* TwinServiceImpl::WatchTwin(
    grpc::CallbackServerContext* ctx, const v1::WatchTwinRequest* req) {
  using Fail = FailedWriter<v1::TwinState>;
  auto principal = deps_.auth->Check(*ctx, Role::kViewer);
  if (!principal.ok()) return new Fail(principal.status());
  if (deps_.twin_watch_hub == nullptr) {
    return new Fail(absl::UnimplementedError("WatchTwin: no twin watch hub in this server"));
  }
  if (req->names_size() == 0 || req->names_size() > 1000) {
    return new Fail(absl::InvalidArgumentError(absl::StrCat(
        "names has ", req->names_size(), " entries; give 1 to 1000 pump names (pumps/{id})")));
  }
  if (req->min_interval_ms() < 0 || req->min_interval_ms() > 3600000) {
    return new Fail(absl::InvalidArgumentError(absl::StrCat(
        "min_interval_ms=", req->min_interval_ms(), " must be 0 (default 1000) to 3600000")));
  }
  if (deps_.forwarder != nullptr) {
    // Cluster mode: pumps other replicas serve are watched there, through a relay (each
    // replica checks the caller's scope and the pumps itself).
    std::map<std::string, std::vector<std::string>> by_address;
    bool elsewhere = false;
    for (const std::string& name : req->names()) {
      auto id = PumpIdFromName(name);
      if (!id.ok()) return new Fail(id.status());
      std::optional<std::string> at = deps_.forwarder->WatchDestination(*ctx, *id);
      if (!at.has_value()) break;  // a forwarded call: watch here
      std::vector<std::string>& names = by_address[*at];
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
      elsewhere = elsewhere || deps_.forwarder->IsElsewhere(*at);
    }
    if (elsewhere) {
      ctx->AddInitialMetadata(std::string(kStreamOpenMetadata), "1");
      return deps_.forwarder->RelayWatchTwin(ctx, *req, by_address);
    }
  }
  std::vector<std::string> ids;
  for (const std::string& name : req->names()) {
    auto id = PumpIdFromName(name);
    if (!id.ok()) return new Fail(id.status());
    if (std::find(ids.begin(), ids.end(), *id) != ids.end()) continue;
    if (absl::Status s = CheckPumpInScope(deps_.registry->directory(), *principal, *id); !s.ok()) {
      return new Fail(s);
    }
    if (auto reg = deps_.store->GetPump(*id); !reg.ok()) {
      return new Fail(absl::IsNotFound(reg.status())
                          ? absl::NotFoundError(absl::StrCat("pump '", *id, "' is not registered"))
                          : reg.status());
    }
    ids.push_back(*std::move(id));
  }
  ctx->AddInitialMetadata(std::string(kStreamOpenMetadata), "1");
  auto* reactor = new WatchTwinReactor(deps_.twin_watch_hub);
  reactor->Start(std::move(ids),
                 absl::Milliseconds(req->min_interval_ms() == 0 ? 1000 : req->min_interval_ms()));
  return reactor;
}

}  // namespace pumptwin::server
