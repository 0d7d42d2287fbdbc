// WatchAlerts against the real pumptwind: replay + live with no gap and no duplicate
// (read, disconnect, resume from the last cursor while ingest continues), resume across a
// SIGTERM restart (open streams end UNAVAILABLE), and slow-subscriber isolation (a
// subscriber that never reads is dropped with RESOURCE_EXHAUSTED while a normal one gets
// every event and ingest acks every sample), and a clean SIGTERM stop while a subscriber
// that reads nothing has a write outstanding; a subscriber beyond
// --watch_alerts_max_subscribers is refused RESOURCE_EXHAUSTED. Assertions are on counts and
// cursors.
#include <signal.h>

#include <algorithm>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "tests/alerts/alerts_test_util.h"

namespace pumptwin::alerts_test {
namespace {

using ::testing::HasSubstr;

struct Server {
  explicit Server(testing::TempDir& dir, std::vector<std::string> extra = {})
      : proc({.data_dir = dir.path() + "/data", .extra_args = WithDefaults(std::move(extra))}) {}
  static std::vector<std::string> WithDefaults(std::vector<std::string> extra) {
    extra.push_back("--shutdown_grace=2s");
    extra.push_back("--shards=2");
    return extra;
  }
  void Start() {
    ASSERT_TRUE(proc.Start().ok()) << proc.ReadLog();
    channel = grpc::CreateChannel(proc.grpc_target(), grpc::InsecureChannelCredentials());
    stub = v1::TwinService::NewStub(channel);
  }
  testing::ServerProcess proc;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::TwinService::Stub> stub;
};

TEST(WatchAlertsTest, ResumeFromLastCursorHasNoGapAndNoDuplicate) {
  testing::TempDir dir;
  Server srv(dir);
  ASSERT_NO_FATAL_FAILURE(srv.Start());
  ASSERT_TRUE(RegisterMotorPump(*srv.stub, "PA", "north").ok());
  ASSERT_NO_FATAL_FAILURE(Feed(srv.proc.grpc_target(), "PA", 1, 300));

  WatchResult first;
  {
    Watcher w(*srv.stub, 0);
    w.ReadUntil(
        120, [](const v1::AlertEvent&) { return true; }, &first);
    ASSERT_FALSE(first.ended) << first.status.error_message();
  }  // disconnect mid-stream
  ASSERT_EQ(first.events.size(), 120u);
  ASSERT_NO_FATAL_FAILURE(ExpectConsecutive(first.events, 1));

  // Resume while more telemetry arrives: part replay, part live, switch in between.
  const uint64_t last = first.events.back().cursor();
  Watcher w2(*srv.stub, last);
  std::thread feeder([&] { Feed(srv.proc.grpc_target(), "PA", 301, 600); });
  WatchResult second;
  size_t stalls_before = 0;
  for (const auto& e : first.events) stalls_before += IsStallOf(e, "PA") ? 1 : 0;
  w2.ReadUntil(
      600 - stalls_before, [](const v1::AlertEvent& e) { return IsStallOf(e, "PA"); }, &second);
  feeder.join();
  ASSERT_FALSE(second.ended) << second.status.error_message();
  ASSERT_NO_FATAL_FAILURE(ExpectConsecutive(second.events, last + 1));
  size_t raised = 0, resolved = 0;
  for (const auto* part : {&first.events, &second.events}) {
    for (const auto& e : *part) {
      if (!IsStallOf(e, "PA")) continue;
      raised += e.transition() == v1::ALERT_TRANSITION_RAISED;
      resolved += e.transition() == v1::ALERT_TRANSITION_RESOLVED;
    }
  }
  EXPECT_EQ(raised, 300u);
  EXPECT_EQ(resolved, 300u);
}

TEST(WatchAlertsTest, ResumeAcrossServerRestart) {
  testing::TempDir dir;
  uint64_t last = 0;
  size_t stalls_seen = 0;
  {
    Server srv(dir);
    ASSERT_NO_FATAL_FAILURE(srv.Start());
    ASSERT_TRUE(RegisterMotorPump(*srv.stub, "PR", "north").ok());
    ASSERT_NO_FATAL_FAILURE(Feed(srv.proc.grpc_target(), "PR", 1, 100));
    WatchResult r;
    Watcher w(*srv.stub, 0);
    w.ReadUntil(
        100, [](const v1::AlertEvent& e) { return IsStallOf(e, "PR"); }, &r);
    ASSERT_FALSE(r.ended);
    ASSERT_NO_FATAL_FAILURE(ExpectConsecutive(r.events, 1));
    // Keep only the first 60 events as "seen"; the rest must come again after restart.
    r.events.resize(60);
    last = r.events.back().cursor();
    for (const auto& e : r.events) stalls_seen += IsStallOf(e, "PR") ? 1 : 0;
    // A stream open at shutdown ends with UNAVAILABLE telling where to resume.
    auto code = srv.proc.Stop(SIGTERM);
    ASSERT_TRUE(code.ok());
    EXPECT_EQ(*code, 0) << srv.proc.ReadLog();
    WatchResult tail;
    w.ReadUntil(
        1000000, [](const v1::AlertEvent&) { return true; }, &tail, 100000);
    ASSERT_TRUE(tail.ended);
    EXPECT_EQ(tail.status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << tail.status.error_message();
    EXPECT_THAT(tail.status.error_message(), HasSubstr("resume from cursor"));
  }
  Server srv(dir);
  ASSERT_NO_FATAL_FAILURE(srv.Start());
  Watcher w(*srv.stub, last);
  std::thread feeder([&] { Feed(srv.proc.grpc_target(), "PR", 101, 200); });
  WatchResult r;
  w.ReadUntil(
      200 - stalls_seen, [](const v1::AlertEvent& e) { return IsStallOf(e, "PR"); }, &r);
  feeder.join();
  ASSERT_FALSE(r.ended) << r.status.error_message();
  ASSERT_NO_FATAL_FAILURE(ExpectConsecutive(r.events, last + 1));
}

// A stub on its own connection with small HTTP/2 windows: a subscriber that stops reading
// stalls the server's writes to it after a few events.
std::unique_ptr<v1::TwinService::Stub> SmallWindowStub(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return v1::TwinService::NewStub(
      grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
}

TEST(WatchAlertsTest, SlowSubscriberIsDroppedAloneAndIngestIsNotSlowed) {
  testing::TempDir dir;
  Server srv(dir, {"--watch_alerts_buffer=64"});
  ASSERT_NO_FATAL_FAILURE(srv.Start());
  ASSERT_TRUE(RegisterMotorPump(*srv.stub, "PS", "north").ok());
  // The slow subscriber: small HTTP/2 windows, and it reads nothing while ingest runs.
  auto slow_stub = SmallWindowStub(srv.proc.grpc_target());
  Watcher slow(*slow_stub, 0, 120);
  Watcher normal(*srv.stub, 0, 120);
  // Ingest in frames of 50 (each below the 64-event bound); the normal subscriber keeps
  // up (the feeder waits, bounded, until it has read each frame's events), the slow one
  // never reads during ingest.
  constexpr uint64_t kSamples = 3000, kFrame = 50;
  absl::Mutex mu;
  size_t read_stalls = 0;
  WatchResult got;
  std::thread reader([&] {
    normal.ReadUntil(
        kSamples,
        [&](const v1::AlertEvent& e) {
          if (!IsStallOf(e, "PS")) return false;
          absl::MutexLock l(&mu);
          ++read_stalls;
          return true;
        },
        &got);
  });
  device_link::GatewayClientOptions o;
  o.target = srv.proc.grpc_target();
  o.credentials = grpc::InsecureChannelCredentials();
  o.gateway_id = kGateway;
  device_link::GatewayClient client(o);
  client.Start();
  for (uint64_t s = 1; s <= kSamples; s += kFrame) {
    ASSERT_TRUE(client.SendTwin("PS", StallSamples(s, s + kFrame - 1)).ok());
    ASSERT_TRUE(client.WaitUntilAllDone(absl::Seconds(30)));
    absl::MutexLock l(&mu);
    const size_t want = s + kFrame - 1;
    auto caught_up = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return read_stalls >= want; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&caught_up), absl::Seconds(30)))
        << "normal subscriber read " << read_stalls << " of " << want;
  }
  EXPECT_EQ(client.stats().samples_acked, kSamples);  // ingest was never refused
  EXPECT_EQ(client.stats().samples_nacked, 0u);
  client.Stop();
  reader.join();
  ASSERT_FALSE(got.ended) << got.status.error_message();
  ASSERT_NO_FATAL_FAILURE(ExpectConsecutive(got.events, 1));

  // Now the slow one reads: what the transport held, then RESOURCE_EXHAUSTED naming the
  // cursor to resume from, which is the last event it received.
  WatchResult s;
  slow.ReadUntil(
      1000000, [](const v1::AlertEvent&) { return true; }, &s, kSamples * 2);
  ASSERT_TRUE(s.ended);
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << s.status.error_message();
  EXPECT_LT(s.events.size(), got.events.size());
  ASSERT_NO_FATAL_FAILURE(ExpectConsecutive(s.events, 1));
  const uint64_t resume = s.events.empty() ? 0 : s.events.back().cursor();
  EXPECT_THAT(s.status.error_message(), HasSubstr(absl::StrCat("resume from cursor ", resume)));

  // Resuming from there yields exactly the rest.
  Watcher again(*srv.stub, resume);
  WatchResult rest;
  again.ReadUntil(
      got.events.size() - s.events.size(), [](const v1::AlertEvent&) { return true; }, &rest);
  ASSERT_NO_FATAL_FAILURE(ExpectConsecutive(rest.events, resume + 1));

  auto metrics = testing::HttpGet(srv.proc.metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics, HasSubstr("pumptwin_subscribers_dropped_total{stream=\"watch_alerts\"} 1"));
}

// A subscriber that reads nothing while events flow: the server's write to it is stuck
// at the flow-control window when SIGTERM arrives. Shutdown cancels the call during that
// write; the call must still end, so the server exits (within its bound) instead of
// waiting for it forever.
TEST(WatchAlertsTest, SubscriberBeyondTheMaximumIsRefusedResourceExhausted) {
  testing::TempDir dir;
  Server srv(dir, {"--watch_alerts_max_subscribers=2"});
  ASSERT_NO_FATAL_FAILURE(srv.Start());
  Watcher a(*srv.stub, 0), b(*srv.stub, 0);
  a.WaitForInitialMetadata();  // the server sends headers once subscribed
  b.WaitForInitialMetadata();
  Watcher c(*srv.stub, 0);
  WatchResult refused;
  c.ReadUntil(
      1, [](const v1::AlertEvent&) { return true; }, &refused);
  ASSERT_TRUE(refused.ended);
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << refused.status.error_message();
  EXPECT_THAT(refused.status.error_message(), HasSubstr("--watch_alerts_max_subscribers"));
  auto metrics = testing::HttpGet(srv.proc.metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics, HasSubstr("pumptwin_subscribers_refused_total{stream=\"watch_alerts\"} 1"));
  EXPECT_THAT(*metrics, HasSubstr("pumptwin_subscribers{stream=\"watch_alerts\"} 2"));
}

// Without the flag the maximum follows the machine: 50 streams per CPU core. An empty
// value is the same as no flag; 0 lifts the limit.
TEST(WatchAlertsTest, TheDefaultMaximumIsFiftyStreamsPerCore) {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  {
    testing::TempDir dir;
    Server srv(dir);
    ASSERT_NO_FATAL_FAILURE(srv.Start());
    EXPECT_THAT(srv.proc.ReadLog(), HasSubstr(absl::StrCat("max_subscribers=", 50 * cores, " ")));
  }
  {
    testing::TempDir dir;
    Server srv(dir, {"--watch_alerts_max_subscribers="});
    ASSERT_NO_FATAL_FAILURE(srv.Start());
    EXPECT_THAT(srv.proc.ReadLog(), HasSubstr(absl::StrCat("max_subscribers=", 50 * cores, " ")));
  }
  {
    testing::TempDir dir;
    Server srv(dir, {"--watch_alerts_max_subscribers=0"});
    ASSERT_NO_FATAL_FAILURE(srv.Start());
    EXPECT_THAT(srv.proc.ReadLog(), HasSubstr("max_subscribers=0 "));
  }
}

TEST(WatchAlertsTest, ServerStopsWithAStalledSubscriberMidWrite) {
  testing::TempDir dir;
  Server srv(dir);
  ASSERT_NO_FATAL_FAILURE(srv.Start());
  ASSERT_TRUE(RegisterMotorPump(*srv.stub, "PT", "north").ok());
  auto stalled_stub = SmallWindowStub(srv.proc.grpc_target());
  Watcher stalled(*stalled_stub, 0, 120);
  // 2000 stall/recovery events (~0.3 MB): far more than the transport holds for a reader
  // that reads nothing, far fewer than the subscriber's buffer (4096): it is not dropped.
  ASSERT_NO_FATAL_FAILURE(Feed(srv.proc.grpc_target(), "PT", 1, 2000));
  auto code = srv.proc.Stop(SIGTERM, absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status() << "\n" << srv.proc.ReadLog();
  EXPECT_EQ(*code, 0) << srv.proc.ReadLog();
}

}  // namespace
}  // namespace pumptwin::alerts_test
