// Replica: pumptwind's side of cluster mode (docs/scaling.md "Replicas"). Every pump belongs
// to a virtual shard (VirtualShardOf); a replica serves the pumps of the shards it leases
// (LeaseKeeper) once their twins are loaded, and every commit it makes is fenced by the
// leases of the pumps it writes, so a replica that lost a shard (paused, partitioned, slow)
// cannot write for it any more.
//
// Ownership changes: a replica that gained shards loads their twins (`load_gained`), and one
// that gave shards back (drained for a round, then released) drops theirs
// (`drop_given_back`), while it keeps serving the rest; one that lost a shard (its lease
// taken while it was paused or cut off) is crash-only: the owner of the twins (TwinRegistry)
// drops everything and reloads the pumps of the shards held now (`reload`). The replica serves a
// shard once its twins are loaded. Routing: Route() names the replica serving a pump, from the
// lease table and the replicas' announced addresses (refreshed every round). Thread-safety: every
// method may be called from any thread; rounds run on the replica's own thread (Start) or, in
// tests, by calling RunRound().
#ifndef PUMPTWIN_SERVER_CLUSTER_REPLICA_H_
#define PUMPTWIN_SERVER_CLUSTER_REPLICA_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/cluster/lease_keeper.h"
#include "server/store/postgres_store.h"

namespace pumptwin::cluster {

struct ReplicaOptions {
  std::string name;     // unique in the cluster, stable across restarts
  std::string address;  // host:port gateways and other replicas reach this replica at
  uint32_t shard_count = 256;
  absl::Duration ttl = absl::Seconds(15);
};

struct Route {
  std::string replica;  // "" while no live replica holds the pump's shard
  std::string address;
};

class Replica {
 public:
  Replica(store::PostgresStore* store, ReplicaOptions options);
  ~Replica();  // Stop()
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  // Set before Start. `reload` drops every twin and loads those of the pumps whose shard
  // Holds() during the call; it runs on the round thread. An error leaves the replica
  // serving nothing until the next round retries.
  void set_reload(std::function<absl::Status()> reload) { reload_ = std::move(reload); }
  // Set before Start (optional). After a round that only gained shards, `load_gained`
  // loads the twins of those shards (held, not served yet) while the others keep being
  // served; without it, or when a shard was lost or released, `reload` runs. An error
  // leaves those shards unserved until the next round retries.
  void set_load_gained(std::function<absl::Status(const std::vector<uint32_t>& shards)> load) {
    load_gained_ = std::move(load);
  }
  // Set before Start (optional). After a round that released shards (drained for a round
  // before), `drop_given_back` drops their twins while the others keep being served; without
  // it, or when it fails, or when a shard was lost, `reload` runs.
  void set_drop_given_back(std::function<absl::Status(const std::vector<uint32_t>& shards)> drop) {
    drop_given_back_ = std::move(drop);
  }
  // After every round (metrics, logs): shards served, how long the takeover (lease change
  // to twins served) took when this round made one (zero otherwise), and whether it reloaded
  // every twin (a shard lost) rather than loading or dropping only the shards that changed.
  void set_on_round(
      std::function<void(size_t shards_served, absl::Duration takeover, bool reloaded_all)> f) {
    on_round_ = std::move(f);
  }

  // Creates the lease rows, runs the first round (taking this replica's share of the free
  // shards and loading them) and starts the round thread (every ttl / 3).
  absl::Status Start();
  // Stops the rounds (the leases held stay valid until their expiry: the last commits can
  // still be made). Idempotent.
  void StopRounds();
  // Stops the rounds and releases every lease (a clean hand-over: the others take them at
  // their next round). Call after the last commit. Idempotent.
  void Stop();
  // One round, on the caller's thread (Start's thread calls it on a timer).
  absl::Status RunRound();

  // The commit of a merged write group (GroupCommitter's hook): fenced by the virtual
  // shards of every pump it writes; FAILED_PRECONDITION when one is not held.
  absl::Status Commit(const store::WriteGroup& group);

  // Does this replica hold the lease of the virtual shard (loaded or not)?
  bool Holds(uint32_t shard) const { return keeper_.Owns(shard); }
  // Is this replica serving the pump now (its shard held and its twins loaded)?
  bool Serves(absl::string_view pump_id) const;
  // Which replica serves the pump, as of the last round.
  Route RouteOf(absl::string_view pump_id) const;
  // The addresses of the other live replicas, as of the last round.
  std::vector<std::string> PeerAddresses() const;
  // The route of a pump this replica does not serve, for an answer to a caller: when the
  // last round's route is unknown or names this replica, the routes are read again from the
  // lease table first (at most once per kRouteRefreshInterval), so a caller is not sent
  // away without an owner just because another replica took the shard since the last round.
  // An empty route: nobody serves it now (a takeover in progress).
  Route CurrentRouteOf(absl::string_view pump_id);
  static constexpr absl::Duration kRouteRefreshInterval = absl::Milliseconds(200);

  const std::string& name() const { return options_.name; }
  uint32_t shard_count() const { return options_.shard_count; }
  size_t shards_served() const;

 private:
  absl::Status RefreshRoutes();

  store::PostgresStore* const store_;
  const ReplicaOptions options_;
  LeaseKeeper keeper_;
  std::function<absl::Status()> reload_;
  std::function<absl::Status(const std::vector<uint32_t>&)> load_gained_;
  std::function<absl::Status(const std::vector<uint32_t>&)> drop_given_back_;
  std::function<void(size_t, absl::Duration, bool)> on_round_;
  absl::Mutex round_mu_;  // one round at a time
  // Per virtual shard: served (held and loaded).
  std::unique_ptr<std::atomic<bool>[]> serving_;
  mutable absl::Mutex routes_mu_;
  std::vector<Route> routes_ ABSL_GUARDED_BY(routes_mu_);       // per virtual shard
  std::vector<std::string> peers_ ABSL_GUARDED_BY(routes_mu_);  // the other live replicas
  absl::Mutex refresh_mu_;                                      // one on-demand refresh at a time
  absl::Time last_refresh_ ABSL_GUARDED_BY(refresh_mu_) = absl::InfinitePast();
  absl::Notification stop_;
  absl::Mutex join_mu_;
  std::atomic<bool> stopped_{false};
  std::thread rounds_;
};

}  // namespace pumptwin::cluster

#endif  // PUMPTWIN_SERVER_CLUSTER_REPLICA_H_
