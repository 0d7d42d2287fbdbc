// pumptwinctl against the real pumptwind: both binaries run as processes on loopback.
// Health answers SERVING (exit 0); every TwinService command reaches the server and gets
// an answer (exit 0, or exit 2 with "error: CODE: message" while a method is not
// implemented); usage errors exit 1 before anything is sent; a stopped server exits 3.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/server_process.h"

extern char** environ;

namespace pumptwin {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct CtlRun {
  int code = -1;
  std::string out, err;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs pumptwinctl with `args`, stdout and stderr captured in files under `dir`.
CtlRun RunCtl(const testing::TempDir& dir, const std::vector<std::string>& args) {
  static int n = 0;
  const std::string out_path = dir.path() + "/out" + std::to_string(n);
  const std::string err_path = dir.path() + "/err" + std::to_string(n++);
  std::vector<std::string> full = {PUMPTWINCTL_BINARY};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  CtlRun r;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    r.err = "posix_spawn failed";
    return r;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = Slurp(out_path);
  r.err = Slurp(err_path);
  return r;
}

class CtlIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The server's PUMPTWIN_* environment must not leak into pumptwinctl's defaults.
    unsetenv("PUMPTWIN_SERVER");
    unsetenv("PUMPTWIN_TOKEN");
    server_ = std::make_unique<testing::ServerProcess>(testing::ServerProcessOptions{
        .data_dir = dir_.path() + "/data", .extra_args = {"--shutdown_grace=1s"}});
    ASSERT_TRUE(server_->Start().ok()) << server_->ReadLog();
    // Readiness without polling: Health.Watch until SERVING.
    CtlRun wait = Ctl({"health", "--wait"});
    ASSERT_EQ(wait.code, 0) << wait.err;
  }

  CtlRun Ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"--server", server_->grpc_target()});
    return RunCtl(dir_, args);
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
};

TEST_F(CtlIntegrationTest, HealthAnswersServing) {
  CtlRun r = Ctl({"health"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  r = Ctl({"--json", "health"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"status\":\"SERVING\"}\n");
}

TEST_F(CtlIntegrationTest, GetOfAnUnknownPumpExitsTwoWithTheServersError) {
  CtlRun r = Ctl({"pumps", "get", "X"});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_THAT(r.err, StartsWith("error: "));
  EXPECT_THAT(r.err, AnyOf(HasSubstr("error: UNIMPLEMENTED: "), HasSubstr("error: NOT_FOUND: ")));
}

// One command per TwinService method, with valid arguments: each reaches the server and gets
// a precise answer (never a usage error, never "unavailable").
TEST_F(CtlIntegrationTest, EveryMethodHasACommandThatReachesTheServer) {
  const std::vector<std::vector<std::string>> commands = {
      {"pumps",
       "register",
       "CTL1",
       "--profile",
       "programmable-peristaltic",
       "--reservoir",
       "40mL",
       "--fill",
       "20mL",
       "--catheter_length",
       "45cm",
       "--catheter_diameter",
       "0.53mm",
       "--implant_time",
       "now-30d",
       "--clinic",
       "north",
       "--gateway",
       "gw1",
       "--reporting_interval",
       "1h",
       "--drug",
       "morphine",
       "--concentration",
       "10mg/mL",
       "--rate",
       "0.5mL/day",
       "--reason",
       "implant"},
      {"pumps", "get", "CTL1"},
      {"pumps", "list", "--clinic", "north", "--order", "urgency", "--all"},
      {"prescription", "set", "CTL1", "--drug", "morphine", "--concentration", "10mg/mL", "--rate",
       "0.6mL/day", "--expected_version", "1"},
      {"prescription", "set", "CTL1", "--drug", "morphine", "--concentration", "10mg/mL", "--step",
       "00:00=0.4mL/day", "--step", "07:00=0.6mL/day", "--expected_version", "2"},
      {"prescription", "history", "CTL1"},
      {"whatif", "CTL1", "--drug", "morphine", "--concentration", "10mg/mL", "--rate", "0.6mL/day",
       "--horizon", "7d", "--resolution", "1d"},
      {"refill", "CTL1", "--withdrawn", "3.2mL", "--added", "20mL", "--drug", "morphine",
       "--concentration", "10mg/mL"},
      {"event", "record", "CTL1", "clinician-bolus", "--volume", "50uL", "--duration", "30m"},
      {"event", "record", "CTL1", "mri"},
      {"twin", "get", "CTL1"},
      {"twin", "watch", "CTL1", "--for", "1s"},
      {"telemetry", "get", "CTL1", "--from", "now-1d", "--downsample", "1h"},
      {"alerts", "list", "--active"},
      {"alerts", "watch", "--from", "0", "--for", "1s"},
      {"alerts", "ack", "CTL1/A1", "--comment", "seen"},
      {"drugs", "list"},
      {"audit", "list", "--resource", "pumps/CTL1"},
      {"audit", "verify"},
      {"pumps", "trial-outcome", "CTL1", "--relief", "60"},
      {"pumps", "implant-after-trial", "CTL1", "--profile", "programmable-peristaltic",
       "--reservoir", "40mL", "--implant_time", "now", "--catheter_length", "45cm",
       "--catheter_diameter", "0.53mm"},
      {"pumps", "end-trial", "CTL1"},
      {"pumps", "decommission", "CTL1", "--reason", "explant"},
  };
  for (const auto& args : commands) {
    CtlRun r = Ctl(args);
    const std::string what = absl::StrJoin(args, " ");
    EXPECT_THAT(r.code, AnyOf(0, 2)) << what << "\n"
                                     << r.out << r.err << "server log:\n"
                                     << server_->ReadLog();
    if (r.code == 2) {
      EXPECT_THAT(r.err, StartsWith("error: ")) << what;
    }
    EXPECT_THAT(r.err, ::testing::Not(HasSubstr("UNAVAILABLE"))) << what;
    // JSON mode must never print anything but JSON lines on stdout.
    CtlRun j = Ctl([&] {
      auto a = args;
      a.insert(a.begin(), "--json");
      return a;
    }());
    for (absl::string_view line : absl::StrSplit(j.out, '\n', absl::SkipEmpty())) {
      EXPECT_THAT(std::string(line), StartsWith("{")) << what;
    }
  }
}

// Enrolment of a pump implanted years ago, a time zone, and a trial taken to implant, all
// through pumptwinctl: the server's answers show what was registered.
TEST_F(CtlIntegrationTest, EnrolmentTimeZoneAndTrialCommands) {
  const std::vector<std::string> pump = {
      "--profile", "programmable-peristaltic", "--reservoir", "20mL", "--catheter_length",
      "45cm",      "--catheter_diameter",      "0.53mm"};
  auto with = [&](std::vector<std::string> head, std::vector<std::string> tail) {
    head.insert(head.end(), pump.begin(), pump.end());
    head.insert(head.end(), tail.begin(), tail.end());
    return head;
  };
  CtlRun r = Ctl(with({"pumps", "register", "ENR1"},
                      {"--implant_time", "now-1460d", "--time_zone", "Europe/Berlin",
                       "--enrol_interrogation_time", "now-1h", "--enrol_reservoir", "9mL",
                       "--enrol_last_refill_volume", "19mL", "--enrol_battery", "40%", "--drug",
                       "morphine", "--concentration", "10mg/mL", "--rate", "0.5mL/day"}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Europe/Berlin"));
  r = Ctl({"--json", "twin", "get", "ENR1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"enrolled\":true"));
  r = Ctl(with(
      {"pumps", "register", "ENR2"},
      {"--implant_time", "now-10d", "--enrol_interrogation_time", "now-20d", "--enrol_reservoir",
       "9mL", "--drug", "morphine", "--concentration", "10mg/mL", "--rate", "0.5mL/day"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("is before pump.implant_time_ms"));
  r = Ctl(
      with({"pumps", "register", "ENR3"}, {"--enrol_reservoir", "9mL", "--drug", "morphine",
                                           "--concentration", "10mg/mL", "--rate", "0.5mL/day"}));
  EXPECT_EQ(r.code, 1);  // usage: the interrogation time is required
  EXPECT_THAT(r.err, HasSubstr("--enrol_interrogation_time"));

  r = Ctl(with({"pumps", "register", "TR1", "--trial"},
               {"--implant_time", "now-1h", "--drug", "morphine", "--concentration", "1mg/mL",
                "--rate", "0.2mL/day"}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("trial"));
  r = Ctl({"pumps", "trial-outcome", "TR1", "--relief", "65%", "--notes", "walks 2 km"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("success"));
  r = Ctl(with({"pumps", "implant-after-trial", "TR1"},
               {"--implant_time", "now", "--fill", "18mL", "--drug", "morphine", "--concentration",
                "10mg/mL", "--rate", "0.3mL/day", "--reason", "implant"}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("implanted"));
  r = Ctl({"pumps", "end-trial", "TR1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("FAILED_PRECONDITION"));
}

TEST_F(CtlIntegrationTest, HelpAndUsageErrors) {
  CtlRun r = Ctl({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("Exit codes:"));
  EXPECT_THAT(r.out, HasSubstr("prescription"));
  r = Ctl({"prescription", "set", "P1", "--rate", "0.5"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("has no unit"));
  EXPECT_THAT(r.err, HasSubstr("mL/day"));
}

TEST_F(CtlIntegrationTest, StoppedServerExitsThree) {
  auto code = server_->Stop(SIGTERM);
  ASSERT_TRUE(code.ok()) << code.status();
  CtlRun r = Ctl({"--timeout", "5s", "health"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_THAT(r.err, HasSubstr("error: UNAVAILABLE: "));
}

}  // namespace
}  // namespace pumptwin
