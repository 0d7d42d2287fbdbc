// Backoff policy and the client's reconnect loop / store-and-forward bound, without sleeping.
#include "device_link/backoff.h"

#include <memory>

#include "device_link/gateway_client.h"
#include "gtest/gtest.h"
#include "tests/device_link/test_util.h"

namespace pumptwin::device_link {
namespace {

using testing::MakeSamples;

TEST(Backoff, GrowsExponentiallyUpToTheCap) {
  BackoffPolicy p;
  p.initial = absl::Milliseconds(100);
  p.max = absl::Seconds(1);
  p.jitter = 0;
  EXPECT_EQ(BackoffDelay(p, 1, 0.5), absl::Milliseconds(100));
  EXPECT_EQ(BackoffDelay(p, 2, 0.5), absl::Milliseconds(200));
  EXPECT_EQ(BackoffDelay(p, 4, 0.5), absl::Milliseconds(800));
  EXPECT_EQ(BackoffDelay(p, 5, 0.5), absl::Seconds(1));
  EXPECT_EQ(BackoffDelay(p, 60, 0.5), absl::Seconds(1));
}

TEST(Backoff, JitterStaysWithinItsBand) {
  BackoffPolicy p;
  p.initial = absl::Seconds(1);
  p.jitter = 0.2;
  EXPECT_EQ(BackoffDelay(p, 1, 0.0), absl::Milliseconds(800));
  EXPECT_EQ(BackoffDelay(p, 1, 0.5), absl::Seconds(1));
  EXPECT_LE(BackoffDelay(p, 1, 0.999999), absl::Milliseconds(1200));
}

TEST(GatewayClientReconnect, BacksOffExponentiallyWhileServerIsDown) {
  auto sleeper = std::make_shared<testing::FakeSleeper>();
  GatewayClientOptions o;
  o.target = "127.0.0.1:1";  // nothing listens on port 1
  o.credentials = grpc::InsecureChannelCredentials();
  o.gateway_id = "gw";
  o.sleeper = sleeper;
  o.uniform01 = [] { return 0.5; };  // jitter factor 1
  o.backoff.initial = absl::Milliseconds(10);
  o.backoff.max = absl::Milliseconds(80);
  GatewayClient client(o);
  ASSERT_TRUE(client.Send(MakeSamples("p", 1, 2)).ok());  // buffered while offline
  client.Start();
  ASSERT_TRUE(sleeper->AwaitCount(6, absl::Seconds(20)));
  client.Stop();
  std::vector<absl::Duration> s = sleeper->sleeps();
  EXPECT_EQ(s[0], absl::Milliseconds(10));
  EXPECT_EQ(s[1], absl::Milliseconds(20));
  EXPECT_EQ(s[2], absl::Milliseconds(40));
  EXPECT_EQ(s[3], absl::Milliseconds(80));
  EXPECT_EQ(s[4], absl::Milliseconds(80));
  GatewayClientStats st = client.stats();
  EXPECT_GE(st.reconnects, 5u);
  EXPECT_EQ(st.buffered_frames, 1u);  // still held for later
  EXPECT_EQ(st.sessions_welcomed, 0u);
}

TEST(GatewayClientBuffer, FullBufferRejectsOrBlocksWithTimeout) {
  GatewayClientOptions o;
  o.target = "127.0.0.1:1";
  o.credentials = grpc::InsecureChannelCredentials();
  o.gateway_id = "gw";
  o.max_buffered_frames = 2;
  o.max_samples_per_frame = 10;
  {
    GatewayClient client(o);  // never started: offline store-and-forward
    EXPECT_TRUE(client.Send(MakeSamples("p", 1, 1)).ok());
    EXPECT_TRUE(client.Send(MakeSamples("p", 2, 1)).ok());
    absl::StatusOr<uint64_t> r = client.Send(MakeSamples("p", 3, 1));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(client.Send(MakeSamples("p", 3, 11)).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  o.when_full = GatewayClientOptions::WhenFull::kBlock;
  o.block_timeout = absl::Milliseconds(50);
  GatewayClient client(o);
  EXPECT_TRUE(client.Send(MakeSamples("p", 1, 1)).ok());
  EXPECT_TRUE(client.Send(MakeSamples("p", 2, 1)).ok());
  const absl::Time start = absl::Now();
  EXPECT_EQ(client.Send(MakeSamples("p", 3, 1)).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(40));
}

}  // namespace
}  // namespace pumptwin::device_link
