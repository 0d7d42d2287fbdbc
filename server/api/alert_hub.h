// AlertHub: fans durable alert events (CommitGate AlertListener) out to WatchAlerts
// subscribers. OnAlertEvents (the store's committer thread) only queues the events; the
// hub's delivery threads hand them to every subscription and wake its stream, so no
// number of subscribers, slow or stalled, costs the committer more than that append.
// Delivery runs in `delivery_threads` lanes: each lane has its own thread, queue and share
// of the subscribers (a new one joins the lane with fewest), so one event reaches all of
// them after 1/N of the writes instead of all, and a stream slow to write delays its lane
// only. Every lane sees every event, in cursor order.
// Each subscription has its own bounded buffer (events are shared between buffers and
// lanes, not copied): one whose buffer overflows is marked RESOURCE_EXHAUSTED, emptied and
// counted in pumptwin subscribers_dropped{stream="watch_alerts"}; the others are
// unaffected. Should a lane's delivery queue exceed kMaxQueuedEvents, every subscription of
// that lane ends the same way (their clients resume from their cursor) rather than the hub
// holding unbounded memory. A subscriber is woken only for events its filter matches. At
// most max_subscribers are held at once: every held stream costs gRPC writes on the
// threads that also serve ingest.
// Owned by ServerApp; thread-safe (subscriptions come and go on gRPC threads).
// Lock order: hub mu_ -> lane mu -> Subscription mu_ -> wake callback; a lane's queue
// mutex is taken alone.
#ifndef PUMPTWIN_SERVER_ALERT_HUB_H_
#define PUMPTWIN_SERVER_ALERT_HUB_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "pumptwin/v1/resources.pb.h"
#include "server/core/commit_gate.h"

namespace pumptwin::server {

class IngestMetrics;

// One durable alert event, shared by every subscriber buffer and write that carries it.
using AlertEventPtr = std::shared_ptr<const v1::AlertEvent>;

// Which events a subscriber wants (WatchAlertsRequest filters).
struct AlertFilter {
  std::string clinic;                                    // empty: every clinic
  v1::Severity min_severity = v1::SEVERITY_UNSPECIFIED;  // unspecified: every severity
  bool Matches(const v1::AlertEvent& event) const;
};

// One subscriber's buffer. Created by AlertHub::Subscribe; the subscriber drains it.
class AlertSubscription {
 public:
  AlertSubscription(AlertFilter filter, size_t capacity, std::function<void()> wake)
      : filter_(std::move(filter)), capacity_(capacity), wake_(std::move(wake)) {}

  // Moves up to `max` buffered events (cursor order, shared, not copied) into `out`. Returns the
  // terminal status once the subscription has ended (RESOURCE_EXHAUSTED overflow, UNAVAILABLE
  // shutdown): then nothing more is delivered and the buffer is empty.
  absl::Status Take(size_t max, std::vector<AlertEventPtr>* out);
  const AlertFilter& filter() const { return filter_; }

 private:
  friend class AlertHub;
  // Appends the matching events. `overflowed`: this push ended the subscription (buffer
  // full). Returns whether the subscriber has anything new to see (events or its end):
  // only then is it woken.
  bool Push(const std::vector<AlertEventPtr>& events, bool* overflowed);
  // Ends the subscription with `status`; false if it had ended already.
  bool Close(absl::Status status);

  const AlertFilter filter_;
  const size_t capacity_;
  const std::function<void()> wake_;  // quick, non-blocking; called without mu_ held
  size_t lane_ = 0;                   // the delivery lane (set by Subscribe)
  absl::Mutex mu_;
  std::deque<AlertEventPtr> buffer_ ABSL_GUARDED_BY(mu_);
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

struct AlertHubOptions {
  size_t buffer_events = 4096;  // per subscriber
  // Subscriptions held at once; Subscribe refuses the next one RESOURCE_EXHAUSTED (counted
  // in pumptwin_subscribers_refused_total). 0: no limit. The server's default:
  // DefaultMaxSubscribers.
  size_t max_subscribers = 100;
  // Delivery lanes, each with its own thread (at least 1).
  size_t delivery_threads = 1;
};

// WatchAlerts streams a server holds by default: kSubscribersPerCore per CPU core (`cores`
// 0, unknown, counts as 1). Every held stream costs one stream write per alert event on
// the threads that also serve ingest; with this many, at full ingest and a stress rate of
// ~11 alert events/s, sample-to-alert p99 stays well under 20 ms and the fan-out takes
// about 1-2 % of the server's CPU (docs/benchmarks.md, "Alert subscribers").
inline constexpr size_t kSubscribersPerCore = 50;
size_t DefaultMaxSubscribers(unsigned cores);

class AlertHub final : public AlertListener {
 public:
  static constexpr size_t kMaxQueuedEvents = 1 << 16;  // per lane

  // `initial_position`: the last durable cursor at start-up (store's LastAlertCursor).
  // `metrics` may be null (unit tests). Starts the delivery threads.
  AlertHub(AlertHubOptions options, uint64_t initial_position, IngestMetrics* metrics);
  ~AlertHub() override;  // Shutdown()
  AlertHub(const AlertHub&) = delete;
  AlertHub& operator=(const AlertHub&) = delete;

  // Registers a subscriber. `*position` receives its lane's position at that instant:
  // every event with cursor <= position is durable in the store (replay it from there),
  // every later event goes into the subscription. `wake` is called (its lane's thread)
  // after events were added or the subscription ended. UNAVAILABLE after Shutdown;
  // RESOURCE_EXHAUSTED when max_subscribers are already subscribed.
  absl::StatusOr<std::shared_ptr<AlertSubscription>> Subscribe(AlertFilter filter,
                                                               std::function<void()> wake,
                                                               uint64_t* position);
  // After it returns, `wake` of that subscription is never called again.
  void Unsubscribe(const std::shared_ptr<AlertSubscription>& sub);
  // Ends every subscription with UNAVAILABLE (server stopping); refuses new ones; stops
  // the delivery threads. Idempotent.
  void Shutdown();

  // Queues the events for every lane and returns (committer thread).
  void OnAlertEvents(const std::vector<v1::AlertEvent>& events) override;
  // Returns once every event queued before the call has been delivered (tests).
  void WaitDelivered();

  // The last cursor every lane has delivered.
  uint64_t position() const;
  size_t subscriber_count() const;
  // Subscribers per lane (tests, and the spread the lanes are meant to keep).
  std::vector<size_t> lane_subscriber_counts() const;
  size_t buffer_events() const { return options_.buffer_events; }

 private:
  class Lane;
  using Batch = std::vector<AlertEventPtr>;
  void CountDropped() const;  // subscribers_dropped{stream="watch_alerts"}

  const AlertHubOptions options_;
  IngestMetrics* const metrics_;
  std::vector<std::unique_ptr<Lane>> lanes_;  // fixed after construction
  mutable absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<size_t> lane_subs_ ABSL_GUARDED_BY(mu_);  // subscribers per lane
  size_t subs_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_ALERT_HUB_H_
