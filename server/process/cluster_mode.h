// ClusterMode: pumptwind's wiring of cluster mode (docs/scaling.md "Replicas"): the
// replica's leases and fenced commits (server/cluster/replica.h), what the registry loads
// and serves, and the follower that brings the other replicas' alert events and audit
// records to this one (CommitGate::Follow) for WatchAlerts and the alert book.
// Used by ServerApp in this order: Create, commit_hook / view / ShareLog before the
// committer, registry and gate load; Start once they have; Stop after the registry stopped.
#ifndef PUMPTWIN_SERVER_PROCESS_CLUSTER_MODE_H_
#define PUMPTWIN_SERVER_PROCESS_CLUSTER_MODE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/core/twin_registry.h"
#include "server/store/store.h"

namespace pumptwin::cluster {
class Replica;
}  // namespace pumptwin::cluster

namespace pumptwin::server {

class CommitGate;
class IngestMetrics;

struct ClusterModeOptions {
  std::string replica;  // --cluster_replica
  std::string address;  // --cluster_advertise
  uint32_t shard_count = 256;
  absl::Duration lease_ttl = absl::Seconds(15);
  // How often the follower reads the alert events and audit records other replicas
  // stored (the live delay of their alerts on this replica's WatchAlerts streams).
  absl::Duration follow_interval = absl::Milliseconds(100);
};

// INVALID_ARGUMENT for options cluster mode cannot run with (checked before anything binds).
absl::Status ValidateClusterOptions(const ClusterModeOptions& options, bool postgres_store);

class ClusterMode {
 public:
  // `store` must be the PostgreSQL store (FAILED_PRECONDITION otherwise).
  static absl::StatusOr<std::unique_ptr<ClusterMode>> Create(store::Store* store,
                                                             ClusterModeOptions options);
  ~ClusterMode();  // Stop()
  ClusterMode(const ClusterMode&) = delete;
  ClusterMode& operator=(const ClusterMode&) = delete;

  // For GroupCommitterOptions::commit: the replica's fenced commit.
  std::function<absl::Status(const store::WriteGroup&)> commit_hook();
  // For RegistryOptions::cluster.
  ClusterView view();
  // The address of the replica serving a pump this one does not serve (known route), for
  // forwarding TwinService calls; nullopt: serve it here (or answer that nobody does now).
  std::function<std::optional<std::string>(absl::string_view pump_id)> owner_address();
  // The addresses of the other live replicas (for fleet reads that ask every replica).
  std::function<std::vector<std::string>()> peers();
  const std::string& replica_name() const { return options_.replica; }
  // Makes the gate a follower of the cluster's one alert log and audit chain (before Load).
  void ShareLog(CommitGate* gate);

  // Takes this replica's share of the shards, loads their twins, then keeps the leases and
  // follows the log on its own threads.
  absl::Status Start(TwinRegistry* registry, CommitGate* gate, IngestMetrics* metrics);
  // Stops following and the lease rounds; the leases stay valid for the last commits.
  void Quiesce();
  // Quiesce, then hands every shard over (call after the registry's last commit).
  void Stop();

 private:
  // Selects the pumps of `shards` (virtual shards of this cluster).
  std::function<bool(absl::string_view pump_id)> PumpsOf(const std::vector<uint32_t>& shards) const;
  ClusterMode(std::unique_ptr<cluster::Replica> replica, ClusterModeOptions options);

  const ClusterModeOptions options_;
  std::unique_ptr<cluster::Replica> replica_;
  absl::Notification stop_;
  std::thread follower_;
  bool stopped_ = false;
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_PROCESS_CLUSTER_MODE_H_
