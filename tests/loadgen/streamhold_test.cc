// pumptwin_streamhold against the real pumptwind: every stream established, acked and
// closed OK; and the tool reports failure (exit 1, codes) when streams are not acked or not
// established, and refuses a non-loopback target. Everything on 127.0.0.1, bounded in time.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/loadgen/tool_run.h"
#include "tests/support/server_process.h"

namespace pumptwin {
namespace {

using ::testing::HasSubstr;

using testing::ToolRun;

ToolRun RunStreamHold(const std::vector<std::string>& args) {
  return testing::RunTool(STREAMHOLD_BINARY, args, "requested=");
}

// The line of a Prometheus exposition that starts with `prefix` ("" if none).
std::string MetricLine(const std::string& exposition, absl::string_view prefix) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (absl::StartsWith(line, prefix)) return std::string(line);
  }
  return "";
}

class StreamHoldTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<testing::ServerProcess>(testing::ServerProcessOptions{
        .data_dir = dir_.path() + "/data", .extra_args = {"--shutdown_grace=1s"}});
    ASSERT_TRUE(server_->Start().ok());
  }

  std::vector<std::string> Args(int streams) const {
    return {"--target=" + server_->grpc_target(),
            absl::StrCat("--streams=", streams),
            "--streams_per_channel=50",
            "--hold_s=3",
            "--frame_interval_s=1",
            "--progress_s=0",
            "--connect_timeout_s=30",
            "--max_s=90",
            absl::StrCat("--server_pid=", server_->pid())};
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
};

TEST_F(StreamHoldTest, HoldsTwoHundredStreamsEachAckedAndClosedOk) {
  std::vector<std::string> args = Args(200);
  args.push_back("--register_pumps");
  ToolRun run = RunStreamHold(args);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.Int("requested"), 200);
  EXPECT_EQ(run.Int("established"), 200) << run.output;
  EXPECT_EQ(run.Int("failed"), 0);
  EXPECT_EQ(run.Int("channels"), 4);  // 200 streams, 50 per connection
  EXPECT_EQ(run.Int("streams_acked"), 200);
  EXPECT_GE(run.Int("acks"), 200);
  EXPECT_EQ(run.Int("acks"), run.Int("frames_sent"));
  EXPECT_EQ(run.Int("nacks"), 0);
  EXPECT_EQ(run.Int("dropped"), 0);
  EXPECT_EQ(run.Int("closed_ok"), 200);
  EXPECT_EQ(run.Int("abandoned"), 0);
  // The server was sampled: its memory per stream is a positive number of bytes.
  EXPECT_GT(run.Int("server_bytes_per_stream"), 0) << run.output;
  EXPECT_GT(run.Int("server_fds"), 4);  // at least the 4 connections

  // What the server saw: 200 gateway streams came and went, every frame's sample applied.
  auto metrics = testing::HttpGet(server_->metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(MetricLine(*metrics, "pumptwin_gateways_connected "), "pumptwin_gateways_connected 0");
  EXPECT_EQ(MetricLine(*metrics, "pumptwin_telemetry_samples_total{result=\"applied\"} "),
            absl::StrCat("pumptwin_telemetry_samples_total{result=\"applied\"} ",
                         run.Int("frames_sent")));
  // Every frame (one pump each) was durably acked: each is in the ingest stage sums once.
  EXPECT_EQ(MetricLine(*metrics, "pumptwin_ingest_stage_frame_parts_total "),
            absl::StrCat("pumptwin_ingest_stage_frame_parts_total ", run.Int("frames_sent")));
}

TEST_F(StreamHoldTest, FailsWhenThePumpsAreNotRegistered) {
  // Streams are welcomed, but every sample is nacked (UNKNOWN_PUMP): not a successful hold.
  ToolRun run = RunStreamHold(Args(20));
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_EQ(run.Int("established"), 20);
  EXPECT_GT(run.Int("nacks"), 0);
  EXPECT_THAT(run.output, HasSubstr("FAILED"));
  EXPECT_THAT(run.output, HasSubstr("Nacks"));
}

TEST(StreamHoldNoServerTest, ReportsStreamsThatCannotConnectWithTheirCode) {
  // A loopback port nobody listens on: bind one, note it, close it.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  ToolRun run = RunStreamHold({absl::StrCat("--target=127.0.0.1:", ntohs(addr.sin_port)),
                               "--streams=10", "--hold_s=1", "--frame_interval_s=1",
                               "--progress_s=0", "--connect_timeout_s=20", "--max_s=60"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_EQ(run.Int("established"), 0);
  EXPECT_EQ(run.Int("failed"), 10);
  EXPECT_EQ(run.summary["failed_codes"], "UNAVAILABLE:10") << run.output;
}

TEST(StreamHoldFlagsTest, RefusesATargetOffThisMachine) {
  ToolRun run = RunStreamHold({"--target=10.1.2.3:50051", "--streams=1"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("is not a loopback host:port"));
  run = RunStreamHold({"--target=127.0.0.1:1", "--hold_s=1", "--frame_interval_s=5"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("--frame_interval_s must be"));
}

TEST(StreamHoldFlagsTest, RefusesMoreConnectionsThanItMayOpenFiles) {
  auto [code, out] = testing::RunCommand(
      absl::StrCat("ulimit -n 200 && ", STREAMHOLD_BINARY,
                   " --target=127.0.0.1:1 --streams=1000 --streams_per_channel=1 2>&1"));
  EXPECT_EQ(code, 2) << out;
  EXPECT_THAT(out, HasSubstr("needs about 1064 open files; the limit is 200"));
}

}  // namespace
}  // namespace pumptwin
