// Durability under kill -9: the real pumptwind is killed at random moments while a
// gateway streams; after each restart every acknowledged sample must be in the twin, and
// at the end every twin must equal a from-scratch replay of the stored telemetry
// (`pumptwind --verify`). The kill count is PUMPTWIN_CRASH_KILLS (default 20; the soak
// target `crash_soak` runs 200).
#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/ingest/ingest_fixture.h"
#include "tests/support/server_process.h"

namespace pumptwin::testing {
namespace {

constexpr int kPumps = 4;
constexpr uint64_t kSamplesPerFrame = 10;

int KillCount() {
  const char* env = std::getenv("PUMPTWIN_CRASH_KILLS");
  int n = env ? std::atoi(env) : 20;
  return n > 0 ? n : 20;
}

std::string PumpName(int i) { return absl::StrCat("crash-p", i); }

TEST(CrashTest, KillNineAtRandomMomentsLosesNothingAcknowledged) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  std::mt19937_64 rng(20261122);
  std::map<std::string, uint64_t> acked;  // highest seq acknowledged before any kill
  const int kills = KillCount();
  for (int cycle = 0; cycle < kills; ++cycle) {
    ServerProcess server({.data_dir = data, .extra_args = {"--snapshot_every_samples=50"}});
    { absl::Status started = server.Start(); ASSERT_TRUE(started.ok()) << "cycle " << cycle << ": " << started; }
    auto stub = v1::TwinService::NewStub(
        grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials()));
    if (cycle == 0) {
      for (int i = 0; i < kPumps; ++i) {
        ASSERT_TRUE(RegisterSensorizedPump(*stub, PumpName(i), "gw-crash").ok());
      }
    }
    // (a) everything acknowledged before the last kill survived it.
    for (int i = 0; i < kPumps; ++i) {
      auto twin = GetTwin(*stub, PumpName(i));
      ASSERT_TRUE(twin.ok()) << twin.status();
      EXPECT_GE(twin->last_seq(), acked[PumpName(i)])
          << "cycle " << cycle << ": acknowledged samples of " << PumpName(i) << " were lost";
    }
    // Stream, and kill after a random number of acknowledged frames.
    auto options_client = MakeGateway(server.grpc_target(), "gw-crash");
    device_link::GatewayClient& client = *options_client;
    client.Start();
    ASSERT_TRUE(client.WaitUntilWelcomed(1, absl::Seconds(20)));
    std::vector<uint64_t> next(kPumps);
    for (int i = 0; i < kPumps; ++i) next[i] = client.acked_seq(PumpName(i)) + 1;
    const int frames = 40;
    for (int f = 0; f < frames; ++f) {
      int i = f % kPumps;
      auto st = client.Send(Samples(PumpName(i), next[i], next[i] + kSamplesPerFrame - 1));
      ASSERT_TRUE(st.ok()) << st.status();
      next[i] += kSamplesPerFrame;
    }
    const uint64_t target = std::uniform_int_distribution<uint64_t>(0, frames)(rng);
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (client.stats().frames_done < target && absl::Now() < deadline) {
      // Waiting on another process's progress (bounded); not thread synchronisation.
      absl::SleepFor(absl::Milliseconds(1));
    }
    server.Kill();  // SIGKILL: no flush, no snapshot, nothing graceful
    client.Stop();
    for (int i = 0; i < kPumps; ++i) {
      acked[PumpName(i)] = std::max(acked[PumpName(i)], client.acked_seq(PumpName(i)));
    }
  }
  // Restart once more: the recovered twins answer and hold every acknowledged sample.
  {
    ServerProcess server({.data_dir = data});
    { absl::Status started = server.Start(); ASSERT_TRUE(started.ok()) << started; }
    auto stub = v1::TwinService::NewStub(
        grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials()));
    uint64_t total = 0;
    for (int i = 0; i < kPumps; ++i) {
      auto twin = GetTwin(*stub, PumpName(i));
      ASSERT_TRUE(twin.ok());
      EXPECT_GE(twin->last_seq(), acked[PumpName(i)]);
      total += acked[PumpName(i)];
    }
    EXPECT_GT(total, 0u) << "the test acknowledged nothing: it proved nothing";
    server.Kill();
  }
  // (b) every twin equals a from-scratch replay of what the store holds.
  auto [code, out] = RunVerify(data);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, ::testing::HasSubstr(absl::StrCat("pumps=", kPumps, " exact=", kPumps)));
}

}  // namespace
}  // namespace pumptwin::testing
