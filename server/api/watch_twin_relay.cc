// WatchTwin across replicas (call_forwarder.h, RelayWatchTwin).
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "server/api/call_forwarder.h"
#include "server/api/stream_end.h"

namespace pumptwin::server {
namespace {

class WatchTwinRelay final : public grpc::ServerWriteReactor<v1::TwinState> {
 public:
  // One upstream WatchTwin per replica. Each has at most one TwinState in flight: read,
  // written to the caller, then the next read. A hold keeps the upstream call open while its
  // state waits to be written (released once it will read no more).
  class Upstream final : public grpc::ClientReadReactor<v1::TwinState> {
   public:
    Upstream(WatchTwinRelay* relay, std::unique_ptr<v1::TwinService::Stub> stub)
        : relay_(relay), stub_(std::move(stub)) {}
    void Start(v1::WatchTwinRequest request) {
      request_ = std::move(request);
      stub_->async()->WatchTwin(&context_, &request_, this);
      AddHold();
      StartRead(&state_);
      StartCall();
    }
    void OnReadDone(bool ok) override {
      if (ok) {
        relay_->Deliver(this);  // the next read once it is written
      } else {
        relay_->ReleaseHold(this);  // the stream is over: OnDone follows
      }
    }
    void OnDone(const grpc::Status& s) override { relay_->UpstreamDone(s); }
    grpc::ClientContext& context() { return context_; }
    v1::TwinState& state() { return state_; }
    void ReadNext() { StartRead(&state_); }

   private:
    friend class WatchTwinRelay;
    WatchTwinRelay* const relay_;
    std::unique_ptr<v1::TwinService::Stub> stub_;
    grpc::ClientContext context_;
    v1::WatchTwinRequest request_;
    v1::TwinState state_;
    bool hold_released_ = false;  // under the relay's mu_
  };

  explicit WatchTwinRelay(size_t upstreams) : refs_(static_cast<int>(upstreams) + 1) {}

  void Add(std::unique_ptr<Upstream> up) { upstreams_.push_back(std::move(up)); }
  void Start(const std::vector<v1::WatchTwinRequest>& requests) {
    {
      absl::MutexLock lock(&mu_);
      live_ = upstreams_.size();
    }
    for (size_t i = 0; i < upstreams_.size(); ++i) upstreams_[i]->Start(requests[i]);
  }

  void OnWriteDone(bool ok) override {
    Upstream* written = nullptr;
    bool read_next = false;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      written = ready_.front();
      ready_.erase(ready_.begin());
      if (!ok) FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      read_next = !end_.AfterWrite(this);
      if (read_next) WriteNextLocked();
    }
    if (read_next) {
      written->ReadNext();
    } else {
      ReleaseHold(written);
      EndUpstreams();
    }
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
    }
    EndUpstreams();
  }

  void OnDone() override { Unref(); }

  void Deliver(Upstream* up) {
    {
      absl::MutexLock lock(&mu_);
      if (!end_.requested()) {
        ready_.push_back(up);
        WriteNextLocked();
        return;
      }
    }
    ReleaseHold(up);  // the watch is ending: this upstream reads no more
  }

  void ReleaseHold(Upstream* up) {
    {
      absl::MutexLock lock(&mu_);
      if (up->hold_released_) return;
      up->hold_released_ = true;
    }
    up->RemoveHold();
  }

  void UpstreamDone(const grpc::Status& s) {
    bool end = false;
    {
      absl::MutexLock lock(&mu_);
      if (!s.ok() && first_error_.ok()) {
        first_error_ = s;
        end = true;  // one replica's stream failed: end the whole watch with its status
      }
      if (--live_ == 0) FinishLocked(first_error_);
      end = end || end_.requested();
    }
    if (end) EndUpstreams();
    Unref();
  }

 private:
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || end_.requested() || ready_.empty()) return;
    writing_ = true;
    StartWrite(&ready_.front()->state());
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    end_.Request(this, std::move(status), writing_);
  }

  // The watch is ending: upstreams reading are cancelled (their read fails and releases the
  // hold); those whose state waits to be written (not the one being written) release theirs.
  void EndUpstreams() {
    std::vector<Upstream*> waiting;
    {
      absl::MutexLock lock(&mu_);
      for (size_t i = writing_ ? 1 : 0; i < ready_.size(); ++i) waiting.push_back(ready_[i]);
      if (!writing_) ready_.clear();
    }
    for (auto& up : upstreams_) up->context().TryCancel();
    for (Upstream* up : waiting) ReleaseHold(up);
  }

  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  std::vector<std::unique_ptr<Upstream>> upstreams_;  // fixed once started
  std::atomic<int> refs_;  // the caller's stream and every upstream, until their OnDone
  absl::Mutex mu_;
  std::vector<Upstream*> ready_ ABSL_GUARDED_BY(mu_);  // read, waiting to be written (front)
  size_t live_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  StreamEnd end_ ABSL_GUARDED_BY(mu_);
  grpc::Status first_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerWriteReactor<v1::TwinState>* CallForwarder::RelayWatchTwin(
    grpc::CallbackServerContext* ctx, const v1::WatchTwinRequest& request,
    const std::map<std::string, std::vector<std::string>>& names_by_address) {
  auto* relay = new WatchTwinRelay(names_by_address.size());
  std::vector<v1::WatchTwinRequest> requests;
  for (const auto& [address, names] : names_by_address) {
    auto up = std::make_unique<WatchTwinRelay::Upstream>(
        relay, v1::TwinService::NewStub(ChannelTo(address)));
    Prepare(*ctx, &up->context());
    v1::WatchTwinRequest part;
    part.set_min_interval_ms(request.min_interval_ms());
    for (const std::string& name : names) part.add_names(name);
    requests.push_back(std::move(part));
    relay->Add(std::move(up));
  }
  if (options_.on_forward) options_.on_forward();
  relay->Start(requests);
  return relay;
}

}  // namespace pumptwin::server
