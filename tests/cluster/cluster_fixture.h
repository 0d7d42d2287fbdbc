// The fixture of the cluster-mode end-to-end tests: three pumptwind replicas (child
// processes) on one PostgreSQL server started by the test (a schema of their own), 8 virtual
// shards, a 2 s lease TTL; routes read from the lease table as any replica's Welcome gives
// them, gateway streams to each pump's owner, and --verify of the store at the end.
#ifndef PUMPTWIN_TESTS_CLUSTER_CLUSTER_FIXTURE_H_
#define PUMPTWIN_TESTS_CLUSTER_CLUSTER_FIXTURE_H_

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "device_link/gateway_client.h"
#include "gtest/gtest.h"
#include "server/store/postgres_store.h"
#include "tests/store/postgres_test_server.h"
#include "tests/support/server_process.h"
#include "tests/support/telemetry_fixtures.h"

namespace pumptwin::cluster_test {

using testing::FreeLoopbackPort;
using testing::HealthySample;
using testing::PostgresTestServer;
using testing::ServerProcess;
using testing::ServerProcessOptions;
using testing::TempDir;

inline constexpr uint32_t kShards = 8;
inline constexpr int kReplicas = 3;
inline constexpr int kPumps = 12;
inline constexpr char kGateway[] = "gw-cluster";
inline constexpr absl::Duration kTtl = absl::Seconds(2);
inline constexpr int64_t kT0 = 1767225600000;    // 2026-01-01
inline constexpr int64_t kStepMs = 3600 * 1000;  // hourly samples

inline std::string PumpId(int i) { return absl::StrCat("CL-", i); }

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pg = testing::SharedPostgresTestServer();
    ASSERT_TRUE(pg.ok()) << pg.status();
    pg_ = *pg;
    schema_ = testing::NextTestSchema();
    auto store = store::PostgresStore::Open({.dsn = pg_->Dsn(), .schema = schema_});
    ASSERT_TRUE(store.ok()) << store.status();
    view_ = *std::move(store);
    for (int i = 0; i < kReplicas; ++i) ASSERT_NO_FATAL_FAILURE(StartReplica(i));
    ASSERT_TRUE(WaitAllServed(absl::Seconds(30)));
  }

  void StartReplica(int i) {
    if (dirs_.size() <= static_cast<size_t>(i)) {
      dirs_.resize(i + 1);
      procs_.resize(i + 1);
      ports_.resize(i + 1);
    }
    if (dirs_[i] == nullptr) dirs_[i] = std::make_unique<TempDir>();
    if (ports_[i] == 0) ports_[i] = FreeLoopbackPort();
    ServerProcessOptions o;
    o.data_dir = dirs_[i]->path() + "/unused";
    const std::string addr = absl::StrCat("127.0.0.1:", ports_[i]);
    o.extra_args = {"--store=postgres",
                    "--postgres_dsn=" + pg_->Dsn(),
                    "--postgres_schema=" + schema_,
                    "--listen=" + addr,
                    "--cluster_advertise=" + addr,
                    absl::StrCat("--cluster_replica=r", i),
                    absl::StrCat("--cluster_shards=", kShards),
                    "--cluster_lease_ttl=2s",
                    "--tick_interval=1s"};
    procs_[i] = std::make_unique<ServerProcess>(o);
    ASSERT_TRUE(procs_[i]->Start().ok()) << procs_[i]->ReadLog();
  }

  // shard -> (replica name, address) of every live, unexpired lease.
  std::map<uint32_t, std::pair<std::string, std::string>> Routes() {
    std::map<uint32_t, std::pair<std::string, std::string>> out;
    auto leases = view_->ListLeases();
    auto replicas = view_->ListReplicas();
    if (!leases.ok() || !replicas.ok()) return out;
    std::map<std::string, store::ReplicaInfo> by_name;
    for (const auto& r : *replicas) by_name[r.name] = r;
    for (const auto& l : *leases) {
      auto it = by_name.find(l.owner);
      if (l.owner.empty() || l.expires <= absl::Now() || it == by_name.end() || !it->second.alive)
        continue;
      out[l.shard] = {l.owner, it->second.address};
    }
    return out;
  }

  // The value of an unlabelled metric on replica i's /metrics (-1: absent or unreadable).
  double MetricOf(int i, absl::string_view name) {
    auto body = testing::HttpGet(procs_[i]->metrics_port(), "/metrics");
    if (!body.ok()) return -1;
    for (absl::string_view line : absl::StrSplit(*body, '\n')) {
      if (!absl::ConsumePrefix(&line, name) || !absl::ConsumePrefix(&line, " ")) continue;
      double v = 0;
      if (absl::SimpleAtod(line, &v)) return v;
    }
    return -1;
  }

  // Shards served, summed over the running replicas' pumptwin_shards_owned.
  int ShardsServed() {
    int total = 0;
    for (size_t i = 0; i < procs_.size(); ++i) {
      if (procs_[i] == nullptr || !procs_[i]->running()) continue;
      const double v = MetricOf(static_cast<int>(i), "pumptwin_shards_owned");
      if (v < 0) return -1;
      total += static_cast<int>(v);
    }
    return total;
  }

  // Every shard leased to a live replica that has loaded it, and the shares settled (no
  // replica above its fair share of the running ones): polled, bounded.
  bool WaitAllServed(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    int running = 0;
    for (const auto& p : procs_) running += p != nullptr && p->running() ? 1 : 0;
    const int fair = (static_cast<int>(kShards) + running - 1) / running;
    while (absl::Now() < deadline) {
      auto routes = Routes();
      std::map<std::string, int> per_replica;
      for (const auto& [shard, owner] : routes) ++per_replica[owner.first];
      bool settled = per_replica.size() == static_cast<size_t>(running);
      for (const auto& [name, n] : per_replica) settled = settled && n <= fair;
      if (routes.size() == kShards && settled && ShardsServed() == static_cast<int>(kShards)) {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(50));  // polling a condition, bounded by the deadline
    }
    return false;
  }

  // A channel that retries UNAVAILABLE (up to 5 tries, 0.1-1 s apart), as docs/scaling.md
  // asks of clients: a call that reaches a replica while its pump's shard changes replicas
  // is answered UNAVAILABLE, and the retry is forwarded to the new owner.
  static std::shared_ptr<grpc::Channel> RetryingChannel(const std::string& target) {
    grpc::ChannelArguments args;
    args.SetServiceConfigJSON(R"({"methodConfig": [{
        "name": [{"service": "pumptwin.v1.TwinService"}],
        "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.1s", "maxBackoff": "1s",
                        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]})");
    return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  }

  std::string OwnerAddress(const std::string& pump) {
    auto routes = Routes();
    auto it = routes.find(store::VirtualShardOf(pump, kShards));
    return it == routes.end() ? "" : it->second.second;
  }

  void RegisterAll() {
    for (int i = 0; i < kPumps; ++i) {
      const std::string addr = OwnerAddress(PumpId(i));
      ASSERT_FALSE(addr.empty());
      auto stub =
          v1::TwinService::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
      grpc::Status st = testing::RegisterHealthyPump(*stub, PumpId(i), kGateway, "clinic-a",
                                                     kT0 - kStepMs, kStepMs);
      ASSERT_TRUE(st.ok()) << PumpId(i) << " at " << addr << ": " << st.error_message();
    }
  }

  // Streams samples [from, to] of every pump to its owner, one gateway client per owner;
  // returns the highest seq acknowledged per pump.
  std::map<std::string, uint64_t> Stream(uint64_t from, uint64_t to,
                                         absl::Duration timeout = absl::Seconds(60)) {
    std::map<std::string, std::vector<std::string>> by_owner;
    for (int i = 0; i < kPumps; ++i) by_owner[OwnerAddress(PumpId(i))].push_back(PumpId(i));
    std::map<std::string, uint64_t> acked;
    std::vector<std::unique_ptr<device_link::GatewayClient>> clients;
    for (const auto& [addr, pumps] : by_owner) {
      EXPECT_FALSE(addr.empty());
      device_link::GatewayClientOptions o;
      o.target = addr;
      o.credentials = grpc::InsecureChannelCredentials();
      o.gateway_id = kGateway;
      o.hello_pump_ids = pumps;
      auto c = std::make_unique<device_link::GatewayClient>(o);
      c->Start();
      for (const std::string& pump : pumps) {
        for (uint64_t s = from; s <= to; s += 10) {
          std::vector<v1::TelemetrySample> frame;
          for (uint64_t q = s; q <= std::min(to, s + 9); ++q) {
            frame.push_back(HealthySample(pump, q, kT0 + static_cast<int64_t>(q) * kStepMs,
                                          static_cast<double>(q) * 500.0 / 24));
          }
          EXPECT_TRUE(c->Send(std::move(frame)).ok());
        }
      }
      clients.push_back(std::move(c));
    }
    for (auto& c : clients) c->WaitUntilAllDone(timeout);
    for (size_t k = 0; k < clients.size(); ++k) {
      clients[k]->Stop();
      for (int i = 0; i < kPumps; ++i) {
        const uint64_t a = clients[k]->acked_seq(PumpId(i));
        acked[PumpId(i)] = std::max(acked[PumpId(i)], a);
      }
    }
    return acked;
  }

  void ExpectStoredAtLeast(const std::map<std::string, uint64_t>& acked) {
    for (const auto& [pump, seq] : acked) {
      auto head = view_->GetPumpHead(pump);
      ASSERT_TRUE(head.ok()) << pump << ": " << head.status();
      EXPECT_GE(head->last_seq, seq) << pump << ": an acknowledged sample is missing";
    }
  }

  void StopAllAndVerify(int pumps = kPumps) {
    for (auto& p : procs_) {
      if (p != nullptr && p->running()) {
        auto code = p->Stop(SIGTERM);
        ASSERT_TRUE(code.ok());
        EXPECT_EQ(*code, 0) << p->ReadLog();
      }
    }
    auto [code, out] = testing::RunCommand(
        absl::StrCat(PUMPTWIND_BINARY, " --verify --store=postgres --postgres_dsn='", pg_->Dsn(),
                     "' --postgres_schema=", schema_, " 2>&1"));
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find(absl::StrCat("pumps=", pumps, " ")), std::string::npos) << out;
  }

  PostgresTestServer* pg_ = nullptr;
  std::string schema_;
  std::unique_ptr<store::PostgresStore> view_;
  std::vector<std::unique_ptr<TempDir>> dirs_;
  std::vector<std::unique_ptr<ServerProcess>> procs_;
  std::vector<int> ports_;
};

}  // namespace pumptwin::cluster_test

#endif  // PUMPTWIN_TESTS_CLUSTER_CLUSTER_FIXTURE_H_
