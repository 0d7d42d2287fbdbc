#include "server/cluster/lease_keeper.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace pumptwin::cluster {

LeaseKeeper::LeaseKeeper(store::PostgresStore* store, LeaseKeeperOptions options)
    : store_(store), options_(std::move(options)) {}

absl::Status LeaseKeeper::Start() { return store_->EnsureShardLeases(options_.shard_count); }

absl::StatusOr<RoundResult> LeaseKeeper::Round() {
  RoundResult result;
  auto live = store_->HeartbeatReplica(options_.replica, options_.ttl, options_.address);
  if (!live.ok()) return live.status();
  std::vector<store::ShardLease> held = Held();
  auto renewed = store_->RenewLeases(options_.replica, held, options_.ttl);
  if (!renewed.ok()) return renewed.status();
  std::map<uint32_t, store::ShardLease> now;
  for (store::ShardLease& l : *renewed) now.emplace(l.shard, std::move(l));
  for (const store::ShardLease& l : held) {
    if (!now.contains(l.shard)) result.lost.push_back(l.shard);
  }

  result.live_replicas = std::max<size_t>(1, live->size());
  result.fair_share = (options_.shard_count + result.live_replicas - 1) / result.live_replicas;
  std::set<uint32_t> draining;
  {
    absl::MutexLock lock(&mu_);
    for (uint32_t s : draining_) {
      if (now.contains(s)) draining.insert(s);  // a lost one is gone already
    }
  }
  // Drained for a round: the commits made under these leases have landed; give them back.
  if (!draining.empty()) {
    std::vector<store::ShardLease> back;
    for (uint32_t s : draining) back.push_back(now.at(s));
    auto released = store_->ReleaseLeases(options_.replica, back);
    if (released.ok()) {
      for (uint32_t s : draining) {
        now.erase(s);
        result.released.push_back(s);
      }
      draining.clear();
    }
  }
  const size_t serving = now.size() - draining.size();
  if (serving > result.fair_share) {
    // Beyond the share: the highest shards drain, then go back, for a replica that joined.
    size_t more = serving - result.fair_share;
    for (auto it = now.rbegin(); it != now.rend() && more > 0; ++it) {
      if (draining.insert(it->first).second) {
        result.draining.push_back(it->first);
        --more;
      }
    }
  } else if (serving < result.fair_share && draining.empty()) {
    auto taken =
        store_->TakeExpiredLeases(options_.replica, options_.ttl, result.fair_share - serving);
    if (taken.ok()) {
      for (store::ShardLease& l : *taken) {
        result.gained.push_back(l.shard);
        now.emplace(l.shard, std::move(l));
      }
    }
  }
  std::sort(result.draining.begin(), result.draining.end());
  std::sort(result.released.begin(), result.released.end());
  result.held = now.size();
  {
    absl::MutexLock lock(&mu_);
    held_ = std::move(now);
    draining_ = std::move(draining);
  }
  if (!result.lost.empty() && options_.on_lost) options_.on_lost(result.lost);
  if (!result.draining.empty() && options_.on_lost) options_.on_lost(result.draining);
  if (!result.released.empty() && options_.on_lost) options_.on_lost(result.released);
  if (!result.gained.empty() && options_.on_gained) options_.on_gained(result.gained);
  return result;
}

absl::Status LeaseKeeper::ReleaseAll() {
  std::vector<store::ShardLease> held = Held();
  auto released = store_->ReleaseLeases(options_.replica, held);
  if (!released.ok()) return released.status();
  {
    absl::MutexLock lock(&mu_);
    held_.clear();
    draining_.clear();
  }
  std::vector<uint32_t> shards;
  for (const store::ShardLease& l : held) shards.push_back(l.shard);
  if (!shards.empty() && options_.on_lost) options_.on_lost(shards);
  return absl::OkStatus();
}

absl::StatusOr<store::LeaseFence> LeaseKeeper::FenceFor(absl::Span<const uint32_t> shards) const {
  store::LeaseFence fence{options_.replica, {}};
  absl::MutexLock lock(&mu_);
  for (uint32_t shard : shards) {
    auto it = held_.find(shard);
    if (it == held_.end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "virtual shard ", shard, " is not held by replica \"", options_.replica, "\""));
    }
    fence.shards.emplace_back(shard, it->second.epoch);
  }
  std::sort(fence.shards.begin(), fence.shards.end());
  fence.shards.erase(std::unique(fence.shards.begin(), fence.shards.end()), fence.shards.end());
  return fence;
}

bool LeaseKeeper::Owns(uint32_t shard) const {
  absl::MutexLock lock(&mu_);
  return held_.contains(shard) && !draining_.contains(shard);
}

std::vector<store::ShardLease> LeaseKeeper::Held() const {
  absl::MutexLock lock(&mu_);
  std::vector<store::ShardLease> out;
  for (const auto& [shard, lease] : held_) out.push_back(lease);
  return out;
}

}  // namespace pumptwin::cluster
