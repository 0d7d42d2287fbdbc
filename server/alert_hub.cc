#include "server/alert_hub.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/ingest_metrics.h"

namespace pumptwin::server {
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

absl::Status AlertSubscription::Take(size_t max, std::vector<v1::AlertEvent>* out) {
  absl::MutexLock lock(&mu_);
  if (!status_.ok()) return status_;
  while (max-- > 0 && !buffer_.empty()) {
    out->push_back(std::move(buffer_.front()));
    buffer_.pop_front();
  }
  return absl::OkStatus();
}

bool AlertSubscription::Push(const std::vector<v1::AlertEvent>& events) {
  absl::MutexLock lock(&mu_);
  if (!status_.ok()) return false;
  for (const v1::AlertEvent& ev : events) {
    if (!filter_.Matches(ev)) continue;
    if (buffer_.size() >= capacity_) {
      buffer_.clear();
      status_ = absl::ResourceExhaustedError(absl::StrCat(
          "subscriber fell more than ", capacity_, " alert events behind"));
      return true;
    }
    buffer_.push_back(ev);
  }
  return false;
}

void AlertSubscription::Close(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (!status_.ok()) return;
  buffer_.clear();
  status_ = std::move(status);
}

AlertHub::AlertHub(AlertHubOptions options, uint64_t initial_position, IngestMetrics* metrics)
    : options_(options), metrics_(metrics), position_(initial_position) {}

absl::StatusOr<std::shared_ptr<AlertSubscription>> AlertHub::Subscribe(
    AlertFilter filter, std::function<void()> wake, uint64_t* position) {
  auto sub = std::make_shared<AlertSubscription>(std::move(filter), options_.buffer_events,
                                                 std::move(wake));
  absl::MutexLock lock(&mu_);
  if (shut_down_) return absl::UnavailableError("the server is shutting down; retry later");
  subs_.insert(sub);
  *position = position_;
  if (metrics_ != nullptr) metrics_->subscribers(kStream).Increment();
  return sub;
}

void AlertHub::Unsubscribe(const std::shared_ptr<AlertSubscription>& sub) {
  absl::MutexLock lock(&mu_);
  if (subs_.erase(sub) > 0 && metrics_ != nullptr) metrics_->subscribers(kStream).Decrement();
}

void AlertHub::Shutdown() {
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
  for (const auto& sub : subs_) {
    sub->Close(absl::UnavailableError("the server is shutting down"));
    sub->wake_();
  }
}

void AlertHub::OnAlertEvents(const std::vector<v1::AlertEvent>& events) {
  if (events.empty()) return;
  absl::MutexLock lock(&mu_);
  position_ = std::max(position_, events.back().cursor());
  for (const auto& sub : subs_) {
    if (sub->Push(events) && metrics_ != nullptr) {
      metrics_->subscribers_dropped(kStream).Increment();
    }
    sub->wake_();
  }
}

uint64_t AlertHub::position() const {
  absl::MutexLock lock(&mu_);
  return position_;
}

size_t AlertHub::subscriber_count() const {
  absl::MutexLock lock(&mu_);
  return subs_.size();
}

}  // namespace pumptwin::server
