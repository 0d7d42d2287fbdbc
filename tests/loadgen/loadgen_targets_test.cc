// pumptwin_loadgen --targets (cluster mode's load path: a ClusterGatewayClient per stream, each
// pump registered at its owner) against one real pumptwind on 127.0.0.1: every sample
// durable, the flags it refuses; and the owner address read from a replica's refusal. A
// cluster of replicas needs PostgreSQL: tools/loadgen/cluster_bench.sh runs the tool there.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "device_link/ingest_sink.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/loadgen/tool_run.h"
#include "tests/support/server_process.h"
#include "tools/loadgen/loadgen_common.h"

namespace pumptwin {
namespace {

using ::testing::HasSubstr;

using testing::ToolRun;

// One pumptwind on 127.0.0.1 with its own data directory (not started yet).
struct LocalServer {
  explicit LocalServer(std::vector<std::string> args = {}) {
    args.push_back("--shutdown_grace=1s");
    process = std::make_unique<testing::ServerProcess>(testing::ServerProcessOptions{
        .data_dir = dir.path() + "/data", .extra_args = std::move(args)});
  }
  testing::TempDir dir;
  std::unique_ptr<testing::ServerProcess> process;
};

ToolRun RunLoadgen(const std::vector<std::string>& args) {
  return testing::RunTool(LOADGEN_BINARY, args, "");
}

TEST(LoadgenTargetsTest, EverySampleDurableThroughTheClusterClient) {
  LocalServer local;
  testing::ServerProcess& server = *local.process;
  ASSERT_TRUE(server.Start().ok());
  ToolRun run = RunLoadgen({"--targets=" + server.grpc_target(), "--register_pumps", "--streams=2",
                            "--pumps_per_stream=3", "--batch=10", "--frames_per_stream=30",
                            "--duration_s=60"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.Int("registered"), 6) << run.output;
  EXPECT_EQ(run.Int("replicas"), 1);
  // One routing frame per pump first (10 samples each), then 2 x 30 frames of 10.
  EXPECT_EQ(run.Int("warmup_samples"), 60);
  EXPECT_EQ(run.Int("samples_acked"), 600) << run.output;
  EXPECT_EQ(run.Int("durable_samples"), 600) << run.output;
  EXPECT_EQ(run.Int("samples_moved"), 0);
  EXPECT_EQ(run.Int("unfinished_frames"), 0);
  EXPECT_EQ(run.summary["nacks_by_reason"], "-");
}

// The alert probe of the subscriber benchmark (docs/benchmarks.md, "Alert subscribers"): it
// raises only once the ingest is at full speed, and every reading subscriber times every
// raise; the stalled ones read nothing and are not dropped.
TEST(LoadgenAlertProbeTest, EveryRaiseIsTimedByEveryReadingSubscriber) {
  LocalServer local;
  testing::ServerProcess& server = *local.process;
  ASSERT_TRUE(server.Start().ok());
  // 2 streams x 200 frames, one every 5 ms: ~1 s of ingest, the probe raising every 40 ms
  // (every other sample) from the 64th acknowledged frame on.
  ToolRun run = RunLoadgen({"--target=" + server.grpc_target(), "--register_pumps", "--streams=2",
                            "--pumps_per_stream=2", "--batch=10", "--frames_per_stream=200",
                            "--frame_interval_ms=5", "--duration_s=60", "--watch_alerts=4",
                            "--alert_probe_ms=20"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.Int("samples_acked"), 4000) << run.output;
  EXPECT_EQ(run.Int("watchers"), 4);
  EXPECT_EQ(run.Int("stalled"), 2);
  EXPECT_EQ(run.Int("watchers_refused"), 0);
  EXPECT_EQ(run.Int("readers_held"), 2);
  EXPECT_EQ(run.Int("watchers_ended_early"), 0) << run.output;
  const int64_t raises = run.Int("probe_raises");
  EXPECT_GE(raises, 3) << run.output;
  // Not before the ingest ran: at most the ~0.7 s of it after the steady point, one raise
  // per 40 ms (with slack for a slow machine stretching the run, never the whole 60 s).
  EXPECT_LE(raises, 200) << run.output;
  EXPECT_EQ(run.Int("alert_latencies"), 2 * raises) << run.output;
}

// Beyond the server's subscriber maximum the tool counts which kind was refused, and waits
// for (and reports) the raises timed by the reading subscribers the server holds. The tool
// opens one connection's streams at a time, stalled and reading alternately, so the
// server holds the first fifteen: ten stalled (the first connection), five reading.
TEST(LoadgenAlertProbeTest, CountsTheReadingSubscribersTheServerHolds) {
  LocalServer local({"--watch_alerts_max_subscribers=15"});
  testing::ServerProcess& server = *local.process;
  ASSERT_TRUE(server.Start().ok());
  ToolRun run = RunLoadgen({"--target=" + server.grpc_target(), "--register_pumps", "--streams=1",
                            "--pumps_per_stream=2", "--batch=10", "--frames_per_stream=200",
                            "--frame_interval_ms=5", "--duration_s=60", "--watch_alerts=4000",
                            "--watch_alerts_per_channel=10", "--alert_probe_ms=20"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.Int("watchers_refused"), 3985) << run.output;
  const int64_t readers = run.Int("readers_held");
  EXPECT_EQ(readers, 5) << run.output;
  const int64_t raises = run.Int("probe_raises");
  EXPECT_GE(raises, 3) << run.output;
  EXPECT_EQ(run.Int("alert_latencies"), readers * raises) << run.output;
}

TEST(LoadgenTargetsTest, RefusesWhatItCannotDoAgainstACluster) {
  ToolRun both = RunLoadgen({"--target=127.0.0.1:1", "--targets=127.0.0.1:2"});
  EXPECT_EQ(both.exit_code, 2) << both.output;
  EXPECT_THAT(both.output, HasSubstr("not both"));
  ToolRun remote = RunLoadgen({"--targets=127.0.0.1:1,192.0.2.1:50051"});
  EXPECT_EQ(remote.exit_code, 2) << remote.output;
  EXPECT_THAT(remote.output, HasSubstr("192.0.2.1:50051 is not a loopback address"));
  ToolRun watch = RunLoadgen({"--targets=127.0.0.1:1", "--watch_alerts=1"});
  EXPECT_EQ(watch.exit_code, 2) << watch.output;
  ToolRun none = RunLoadgen({});
  EXPECT_EQ(none.exit_code, 2) << none.output;
}

TEST(OwnerAddressInMessageTest, ReadsTheReplicaARefusalNames) {
  EXPECT_EQ(loadgen::OwnerAddressInMessage(
                device_link::MovedError("p1", "r2", "127.0.0.1:50061").message()),
            "127.0.0.1:50061");
  // Being taken over: no owner yet.
  EXPECT_EQ(loadgen::OwnerAddressInMessage(device_link::MovedError("p1", "", "").message()), "");
  EXPECT_EQ(loadgen::OwnerAddressInMessage("pump p1 is not registered"), "");
}

}  // namespace
}  // namespace pumptwin
