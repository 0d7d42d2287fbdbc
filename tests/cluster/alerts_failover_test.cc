// WatchAlerts across a replica failover: the alert log is one log for the whole cluster (each
// fenced commit appends right after its last entry; every replica follows it), so
//  - a subscriber on a replica that stays up sees every alert of every pump, those raised on
//    the replica that dies and on the replicas that take its pumps over, with consecutive
//    cursors (no gap, no duplicate) across the failover;
//  - a subscriber whose replica is killed resumes on another replica from the last cursor it
//    read and gets exactly the rest.
// Every sample of the motor pumps carries a motor stall or its recovery (one alert event per
// sample), so the count of events per pump is the count of samples the cluster applied.
#include <signal.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "device_link/cluster_gateway_client.h"
#include "device_link/sample_codec.h"
#include "tests/alerts/alerts_test_util.h"
#include "tests/cluster/cluster_fixture.h"

namespace pumptwin::cluster_test {
namespace {

using alerts_test::ExpectConsecutive;
using alerts_test::IsStallOf;
using alerts_test::StallSamples;
using alerts_test::Watcher;
using alerts_test::WatchResult;

using ClusterAlertsTest = ClusterTest;

constexpr int kMotorPumps = 6;
constexpr uint64_t kPerPhase = 150;  // samples per pump before the kill, and after it

std::string MotorPump(int i) { return absl::StrCat("CM-", i); }

// "N events; pump: type/transition x count, ..." for a failure message.
std::string Describe(const std::vector<v1::AlertEvent>& events) {
  std::map<std::string, int> n;
  for (const auto& e : events) {
    ++n[absl::StrCat(e.alert().pump_id(), ": ", v1::AlertType_Name(e.alert().type()), "/",
                     v1::AlertTransitionKind_Name(e.transition()))];
  }
  std::string out = absl::StrCat(events.size(), " events");
  for (const auto& [k, c] : n) absl::StrAppend(&out, "; ", k, " x", c);
  return out;
}

TEST_F(ClusterAlertsTest, WatchAlertsHasNoGapAndNoDuplicateAcrossAReplicaFailover) {
  // Motor pumps registered at their owners; at least one of them on r0, the replica killed.
  bool one_on_r0 = false;
  for (int i = 0; i < kMotorPumps; ++i) {
    const std::string addr = OwnerAddress(MotorPump(i));
    ASSERT_FALSE(addr.empty()) << MotorPump(i);
    one_on_r0 = one_on_r0 || addr == absl::StrCat("127.0.0.1:", ports_[0]);
    auto stub =
        v1::TwinService::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
    ASSERT_TRUE(alerts_test::RegisterMotorPump(*stub, MotorPump(i), "clinic-a").ok());
  }
  ASSERT_TRUE(one_on_r0) << "no motor pump hashed to r0's shards: pick other pump ids";

  auto stub_of = [&](int replica) {
    return v1::TwinService::NewStub(
        grpc::CreateChannel(procs_[replica]->grpc_target(), grpc::InsecureChannelCredentials()));
  };
  auto on_r0 = stub_of(0);
  auto on_r1 = stub_of(1);
  auto on_r2 = stub_of(2);
  Watcher dying(*on_r0, 0, /*deadline_s=*/120);    // its replica is killed
  Watcher staying(*on_r1, 0, /*deadline_s=*/120);  // its replica stays up throughout
  dying.WaitForInitialMetadata();
  staying.WaitForInitialMetadata();

  device_link::ClusterGatewayClientOptions o;
  o.session.credentials = grpc::InsecureChannelCredentials();
  o.session.gateway_id = alerts_test::kGateway;
  o.session.when_full = device_link::GatewayClientOptions::WhenFull::kBlock;
  o.session.block_timeout = absl::Seconds(30);
  for (int i = 0; i < kReplicas; ++i) o.seeds.push_back(procs_[i]->grpc_target());
  device_link::ClusterGatewayClient gateway(o);
  gateway.Start();
  auto send = [&](uint64_t from, uint64_t to) {
    for (uint64_t s = from; s <= to; s += 25) {
      for (int i = 0; i < kMotorPumps; ++i) {
        std::vector<twin::Sample> part = StallSamples(s, std::min(to, s + 24));
        std::vector<v1::TelemetrySample> frame(part.size());
        for (size_t k = 0; k < part.size(); ++k) {
          device_link::ToProtoSample(MotorPump(i), part[k], &frame[k]);
        }
        ASSERT_TRUE(gateway.Send(std::move(frame)).ok());
      }
    }
  };
  auto is_motor_stall = [](const v1::AlertEvent& e) {
    return e.alert().type() == v1::ALERT_TYPE_MOTOR_STALL;
  };

  // Before the kill: both subscribers see every pump's alerts.
  ASSERT_NO_FATAL_FAILURE(send(1, kPerPhase));
  ASSERT_TRUE(gateway.WaitUntilAllDone(absl::Seconds(60)));
  WatchResult before;
  dying.ReadUntil(kMotorPumps * kPerPhase, is_motor_stall, &before);
  ASSERT_FALSE(before.ended) << before.status.error_message() << "; " << Describe(before.events);
  ASSERT_NO_FATAL_FAILURE(ExpectConsecutive(before.events, 1));
  // Three replicas appended alerts at once: none of their commits conflicted on the log.
  for (int r = 0; r < kReplicas; ++r) {
    EXPECT_LE(MetricOf(r, "pumptwin_store_errors_total{op=\"commit\"}"), 0.0) << "replica " << r;
  }

  // Kill r0 mid-stream: its pumps go to r1 and r2 (lease expiry, takeover), the gateway
  // resends what r0 had not acknowledged there.
  std::thread sender([&] { send(kPerPhase + 1, 2 * kPerPhase); });
  procs_[0]->Kill();
  sender.join();
  ASSERT_TRUE(gateway.WaitUntilAllDone(absl::Seconds(90)));
  for (int i = 0; i < kMotorPumps; ++i) {
    EXPECT_EQ(gateway.acked_seq(MotorPump(i)), 2 * kPerPhase) << MotorPump(i);
  }
  gateway.Stop();

  // The subscriber of the dead replica lost its stream; it resumes on r2 from its last cursor.
  WatchResult cut = before;
  dying.ReadUntil(2 * kMotorPumps * kPerPhase, is_motor_stall, &cut);
  ASSERT_TRUE(cut.ended) << "the stream of a killed replica ended";
  ASSERT_NO_FATAL_FAILURE(ExpectConsecutive(cut.events, 1));
  const uint64_t resume = cut.events.back().cursor();
  Watcher resumed(*on_r2, resume, /*deadline_s=*/120);
  WatchResult rest;
  size_t seen = 0;
  for (const auto& e : cut.events) seen += is_motor_stall(e) ? 1 : 0;
  resumed.ReadUntil(2 * kMotorPumps * kPerPhase - seen, is_motor_stall, &rest);
  ASSERT_FALSE(rest.ended) << rest.status.error_message() << "; " << Describe(rest.events);
  ASSERT_NO_FATAL_FAILURE(ExpectConsecutive(rest.events, resume + 1));

  // The subscriber that stayed: one unbroken sequence over both phases.
  WatchResult all;
  staying.ReadUntil(2 * kMotorPumps * kPerPhase, is_motor_stall, &all);
  ASSERT_FALSE(all.ended) << all.status.error_message() << "; " << Describe(all.events);
  ASSERT_NO_FATAL_FAILURE(ExpectConsecutive(all.events, 1));

  // Both saw the same log, and in it exactly one event per sample of each pump: raised on
  // the odd seqs, resolved on the even ones, none twice (the resent samples were stored once).
  std::vector<v1::AlertEvent> joined = cut.events;
  joined.insert(joined.end(), rest.events.begin(), rest.events.end());
  ASSERT_GE(joined.size(), all.events.size());
  for (size_t k = 0; k < all.events.size(); ++k) {
    ASSERT_EQ(joined[k].cursor(), all.events[k].cursor());
    ASSERT_EQ(joined[k].alert().pump_id(), all.events[k].alert().pump_id()) << "cursor " << k + 1;
    ASSERT_EQ(joined[k].transition(), all.events[k].transition()) << "cursor " << k + 1;
  }
  for (int i = 0; i < kMotorPumps; ++i) {
    size_t raised = 0, resolved = 0;
    for (const auto& e : all.events) {
      if (!IsStallOf(e, MotorPump(i))) continue;
      raised += e.transition() == v1::ALERT_TRANSITION_RAISED;
      resolved += e.transition() == v1::ALERT_TRANSITION_RESOLVED;
    }
    EXPECT_EQ(raised, kPerPhase) << MotorPump(i);
    EXPECT_EQ(resolved, kPerPhase) << MotorPump(i);
  }
  StopAllAndVerify(kMotorPumps);
}

}  // namespace
}  // namespace pumptwin::cluster_test
