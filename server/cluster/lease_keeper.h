// LeaseKeeper: one replica's side of cluster mode's virtual-shard leases (docs/scaling.md
// "Leases and fencing"). Each Round() marks the replica alive, renews the leases it holds,
// gives up those it lost, and moves toward a fair share of the shards: ceil(shards / live
// replicas). It takes expired leases up to that share and gives back what it holds beyond it,
// so a replica that joins gets shards from the others and a dead replica's shards are taken
// once its leases expire. Giving back takes two rounds: a surplus shard first **drains** (it
// is no longer served, but its lease is kept and renewed, so the commits already under way
// for its pumps still land), and is released at the next round. The fence of a commit
// (PostgresStore::CommitFenced) comes from FenceFor: only shards held now, at the epoch held. The
// caller runs Round() on a timer well inside the TTL (a third of it); nothing here keeps time.
// Thread-safety: Round and ReleaseAll from one thread; FenceFor, Owns and Held from any.
#ifndef PUMPTWIN_SERVER_CLUSTER_LEASE_KEEPER_H_
#define PUMPTWIN_SERVER_CLUSTER_LEASE_KEEPER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/store/postgres_store.h"

namespace pumptwin::cluster {

struct LeaseKeeperOptions {
  std::string replica;  // this replica's name: unique in the cluster, stable across restarts
  uint32_t shard_count = 256;
  absl::Duration ttl = absl::Seconds(15);
  std::string address;  // announced with the heartbeat (routing); may be empty
  // Called from Round() with the shards just gained (serve them: load their twins first) and
  // just lost, draining or released (stop serving them at once; a lost shard's commits
  // would be refused, a draining one's still land).
  std::function<void(const std::vector<uint32_t>&)> on_gained;
  std::function<void(const std::vector<uint32_t>&)> on_lost;
};

struct RoundResult {
  // draining: surplus shards no longer to be served, released at the next round.
  std::vector<uint32_t> gained, lost, draining, released;
  size_t live_replicas = 0;
  size_t fair_share = 0;
  size_t held = 0;  // after the round
};

class LeaseKeeper {
 public:
  LeaseKeeper(store::PostgresStore* store, LeaseKeeperOptions options);

  // Creates the lease rows when missing; FAILED_PRECONDITION when the database has another
  // shard count (postgres_store.h, EnsureShardLeases).
  absl::Status Start();
  // One round (see the file comment). On a database error nothing changes here and the error
  // is returned: the leases held stay valid until their expiry, after which their fenced
  // commits fail by themselves.
  absl::StatusOr<RoundResult> Round();
  // Releases every lease held (a clean shutdown: the others take them at their next round).
  absl::Status ReleaseAll();

  // The fence for a commit writing `shards`: FAILED_PRECONDITION naming the first shard this
  // replica does not hold.
  absl::StatusOr<store::LeaseFence> FenceFor(absl::Span<const uint32_t> shards) const;
  // Held and not draining: the replica serves it.
  bool Owns(uint32_t shard) const;
  std::vector<store::ShardLease> Held() const;

 private:
  store::PostgresStore* const store_;
  const LeaseKeeperOptions options_;
  mutable absl::Mutex mu_;
  std::map<uint32_t, store::ShardLease> held_ ABSL_GUARDED_BY(mu_);  // draining included
  std::set<uint32_t> draining_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pumptwin::cluster

#endif  // PUMPTWIN_SERVER_CLUSTER_LEASE_KEEPER_H_
