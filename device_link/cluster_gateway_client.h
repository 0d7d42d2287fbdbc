// ClusterGatewayClient: the gateway side of a pumptwin cluster (docs/scaling.md "Routing").
// Each replica serves the pumps of the virtual shards it leases; this client keeps one
// GatewayClient session per replica it needs and sends each pump's samples to the replica
// serving it:
//  - a pump's first samples go to the replica known to serve its virtual shard (the
//    Welcome announces the shard count; every "moved" answer names a shard's replica), else
//    to a seed replica; a replica that does not serve the pump answers NACK_REASON_MOVED
//    naming the one that does, and the samples follow it there (the route is kept for the
//    next ones, the shard's too);
//  - "moved" with no address (the pump's shard is being taken over) parks the samples and
//    retries them through a seed a moment later;
//  - a session that stays down (its replica died) is stopped after `failover_after`: every
//    sample it had not had acknowledged is sent again through the other replicas, which
//    route it to the new owner once the dead replica's leases have expired.
// Nothing acknowledged is resent needlessly (each session's Welcome drops what is stored),
// nothing unacknowledged is dropped. Thread-safe; one supervisor thread.
#ifndef PUMPTWIN_DEVICE_LINK_CLUSTER_GATEWAY_CLIENT_H_
#define PUMPTWIN_DEVICE_LINK_CLUSTER_GATEWAY_CLIENT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "device_link/gateway_client.h"

namespace pumptwin::device_link {

struct ClusterGatewayClientOptions {
  // Template of every session (credentials, gateway_id, buffer bounds, backoff...); its
  // target, hello_pump_ids and on_moved are set per replica.
  GatewayClientOptions session;
  // Replicas to ask first (host:port); any one of them routes to the others.
  std::vector<std::string> seeds;
  // A session without a welcomed stream for this long, with samples waiting, is given up.
  absl::Duration failover_after = absl::Seconds(2);
  // Parked samples (their pump's shard being taken over) are retried this often.
  absl::Duration retry_every = absl::Milliseconds(200);
};

struct ClusterGatewayStats {
  uint64_t samples_moved = 0;     // handed from one replica to another (NACK_REASON_MOVED)
  uint64_t samples_rerouted = 0;  // taken from a session given up, sent through another
  // Nacked OUT_OF_ORDER (a session delivered them before earlier seqs still on their way
  // through another one): sent again a moment later, not dropped.
  uint64_t samples_resent_out_of_order = 0;
  uint64_t sessions_given_up = 0;
  uint64_t routes = 0;        // pumps with a known replica
  uint64_t shard_routes = 0;  // virtual shards with a known replica (first samples go there)
  std::map<std::string, GatewayClientStats> sessions;  // by replica address
};

class ClusterGatewayClient {
 public:
  explicit ClusterGatewayClient(ClusterGatewayClientOptions options);
  ~ClusterGatewayClient();  // Stop()
  ClusterGatewayClient(const ClusterGatewayClient&) = delete;
  ClusterGatewayClient& operator=(const ClusterGatewayClient&) = delete;

  void Start();
  void Stop();  // stops every session; samples still unsettled stay in them (not resent)

  // Routes the samples (each pump's seqs increasing) to their replicas. INVALID_ARGUMENT
  // for an empty pump id; the sessions' own errors (RESOURCE_EXHAUSTED when full).
  absl::Status Send(std::vector<pumptwin::v1::TelemetrySample> samples);
  // Every sample acknowledged (or permanently refused) by some replica, or the timeout.
  bool WaitUntilAllDone(absl::Duration timeout);
  // Highest seq some replica reported durable for the pump.
  uint64_t acked_seq(absl::string_view pump_id) const;
  ClusterGatewayStats stats() const;

 private:
  struct Session {
    std::shared_ptr<GatewayClient> client;
    absl::Time down_since = absl::InfiniteFuture();  // first seen without a welcomed stream
  };
  struct Parked {
    pumptwin::v1::TelemetrySample sample;
    std::string avoid;  // an address not to use for it (a dead replica, a stale route)
    absl::Time not_before;
  };

  // The session of `address`, started when new.
  std::shared_ptr<GatewayClient> SessionLocked(const std::string& address)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The seed for a pump without a route: the same one for all its samples while it lives.
  std::string SeedLocked(absl::string_view pump_id, const std::string& avoid)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Parks a sample of its pump behind those already parked (per-pump order is kept).
  void ParkLocked(pumptwin::v1::TelemetrySample sample, const std::string& avoid,
                  absl::Time not_before) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Groups the samples by route and sends each group (unknown route: a seed). Samples of a
  // pump with parked ones are parked behind them unless `parked` (the supervisor sending
  // those).
  absl::Status Route(std::vector<pumptwin::v1::TelemetrySample> samples, const std::string& avoid,
                     bool parked);
  void OnMoved(const std::string& from, const pumptwin::v1::Nack& nack,
               pumptwin::v1::TelemetrySample sample);
  void OnWelcome(const pumptwin::v1::Welcome& welcome);
  // The replica last known to serve the pump's virtual shard, "" when none is (or it is
  // `avoid`, or given up).
  std::string ShardRouteLocked(absl::string_view pump_id, const std::string& avoid,
                               absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LearnShardRouteLocked(absl::string_view pump_id, const std::string& address)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Supervise();

  const ClusterGatewayClientOptions opts_;
  mutable absl::Mutex mu_;
  std::map<std::string, Session> sessions_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> routes_ ABSL_GUARDED_BY(mu_);
  // Routes that are a guess (a seed, for a pump with no known replica) until the replica
  // acknowledges the pump's seq given here, or a "moved" answer names the owner.
  absl::flat_hash_map<std::string, uint64_t> guessed_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint64_t> acked_ ABSL_GUARDED_BY(mu_);  // of sessions given up
  std::vector<Parked> parked_ ABSL_GUARDED_BY(mu_);
  // Per virtual shard (Welcome.virtual_shards of them, none before a Welcome said): the
  // replica a "moved" answer last named for one of its pumps.
  std::vector<std::string> shard_routes_ ABSL_GUARDED_BY(mu_);
  size_t in_transit_ ABSL_GUARDED_BY(mu_) = 0;  // taken by the supervisor, not yet routed
  // Per pump: samples parked or being routed by the supervisor, and when its last parked
  // one may go.
  absl::flat_hash_map<std::string, size_t> held_per_pump_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Time> parked_until_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time> dead_until_ ABSL_GUARDED_BY(mu_);
  size_t next_seed_ ABSL_GUARDED_BY(mu_) = 0;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  ClusterGatewayStats counts_ ABSL_GUARDED_BY(mu_);
  std::thread supervisor_;
};

}  // namespace pumptwin::device_link

#endif  // PUMPTWIN_DEVICE_LINK_CLUSTER_GATEWAY_CLIENT_H_
