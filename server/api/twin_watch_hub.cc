#include "server/api/twin_watch_hub.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"
#include "common/thread_name.h"
#include "server/core/convert.h"
#include "server/core/twin_registry.h"
#include "server/metrics/ingest_metrics.h"

namespace pumptwin::server {
namespace {
constexpr char kStream[] = "watch_twin";
}  // namespace

void TwinWatch::Detach() {
  absl::MutexLock lock(&mu_);
  on_state_ = nullptr;
  on_end_ = nullptr;
}

void TwinWatch::Offer(const v1::TwinState& state) {
  absl::MutexLock lock(&mu_);
  if (on_state_) on_state_(state);
}

void TwinWatch::End(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (on_end_) on_end_(std::move(status));
}

TwinWatchHub::TwinWatchHub(IngestMetrics* metrics) : metrics_(metrics) {}

TwinWatchHub::~TwinWatchHub() { Shutdown(); }

void TwinWatchHub::Start(TwinRegistry* registry) {
  registry_ = registry;
  thread_ = std::thread([this] {
    NameThisThread("pt-watch-hub");
    Run();
  });
}

void TwinWatchHub::Shutdown() {
  std::vector<std::shared_ptr<TwinWatch>> all;
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
    all.assign(watches_set_.begin(), watches_set_.end());
  }
  if (thread_.joinable()) thread_.join();
  for (const auto& w : all) w->End(absl::UnavailableError("the server is shutting down"));
}

absl::Status TwinWatchHub::Add(std::shared_ptr<TwinWatch> watch) {
  {
    absl::MutexLock lock(&mu_);
    if (stop_ || registry_ == nullptr) {
      return absl::UnavailableError("the server is shutting down; retry later");
    }
    watches_set_.insert(watch);
    for (const std::string& id : watch->pump_ids_) {
      by_pump_[id].push_back(watch);
      watch->last_offer_[id] = absl::Now();
    }
    watches_.fetch_add(1);
  }
  if (metrics_ != nullptr) metrics_->subscribers(kStream).Increment();
  for (const std::string& id : watch->pump_ids_) ReadAndOffer(id, watch);
  return absl::OkStatus();
}

void TwinWatchHub::Remove(const std::shared_ptr<TwinWatch>& watch) {
  absl::MutexLock lock(&mu_);
  if (watches_set_.erase(watch) == 0) return;
  watches_.fetch_sub(1);
  for (const std::string& id : watch->pump_ids_) {
    auto it = by_pump_.find(id);
    if (it == by_pump_.end()) continue;
    auto& v = it->second;
    v.erase(std::remove(v.begin(), v.end(), watch), v.end());
    if (v.empty()) by_pump_.erase(it);
  }
  if (metrics_ != nullptr) metrics_->subscribers(kStream).Decrement();
}

void TwinWatchHub::OnTwinChanged(const std::string& pump_id) {
  if (watches_.load(std::memory_order_relaxed) == 0) return;
  absl::MutexLock lock(&mu_);
  auto it = by_pump_.find(pump_id);
  if (it == by_pump_.end()) return;
  for (const auto& w : it->second) w->dirty_.insert(pump_id);
  wake_ = true;
}

void TwinWatchHub::ReadAndOffer(const std::string& pump_id,
                                const std::shared_ptr<TwinWatch>& watch) {
  registry_->Read(pump_id, [watch](const twin::Twin* twin, absl::Status s) {
    if (twin != nullptr) {
      watch->Offer(FromTwin(*twin));
    } else {
      watch->End(s);
    }
  });
}

void TwinWatchHub::Run() {
  absl::MutexLock lock(&mu_);
  absl::Time next_due = absl::InfiniteFuture();
  for (;;) {
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || wake_; };
    mu_.AwaitWithDeadline(absl::Condition(&ready), next_due);
    if (stop_) return;
    wake_ = false;
    absl::Time now = absl::Now();
    next_due = absl::InfiniteFuture();
    std::vector<std::pair<std::string, std::shared_ptr<TwinWatch>>> due;
    for (const auto& w : watches_set_) {
      for (auto it = w->dirty_.begin(); it != w->dirty_.end();) {
        absl::Time when = w->last_offer_[*it] + w->min_interval_;
        if (when <= now) {
          w->last_offer_[*it] = now;
          due.emplace_back(*it, w);
          w->dirty_.erase(it++);
        } else {
          next_due = std::min(next_due, when);
          ++it;
        }
      }
    }
    mu_.Unlock();
    for (const auto& [id, w] : due) ReadAndOffer(id, w);  // posts to shards; never waits
    mu_.Lock();
  }
}

}  // namespace pumptwin::server
