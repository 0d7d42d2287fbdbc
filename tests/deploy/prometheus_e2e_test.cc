// Real end-to-end (issue 6): the real Debian `prometheus` on loopback scrapes a running
// pumptwind every second with the real rules file (a generated copy with `for:` and group
// intervals scaled down to seconds); 30 pumps with a 1 s reporting interval report once and
// go silent; the server's silence check (--tick_interval=1s) raises silent_pump for each and
// Prometheus must fire PumptwinManyPumpsSilent. Asserted through Prometheus's HTTP API.
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/deploy/deploy_test_util.h"
#include "tests/ingest/ingest_fixture.h"
#include "tests/support/server_process.h"

namespace pumptwin::testing {
namespace {

constexpr int kPumps = 30;
constexpr const char* kPrometheus = "/usr/bin/prometheus";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The real rules with every `for:` at 2s and every group `interval:` at 1s.
std::string ScaledRules() {
  std::string rules = ReadAll(PUMPTWIN_SOURCE_DIR "/deploy/prometheus/pumptwin-rules.yml");
  rules = std::regex_replace(rules, std::regex(R"((\n\s+for:\s*)\S+)"), "$012s");
  rules = std::regex_replace(rules, std::regex(R"((\n\s+interval:\s*)\S+)"), "$011s");
  return rules;
}

// Polls `probe` (bounded) until it returns OK; returns the last status.
template <typename F>
absl::Status PollUntil(absl::Duration timeout, F probe) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last = absl::DeadlineExceededError("not polled");
  while (absl::Now() < deadline) {
    last = probe();
    if (last.ok()) return last;
    absl::SleepFor(absl::Milliseconds(200));  // waiting on another process (bounded)
  }
  return last;
}

TEST(PrometheusE2eTest, ManyPumpsSilentFiresInRealPrometheus) {
  if (!std::filesystem::exists(kPrometheus)) GTEST_SKIP() << "Debian prometheus not installed";
  TempDir dir;
  ServerProcess server({.data_dir = dir.path() + "/data", .extra_args = {"--tick_interval=1s"}});
  ASSERT_TRUE(server.Start().ok()) << server.ReadLog();

  const std::string rules = dir.path() + "/pumptwin-rules.yml";
  std::ofstream(rules) << ScaledRules();
  ASSERT_NE(ReadAll(rules).find("for: 2s"), std::string::npos);
  const std::string config = dir.path() + "/prometheus.yml";
  std::ofstream(config) << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                        << "rule_files:\n  - " << rules << "\n"
                        << "scrape_configs:\n  - job_name: pumptwin\n"
                        << "    static_configs:\n      - targets: [\"127.0.0.1:"
                        << server.metrics_port() << "\"]\n";
  auto port = FreeLoopbackPort();
  ASSERT_TRUE(port.ok()) << port.status();
  ChildProcess prometheus;
  const std::string log = dir.path() + "/prometheus.log";
  ASSERT_TRUE(prometheus
                  .Start({kPrometheus, "--config.file=" + config,
                          "--storage.tsdb.path=" + dir.path() + "/tsdb",
                          absl::StrCat("--web.listen-address=127.0.0.1:", *port)},
                         log)
                  .ok());
  absl::Status ready = PollUntil(absl::Seconds(20), [&]() -> absl::Status {
    if (!prometheus.alive()) return absl::AbortedError("prometheus exited: " + ReadAll(log));
    return HttpGet(*port, "/-/ready").status();
  });
  ASSERT_TRUE(ready.ok()) << ready << "\n" << ReadAll(log);
  // Baseline: the recording rule has seen a fleet with nobody silent.
  absl::Status baseline = PollUntil(absl::Seconds(15), [&]() -> absl::Status {
    auto v = PrometheusQueryValue(*port, "job:pumptwin_silent_pumps:sum");
    if (!v.ok()) return v.status();
    return *v == 0 ? absl::OkStatus() : absl::FailedPreconditionError("not 0");
  });
  ASSERT_TRUE(baseline.ok()) << baseline << "\n" << ReadAll(log);

  // 30 pumps report once "now", then fall silent (limit = 3 x 1 s of server time).
  auto stub = v1::TwinService::NewStub(
      grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials()));
  const absl::Time now = absl::Now();
  for (int i = 0; i < kPumps; ++i) {
    grpc::Status st =
        RegisterPumpReportingEvery(*stub, absl::StrCat("e2e-p", i), "gw-e2e", 1000, now);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  auto client = MakeGateway(server.grpc_target(), "gw-e2e");
  client->Start();
  ASSERT_TRUE(client->WaitUntilWelcomed(1, absl::Seconds(20)));
  for (int i = 0; i < kPumps; ++i) {
    ASSERT_TRUE(client->Send({SampleNow(absl::StrCat("e2e-p", i), 1, absl::Now())}).ok());
  }
  ASSERT_TRUE(client->WaitUntilAllDone(absl::Seconds(20)));
  EXPECT_EQ(client->stats().samples_acked, static_cast<uint64_t>(kPumps));
  client->Stop();

  absl::Status firing = PollUntil(absl::Seconds(40), [&]() -> absl::Status {
    auto state = PrometheusAlertState(*port, "PumptwinManyPumpsSilent");
    if (!state.ok()) return state.status();
    return *state == "firing" ? absl::OkStatus() : absl::UnavailableError(*state);
  });
  EXPECT_TRUE(firing.ok()) << firing << "\nserver log:\n" << server.ReadLog();

  // The series behind it, as Prometheus sees them.
  auto up = PrometheusQueryValue(*port, "up{job=\"pumptwin\"}");
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(*up, 1);
  auto silent = PrometheusQueryValue(*port, "pumptwin_silent_pumps");
  ASSERT_TRUE(silent.ok()) << silent.status();
  EXPECT_EQ(*silent, kPumps);
  auto twins = PrometheusQueryValue(*port, "job:pumptwin_twins:sum");
  ASSERT_TRUE(twins.ok()) << twins.status();
  EXPECT_EQ(*twins, kPumps);
  auto raised = PrometheusQueryValue(
      *port, "sum(pumptwin_alert_transitions_total{type=\"silent_pump\",transition=\"raised\"})");
  ASSERT_TRUE(raised.ok()) << raised.status();
  EXPECT_EQ(*raised, kPumps);

  prometheus.Stop();
  EXPECT_TRUE(server.Stop(SIGTERM).ok());
}

}  // namespace
}  // namespace pumptwin::testing
