// DeviceGateway service over real gRPC on 127.0.0.1 with the FakeSink, driven by a raw
// stream (to control every message) and by GatewayClient.
#include "device_link/gateway_service.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "device_link/fake_sink.h"
#include "device_link/gateway_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/device_link/test_util.h"

namespace pumptwin::device_link {
namespace {

using ::testing::HasSubstr;
using testing::MakeSample;
using testing::MakeSamples;
using testing::TestServer;
using v1::GatewayMessage;
using v1::ServerMessage;

constexpr absl::Duration kWait = absl::Seconds(10);

// A hand-driven Connect stream (sync API) with a deadline, so no read blocks forever.
class RawStream {
 public:
  explicit RawStream(const std::string& target) {
    channel_ = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
    stub_ = v1::DeviceGateway::NewStub(channel_);
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    rw_ = stub_->Connect(&ctx_);
  }
  bool Hello(const std::string& gateway, std::vector<std::string> pumps = {},
             bool accepts_ack_batches = false) {
    GatewayMessage m;
    m.mutable_hello()->set_gateway_id(gateway);
    m.mutable_hello()->set_accepts_ack_batches(accepts_ack_batches);
    for (auto& p : pumps) m.mutable_hello()->add_pump_ids(p);
    return rw_->Write(m);
  }
  bool Frame(uint64_t id, std::vector<v1::TelemetrySample> samples) {
    GatewayMessage m;
    m.mutable_frame()->set_frame_id(id);
    for (auto& s : samples) *m.mutable_frame()->add_samples() = std::move(s);
    return rw_->Write(m);
  }
  bool Read(ServerMessage* m) { return rw_->Read(m); }
  // Reads until the Ack of `frame_id`, collecting Nacks.
  bool ReadUntilAck(uint64_t frame_id, v1::Ack* ack, std::vector<v1::Nack>* nacks) {
    ServerMessage m;
    for (int i = 0; i < 10'000 && rw_->Read(&m); ++i) {
      if (m.has_nack()) nacks->push_back(m.nack());
      if (m.has_ack() && m.ack().frame_id() == frame_id) {
        *ack = m.ack();
        return true;
      }
    }
    return false;
  }
  grpc::Status Close() {
    rw_->WritesDone();
    ServerMessage m;
    for (int i = 0; i < 10'000 && rw_->Read(&m); ++i) {
    }
    return rw_->Finish();
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::DeviceGateway::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<GatewayMessage, ServerMessage>> rw_;
};

class GatewayServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sink_.RegisterPump("p1", {"gw1"});
    sink_.RegisterPump("p2", {"gw1"});
    sink_.RegisterPump("other", {"gw2"});
  }
  void StartServer(GatewayServiceOptions o = {}) {
    server_ = TestServer::Start(&sink_, std::move(o));
    ASSERT_NE(server_, nullptr);
  }
  GatewayClientOptions ClientOptions(const std::string& gateway = "gw1") {
    GatewayClientOptions o;
    o.target = server_->target();
    o.credentials = grpc::InsecureChannelCredentials();
    o.gateway_id = gateway;
    o.backoff.initial = absl::Milliseconds(5);
    o.backoff.max = absl::Milliseconds(100);
    return o;
  }

  FakeSink sink_;  // declared first: outlives the server and its pending completions
  std::unique_ptr<TestServer> server_;
};

TEST_F(GatewayServiceTest, FirstMessageMustBeHello) {
  StartServer();
  RawStream s(server_->target());
  ASSERT_TRUE(s.Frame(1, MakeSamples("p1", 1, 1)));
  ServerMessage m;
  EXPECT_FALSE(s.Read(&m));
  grpc::Status st = s.Close();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("must be a Hello"));
  EXPECT_EQ(sink_.submits(), 0u);
}

TEST_F(GatewayServiceTest, WelcomeCarriesResumePointsAndLimits) {
  GatewayServiceOptions o;
  o.max_unacked_frames = 7;
  o.frame_limits.max_samples_per_frame = 500;
  StartServer(o);
  {
    RawStream s(server_->target());
    ASSERT_TRUE(s.Hello("gw1"));
    ServerMessage m;
    ASSERT_TRUE(s.Read(&m));
    ASSERT_TRUE(m.has_welcome());
    ASSERT_TRUE(s.Frame(1, MakeSamples("p1", 1, 3)));
    v1::Ack ack;
    std::vector<v1::Nack> nacks;
    ASSERT_TRUE(s.ReadUntilAck(1, &ack, &nacks));
    EXPECT_TRUE(s.Close().ok());
  }
  RawStream s(server_->target());
  ASSERT_TRUE(s.Hello("gw1", {"p1"}));
  ServerMessage m;
  ASSERT_TRUE(s.Read(&m));
  ASSERT_TRUE(m.has_welcome());
  EXPECT_EQ(m.welcome().max_unacked_frames(), 7u);
  EXPECT_EQ(m.welcome().max_samples_per_frame(), 500u);
  ASSERT_EQ(m.welcome().resume_points_size(), 1);
  EXPECT_EQ(m.welcome().resume_points(0).pump_id(), "p1");
  EXPECT_EQ(m.welcome().resume_points(0).highest_durable_seq(), 3u);
  EXPECT_TRUE(s.Close().ok());
}

TEST_F(GatewayServiceTest, AcksDuplicatesWithoutReapplying) {
  StartServer();
  RawStream s(server_->target());
  ASSERT_TRUE(s.Hello("gw1"));
  v1::Ack ack;
  std::vector<v1::Nack> nacks;
  ASSERT_TRUE(s.Frame(1, MakeSamples("p1", 1, 5)));
  ASSERT_TRUE(s.ReadUntilAck(1, &ack, &nacks));
  ASSERT_TRUE(s.Frame(2, MakeSamples("p1", 3, 5)));  // 3..5 again, 6..7 new
  ASSERT_TRUE(s.ReadUntilAck(2, &ack, &nacks));
  EXPECT_TRUE(nacks.empty());
  ASSERT_EQ(ack.pumps_size(), 1);
  EXPECT_EQ(ack.pumps(0).highest_durable_seq(), 7u);
  EXPECT_EQ(sink_.AppliedSeqs("p1"), (std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7}));
  EXPECT_TRUE(s.Close().ok());
}

TEST_F(GatewayServiceTest, InvalidFieldIsNackedAndItsSeqConsumed) {
  StartServer();
  RawStream s(server_->target());
  ASSERT_TRUE(s.Hello("gw1"));
  auto samples = MakeSamples("p1", 1, 5);
  samples[3].set_battery_voltage_v(std::numeric_limits<double>::quiet_NaN());
  ASSERT_TRUE(s.Frame(1, samples));
  v1::Ack ack;
  std::vector<v1::Nack> nacks;
  ASSERT_TRUE(s.ReadUntilAck(1, &ack, &nacks));
  ASSERT_EQ(nacks.size(), 1u);
  EXPECT_EQ(nacks[0].reason(), v1::NACK_REASON_INVALID_FIELD);
  EXPECT_EQ(nacks[0].grpc_code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(nacks[0].seq(), 4u);
  EXPECT_EQ(nacks[0].message(), "samples[3].battery_voltage_v=NaN is not a finite number");
  EXPECT_EQ(ack.pumps(0).highest_durable_seq(), 5u);  // the bad slot does not block the pump
  EXPECT_EQ(sink_.AppliedSeqs("p1"), (std::vector<uint64_t>{1, 2, 3, 5}));
  EXPECT_TRUE(s.Close().ok());
}

TEST_F(GatewayServiceTest, UnboundUnknownAndDecommissionedPumpsAreNacked) {
  int not_bound = 0;
  GatewayServiceOptions o;
  o.metrics.nack = [&not_bound](v1::NackReason r) {
    if (r == v1::NACK_REASON_NOT_BOUND) ++not_bound;  // single stream: hooks serialised
  };
  sink_.RegisterPump("old", {"gw1"});
  sink_.Decommission("old");
  StartServer(o);
  RawStream s(server_->target());
  ASSERT_TRUE(s.Hello("gw1"));
  ASSERT_TRUE(s.Frame(1, {MakeSample("other", 1), MakeSample("ghost", 1), MakeSample("old", 1),
                          MakeSample("p2", 1)}));
  v1::Ack ack;
  std::vector<v1::Nack> nacks;
  ASSERT_TRUE(s.ReadUntilAck(1, &ack, &nacks));
  ASSERT_EQ(nacks.size(), 3u);
  EXPECT_EQ(nacks[0].reason(), v1::NACK_REASON_NOT_BOUND);
  EXPECT_EQ(nacks[0].grpc_code(), static_cast<int>(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_EQ(nacks[1].reason(), v1::NACK_REASON_UNKNOWN_PUMP);
  EXPECT_EQ(nacks[1].grpc_code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(nacks[2].reason(), v1::NACK_REASON_DECOMMISSIONED);
  EXPECT_TRUE(sink_.AppliedSeqs("other").empty());
  EXPECT_EQ(sink_.AppliedSeqs("p2"), std::vector<uint64_t>{1});
  EXPECT_TRUE(s.Close().ok());
  EXPECT_EQ(not_bound, 1);
}

TEST_F(GatewayServiceTest, GapBeyondReorderWindowIsNackedOutOfOrder) {
  StartServer();
  RawStream s(server_->target());
  ASSERT_TRUE(s.Hello("gw1"));
  ASSERT_TRUE(s.Frame(1, {MakeSample("p1", 1), MakeSample("p1", 3), MakeSample("p1", 500)}));
  v1::Ack ack;
  std::vector<v1::Nack> nacks;
  ASSERT_TRUE(s.ReadUntilAck(1, &ack, &nacks));
  ASSERT_EQ(nacks.size(), 1u);
  EXPECT_EQ(nacks[0].reason(), v1::NACK_REASON_OUT_OF_ORDER);
  EXPECT_THAT(nacks[0].message(), HasSubstr("send seq 2 first"));
  EXPECT_EQ(ack.pumps(0).highest_durable_seq(), 1u);  // 3 waits in the window
  ASSERT_TRUE(s.Frame(2, {MakeSample("p1", 2)}));
  ASSERT_TRUE(s.ReadUntilAck(2, &ack, &nacks));
  EXPECT_EQ(ack.pumps(0).highest_durable_seq(), 3u);
  EXPECT_EQ(sink_.AppliedSeqs("p1"), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_TRUE(s.Close().ok());
}

TEST_F(GatewayServiceTest, OversizedFrameEndsStreamInvalidArgument) {
  GatewayServiceOptions o;
  o.frame_limits.max_samples_per_frame = 4;
  StartServer(o);
  RawStream s(server_->target());
  ASSERT_TRUE(s.Hello("gw1"));
  ASSERT_TRUE(s.Frame(1, MakeSamples("p1", 1, 5)));
  grpc::Status st = s.Close();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("exceeds max_samples_per_frame 4"));
}

TEST_F(GatewayServiceTest, SinkFailureEndsStreamWithItsStatusAndNothingIsAcked) {
  StartServer();
  sink_.FailNextSubmits(1, absl::UnavailableError("disk full"));
  RawStream s(server_->target());
  ASSERT_TRUE(s.Hello("gw1"));
  ASSERT_TRUE(s.Frame(1, MakeSamples("p1", 1, 2)));
  ServerMessage m;
  ASSERT_TRUE(s.Read(&m));   // Welcome
  EXPECT_FALSE(s.Read(&m));  // no Ack
  grpc::Status st = s.Close();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(st.error_message(), "disk full");
}

TEST_F(GatewayServiceTest, ClientDeliversEverythingAndReportsStats) {
  StartServer();
  GatewayClient client(ClientOptions());
  client.Start();
  for (int f = 0; f < 50; ++f) {
    auto samples = MakeSamples("p1", 1 + f * 10, 10);
    auto more = MakeSamples("p2", 1 + f * 3, 3);
    samples.insert(samples.end(), more.begin(), more.end());
    ASSERT_TRUE(client.Send(std::move(samples)).ok());
  }
  ASSERT_TRUE(client.WaitUntilAllDone(kWait));
  EXPECT_EQ(sink_.AppliedSeqs("p1").size(), 500u);
  EXPECT_EQ(sink_.AppliedSeqs("p2").size(), 150u);
  EXPECT_EQ(client.acked_seq("p1"), 500u);
  GatewayClientStats st = client.stats();
  EXPECT_EQ(st.frames_done, 50u);
  EXPECT_EQ(st.samples_acked, 650u);
  EXPECT_EQ(st.samples_nacked, 0u);
  EXPECT_EQ(st.buffered_frames, 0u);
  EXPECT_TRUE(st.connected);
  client.Stop();
}

TEST_F(GatewayServiceTest, BackPressureBoundsFramesOutstandingAtTheSink) {
  GatewayServiceOptions o;
  o.max_unacked_frames = 4;
  StartServer(o);
  sink_.SetHoldCompletions(true);
  GatewayClientOptions co = ClientOptions();
  co.max_unacked_frames = 64;  // the client would send more: the server must hold it back
  GatewayClient client(co);
  client.Start();
  constexpr int kFrames = 60;
  for (int f = 0; f < kFrames; ++f) ASSERT_TRUE(client.Send(MakeSamples("p1", 1 + f * 5, 5)).ok());
  ASSERT_TRUE(sink_.AwaitHeld(4, kWait));
  // Reading has stopped: no fifth frame reaches the sink while four are outstanding.
  EXPECT_FALSE(sink_.AwaitHeld(5, absl::Milliseconds(200)));
  size_t released = 0;
  for (int i = 0; i < 10'000 && released < kFrames; ++i) {
    if (!sink_.AwaitHeld(1, kWait)) break;
    released += sink_.ReleaseHeld();
  }
  sink_.SetHoldCompletions(false);
  sink_.ReleaseHeld();
  ASSERT_TRUE(client.WaitUntilAllDone(kWait));
  EXPECT_LE(sink_.max_outstanding(), 4u);
  EXPECT_EQ(sink_.AppliedSeqs("p1").size(), kFrames * 5u);
  client.Stop();
}

v1::Ack AckOf(uint64_t frame_id) {
  v1::Ack a;
  a.set_frame_id(frame_id);
  return a;
}

// The frame ids a queue acknowledges, in order (Ack or AckBatch), and -1 for anything else.
std::vector<int64_t> QueuedFrames(const std::list<ServerMessage>& queue) {
  std::vector<int64_t> out;
  for (const ServerMessage& m : queue) {
    if (m.has_ack()) out.push_back(static_cast<int64_t>(m.ack().frame_id()));
    if (m.has_acks()) {
      for (const v1::Ack& a : m.acks().acks()) out.push_back(static_cast<int64_t>(a.frame_id()));
    }
    if (!m.has_ack() && !m.has_acks()) out.push_back(-1);
  }
  return out;
}

TEST(AppendAck, MergesAcksWaitingTogetherButNeverAcrossANack) {
  std::list<ServerMessage> q;
  AppendAck(q, AckOf(1), true);
  ASSERT_EQ(q.size(), 1u);
  EXPECT_TRUE(q.back().has_ack());  // alone: a plain Ack
  AppendAck(q, AckOf(2), true);
  AppendAck(q, AckOf(3), true);
  ASSERT_EQ(q.size(), 1u);
  ASSERT_TRUE(q.back().has_acks());
  EXPECT_EQ(q.back().acks().acks_size(), 3);
  ServerMessage nack;
  nack.mutable_nack()->set_frame_id(4);
  q.push_back(nack);
  AppendAck(q, AckOf(4), true);
  AppendAck(q, AckOf(5), true);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(QueuedFrames(q), (std::vector<int64_t>{1, 2, 3, -1, 4, 5}));
}

TEST(AppendAck, AGatewayWithoutAckBatchesGetsOneMessagePerAck) {
  std::list<ServerMessage> q;
  for (uint64_t f = 1; f <= 4; ++f) AppendAck(q, AckOf(f), false);
  ASSERT_EQ(q.size(), 4u);
  for (const ServerMessage& m : q) EXPECT_TRUE(m.has_ack());
  EXPECT_EQ(QueuedFrames(q), (std::vector<int64_t>{1, 2, 3, 4}));
}

// End to end over gRPC: with completions released all at once, every frame is acked exactly
// once and in order whether the acks come batched or not; a gateway that did not ask for
// batches never receives an AckBatch.
TEST_F(GatewayServiceTest, AcksReadyTogetherArriveInOrderBatchedOnlyWhenAccepted) {
  StartServer();
  sink_.SetHoldCompletions(true);
  for (bool accepts : {false, true}) {
    SCOPED_TRACE(accepts ? "accepts_ack_batches" : "one ack per message");
    const uint64_t base = accepts ? 100 : 0;
    RawStream s(server_->target());
    ASSERT_TRUE(s.Hello("gw1", {"p1"}, accepts));
    ServerMessage welcome;
    ASSERT_TRUE(s.Read(&welcome));
    ASSERT_TRUE(welcome.has_welcome());
    constexpr int kFrames = 12;
    for (int f = 0; f < kFrames; ++f) {
      const uint64_t first_seq = (accepts ? kFrames * 5 : 0) + 1 + f * 5;  // no gaps: no Nacks
      ASSERT_TRUE(s.Frame(base + f, MakeSamples("p1", first_seq, 5)));
    }
    ASSERT_TRUE(sink_.AwaitHeld(kFrames, kWait));
    ASSERT_EQ(sink_.ReleaseHeld(), static_cast<size_t>(kFrames));
    std::vector<uint64_t> acked;
    int batches = 0;
    ServerMessage m;
    while (acked.size() < kFrames && s.Read(&m)) {
      if (m.has_ack()) acked.push_back(m.ack().frame_id());
      if (m.has_acks()) {
        ++batches;
        for (const v1::Ack& a : m.acks().acks()) acked.push_back(a.frame_id());
      }
      EXPECT_FALSE(m.has_nack()) << m.nack().message();
    }
    std::vector<uint64_t> want;
    for (int f = 0; f < kFrames; ++f) want.push_back(base + f);
    EXPECT_EQ(acked, want);
    if (!accepts) {
      EXPECT_EQ(batches, 0);
    }
    EXPECT_TRUE(s.Close().ok());
  }
}

TEST_F(GatewayServiceTest, ABlockedSendResumesOnceAQuarterOfTheBufferIsFree) {
  StartServer();
  sink_.SetHoldCompletions(true);
  absl::Mutex mu;
  int frames_done = 0;
  GatewayClientOptions co = ClientOptions();
  co.max_buffered_frames = 8;
  co.max_unacked_frames = 8;
  co.when_full = GatewayClientOptions::WhenFull::kBlock;
  co.on_frame_done = [&](uint64_t, absl::Duration) {
    absl::MutexLock l(&mu);
    ++frames_done;
  };
  GatewayClient client(co);
  client.Start();
  for (int f = 0; f < 8; ++f) ASSERT_TRUE(client.Send(MakeSamples("p1", 1 + f * 5, 5)).ok());
  ASSERT_TRUE(sink_.AwaitHeld(8, kWait));
  std::atomic<bool> sent{false};
  std::thread producer([&] { sent = client.Send(MakeSamples("p1", 41, 5)).ok(); });
  auto await_done = [&](int n) {
    absl::MutexLock l(&mu);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return frames_done >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&reached), kWait);
  };
  // One slot free (7 of 8 buffered): the producer stays blocked, so no ninth frame reaches
  // the sink although the window has room; two free (a quarter): it goes.
  ASSERT_EQ(sink_.ReleaseHeld(1), 1u);
  ASSERT_TRUE(await_done(1));
  EXPECT_FALSE(sink_.AwaitHeld(8, absl::Milliseconds(200)))
      << "a blocked Send resumed with one slot of eight free";
  ASSERT_EQ(sink_.ReleaseHeld(1), 1u);
  producer.join();
  EXPECT_TRUE(sent.load());
  EXPECT_TRUE(sink_.AwaitHeld(7, kWait));  // six left + the ninth frame
  sink_.SetHoldCompletions(false);
  sink_.ReleaseHeld();
  ASSERT_TRUE(client.WaitUntilAllDone(kWait));
  EXPECT_EQ(sink_.AppliedSeqs("p1").size(), 45u);
  client.Stop();
}

TEST_F(GatewayServiceTest, ServerCrashMidStreamThenRestartDeliversExactlyOnce) {
  StartServer();
  const int port = server_->port();
  sink_.SetHoldCompletions(true);  // applied, not yet acked: the gateway must resend
  GatewayClient client(ClientOptions());
  client.Start();
  constexpr int kFrames = 40;
  constexpr int kPerFrame = 25;
  for (int f = 0; f < kFrames; ++f) {
    ASSERT_TRUE(client.Send(MakeSamples("p1", 1 + f * kPerFrame, kPerFrame)).ok());
  }
  ASSERT_TRUE(sink_.AwaitHeld(10, kWait));
  sink_.ReleaseHeld(5);  // five frames acked, the rest in flight
  server_->Kill();       // crash
  sink_.SetHoldCompletions(false);
  sink_.ReleaseHeld();  // late completions hit finished streams: must be harmless
  EXPECT_EQ(server_->service()->active_streams(), 0);
  server_ = TestServer::Start(&sink_, {}, port);  // restart on the same port
  ASSERT_NE(server_, nullptr);
  ASSERT_TRUE(client.WaitUntilAllDone(kWait));
  std::vector<uint64_t> want;
  for (uint64_t s = 1; s <= kFrames * kPerFrame; ++s) want.push_back(s);
  EXPECT_EQ(sink_.AppliedSeqs("p1"), want);  // exactly once, in order
  GatewayClientStats st = client.stats();
  EXPECT_GE(st.reconnects, 1u);
  EXPECT_GE(st.sessions_welcomed, 2u);
  EXPECT_GT(st.samples_dropped_by_resume, 0u);  // stored but unacked: not resent
  client.Stop();
}

TEST_F(GatewayServiceTest, ClientStopWithSinkBusyLeavesNoStreamBehind) {
  absl::Notification closed;
  GatewayServiceOptions o;
  o.metrics.stream_closed = [&closed](absl::StatusCode) { closed.Notify(); };
  StartServer(o);
  sink_.SetHoldCompletions(true);
  {
    GatewayClient client(ClientOptions());
    client.Start();
    ASSERT_TRUE(client.Send(MakeSamples("p1", 1, 3)).ok());
    ASSERT_TRUE(sink_.AwaitHeld(1, kWait));
    client.Stop();  // cancels the stream while the sink still holds its frame
  }
  ASSERT_TRUE(closed.WaitForNotificationWithTimeout(kWait));
  sink_.ReleaseHeld();  // the completion arrives after the stream is gone: no use-after-free
  EXPECT_EQ(sink_.AppliedSeqs("p1").size(), 3u);
}

TEST_F(GatewayServiceTest, OverRateGatewayGetsResourceExhaustedAndRetryHint) {
  testing::FakeClock clock;
  GatewayServiceOptions o;
  o.max_samples_per_second = 100;
  o.clock = [&clock] { return clock.Now(); };
  StartServer(o);
  auto sleeper = std::make_shared<testing::FakeSleeper>(&clock);  // sleeping advances time
  GatewayClientOptions co = ClientOptions();
  co.sleeper = sleeper;
  co.backoff.initial = absl::Milliseconds(1);
  co.backoff.jitter = 0;
  GatewayClient client(co);
  for (int f = 0; f < 3; ++f) ASSERT_TRUE(client.Send(MakeSamples("p1", 1 + f * 80, 80)).ok());
  client.Start();
  ASSERT_TRUE(client.WaitUntilAllDone(kWait));
  GatewayClientStats st = client.stats();
  EXPECT_GE(st.reconnects, 1u);
  ASSERT_FALSE(sleeper->sleeps().empty());
  EXPECT_GE(sleeper->sleeps()[0], absl::Milliseconds(500));  // honoured retry_after_ms
  EXPECT_EQ(sink_.AppliedSeqs("p1").size(), 240u);
  client.Stop();
}

}  // namespace
}  // namespace pumptwin::device_link
