#include "server/process/cluster_mode.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/thread_name.h"
#include "device_link/ingest_sink.h"
#include "server/cluster/replica.h"
#include "server/core/commit_gate.h"
#include "server/metrics/ingest_metrics.h"
#include "server/store/postgres_store.h"

namespace pumptwin::server {

absl::Status ValidateClusterOptions(const ClusterModeOptions& o, bool postgres_store) {
  if (o.replica.empty()) return absl::OkStatus();
  if (!postgres_store) {
    return absl::InvalidArgumentError(
        "--cluster_replica needs --store=postgres: the replicas of a cluster share one "
        "PostgreSQL database (docs/scaling.md)");
  }
  if (o.replica.size() > 63 ||
      o.replica.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789-_.") != std::string::npos) {
    return absl::InvalidArgumentError(
        "--cluster_replica must be 1..63 letters, digits, '-', '_' or '.' (e.g. the pod name)");
  }
  if (o.address.empty()) {
    return absl::InvalidArgumentError(
        "--cluster_advertise is required with --cluster_replica: the host:port gateways and "
        "the other replicas reach this replica at");
  }
  if (o.shard_count < 1 || o.shard_count > 65536) {
    return absl::InvalidArgumentError("--cluster_shards must be in [1, 65536]");
  }
  if (o.lease_ttl < absl::Seconds(1) || o.lease_ttl > absl::Minutes(10)) {
    return absl::InvalidArgumentError("--cluster_lease_ttl must be in [1s, 10m]");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ClusterMode>> ClusterMode::Create(store::Store* store,
                                                                 ClusterModeOptions options) {
  auto* pg = dynamic_cast<store::PostgresStore*>(store);
  if (pg == nullptr) {
    return absl::FailedPreconditionError("cluster mode needs the PostgreSQL store");
  }
  cluster::ReplicaOptions ro;
  ro.name = options.replica;
  ro.address = options.address;
  ro.shard_count = options.shard_count;
  ro.ttl = options.lease_ttl;
  return std::unique_ptr<ClusterMode>(
      new ClusterMode(std::make_unique<cluster::Replica>(pg, std::move(ro)), std::move(options)));
}

ClusterMode::ClusterMode(std::unique_ptr<cluster::Replica> replica, ClusterModeOptions options)
    : options_(std::move(options)), replica_(std::move(replica)) {}

ClusterMode::~ClusterMode() { Stop(); }

std::function<absl::Status(const store::WriteGroup&)> ClusterMode::commit_hook() {
  cluster::Replica* r = replica_.get();
  return [r](const store::WriteGroup& group) { return r->Commit(group); };
}

ClusterView ClusterMode::view() {
  cluster::Replica* r = replica_.get();
  const uint32_t shards = options_.shard_count;
  ClusterView v;
  // While loading, the shards held (leased) are loaded; Serves follows once loaded.
  v.holds = [r, shards](absl::string_view pump) {
    return r->Holds(store::VirtualShardOf(pump, shards));
  };
  v.serves = [r](absl::string_view pump) { return r->Serves(pump); };
  v.not_served = [r](absl::string_view pump) {
    const cluster::Route route = r->CurrentRouteOf(pump);
    absl::Status moved = device_link::MovedError(pump, route.replica, route.address);
    return moved;
  };
  v.moved_route = [r](absl::string_view pump) {
    const cluster::Route route = r->CurrentRouteOf(pump);
    device_link::ResumePoint p;
    p.pump_id = std::string(pump);
    p.moved = true;
    p.owner_replica = route.replica;
    p.owner_address = route.address;
    return p;
  };
  return v;
}

std::function<std::optional<std::string>(absl::string_view)> ClusterMode::owner_address() {
  cluster::Replica* r = replica_.get();
  return [r](absl::string_view pump) -> std::optional<std::string> {
    if (r->Serves(pump)) return std::nullopt;
    const cluster::Route route = r->CurrentRouteOf(pump);
    if (route.address.empty()) return std::nullopt;
    return route.address;
  };
}

std::function<std::vector<std::string>()> ClusterMode::peers() {
  cluster::Replica* r = replica_.get();
  return [r] { return r->PeerAddresses(); };
}

void ClusterMode::ShareLog(CommitGate* gate) {
  cluster::Replica* r = replica_.get();
  gate->ShareLog([r](absl::string_view pump) { return r->Serves(pump); });
}

std::function<bool(absl::string_view)> ClusterMode::PumpsOf(
    const std::vector<uint32_t>& shards) const {
  auto in = std::make_shared<std::vector<bool>>(options_.shard_count);
  for (uint32_t s : shards) (*in)[s] = true;
  const uint32_t count = options_.shard_count;
  return [in, count](absl::string_view pump) { return (*in)[store::VirtualShardOf(pump, count)]; };
}

absl::Status ClusterMode::Start(TwinRegistry* registry, CommitGate* gate, IngestMetrics* metrics) {
  replica_->set_reload([registry, this] {
    return registry->Reload(
        absl::StrCat("the virtual shards held by replica ", options_.replica, " changed"));
  });
  replica_->set_load_gained([registry, this](const std::vector<uint32_t>& shards) {
    return registry->LoadGained(
        PumpsOf(shards),
        absl::StrCat("replica ", options_.replica, " took ", shards.size(), " virtual shards"));
  });
  replica_->set_drop_given_back([registry, this](const std::vector<uint32_t>& shards) {
    return registry->DropGivenBack(
        PumpsOf(shards), absl::StrCat("replica ", options_.replica, " gave back ", shards.size(),
                                      " virtual shards"));
  });
  replica_->set_on_round(
      [metrics, this](size_t served, absl::Duration takeover, bool reloaded_all) {
        metrics->SetShardsOwned(served);
        if (takeover > absl::ZeroDuration()) {
          metrics->ObserveTakeover(takeover, reloaded_all);
          Log(LogLevel::kInfo, "cluster_takeover",
              {{"replica", options_.replica},
               {"shards_served", served},
               {"kind", reloaded_all ? "reload" : "incremental"},
               {"takeover_ms", absl::ToInt64Milliseconds(takeover)}});
        }
      });
  if (absl::Status s = replica_->Start(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("cluster mode: ", s.message()));
  }
  follower_ = std::thread([this, gate, registry] {
    NameThisThread("pt-follow");
    absl::Status last;
    while (!stop_.WaitForNotificationWithTimeout(options_.follow_interval)) {
      // A commit refused by the fence or the log check latched the committer: reload now
      // rather than at the next tick (the ticker retries too).
      if (registry->degraded()) registry->TryRevive().IgnoreError();
      // Read until caught up, then wait for the next interval.
      absl::StatusOr<size_t> n;
      do {
        n = gate->Follow(1000);
      } while (n.ok() && *n > 0 && !stop_.HasBeenNotified());
      if (!n.ok() && n.status() != last) {
        Log(LogLevel::kWarning, "cluster_follow_failed",
            {{"error", std::string(n.status().message())}});
      }
      last = n.status();
    }
  });
  return absl::OkStatus();
}

void ClusterMode::Quiesce() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (follower_.joinable()) follower_.join();
  replica_->StopRounds();
}

void ClusterMode::Stop() {
  if (stopped_) return;
  stopped_ = true;
  Quiesce();
  replica_->Stop();
}

}  // namespace pumptwin::server
