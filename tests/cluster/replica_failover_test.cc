// Cluster mode end to end: three pumptwind replicas (child processes) on one PostgreSQL
// server started by the test, 8 virtual shards, a 2 s lease TTL. Gateways stream to the
// replica serving each pump (routes read from the lease table, as any replica's Welcome
// gives them). What must hold:
//  - kill -9 of a replica mid-stream: its shards are served by the others within the lease
//    TTL plus the takeover (the time is printed), no acknowledged sample is lost, and every
//    twin equals a replay of its stored inputs (`pumptwind --verify --store=postgres`);
//  - SIGSTOP of a replica past its lease, then SIGCONT: what it held is served elsewhere, its
//    late commits fail on the epoch check (nothing it acknowledges afterwards is missing
//    from the store, nothing is stored twice: --verify), and it serves again only what it
//    holds after its next round;
//  - a replica answers for pumps it does not serve with their route (Welcome.moved, a
//    NACK_REASON_MOVED naming the owner).
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "device_link/cluster_gateway_client.h"
#include "proto/audit_hash.h"
#include "tests/cluster/cluster_fixture.h"

namespace pumptwin::cluster_test {
namespace {

using ClusterFailoverTest = ClusterTest;

TEST_F(ClusterFailoverTest, EveryShardHasOneServingReplica) {
  auto routes = Routes();
  ASSERT_EQ(routes.size(), kShards);
  std::map<std::string, int> per_replica;
  for (const auto& [shard, owner] : routes) ++per_replica[owner.first];
  EXPECT_EQ(per_replica.size(), static_cast<size_t>(kReplicas));
  for (const auto& [name, n] : per_replica) {
    EXPECT_LE(n, static_cast<int>((kShards + kReplicas - 1) / kReplicas)) << name;
  }
  // r0 started alone and gave shards back as the others joined: it dropped those twins and
  // kept serving the rest; no replica reloaded everything.
  EXPECT_NE(procs_[0]->ReadLog().find("cluster_dropped_given_back"), std::string::npos);
  for (int r = 0; r < kReplicas; ++r) {
    EXPECT_EQ(procs_[r]->ReadLog().find("cluster_reload"), std::string::npos) << "replica " << r;
  }
}

TEST_F(ClusterFailoverTest, ANonOwnerAnswersWithTheRoute) {
  ASSERT_NO_FATAL_FAILURE(RegisterAll());
  const std::string pump = PumpId(0);
  const std::string owner = OwnerAddress(pump);
  int other = -1;
  for (int i = 0; i < kReplicas; ++i) {
    if (absl::StrCat("127.0.0.1:", ports_[i]) != owner) other = i;
  }
  ASSERT_GE(other, 0);
  // TwinService: the call is forwarded to the owner, whose answer the caller gets.
  auto stub = v1::TwinService::NewStub(
      grpc::CreateChannel(procs_[other]->grpc_target(), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext ctx;
    v1::GetTwinRequest req;
    req.set_name("pumps/" + pump);
    v1::TwinState out;
    grpc::Status st = stub->GetTwin(&ctx, req, &out);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(out.pump_id(), pump);
  }
  // A registration through a replica that does not serve the new pump lands at its owner.
  std::string newcomer;
  for (int i = 100; newcomer.empty() && i < 200; ++i) {
    if (OwnerAddress(PumpId(i)) != absl::StrCat("127.0.0.1:", ports_[other])) newcomer = PumpId(i);
  }
  ASSERT_TRUE(
      testing::RegisterHealthyPump(*stub, newcomer, kGateway, "clinic-a", kT0 - kStepMs, kStepMs)
          .ok());
  EXPECT_TRUE(view_->GetPump(newcomer).ok()) << newcomer;
  EXPECT_GE(MetricOf(other, "pumptwin_cluster_forwarded_calls_total"), 2.0);
  // One hop only: a call already forwarded once is answered UNAVAILABLE (retry: the route
  // was stale) naming the owner.
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("pumptwin-forwarded-by", "elsewhere");
    v1::GetTwinRequest req;
    req.set_name("pumps/" + pump);
    v1::TwinState out;
    grpc::Status st = stub->GetTwin(&ctx, req, &out);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
    EXPECT_NE(st.error_message().find(owner), std::string::npos) << st.error_message();
  }
  // DeviceGateway: the sample is nacked MOVED with the owner's address, and not dropped by
  // the client (it stays buffered).
  device_link::GatewayClientOptions o;
  o.target = procs_[other]->grpc_target();
  o.credentials = grpc::InsecureChannelCredentials();
  o.gateway_id = kGateway;
  absl::Mutex mu;
  std::vector<v1::Nack> nacks;
  o.on_nack = [&](const v1::Nack& n) {
    absl::MutexLock l(&mu);
    nacks.push_back(n);
  };
  device_link::GatewayClient c(o);
  c.Start();
  ASSERT_TRUE(c.Send({HealthySample(pump, 1, kT0 + kStepMs, 20)}).ok());
  {
    absl::MutexLock l(&mu);
    auto got = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !nacks.empty(); };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&got), absl::Seconds(20)));
    EXPECT_EQ(nacks[0].reason(), v1::NACK_REASON_MOVED);
    EXPECT_EQ(nacks[0].owner_address(), owner);
  }
  EXPECT_EQ(c.stats().buffered_frames, 1u);
  c.Stop();
}

// Every replica appending to the one audit chain at once (registrations through all three,
// each written by its pump's owner): every call succeeds, no commit fails on the log, and
// the chain stays one unbroken sequence. The callers retry UNAVAILABLE as docs/scaling.md
// asks of clients (a shard may change replicas while the test runs on a loaded machine).
TEST_F(ClusterFailoverTest, RegistrationsThroughEveryReplicaAtOnceAllSucceed) {
  constexpr int kEach = 15;
  std::vector<std::thread> callers;
  std::vector<std::vector<grpc::Status>> results(kReplicas);
  for (int r = 0; r < kReplicas; ++r) {
    callers.emplace_back([&, r] {
      auto stub = v1::TwinService::NewStub(RetryingChannel(procs_[r]->grpc_target()));
      for (int i = 0; i < kEach; ++i) {
        results[r].push_back(testing::RegisterHealthyPump(
            *stub, PumpId(100 + r * kEach + i), kGateway, "clinic-a", kT0 - kStepMs, kStepMs));
      }
    });
  }
  for (auto& t : callers) t.join();
  for (int r = 0; r < kReplicas; ++r) {
    for (const grpc::Status& st : results[r])
      EXPECT_TRUE(st.ok()) << r << ": " << st.error_message();
    EXPECT_LE(MetricOf(r, "pumptwin_store_errors_total{op=\"commit\"}"), 0.0)
        << "replica " << r << " had a commit fail";
  }
  auto stored = view_->ScanAuditAfter(0, 10000);
  ASSERT_TRUE(stored.ok()) << stored.status();
  std::vector<v1::AuditRecord> chain(stored->size());
  for (size_t i = 0; i < stored->size(); ++i)
    ASSERT_TRUE(chain[i].ParseFromString((*stored)[i].second));
  EXPECT_GE(chain.size(), static_cast<size_t>(kReplicas * kEach));
  const audit::ChainVerdict verdict = audit::VerifyAuditChain(chain);
  EXPECT_TRUE(verdict.ok) << verdict.problem << " at sequence " << verdict.first_bad_sequence;
  ASSERT_NO_FATAL_FAILURE(StopAllAndVerify(kReplicas * kEach));
}

// The Welcome names the shard count; once a "moved" answer named the replica of one pump's
// virtual shard, the client sends the shard's other pumps there at once (no "moved" nack).
TEST_F(ClusterFailoverTest, ThePumpsOfAShardWhoseReplicaIsKnownGoThereDirectly) {
  const auto routes = Routes();
  ASSERT_EQ(routes.size(), kShards);
  const auto& [shard, owner] = *routes.begin();
  std::string elsewhere;  // a replica that does not serve the shard: the client's only seed
  for (const auto& [s, o] : routes) {
    if (o.second != owner.second) elsewhere = o.second;
  }
  ASSERT_FALSE(elsewhere.empty());
  std::vector<std::string> pumps;
  for (int i = 0; pumps.size() < 2; ++i) {
    const std::string p = absl::StrCat("SR-", i);
    if (store::VirtualShardOf(p, kShards) != shard) continue;
    auto stub = v1::TwinService::NewStub(
        grpc::CreateChannel(owner.second, grpc::InsecureChannelCredentials()));
    ASSERT_TRUE(
        testing::RegisterHealthyPump(*stub, p, kGateway, "clinic-a", kT0 - kStepMs, kStepMs).ok());
    pumps.push_back(p);
  }
  device_link::ClusterGatewayClientOptions o;
  o.session.credentials = grpc::InsecureChannelCredentials();
  o.session.gateway_id = kGateway;
  o.seeds = {elsewhere};
  device_link::ClusterGatewayClient client(o);
  client.Start();
  auto send = [&](const std::string& pump) {
    std::vector<v1::TelemetrySample> frame;
    for (uint64_t q = 1; q <= 5; ++q) {
      frame.push_back(HealthySample(pump, q, kT0 + static_cast<int64_t>(q) * kStepMs, q * 20.8));
    }
    ASSERT_TRUE(client.Send(std::move(frame)).ok());
    ASSERT_TRUE(client.WaitUntilAllDone(absl::Seconds(30)));
    EXPECT_EQ(client.acked_seq(pump), 5u) << pump;
  };
  ASSERT_NO_FATAL_FAILURE(send(pumps[0]));
  device_link::ClusterGatewayStats st = client.stats();
  EXPECT_EQ(st.samples_moved, 5u) << "the first pump's samples went to the seed, then moved";
  EXPECT_GE(st.shard_routes, 1u);
  ASSERT_NO_FATAL_FAILURE(send(pumps[1]));
  st = client.stats();
  EXPECT_EQ(st.samples_moved, 5u) << "the second pump of the shard went to the seed first";
  client.Stop();
}

// WatchTwin through any replica: pumps other replicas serve are watched there and their
// states relayed; an unknown pump ends the whole watch with the owner's NOT_FOUND.
TEST_F(ClusterFailoverTest, WatchTwinThroughAnyReplicaFollowsPumpsServedElsewhere) {
  ASSERT_NO_FATAL_FAILURE(RegisterAll());
  Stream(1, 10);
  std::vector<std::string> watched;  // one pump per serving replica
  std::set<std::string> owners;
  for (int i = 0; i < kPumps; ++i) {
    const std::string owner = OwnerAddress(PumpId(i));
    if (owners.insert(owner).second) watched.push_back(PumpId(i));
  }
  ASSERT_GE(owners.size(), 2u) << "the pumps are served by one replica only";
  auto stub = v1::TwinService::NewStub(
      grpc::CreateChannel(procs_[0]->grpc_target(), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    v1::WatchTwinRequest req;
    for (const std::string& p : watched) req.add_names("pumps/" + p);
    req.set_min_interval_ms(10);
    auto reader = stub->WatchTwin(&ctx, req);
    std::map<std::string, uint64_t> last;
    v1::TwinState st;
    while (last.size() < watched.size() && reader->Read(&st)) last[st.pump_id()] = st.last_seq();
    ASSERT_EQ(last.size(), watched.size()) << reader->Finish().error_message();
    for (const auto& [pump, seq] : last) EXPECT_EQ(seq, 10u) << pump;
    // New samples reach the watcher through the relay.
    Stream(11, 20);
    auto all_at_20 = [&] {
      for (const std::string& p : watched) {
        if (last[p] < 20) return false;
      }
      return true;
    };
    while (!all_at_20() && reader->Read(&st)) last[st.pump_id()] = st.last_seq();
    std::string seen;
    for (const auto& [pump, seq] : last)
      absl::StrAppend(&seen, pump, "@", OwnerAddress(pump), "=", seq, " ");
    EXPECT_TRUE(all_at_20()) << seen;
    ctx.TryCancel();
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_GE(MetricOf(0, "pumptwin_cluster_forwarded_calls_total"), 1.0);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    v1::WatchTwinRequest req;
    for (const std::string& p : watched) req.add_names("pumps/" + p);
    req.add_names("pumps/NOT-REGISTERED");
    auto reader = stub->WatchTwin(&ctx, req);
    v1::TwinState st;
    while (reader->Read(&st)) {
    }
    grpc::Status end = reader->Finish();
    EXPECT_EQ(end.error_code(), grpc::StatusCode::NOT_FOUND) << end.error_message();
  }
}

// ListPumps from any replica lists the whole cluster's pumps: each replica lists the pumps
// it serves, the one asked merges their pages by position; page tokens work across calls.
TEST_F(ClusterFailoverTest, ListPumpsFromAnyReplicaListsEveryPump) {
  ASSERT_NO_FATAL_FAILURE(RegisterAll());
  std::vector<std::string> want;
  for (int i = 0; i < kPumps; ++i) want.push_back(PumpId(i));
  std::sort(want.begin(), want.end());
  for (int r = 0; r < kReplicas; ++r) {
    auto stub = v1::TwinService::NewStub(
        grpc::CreateChannel(procs_[r]->grpc_target(), grpc::InsecureChannelCredentials()));
    std::vector<std::string> got;
    std::string token;
    int pages = 0;
    do {
      grpc::ClientContext ctx;
      v1::ListPumpsRequest req;
      req.set_page_size(5);
      req.set_page_token(token);
      v1::ListPumpsResponse out;
      grpc::Status st = stub->ListPumps(&ctx, req, &out);
      ASSERT_TRUE(st.ok()) << "replica " << r << ": " << st.error_message();
      EXPECT_LE(out.pumps_size(), 5);
      EXPECT_EQ(out.page_keys_size(), 0) << "page positions are for replicas only";
      for (const auto& p : out.pumps()) got.push_back(p.pump_id());
      token = out.next_page_token();
    } while (!token.empty() && ++pages < 10);
    EXPECT_EQ(got, want) << "through replica " << r;
  }
}

TEST_F(ClusterFailoverTest, KillOneReplicaMidStream) {
  ASSERT_NO_FATAL_FAILURE(RegisterAll());
  auto acked = Stream(1, 40);
  for (int i = 0; i < kPumps; ++i) EXPECT_EQ(acked[PumpId(i)], 40u) << PumpId(i);

  // Stream the next part while replica 0 is killed: what it acknowledged must be stored.
  std::map<std::string, uint64_t> during;
  std::thread streaming([&] { during = Stream(41, 400, absl::Seconds(5)); });
  absl::SleepFor(absl::Milliseconds(300));  // let some of it flow (load shape, not a sync)
  auto count = [&](int replica, const std::string& event) {
    const std::string log = procs_[replica]->ReadLog();
    size_t n = 0;
    for (size_t at = log.find(event); at != std::string::npos; at = log.find(event, at + 1)) ++n;
    return n;
  };
  const size_t reloads_before = count(1, "cluster_reload") + count(2, "cluster_reload");
  const size_t gains_before = count(1, "cluster_loaded_gained") + count(2, "cluster_loaded_gained");
  procs_[0]->Kill();
  const absl::Time killed = absl::Now();
  streaming.join();
  ExpectStoredAtLeast(during);

  ASSERT_TRUE(WaitAllServed(absl::Seconds(30))) << "shards not served after the kill";
  const absl::Duration failover = absl::Now() - killed;
  std::printf("replica failover (kill -9 -> every shard served again): %.2f s (lease TTL %.0f s)\n",
              absl::ToDoubleSeconds(failover), absl::ToDoubleSeconds(kTtl));
  EXPECT_LT(failover, kTtl + absl::Seconds(10));
  for (const auto& [shard, owner] : Routes()) EXPECT_NE(owner.first, "r0") << shard;
  // The survivors only gained shards: they loaded those twins and kept serving their own
  // (no reload of everything).
  EXPECT_EQ(count(1, "cluster_reload") + count(2, "cluster_reload"), reloads_before);
  EXPECT_GT(count(1, "cluster_loaded_gained") + count(2, "cluster_loaded_gained"), gains_before);

  // Everything, resent to the new owners: the Welcome drops what is stored.
  auto after = Stream(1, 400);
  for (int i = 0; i < kPumps; ++i) EXPECT_EQ(after[PumpId(i)], 400u) << PumpId(i);
  ExpectStoredAtLeast(after);
  StopAllAndVerify();
}

TEST_F(ClusterFailoverTest, PausedReplicaCannotWriteAfterItsLeaseIsTaken) {
  ASSERT_NO_FATAL_FAILURE(RegisterAll());
  auto acked = Stream(1, 20);
  for (int i = 0; i < kPumps; ++i) EXPECT_EQ(acked[PumpId(i)], 20u) << PumpId(i);
  std::set<uint32_t> held_by_r0;
  for (const auto& [shard, owner] : Routes()) {
    if (owner.first == "r0") held_by_r0.insert(shard);
  }
  ASSERT_FALSE(held_by_r0.empty());

  // Pause r0 with a gateway stream to it open and frames in flight.
  std::vector<std::string> r0_pumps;
  for (int i = 0; i < kPumps; ++i) {
    if (held_by_r0.contains(store::VirtualShardOf(PumpId(i), kShards)))
      r0_pumps.push_back(PumpId(i));
  }
  device_link::GatewayClientOptions o;
  o.target = procs_[0]->grpc_target();
  o.credentials = grpc::InsecureChannelCredentials();
  o.gateway_id = kGateway;
  o.hello_pump_ids = r0_pumps;
  device_link::GatewayClient stale(o);
  stale.Start();
  ASSERT_TRUE(stale.WaitUntilWelcomed(1, absl::Seconds(20)));
  ASSERT_EQ(kill(procs_[0]->pid(), SIGSTOP), 0);
  for (const std::string& pump : r0_pumps) {
    std::vector<v1::TelemetrySample> frame;
    for (uint64_t q = 21; q <= 30; ++q) {
      frame.push_back(HealthySample(pump, q, kT0 + static_cast<int64_t>(q) * kStepMs, q * 20.8));
    }
    ASSERT_TRUE(stale.Send(std::move(frame)).ok());
  }
  // The others take r0's shards once its leases expire.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  bool taken = false;
  while (!taken && absl::Now() < deadline) {
    auto routes = Routes();
    taken = true;
    for (uint32_t s : held_by_r0) taken = taken && routes.contains(s) && routes[s].first != "r0";
    if (!taken) absl::SleepFor(absl::Milliseconds(50));  // polling, bounded
  }
  ASSERT_TRUE(taken) << "r0's shards were not taken over";
  // The new owners get the same seqs (another gateway path) and more.
  auto moved = Stream(21, 60);
  for (const std::string& pump : r0_pumps) EXPECT_EQ(moved[pump], 60u) << pump;

  ASSERT_EQ(kill(procs_[0]->pid(), SIGCONT), 0);
  // Whatever r0 acknowledges now must be in the store: its commits fail on the fence, so it
  // acknowledges nothing new; it serves again after its next round.
  stale.WaitUntilAllDone(absl::Seconds(5));
  stale.Stop();
  for (const std::string& pump : r0_pumps) {
    auto head = view_->GetPumpHead(pump);
    ASSERT_TRUE(head.ok());
    EXPECT_GE(head->last_seq, stale.acked_seq(pump)) << pump;
    EXPECT_EQ(head->last_seq, 60u) << pump;
  }
  ASSERT_TRUE(WaitAllServed(absl::Seconds(30)));
  StopAllAndVerify();
}

// One gateway client for the whole cluster, seeded with every replica: each pump's samples
// find their replica through "moved" answers, and when a replica dies mid-stream its
// unacknowledged samples go to the pumps' new replica; everything ends acknowledged.
TEST_F(ClusterFailoverTest, GatewayClientFollowsItsPumpsAcrossAFailover) {
  ASSERT_NO_FATAL_FAILURE(RegisterAll());
  device_link::ClusterGatewayClientOptions o;
  o.session.credentials = grpc::InsecureChannelCredentials();
  o.session.gateway_id = kGateway;
  o.session.when_full = device_link::GatewayClientOptions::WhenFull::kBlock;
  o.session.block_timeout = absl::Seconds(30);
  for (int i = 0; i < kReplicas; ++i) o.seeds.push_back(absl::StrCat("127.0.0.1:", ports_[i]));
  device_link::ClusterGatewayClient client(o);
  client.Start();
  constexpr uint64_t kLast = 300;
  auto send = [&](uint64_t from, uint64_t to) {
    for (uint64_t s = from; s <= to; s += 10) {
      std::vector<v1::TelemetrySample> frame;
      for (int i = 0; i < kPumps; ++i) {
        for (uint64_t q = s; q <= std::min(to, s + 9); ++q) {
          frame.push_back(HealthySample(PumpId(i), q, kT0 + static_cast<int64_t>(q) * kStepMs,
                                        static_cast<double>(q) * 500.0 / 24));
        }
      }
      ASSERT_TRUE(client.Send(std::move(frame)).ok());
    }
  };
  auto describe = [&] {
    auto st = client.stats();
    std::string out = absl::StrCat("moved=", st.samples_moved, " rerouted=", st.samples_rerouted,
                                   " given_up=", st.sessions_given_up, " routes=", st.routes);
    for (const auto& [addr, s] : st.sessions) {
      absl::StrAppend(&out, "\n  ", addr, ": connected=", s.connected,
                      " buffered=", s.buffered_frames, " acked=", s.samples_acked,
                      " nacked=", s.samples_nacked, " last=", s.last_stream_status.ToString());
      for (const auto& [reason, n] : s.nacks_by_reason) absl::StrAppend(&out, " r", reason, "=", n);
    }
    return out;
  };
  ASSERT_NO_FATAL_FAILURE(send(1, 100));
  ASSERT_TRUE(client.WaitUntilAllDone(absl::Seconds(60))) << describe();
  const uint64_t moved_before = client.stats().samples_moved;
  EXPECT_GT(moved_before, 0u);  // the first samples of most pumps went to a seed first
  ASSERT_NO_FATAL_FAILURE(send(101, 200));
  procs_[0]->Kill();
  ASSERT_NO_FATAL_FAILURE(send(201, kLast));
  ASSERT_TRUE(client.WaitUntilAllDone(absl::Seconds(90))) << describe();
  for (int i = 0; i < kPumps; ++i) EXPECT_EQ(client.acked_seq(PumpId(i)), kLast) << PumpId(i);
  auto st = client.stats();
  std::printf("gateway failover: %llu samples moved, %llu rerouted from %llu session(s) given up\n",
              static_cast<unsigned long long>(st.samples_moved),
              static_cast<unsigned long long>(st.samples_rerouted),
              static_cast<unsigned long long>(st.sessions_given_up));
  client.Stop();
  std::map<std::string, uint64_t> all;
  for (int i = 0; i < kPumps; ++i) all[PumpId(i)] = kLast;
  ExpectStoredAtLeast(all);
  StopAllAndVerify();
}

}  // namespace
}  // namespace pumptwin::cluster_test
