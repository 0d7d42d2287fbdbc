#include "server/cluster/replica.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/store/store_keys.h"

namespace pumptwin::cluster {

Replica::Replica(store::PostgresStore* store, ReplicaOptions options)
    : store_(store),
      options_(std::move(options)),
      keeper_(store, LeaseKeeperOptions{.replica = options_.name,
                                        .shard_count = options_.shard_count,
                                        .ttl = options_.ttl,
                                        .address = options_.address}),
      serving_(new std::atomic<bool>[options_.shard_count]),
      routes_(options_.shard_count) {
  for (uint32_t s = 0; s < options_.shard_count; ++s) serving_[s].store(false);
}

Replica::~Replica() { Stop(); }

absl::Status Replica::Start() {
  if (options_.name.empty()) return absl::InvalidArgumentError("a replica needs a name");
  if (absl::Status s = keeper_.Start(); !s.ok()) return s;
  if (absl::Status s = RunRound(); !s.ok()) return s;
  rounds_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(options_.ttl / 3)) {
      RunRound().IgnoreError();  // logged by on_round's owner; leases expire by themselves
    }
  });
  return absl::OkStatus();
}

void Replica::StopRounds() {
  absl::MutexLock lock(&join_mu_);
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (rounds_.joinable()) rounds_.join();
}

void Replica::Stop() {
  if (stopped_.exchange(true)) return;
  StopRounds();
  absl::MutexLock lock(&round_mu_);
  for (uint32_t s = 0; s < options_.shard_count; ++s) serving_[s].store(false);
  keeper_.ReleaseAll().IgnoreError();  // unreleased leases expire after the TTL
}

absl::Status Replica::RunRound() {
  absl::MutexLock lock(&round_mu_);
  absl::StatusOr<RoundResult> round = keeper_.Round();
  absl::Duration takeover;
  bool reloaded_all = false;
  if (round.ok()) {
    for (uint32_t s : round->lost) serving_[s].store(false);
    for (uint32_t s : round->released) serving_[s].store(false);
    for (uint32_t s : round->draining) serving_[s].store(false);
    std::vector<uint32_t> unserved;  // held, not served yet (gained, or a load that failed)
    for (const store::ShardLease& l : keeper_.Held()) {
      if (!serving_[l.shard].load() && keeper_.Owns(l.shard)) unserved.push_back(l.shard);
    }
    const absl::Time t0 = absl::Now();
    // A lost shard may have had commits refused: reload everything. Shards given back
    // drained for a round: drop their twins only (reload if that fails).
    bool gave_up = !round->lost.empty();
    bool dropped = false;
    if (!gave_up && !round->released.empty()) {
      gave_up = !drop_given_back_ || !drop_given_back_(round->released).ok();
      dropped = !gave_up;
    }
    if (gave_up || !unserved.empty()) {
      if (!gave_up && load_gained_) {
        // Only gained: load those shards' twins while the others keep being served.
        absl::Status loaded = load_gained_(unserved);
        if (!loaded.ok()) {
          RefreshRoutes().IgnoreError();
          if (on_round_) on_round_(shards_served(), absl::ZeroDuration(), false);
          return loaded;  // the next round retries what is still unserved
        }
        for (uint32_t s : unserved) serving_[s].store(keeper_.Owns(s));
      } else {
        reloaded_all = true;
        absl::Status loaded = reload_ ? reload_() : absl::OkStatus();
        if (!loaded.ok()) {
          for (uint32_t s = 0; s < options_.shard_count; ++s) serving_[s].store(false);
          return loaded;
        }
        for (uint32_t s = 0; s < options_.shard_count; ++s) serving_[s].store(keeper_.Owns(s));
      }
      takeover = absl::Now() - t0;
    } else if (dropped) {
      takeover = absl::Now() - t0;
    }
  }
  absl::Status routes = RefreshRoutes();
  if (on_round_) on_round_(shards_served(), takeover, reloaded_all);
  if (!round.ok()) return round.status();
  return routes;
}

absl::Status Replica::RefreshRoutes() {
  auto leases = store_->ListLeases();
  if (!leases.ok()) return leases.status();
  auto replicas = store_->ListReplicas();
  if (!replicas.ok()) return replicas.status();
  absl::flat_hash_map<std::string, const store::ReplicaInfo*> by_name;
  for (const store::ReplicaInfo& r : *replicas) by_name[r.name] = &r;
  const absl::Time now = absl::Now();
  std::vector<Route> routes(options_.shard_count);
  for (const store::ShardLease& l : *leases) {
    if (l.shard >= options_.shard_count || l.owner.empty() || l.expires <= now) continue;
    auto it = by_name.find(l.owner);
    if (it == by_name.end() || !it->second->alive) continue;
    routes[l.shard] = Route{l.owner, it->second->address};
  }
  std::vector<std::string> peers;
  for (const store::ReplicaInfo& r : *replicas) {
    if (r.alive && r.name != options_.name && !r.address.empty()) peers.push_back(r.address);
  }
  absl::MutexLock lock(&routes_mu_);
  routes_ = std::move(routes);
  peers_ = std::move(peers);
  return absl::OkStatus();
}

absl::Status Replica::Commit(const store::WriteGroup& group) {
  std::vector<uint32_t> shards;
  auto add = [&](absl::string_view pump_id) {
    if (!pump_id.empty()) shards.push_back(store::VirtualShardOf(pump_id, options_.shard_count));
  };
  for (const store::TelemetryChunk& c : group.telemetry) add(c.pump_id);
  for (const auto& [id, bytes] : group.snapshots) add(id);
  for (const auto& [id, bytes] : group.pumps) add(id);
  for (const auto& [key, bytes] : group.meta) add(store::keys::PumpOfMetaKey(key));
  for (const auto& [begin, end] : group.meta_erase_ranges) add(store::keys::PumpOfMetaKey(begin));
  std::sort(shards.begin(), shards.end());
  shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
  absl::StatusOr<store::LeaseFence> fence = keeper_.FenceFor(shards);
  if (!fence.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(fence.status().message(), "; nothing of the group was written"));
  }
  return store_->CommitFenced(group, *fence);
}

bool Replica::Serves(absl::string_view pump_id) const {
  return serving_[store::VirtualShardOf(pump_id, options_.shard_count)].load(
      std::memory_order_acquire);
}

Route Replica::RouteOf(absl::string_view pump_id) const {
  const uint32_t shard = store::VirtualShardOf(pump_id, options_.shard_count);
  absl::MutexLock lock(&routes_mu_);
  return routes_[shard];
}

std::vector<std::string> Replica::PeerAddresses() const {
  absl::MutexLock lock(&routes_mu_);
  return peers_;
}

Route Replica::CurrentRouteOf(absl::string_view pump_id) {
  auto usable = [&](const Route& r) { return !r.replica.empty() && r.replica != options_.name; };
  Route route = RouteOf(pump_id);
  if (usable(route)) return route;
  {
    absl::MutexLock lock(&refresh_mu_);
    if (absl::Now() - last_refresh_ >= kRouteRefreshInterval) {
      last_refresh_ = absl::Now();
      RefreshRoutes().IgnoreError();  // the next round retries; the answer says "retry"
    }
  }
  route = RouteOf(pump_id);
  return usable(route) ? route : Route();
}

size_t Replica::shards_served() const {
  size_t n = 0;
  for (uint32_t s = 0; s < options_.shard_count; ++s) n += serving_[s].load() ? 1 : 0;
  return n;
}

}  // namespace pumptwin::cluster
