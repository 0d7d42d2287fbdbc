#include "server/api/alert_hub.h"

#include <algorithm>
#include <cstdint>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/thread_name.h"
#include "server/metrics/ingest_metrics.h"

namespace pumptwin::server {

size_t DefaultMaxSubscribers(unsigned cores) { return kSubscribersPerCore * std::max(1u, cores); }
namespace {
constexpr char kStream[] = "watch_alerts";
}  // namespace

bool AlertFilter::Matches(const v1::AlertEvent& event) const {
  if (!clinic.empty() && event.alert().clinic() != clinic) return false;
  if (min_severity != v1::SEVERITY_UNSPECIFIED && event.alert().severity() < min_severity) {
    return false;
  }
  return true;
}

absl::Status AlertSubscription::Take(size_t max, std::vector<AlertEventPtr>* out) {
  absl::MutexLock lock(&mu_);
  if (!status_.ok()) return status_;
  while (max-- > 0 && !buffer_.empty()) {
    out->push_back(std::move(buffer_.front()));
    buffer_.pop_front();
  }
  return absl::OkStatus();
}

bool AlertSubscription::Push(const std::vector<AlertEventPtr>& events, bool* overflowed) {
  *overflowed = false;
  absl::MutexLock lock(&mu_);
  if (!status_.ok()) return false;
  bool added = false;
  for (const auto& ev : events) {
    if (!filter_.Matches(*ev)) continue;
    if (buffer_.size() >= capacity_) {
      buffer_.clear();
      status_ = absl::ResourceExhaustedError(
          absl::StrCat("subscriber fell more than ", capacity_, " alert events behind"));
      *overflowed = true;
      return true;
    }
    buffer_.push_back(ev);
    added = true;
  }
  return added;
}

bool AlertSubscription::Close(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (!status_.ok()) return false;
  buffer_.clear();
  status_ = std::move(status);
  return true;
}

// One delivery lane: a thread, its queue of batches and its share of the subscribers.
class AlertHub::Lane {
 public:
  Lane(const AlertHub* hub, uint64_t position) : hub_(hub), position_(position) {
    thread_ = std::thread([this] {
      NameThisThread("pt-alert-hub");
      Run();
    });
  }
  ~Lane() { Stop(); }

  // Adds `sub`; returns the lane's position at that instant (the replay/live boundary).
  uint64_t Add(std::shared_ptr<AlertSubscription> sub) {
    absl::MutexLock lock(&mu_);
    subs_.insert(std::move(sub));
    return position_;
  }
  bool Remove(const std::shared_ptr<AlertSubscription>& sub) {
    absl::MutexLock lock(&mu_);
    return subs_.erase(sub) > 0;
  }

  void Enqueue(const Batch& batch) {
    absl::MutexLock lock(&queue_mu_);
    if (stop_) return;
    if (queued_events_ + batch.size() > kMaxQueuedEvents) {
      // Delivery is that far behind: drop what waits (it is durable; subscribers resume
      // from the store) and end every subscription instead of holding it all in memory.
      queue_.clear();
      queued_events_ = 0;
      overflowed_ = true;
      overflow_cursor_ = std::max(overflow_cursor_, batch.back()->cursor());
      return;
    }
    queued_events_ += batch.size();
    queue_.push_back(batch);
  }

  // Stops the thread (queued batches are dropped), then ends every subscription with
  // UNAVAILABLE. Idempotent.
  void Stop() {
    {
      absl::MutexLock lock(&queue_mu_);
      stop_ = true;
      queue_.clear();
      queued_events_ = 0;
    }
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
    absl::MutexLock lock(&mu_);
    for (const auto& sub : subs_) {
      sub->Close(absl::UnavailableError("the server is shutting down"));
      sub->wake_();
    }
    subs_.clear();
  }

  void WaitDelivered() {
    absl::MutexLock lock(&queue_mu_);
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue_mu_) {
      return stop_ || (queue_.empty() && !busy_ && !overflowed_);
    };
    queue_mu_.Await(absl::Condition(&idle));
  }

  uint64_t position() const {
    absl::MutexLock lock(&mu_);
    return position_;
  }

 private:
  void Run() {
    for (;;) {
      std::deque<Batch> batches;
      bool overflow = false;
      uint64_t dropped_upto = 0;
      {
        absl::MutexLock lock(&queue_mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue_mu_) {
          return stop_ || overflowed_ || !queue_.empty();
        };
        queue_mu_.Await(absl::Condition(&ready));
        if (stop_) return;
        batches.swap(queue_);
        queued_events_ = 0;
        overflow = overflowed_;
        overflowed_ = false;
        dropped_upto = overflow_cursor_;
        busy_ = true;
      }
      // Dropped events are older than every batch queued after the drop.
      if (overflow) DropAll(dropped_upto);
      for (const Batch& b : batches) Deliver(b);
      absl::MutexLock lock(&queue_mu_);
      busy_ = false;
    }
  }

  void Deliver(const Batch& events) {
    absl::MutexLock lock(&mu_);
    position_ = std::max(position_, events.back()->cursor());
    for (const auto& sub : subs_) {
      bool overflowed = false;
      if (!sub->Push(events, &overflowed)) continue;  // nothing it wants: no wakeup
      if (overflowed) hub_->CountDropped();
      sub->wake_();
    }
  }

  void DropAll(uint64_t last_dropped_cursor) {
    absl::MutexLock lock(&mu_);
    position_ = std::max(position_, last_dropped_cursor);
    for (const auto& sub : subs_) {
      if (sub->Close(absl::ResourceExhaustedError(absl::StrCat(
              "alert delivery fell more than ", kMaxQueuedEvents, " events behind")))) {
        hub_->CountDropped();
      }
      sub->wake_();
    }
  }

  const AlertHub* const hub_;
  mutable absl::Mutex mu_;
  uint64_t position_ ABSL_GUARDED_BY(mu_);  // last cursor delivered to the subscriptions
  absl::flat_hash_set<std::shared_ptr<AlertSubscription>> subs_ ABSL_GUARDED_BY(mu_);

  absl::Mutex queue_mu_;
  std::deque<Batch> queue_ ABSL_GUARDED_BY(queue_mu_);
  size_t queued_events_ ABSL_GUARDED_BY(queue_mu_) = 0;
  bool overflowed_ ABSL_GUARDED_BY(queue_mu_) = false;
  uint64_t overflow_cursor_ ABSL_GUARDED_BY(queue_mu_) = 0;  // last cursor dropped
  bool busy_ ABSL_GUARDED_BY(queue_mu_) = false;             // the thread is delivering a take
  bool stop_ ABSL_GUARDED_BY(queue_mu_) = false;
  std::thread thread_;
};

AlertHub::AlertHub(AlertHubOptions options, uint64_t initial_position, IngestMetrics* metrics)
    : options_(options), metrics_(metrics) {
  const size_t n = std::max<size_t>(1, options_.delivery_threads);
  for (size_t i = 0; i < n; ++i) lanes_.push_back(std::make_unique<Lane>(this, initial_position));
  absl::MutexLock lock(&mu_);
  lane_subs_.assign(n, 0);
}

AlertHub::~AlertHub() { Shutdown(); }

void AlertHub::CountDropped() const {
  if (metrics_ != nullptr) metrics_->subscribers_dropped(kStream).Increment();
}

absl::StatusOr<std::shared_ptr<AlertSubscription>> AlertHub::Subscribe(AlertFilter filter,
                                                                       std::function<void()> wake,
                                                                       uint64_t* position) {
  auto sub = std::make_shared<AlertSubscription>(std::move(filter), options_.buffer_events,
                                                 std::move(wake));
  absl::MutexLock lock(&mu_);
  if (shut_down_) return absl::UnavailableError("the server is shutting down; retry later");
  if (options_.max_subscribers != 0 && subs_ >= options_.max_subscribers) {
    if (metrics_ != nullptr) metrics_->subscribers_refused(kStream).Increment();
    return absl::ResourceExhaustedError(absl::StrCat(
        "this server already serves ", subs_,
        " WatchAlerts streams (--watch_alerts_max_subscribers); retry with backoff, or share "
        "one stream among the views of a client"));
  }
  const size_t lane = static_cast<size_t>(std::min_element(lane_subs_.begin(), lane_subs_.end()) -
                                          lane_subs_.begin());
  sub->lane_ = lane;
  *position = lanes_[lane]->Add(sub);
  ++lane_subs_[lane];
  ++subs_;
  if (metrics_ != nullptr) metrics_->subscribers(kStream).Increment();
  return sub;
}

void AlertHub::Unsubscribe(const std::shared_ptr<AlertSubscription>& sub) {
  absl::MutexLock lock(&mu_);
  if (shut_down_ || !lanes_[sub->lane_]->Remove(sub)) return;
  --lane_subs_[sub->lane_];
  --subs_;
  if (metrics_ != nullptr) metrics_->subscribers(kStream).Decrement();
}

void AlertHub::Shutdown() {
  size_t held = 0;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;  // from here Subscribe refuses and Unsubscribe has nothing to do
    held = subs_;
    subs_ = 0;
    lane_subs_.assign(lanes_.size(), 0);
  }
  // Not under mu_: a lane's thread may be inside a wake, which must be able to finish.
  for (auto& lane : lanes_) lane->Stop();
  if (metrics_ != nullptr) metrics_->subscribers(kStream).Decrement(static_cast<double>(held));
}

void AlertHub::OnAlertEvents(const std::vector<v1::AlertEvent>& events) {
  if (events.empty()) return;
  Batch batch;
  batch.reserve(events.size());
  for (const v1::AlertEvent& ev : events)
    batch.push_back(std::make_shared<const v1::AlertEvent>(ev));
  for (auto& lane : lanes_) lane->Enqueue(batch);
}

void AlertHub::WaitDelivered() {
  for (auto& lane : lanes_) lane->WaitDelivered();
}

uint64_t AlertHub::position() const {
  uint64_t p = UINT64_MAX;
  for (const auto& lane : lanes_) p = std::min(p, lane->position());
  return p;
}

size_t AlertHub::subscriber_count() const {
  absl::MutexLock lock(&mu_);
  return subs_;
}

std::vector<size_t> AlertHub::lane_subscriber_counts() const {
  absl::MutexLock lock(&mu_);
  return lane_subs_;
}

}  // namespace pumptwin::server
