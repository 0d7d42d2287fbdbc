// TwinWatchHub: change notifications for WatchTwin, coalesced per pump. Shards call
// OnTwinChanged (cheap: an atomic check when nobody watches, else one lock + a set insert);
// a flusher thread, at most once per min_interval per pump and watcher, reads the twin on
// its shard thread (TwinRegistry::Read) and offers the TwinState to the watcher, which
// keeps only the latest state per pump while a write is outstanding.
// Owned by ServerApp; thread-safe. Lock order: hub mu_ -> TwinWatch mu_.
#ifndef PUMPTWIN_SERVER_TWIN_WATCH_HUB_H_
#define PUMPTWIN_SERVER_TWIN_WATCH_HUB_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "pumptwin/v1/resources.pb.h"

namespace pumptwin::server {

class IngestMetrics;
class TwinRegistry;

// One WatchTwin subscriber: its pumps, its interval, and where states go.
class TwinWatch {
 public:
  TwinWatch(std::vector<std::string> pump_ids, absl::Duration min_interval,
            std::function<void(const v1::TwinState&)> on_state,
            std::function<void(absl::Status)> on_end)
      : pump_ids_(std::move(pump_ids)),
        min_interval_(min_interval),
        on_state_(std::move(on_state)),
        on_end_(std::move(on_end)) {}
  // After Detach no callback runs any more (the reactor is going away).
  void Detach();

 private:
  friend class TwinWatchHub;
  void Offer(const v1::TwinState& state);
  void End(absl::Status status);

  const std::vector<std::string> pump_ids_;
  const absl::Duration min_interval_;
  absl::Mutex mu_;
  std::function<void(const v1::TwinState&)> on_state_ ABSL_GUARDED_BY(mu_);
  std::function<void(absl::Status)> on_end_ ABSL_GUARDED_BY(mu_);
  // Hub state (guarded by the hub's mu_): pumps changed since the last offer, offer times.
  absl::flat_hash_set<std::string> dirty_;
  absl::flat_hash_map<std::string, absl::Time> last_offer_;
};

class TwinWatchHub {
 public:
  explicit TwinWatchHub(IngestMetrics* metrics);
  ~TwinWatchHub();  // Shutdown()
  TwinWatchHub(const TwinWatchHub&) = delete;
  TwinWatchHub& operator=(const TwinWatchHub&) = delete;

  // Starts the flusher; reads go through `registry` (must outlive Shutdown()).
  void Start(TwinRegistry* registry);
  // Ends every watch with UNAVAILABLE, stops the flusher; later Adds are refused.
  // Idempotent.
  void Shutdown();

  // Registers a watch: each of its pumps is offered at once, then on change.
  absl::Status Add(std::shared_ptr<TwinWatch> watch);
  void Remove(const std::shared_ptr<TwinWatch>& watch);
  // Shard-thread hook (ShardOptions::on_twin_changed).
  void OnTwinChanged(const std::string& pump_id);

 private:
  void Run();
  void ReadAndOffer(const std::string& pump_id, const std::shared_ptr<TwinWatch>& watch);

  IngestMetrics* const metrics_;
  TwinRegistry* registry_ = nullptr;
  std::atomic<int> watches_{0};
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<std::shared_ptr<TwinWatch>> watches_set_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::vector<std::shared_ptr<TwinWatch>>> by_pump_
      ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_TWIN_WATCH_HUB_H_
