// Backup and restore (issue 6, docs/operations.md "Backup and restore"): pumptwind writes
// online checkpoints (--backup_dir, --backup_interval) while a gateway streams; a checkpoint
// that started after a known acknowledged point is verified offline (`pumptwind --verify`)
// and served by a new server: every twin holds at least what was acknowledged before the
// checkpoint started and at most what was acknowledged by the end.
#include <filesystem>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/deploy/deploy_test_util.h"
#include "tests/ingest/ingest_fixture.h"
#include "tests/support/server_process.h"

namespace pumptwin::testing {
namespace {

constexpr int kPumps = 4;
constexpr uint64_t kSamplesPerFrame = 10;

std::string Pump(int i) { return absl::StrCat("backup-p", i); }

// Completed checkpoints in `dir` by start time (unix ms).
std::map<int64_t, std::string> Checkpoints(const std::string& dir) {
  std::map<int64_t, std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    int64_t ms;
    if (absl::StartsWith(name, "checkpoint-") && !absl::EndsWith(name, ".tmp") &&
        absl::SimpleAtoi(name.substr(11), &ms)) {
      out[ms] = e.path().string();
    }
  }
  return out;
}

TEST(BackupRestoreTest, CheckpointTakenWhileIngestingRestoresConsistently) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  const std::string backups = dir.path() + "/backups";
  std::map<std::string, uint64_t> acked_before, acked_after;
  std::string checkpoint;
  {
    ServerProcess server({.data_dir = data,
                          .extra_args = {"--backup_dir=" + backups, "--backup_interval=300ms",
                                         "--backup_keep=100", "--snapshot_every_samples=50"}});
    ASSERT_TRUE(server.Start().ok()) << server.ReadLog();
    auto stub = v1::TwinService::NewStub(
        grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials()));
    for (int i = 0; i < kPumps; ++i) {
      ASSERT_TRUE(RegisterSensorizedPump(*stub, Pump(i), "gw-backup").ok());
    }
    auto client = MakeGateway(server.grpc_target(), "gw-backup");
    client->Start();
    ASSERT_TRUE(client->WaitUntilWelcomed(1, absl::Seconds(20)));
    std::vector<uint64_t> next(kPumps, 1);
    auto send_round = [&] {
      for (int i = 0; i < kPumps; ++i) {
        auto st = client->Send(Samples(Pump(i), next[i], next[i] + kSamplesPerFrame - 1));
        ASSERT_TRUE(st.ok()) << st.status();
        next[i] += kSamplesPerFrame;
      }
    };
    for (int r = 0; r < 5; ++r) send_round();
    ASSERT_TRUE(client->WaitUntilAllDone(absl::Seconds(20)));
    // The acknowledged point; ingest goes on while a checkpoint starts after it.
    for (int i = 0; i < kPumps; ++i) acked_before[Pump(i)] = client->acked_seq(Pump(i));
    const int64_t t0_ms = absl::ToUnixMillis(absl::Now());
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      send_round();
      if (::testing::Test::HasFatalFailure()) return;
      auto cps = Checkpoints(backups);
      auto it = cps.upper_bound(t0_ms);
      if (it != cps.end()) {
        checkpoint = it->second;
        break;
      }
      // Pace the producer to the server (bounded by the client's own buffer).
      client->WaitUntilAllDone(absl::Milliseconds(50));
    }
    ASSERT_FALSE(checkpoint.empty()) << "no checkpoint within 30 s\n" << server.ReadLog();
    for (int r = 0; r < 3; ++r) send_round();  // ingest continues after the checkpoint
    ASSERT_TRUE(client->WaitUntilAllDone(absl::Seconds(20)));
    for (int i = 0; i < kPumps; ++i) acked_after[Pump(i)] = client->acked_seq(Pump(i));
    client->Stop();
    auto code = server.Stop(SIGTERM);
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_THAT(server.ReadLog(), ::testing::HasSubstr("backup_done"));
  }
  // Restore = use the checkpoint as the data dir (a copy, as an operator would).
  const std::string restored = dir.path() + "/restored";
  std::filesystem::copy(checkpoint, restored, std::filesystem::copy_options::recursive);
  auto [code, out] = RunVerify(restored);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, ::testing::HasSubstr(absl::StrCat("pumps=", kPumps, " exact=", kPumps)));
  ServerProcess server({.data_dir = restored});
  ASSERT_TRUE(server.Start().ok()) << server.ReadLog();
  auto stub = v1::TwinService::NewStub(
      grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials()));
  for (int i = 0; i < kPumps; ++i) {
    auto twin = GetTwin(*stub, Pump(i));
    ASSERT_TRUE(twin.ok()) << twin.status();
    EXPECT_GE(twin->last_seq(), acked_before[Pump(i)]) << Pump(i) << ": acknowledged before "
                                                       << "the checkpoint, missing from it";
    EXPECT_LE(twin->last_seq(), acked_after[Pump(i)]) << Pump(i) << ": more than was ever acked";
    EXPECT_GT(acked_before[Pump(i)], 0u);
  }
  auto stopped = server.Stop(SIGTERM);
  EXPECT_TRUE(stopped.ok());
}

}  // namespace
}  // namespace pumptwin::testing
