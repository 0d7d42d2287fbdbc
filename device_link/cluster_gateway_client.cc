#include "device_link/cluster_gateway_client.h"

#include <algorithm>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/virtual_shard.h"

namespace pumptwin::device_link {

namespace v1 = pumptwin::v1;

ClusterGatewayClient::ClusterGatewayClient(ClusterGatewayClientOptions options)
    : opts_(std::move(options)) {}

ClusterGatewayClient::~ClusterGatewayClient() { Stop(); }

void ClusterGatewayClient::Start() {
  absl::MutexLock l(&mu_);
  if (started_) return;
  started_ = true;
  supervisor_ = std::thread([this] { Supervise(); });
}

void ClusterGatewayClient::Stop() {
  auto stop_sessions = [this] {
    std::map<std::string, Session> sessions;
    {
      absl::MutexLock l(&mu_);
      sessions = sessions_;  // shared: the map keeps them for stats() and acked_seq()
    }
    for (auto& [address, s] : sessions) s.client->Stop();  // outside mu_: hooks take it
  };
  {
    absl::MutexLock l(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  // First the sessions: a supervisor blocked in a full session's Send returns at once.
  stop_sessions();
  if (supervisor_.joinable()) supervisor_.join();
  stop_sessions();  // any the supervisor made meanwhile (never started)
}

std::shared_ptr<GatewayClient> ClusterGatewayClient::SessionLocked(const std::string& address) {
  auto it = sessions_.find(address);
  if (it != sessions_.end()) return it->second.client;
  GatewayClientOptions o = opts_.session;
  o.target = address;
  o.hello_pump_ids.clear();
  o.hand_back_out_of_order = true;
  o.on_moved = [this, address](const v1::Nack& n, v1::TelemetrySample s) {
    OnMoved(address, n, std::move(s));
  };
  o.on_welcome = [this](const v1::Welcome& w) { OnWelcome(w); };
  Session& s = sessions_[address];
  s.client = std::make_shared<GatewayClient>(std::move(o));
  if (!stopping_) s.client->Start();
  return s.client;
}

std::string ClusterGatewayClient::SeedLocked(absl::string_view pump_id, const std::string& avoid) {
  const absl::Time now = absl::Now();
  const size_t n = opts_.seeds.size();
  const size_t start = absl::HashOf(pump_id) % n;
  for (size_t i = 0; i < n; ++i) {
    const std::string& seed = opts_.seeds[(start + i) % n];
    auto dead = dead_until_.find(seed);
    if (seed == avoid || (dead != dead_until_.end() && dead->second > now)) continue;
    return seed;
  }
  for (size_t i = 0; i < n; ++i) {
    if (opts_.seeds[(start + i) % n] != avoid) return opts_.seeds[(start + i) % n];
  }
  return opts_.seeds[start];
}

void ClusterGatewayClient::ParkLocked(v1::TelemetrySample sample, const std::string& avoid,
                                      absl::Time not_before) {
  absl::Time& until = parked_until_[sample.pump_id()];
  until = std::max(until, not_before);
  ++held_per_pump_[sample.pump_id()];
  parked_.push_back({std::move(sample), avoid, until});
}

absl::Status ClusterGatewayClient::Send(std::vector<v1::TelemetrySample> samples) {
  for (const v1::TelemetrySample& s : samples) {
    if (s.pump_id().empty()) return absl::InvalidArgumentError("a sample has an empty pump_id");
  }
  if (opts_.seeds.empty()) return absl::FailedPreconditionError("no seed replica configured");
  return Route(std::move(samples), "", /*parked=*/false);
}

absl::Status ClusterGatewayClient::Route(std::vector<v1::TelemetrySample> samples,
                                         const std::string& avoid, bool parked) {
  std::map<std::string, std::vector<v1::TelemetrySample>> by_address;
  std::map<std::string, std::shared_ptr<GatewayClient>> clients;
  {
    absl::MutexLock l(&mu_);
    const absl::Time now = absl::Now();
    for (v1::TelemetrySample& s : samples) {
      if (!parked) {
        auto held = held_per_pump_.find(s.pump_id());
        if (held != held_per_pump_.end() && held->second > 0) {
          ParkLocked(std::move(s), "", now);
          continue;
        }
      }
      std::string address;
      auto route = routes_.find(s.pump_id());
      if (route != routes_.end() && route->second != avoid) {
        auto dead = dead_until_.find(route->second);
        if (dead == dead_until_.end() || dead->second <= now) address = route->second;
      }
      if (address.empty()) {
        // Assume its shard's replica (else a seed) serves the pump until told otherwise (a
        // "moved" answer corrects the route; a replica given up loses it).
        address = ShardRouteLocked(s.pump_id(), avoid, now);
        if (address.empty()) address = SeedLocked(s.pump_id(), avoid);
        routes_[s.pump_id()] = address;
        guessed_[s.pump_id()] = s.seq();
      }
      by_address[address].push_back(std::move(s));
    }
    if (stopping_) return absl::FailedPreconditionError("the client is stopping");
    for (const auto& [address, group] : by_address) clients[address] = SessionLocked(address);
  }
  const size_t per_frame = std::max<uint32_t>(1, opts_.session.max_samples_per_frame);
  absl::Status first;
  for (auto& [address, group] : by_address) {
    for (size_t i = 0; i < group.size(); i += per_frame) {
      std::vector<v1::TelemetrySample> frame(
          std::make_move_iterator(group.begin() + i),
          std::make_move_iterator(group.begin() + std::min(group.size(), i + per_frame)));
      absl::StatusOr<uint64_t> sent = clients[address]->Send(std::move(frame));
      if (!sent.ok() && first.ok()) first = sent.status();
    }
  }
  return first;
}

void ClusterGatewayClient::OnMoved(const std::string& from, const v1::Nack& nack,
                                   v1::TelemetrySample sample) {
  // Every later sample of the pump still waiting in that session moves with it, in order.
  std::shared_ptr<GatewayClient> old;
  {
    absl::MutexLock l(&mu_);
    auto it = sessions_.find(from);
    if (it != sessions_.end()) old = it->second.client;
  }
  std::vector<v1::TelemetrySample> rest;
  if (old != nullptr) rest = old->TakeUnsettled(sample.pump_id());  // its hook: its lock is free
  rest.insert(rest.begin(), std::move(sample));
  std::stable_sort(rest.begin(), rest.end(),
                   [](const auto& a, const auto& b) { return a.seq() < b.seq(); });
  absl::MutexLock l(&mu_);
  const absl::Time now = absl::Now();
  if (nack.reason() == v1::NACK_REASON_OUT_OF_ORDER) {
    // The same replica, once the earlier seqs (parked, or in another session) are there.
    counts_.samples_resent_out_of_order += rest.size();
    for (v1::TelemetrySample& s : rest) ParkLocked(std::move(s), "", now + opts_.retry_every);
    return;
  }
  counts_.samples_moved += rest.size();
  const std::string& pump = rest.front().pump_id();
  // An owner this client gave up (its lease not yet expired in the cluster's table) is no
  // route: going there would bounce the samples between the other replicas and it.
  auto dead = dead_until_.find(nack.owner_address());
  const bool known = !nack.owner_address().empty() && nack.owner_address() != from &&
                     (dead == dead_until_.end() || dead->second <= now);
  guessed_.erase(pump);
  if (known) {
    routes_[pump] = nack.owner_address();
    LearnShardRouteLocked(pump, nack.owner_address());
  } else {
    routes_.erase(pump);  // being taken over: ask again (another replica) a moment later
  }
  for (v1::TelemetrySample& s : rest) {
    ParkLocked(std::move(s), known ? std::string() : from, known ? now : now + opts_.retry_every);
  }
}

void ClusterGatewayClient::OnWelcome(const v1::Welcome& welcome) {
  absl::MutexLock l(&mu_);
  if (welcome.virtual_shards() == 0 || welcome.virtual_shards() == shard_routes_.size()) return;
  // First announced (or the cluster's count changed): nothing is known of any shard yet.
  shard_routes_.assign(welcome.virtual_shards(), std::string());
  counts_.shard_routes = 0;
}

std::string ClusterGatewayClient::ShardRouteLocked(absl::string_view pump_id,
                                                   const std::string& avoid, absl::Time now) const {
  if (shard_routes_.empty()) return "";
  const std::string& address =
      shard_routes_[VirtualShardOf(pump_id, static_cast<uint32_t>(shard_routes_.size()))];
  if (address.empty() || address == avoid) return "";
  auto dead = dead_until_.find(address);
  if (dead != dead_until_.end() && dead->second > now) return "";
  return address;
}

void ClusterGatewayClient::LearnShardRouteLocked(absl::string_view pump_id,
                                                 const std::string& address) {
  if (shard_routes_.empty()) return;
  std::string& known =
      shard_routes_[VirtualShardOf(pump_id, static_cast<uint32_t>(shard_routes_.size()))];
  if (known.empty()) ++counts_.shard_routes;
  known = address;
}

void ClusterGatewayClient::Supervise() {
  for (;;) {
    std::vector<std::pair<std::string, std::shared_ptr<GatewayClient>>> given_up;
    std::map<std::string, std::vector<v1::TelemetrySample>> ready;  // by address to avoid
    std::vector<std::string> ready_pumps;                           // one entry per sample
    {
      absl::MutexLock l(&mu_);
      auto work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        if (stopping_) return true;
        const absl::Time now = absl::Now();
        return std::any_of(parked_.begin(), parked_.end(),
                           [now](const Parked& p) { return p.not_before <= now; });
      };
      mu_.AwaitWithTimeout(absl::Condition(&work), opts_.retry_every);
      if (stopping_) return;
      const absl::Time now = absl::Now();
      for (auto it = sessions_.begin(); it != sessions_.end();) {
        const GatewayClientStats st = it->second.client->stats();
        if (st.connected || st.buffered_frames == 0) {
          it->second.down_since = absl::InfiniteFuture();
        } else if (it->second.down_since == absl::InfiniteFuture()) {
          it->second.down_since = now;
        } else if (now - it->second.down_since >= opts_.failover_after) {
          dead_until_[it->first] = now + 5 * opts_.failover_after;
          for (auto r = routes_.begin(); r != routes_.end();) {
            if (r->second == it->first) {
              routes_.erase(r++);
            } else {
              ++r;
            }
          }
          ++counts_.sessions_given_up;
          given_up.emplace_back(it->first, it->second.client);
          it = sessions_.erase(it);
          continue;
        }
        ++it;
      }
      for (auto g = guessed_.begin(); g != guessed_.end();) {
        auto route = routes_.find(g->first);
        auto session = route == routes_.end() ? sessions_.end() : sessions_.find(route->second);
        if (route == routes_.end() || (session != sessions_.end() &&
                                       session->second.client->acked_seq(g->first) >= g->second)) {
          if (route != routes_.end()) LearnShardRouteLocked(g->first, route->second);
          guessed_.erase(g++);  // confirmed (or gone)
        } else {
          ++g;
        }
      }
      in_transit_ = given_up.size();
      // A pump with no known replica (being taken over, or its replica given up) is probed
      // with its earliest sample; the rest wait for the route the answer gives (sending them
      // all would only bring them back, one "moved" nack each).
      // The probe of each such pump: its lowest parked seq (the next it needs).
      absl::flat_hash_map<std::string, uint64_t> probe;
      for (const Parked& p : parked_) {
        const std::string& pump = p.sample.pump_id();
        if (p.not_before > now || (routes_.contains(pump) && !guessed_.contains(pump))) continue;
        auto [at, fresh] = probe.try_emplace(pump, p.sample.seq());
        if (!fresh) at->second = std::min(at->second, p.sample.seq());
      }
      for (auto it = parked_.begin(); it != parked_.end();) {
        if (it->not_before > now) {
          ++it;
          continue;
        }
        auto probed = probe.find(it->sample.pump_id());
        if (probed != probe.end() && probed->second != it->sample.seq()) {
          it->not_before = now + opts_.retry_every;  // after the probe's answer
          ++it;
          continue;
        }
        if (probed != probe.end()) probe.erase(probed);  // one probe (a duplicate seq waits)
        ++in_transit_;
        ready_pumps.push_back(it->sample.pump_id());
        ready[it->avoid].push_back(std::move(it->sample));
        it = parked_.erase(it);
      }
    }
    for (auto& [address, client] : given_up) {
      client->Stop();
      std::vector<v1::TelemetrySample> left = client->TakeUnsettled();
      absl::MutexLock l(&mu_);
      for (const v1::TelemetrySample& s : left) {
        uint64_t& a = acked_[s.pump_id()];
        a = std::max(a, client->acked_seq(s.pump_id()));
      }
      counts_.samples_rerouted += left.size();
      for (v1::TelemetrySample& s : left) ParkLocked(std::move(s), address, absl::Now());
    }
    for (auto& [avoid, samples] : ready) {
      // Each pump's samples in seq order (parked at different moments, for different reasons).
      std::stable_sort(samples.begin(), samples.end(), [](const auto& a, const auto& b) {
        return a.pump_id() != b.pump_id() ? a.pump_id() < b.pump_id() : a.seq() < b.seq();
      });
      std::vector<v1::TelemetrySample> copy = samples;
      if (!Route(std::move(samples), avoid, /*parked=*/true).ok()) {
        // A session is full: try again at the next round (nothing is dropped; a sample
        // that did go is acknowledged as a duplicate).
        absl::MutexLock l(&mu_);
        for (v1::TelemetrySample& s : copy) {
          ParkLocked(std::move(s), avoid, absl::Now() + opts_.retry_every);
        }
      }
    }
    absl::MutexLock l(&mu_);
    in_transit_ = 0;
    for (const std::string& pump : ready_pumps) {
      auto held = held_per_pump_.find(pump);
      if (held != held_per_pump_.end() && --held->second == 0) {
        held_per_pump_.erase(held);
        parked_until_.erase(pump);
      }
    }
  }
}

bool ClusterGatewayClient::WaitUntilAllDone(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    std::vector<std::shared_ptr<GatewayClient>> clients;
    bool done;
    {
      absl::MutexLock l(&mu_);
      done = parked_.empty() && in_transit_ == 0;
      for (auto& [address, s] : sessions_) clients.push_back(s.client);
    }
    for (auto& c : clients) done = done && c->stats().buffered_frames == 0;
    if (done) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));  // a client-side wait loop, bounded by the deadline
  }
}

uint64_t ClusterGatewayClient::acked_seq(absl::string_view pump_id) const {
  std::vector<std::shared_ptr<GatewayClient>> clients;
  uint64_t best = 0;
  {
    absl::MutexLock l(&mu_);
    auto it = acked_.find(pump_id);
    if (it != acked_.end()) best = it->second;
    for (const auto& [address, s] : sessions_) clients.push_back(s.client);
  }
  for (const auto& c : clients) best = std::max(best, c->acked_seq(pump_id));
  return best;
}

ClusterGatewayStats ClusterGatewayClient::stats() const {
  std::map<std::string, std::shared_ptr<GatewayClient>> clients;
  ClusterGatewayStats out;
  {
    absl::MutexLock l(&mu_);
    out = counts_;
    out.routes = routes_.size();
    for (const auto& [address, s] : sessions_) clients[address] = s.client;
  }
  for (const auto& [address, c] : clients) out.sessions[address] = c->stats();
  return out;
}

}  // namespace pumptwin::device_link
