// IngestMetrics: the Prometheus side of ingest, store, twins and alerts (names and labels
// in docs/metrics.md). Builds the hook structs the lower layers call (device_link's
// GatewayMetrics, the store's GroupCommitMetrics) so those layers stay free of
// prometheus-cpp, and refreshes fleet gauges from the registry on demand.
// Thread-safe after construction (prometheus-cpp metrics are).
#ifndef PUMPTWIN_SERVER_INGEST_METRICS_H_
#define PUMPTWIN_SERVER_INGEST_METRICS_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "device_link/gateway_service.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "pumptwin/v1/resources.pb.h"
#include "server/core/commit_gate.h"
#include "server/store/group_committer.h"
#include "server/store/store.h"

namespace pumptwin::server {

class TwinRegistry;
struct IngestStageTimes;

class IngestMetrics : public AlertListener {
 public:
  explicit IngestMetrics(prometheus::Registry& registry);

  device_link::GatewayMetrics GatewayHooks();
  store::GroupCommitMetrics CommitHooks();
  void ObserveAlertLatency(double seconds) { alert_latency_->Observe(seconds); }
  // A late input applied in its place (ShardOptions::on_late_input): path "rewind" or
  // "beyond_window".
  void CountLateInput(absl::string_view path) {
    (path == "beyond_window" ? late_beyond_window_ : late_rewind_)->Increment();
  }
  // A rewind was done (ShardOptions::on_rewind): from the pump's recent inputs in memory, or
  // from a checkpoint read back from the store.
  void CountRewind(bool from_memory) {
    (from_memory ? rewind_memory_ : rewind_store_)->Increment();
  }
  // Adds one completion's ingest stage times (ShardOptions::on_ingest_stages).
  void AddIngestStages(const IngestStageTimes& t);
  void SetRecovery(absl::Duration d, size_t twins);
  // Cluster mode: virtual shards served now; a takeover (lease change -> twins loaded) took d.
  void SetShardsOwned(size_t shards) { shards_owned_->Set(static_cast<double>(shards)); }
  // Cluster mode: a TwinService call forwarded to the replica serving its pump.
  void CountForwardedCall() { forwarded_calls_->Increment(); }
  // `reloaded_all`: every twin reloaded (a shard lost), else only the shards that changed.
  void ObserveTakeover(absl::Duration d, bool reloaded_all) {
    (reloaded_all ? takeover_reload_ : takeover_gained_)->Observe(absl::ToDoubleSeconds(d));
    takeovers_->Increment();
  }
  // RocksDB size estimates (Store::ApproximateSizes), refreshed with the fleet gauges.
  void SetStoreSizes(const store::Store::Sizes& sizes);
  // Recomputes the fleet gauges (twins by state/profile, active alerts, silent pumps,
  // queue depths). Linear in pumps; called every few seconds.
  void RefreshFleet(TwinRegistry& registry, const CommitGate& gate, absl::Time now);
  // AlertListener: counts transitions (the hub forwards events here).
  void OnAlertEvents(const std::vector<v1::AlertEvent>& events) override;

 private:
  prometheus::Registry& registry_;
  prometheus::Gauge* gateways_;
  prometheus::Family<prometheus::Counter>* frames_;
  prometheus::Family<prometheus::Counter>* samples_;
  prometheus::Counter* frames_acked_;
  prometheus::Counter* samples_applied_;
  prometheus::Counter* samples_rejected_;
  prometheus::Family<prometheus::Counter>* rejected_;
  prometheus::Histogram* ack_latency_;
  prometheus::Histogram* alert_latency_;
  prometheus::Counter* late_rewind_;
  prometheus::Counter* late_beyond_window_;
  prometheus::Counter* rewind_memory_;
  prometheus::Counter* rewind_store_;
  prometheus::Counter* stage_parts_;
  prometheus::Counter* stage_shard_queue_;
  prometheus::Counter* stage_group_wait_;
  prometheus::Counter* stage_store_;
  prometheus::Counter* stage_ack_return_;
  prometheus::Family<prometheus::Gauge>* queue_depth_;
  prometheus::Counter* rate_limited_;
  prometheus::Histogram* commit_seconds_;
  prometheus::Counter* commits_;
  prometheus::Counter* commit_groups_;
  prometheus::Counter* written_bytes_;
  prometheus::Family<prometheus::Counter>* store_errors_;
  prometheus::Gauge* live_data_bytes_;
  prometheus::Gauge* memtable_bytes_;
  prometheus::Gauge* pending_compaction_bytes_;
  prometheus::Gauge* recovery_seconds_;
  prometheus::Gauge* shards_owned_;
  prometheus::Histogram* takeover_gained_;
  prometheus::Histogram* takeover_reload_;
  prometheus::Counter* takeovers_;
  prometheus::Counter* forwarded_calls_;
  prometheus::Gauge* recovered_twins_;
  prometheus::Family<prometheus::Gauge>* twins_;
  prometheus::Gauge* silent_;
  prometheus::Family<prometheus::Gauge>* active_alerts_;
  prometheus::Family<prometheus::Gauge>* unacked_critical_;
  prometheus::Family<prometheus::Counter>* transitions_;
  prometheus::Family<prometheus::Counter>* clinic_raised_;
  prometheus::Family<prometheus::Gauge>* subscribers_;
  prometheus::Family<prometheus::Counter>* subscribers_dropped_;
  prometheus::Family<prometheus::Counter>* subscribers_refused_;
  size_t max_clinic_labels_ = 200;
  absl::Mutex clinic_mu_;
  absl::flat_hash_set<std::string> clinics_seen_ ABSL_GUARDED_BY(clinic_mu_);

 public:
  prometheus::Gauge& subscribers(const std::string& stream) {
    return subscribers_->Add({{"stream", stream}});
  }
  prometheus::Counter& subscribers_dropped(const std::string& stream) {
    return subscribers_dropped_->Add({{"stream", stream}});
  }
  prometheus::Counter& subscribers_refused(const std::string& stream) {
    return subscribers_refused_->Add({{"stream", stream}});
  }
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_INGEST_METRICS_H_
