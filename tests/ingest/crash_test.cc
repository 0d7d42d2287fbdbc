// Durability under kill -9: the real pumptwind is killed at random moments while a
// gateway streams; after each restart every acknowledged sample must be in the twin, and
// at the end every twin must equal a from-scratch replay of the stored telemetry
// (`pumptwind --verify`). The kill count is PUMPTWIN_CRASH_KILLS (default 20; the soak
// target `crash_soak` runs 200).
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
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

// Streams 40 frames of 10 samples round-robin over the pumps from their resume points,
// kills the server with SIGKILL after a random number of them settled, and records the
// highest seq acknowledged per pump (and the samples nacked, if asked).
void StreamAndKill(ServerProcess& server, std::mt19937_64& rng,
                   std::map<std::string, uint64_t>& acked, uint64_t* nacked) {
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
  if (nacked != nullptr) *nacked = client.stats().samples_nacked;
}

// Starts one kill cycle's server and its TwinService stub; the first cycle registers the
// fleet.
void StartCycle(ServerProcess& server, int cycle, std::unique_ptr<v1::TwinService::Stub>& stub) {
  absl::Status started = server.Start();
  ASSERT_TRUE(started.ok()) << "cycle " << cycle << ": " << started;
  stub = v1::TwinService::NewStub(
      grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials()));
  if (cycle != 0) return;
  for (int i = 0; i < kPumps; ++i) {
    ASSERT_TRUE(RegisterSensorizedPump(*stub, PumpName(i), "gw-crash").ok());
  }
}

TEST(CrashTest, KillNineAtRandomMomentsLosesNothingAcknowledged) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  std::mt19937_64 rng(20261122);
  std::map<std::string, uint64_t> acked;  // highest seq acknowledged before any kill
  const int kills = KillCount();
  for (int cycle = 0; cycle < kills; ++cycle) {
    ServerProcess server({.data_dir = data, .extra_args = {"--snapshot_every_samples=50"}});
    std::unique_ptr<v1::TwinService::Stub> stub;
    ASSERT_NO_FATAL_FAILURE(StartCycle(server, cycle, stub));
    // (a) everything acknowledged before the last kill survived it.
    for (int i = 0; i < kPumps; ++i) {
      auto twin = GetTwin(*stub, PumpName(i));
      ASSERT_TRUE(twin.ok()) << twin.status();
      EXPECT_GE(twin->last_seq(), acked[PumpName(i)])
          << "cycle " << cycle << ": acknowledged samples of " << PumpName(i) << " were lost";
    }
    // Stream, and kill after a random number of acknowledged frames.
    ASSERT_NO_FATAL_FAILURE(StreamAndKill(server, rng, acked, nullptr));
  }
  // Restart once more: the recovered twins answer and hold every acknowledged sample.
  {
    ServerProcess server({.data_dir = data});
    {
      absl::Status started = server.Start();
      ASSERT_TRUE(started.ok()) << started;
    }
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

// kill -9 while late telemetry is being applied in its place: before each stream a
// clinician bolus is recorded 25 samples ahead of what the gateway sends next, so most of
// the frames that follow arrive late and rewind the twin. After every restart the
// acknowledged samples are there, and at the end `pumptwind --verify` finds every twin
// byte-identical to the fold of its registration and all its stored inputs.
TEST(CrashTest, KillNineDuringRewindsRecoversExactly) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  std::mt19937_64 rng(20261204);
  std::map<std::string, uint64_t> acked;
  const int kills = std::max(4, KillCount() / 4);
  size_t records = 0;
  for (int cycle = 0; cycle < kills; ++cycle) {
    ServerProcess server({.data_dir = data, .extra_args = {"--snapshot_every_samples=50"}});
    std::unique_ptr<v1::TwinService::Stub> stub;
    ASSERT_NO_FATAL_FAILURE(StartCycle(server, cycle, stub));
    std::vector<uint64_t> last(kPumps);
    for (int i = 0; i < kPumps; ++i) {
      auto twin = GetTwin(*stub, PumpName(i));
      ASSERT_TRUE(twin.ok()) << twin.status();
      EXPECT_GE(twin->last_seq(), acked[PumpName(i)])
          << "cycle " << cycle << ": acknowledged samples of " << PumpName(i) << " were lost";
      last[i] = twin->last_seq();
    }
    // A bolus stamped ahead of the telemetry still to come.
    for (int i = 0; i < kPumps; ++i) {
      v1::RecordEventRequest req;
      req.set_name(absl::StrCat("pumps/", PumpName(i)));
      req.set_type(v1::CLINICAL_EVENT_CLINICIAN_BOLUS);
      req.set_volume_ul(20);
      req.set_device_time_ms(kStartMs + static_cast<int64_t>(last[i] + 25) * kIntervalMs + 30000);
      v1::RecordEventResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
      grpc::Status s = stub->RecordEvent(&ctx, req, &resp);
      if (s.ok()) ++records;
    }
    uint64_t nacked = 0;
    ASSERT_NO_FATAL_FAILURE(StreamAndKill(server, rng, acked, &nacked));
    EXPECT_EQ(nacked, 0u) << "late samples were refused";
  }
  EXPECT_GT(records, 0u) << "no clinical record was stored: no rewind was tested";
  auto [code, out] = RunVerify(data);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, ::testing::HasSubstr(absl::StrCat("pumps=", kPumps, " exact=", kPumps)));
}

}  // namespace
}  // namespace pumptwin::testing
