// TwinRegistry: the sharded twins of every registered pump and the server side of ingest
// (it implements device_link::IngestSink). Routes each pump to the shard the directory
// placed it on (gateway-affine, server/pump_directory.h), recovers twins at start-up (last snapshot
// + replay of later telemetry), ticks them on server time, and degrades to UNAVAILABLE when the
// store fails, recovering by reloading everything from the store once writes succeed again.
// Thread-safe: every public method may be called from any thread.
#ifndef PUMPTWIN_SERVER_TWIN_REGISTRY_H_
#define PUMPTWIN_SERVER_TWIN_REGISTRY_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "device_link/ingest_sink.h"
#include "pumptwin/v1/resources.pb.h"
#include "server/core/commit_gate.h"
#include "server/core/pump_directory.h"
#include "server/core/shard.h"
#include "server/store/store.h"
#include "twin/twin.h"

namespace pumptwin::server {

// Cluster mode (docs/scaling.md "Replicas"): which pumps this replica loads and serves.
struct ClusterView {
  // Pumps whose virtual shard this replica holds: recovery and Reload load only these.
  std::function<bool(absl::string_view pump_id)> holds;
  // Pumps served now (held and loaded); the others are refused with `not_served`.
  std::function<bool(absl::string_view pump_id)> serves;
  // The refusal for a pump another replica serves: device_link::MovedError for gateways...
  std::function<absl::Status(absl::string_view pump_id)> not_served;
  // ...and the route of a Welcome.
  std::function<device_link::ResumePoint(absl::string_view pump_id)> moved_route;
};

struct RegistryOptions {
  int shards = 0;  // 0: one per core
  ShardOptions shard;
  ClusterView cluster;  // empty functions: a single server serving every pump
};

struct RecoveryStats {
  size_t pumps = 0;
  size_t twins = 0;
  size_t replayed_samples = 0;
  absl::Duration duration;
};

class TwinRegistry : public device_link::IngestSink {
 public:
  TwinRegistry(store::Store* store, CommitGate* gate, RegistryOptions options);
  ~TwinRegistry() override;
  TwinRegistry(const TwinRegistry&) = delete;
  TwinRegistry& operator=(const TwinRegistry&) = delete;

  // Loads registrations, snapshots and replays later telemetry. Call once, before serving.
  absl::StatusOr<RecoveryStats> Recover();
  // Snapshots dirty twins, drains the shards (their last commits included). Idempotent.
  void Stop();

  // ---- IngestSink
  void Submit(device_link::IngestBatch batch,
              std::function<void(device_link::IngestResult)> done) override;
  absl::StatusOr<std::vector<device_link::ResumePoint>> ResumePoints(
      absl::string_view gateway_id, const std::vector<std::string>& pump_ids) override;
  absl::Status Authorize(absl::string_view gateway_id, absl::string_view pump_id) override;

  // ---- twins
  // Registers a pump: creates its twin, commits registration + snapshot + audit atomically.
  // ALREADY_EXISTS, INVALID_ARGUMENT (config / prescription), UNAVAILABLE (store).
  void Register(v1::Pump pump, twin::Twin twin, std::vector<AuditDraft> audit,
                std::function<void(absl::Status)> done);
  // Runs fn on the pump's shard (see Shard::Mutate). NOT_FOUND for an unknown pump.
  // block=false (required when called on a shard thread: never block one shard on
  // another): RESOURCE_EXHAUSTED when that shard's queue is full.
  void Mutate(const std::string& pump_id, Shard::MutateFn fn,
              std::function<void(absl::Status)> done, bool block = true);
  // Runs fn with the live twin on its shard thread (nullptr and NOT_FOUND when unknown).
  void Read(const std::string& pump_id,
            std::function<void(const twin::Twin* twin, absl::Status status)> fn);
  // Server-time checks on every shard (silent pumps...). Called by a periodic ticker.
  // `received_before`: only pumps whose last sample was received (receipt stamp) before it
  // are checked; the data clock passes the wall time of a few ticks ago, so a pump whose
  // samples are still arriving is never silent because another shard's data ran ahead.
  void Tick(absl::Time server_time, absl::Time received_before = absl::InfiniteFuture());
  // The newest model time any twin reached (the data clock; ServerOptions::tick_clock), or
  // nullopt before any twin changed.
  std::optional<absl::Time> NewestModelTime() const;

  PumpDirectory& directory() { return directory_; }
  int shard_count() const { return static_cast<int>(shards_.size()); }
  size_t shard_queue_depth(int shard) const { return shards_[shard]->queue_depth(); }
  bool degraded() const { return degraded_.load(); }
  // Tries a probe write; when it succeeds, reloads every twin from the store and serves
  // again. Returns OK when not degraded (any more).
  absl::Status TryRevive();
  // Cluster mode, after the shards held changed: refuses writes, drops every twin and loads
  // those of the pumps held now (TryRevive's path; ingest answers UNAVAILABLE meanwhile).
  absl::Status Reload(absl::string_view why);
  // Cluster mode, after shards were only gained: loads the twins of the pumps `gained`
  // selects while every other twin keeps being served (nothing is reset), then follows the
  // alert log to its end so their alert book is current before they are served.
  // UNAVAILABLE while the registry is degraded (its revival loads every held pump).
  absl::Status LoadGained(const std::function<bool(absl::string_view)>& gained,
                          absl::string_view why);
  // Cluster mode, after shards were given back (drained, then released): drops the twins of
  // the pumps `given_back` selects while the others keep being served. FAILED_PRECONDITION
  // when one of them still has data forming (then some may be dropped already: the caller
  // must reload everything); UNAVAILABLE while the registry is degraded.
  absl::Status DropGivenBack(const std::function<bool(absl::string_view)>& given_back,
                             absl::string_view why);

 private:
  // The pump's shard; an unknown id goes by its hash (that shard answers NOT_FOUND).
  int ShardIndexOf(absl::string_view pump_id) const {
    const int shard = directory_.ShardOf(pump_id);
    return shard >= 0 ? shard : directory_.StripeOf(pump_id);
  }
  Shard& ShardOf(absl::string_view pump_id) { return *shards_[ShardIndexOf(pump_id)]; }
  // Loads the registrations and twins of the pumps `which` selects (every held pump when
  // empty). `fresh`: the registry is empty (sizes every map once for them).
  absl::Status LoadAll(RecoveryStats* stats,
                       const std::function<bool(absl::string_view)>& which = nullptr,
                       bool fresh = true);
  bool Holds(absl::string_view pump_id) const {
    return !options_.cluster.holds || options_.cluster.holds(pump_id);
  }
  // OK when this replica serves the pump (always, outside cluster mode).
  absl::Status CheckServed(absl::string_view pump_id) const {
    if (!options_.cluster.serves || options_.cluster.serves(pump_id)) return absl::OkStatus();
    return options_.cluster.not_served(pump_id);
  }
  // The refusal of an API call about a pump this replica does not serve: a call forwarded
  // here on a stale route, or one whose pump's shard changed replicas after the call was
  // routed. UNAVAILABLE (callers retry; the retry is forwarded to the owner), naming the
  // owner when it is known.
  absl::Status CheckServedForCall(absl::string_view pump_id) const;
  void OnStoreError(const absl::Status& status);

  store::Store* const store_;
  CommitGate* const gate_;
  RegistryOptions options_;
  PumpDirectory directory_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<bool> degraded_{false};
  std::atomic<bool> stopped_{false};
  absl::Mutex revive_mu_;
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_TWIN_REGISTRY_H_
