// pumptwind raises its soft limit on open files to the hard limit at start (one file
// descriptor per gateway connection) and logs both values.
#include <signal.h>
#include <sys/resource.h>

#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/server_process.h"

namespace pumptwin {
namespace {

using ::testing::HasSubstr;

// Soft and hard "Max open files" of a process, from /proc/<pid>/limits.
std::pair<uint64_t, uint64_t> OpenFileLimits(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/limits"));
  std::string line;
  while (std::getline(in, line)) {
    if (!absl::StartsWith(line, "Max open files")) continue;
    std::vector<std::string> f = absl::StrSplit(line.substr(14), ' ', absl::SkipEmpty());
    uint64_t soft = 0, hard = 0;
    if (f.size() >= 2 && absl::SimpleAtoi(f[0], &soft) && absl::SimpleAtoi(f[1], &hard)) {
      return {soft, hard};
    }
  }
  return {0, 0};
}

TEST(FdLimitTest, ServerRaisesItsSoftOpenFileLimitToTheHardLimit) {
  rlimit mine{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &mine), 0);
  if (mine.rlim_max == RLIM_INFINITY || mine.rlim_max <= 256) {
    GTEST_SKIP() << "hard limit " << mine.rlim_max << " leaves nothing to raise from 256";
  }
  rlimit low = mine;
  low.rlim_cur = 256;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);  // the server inherits a soft limit of 256
  testing::TempDir dir;
  testing::ServerProcess server(
      {.data_dir = dir.path() + "/data", .extra_args = {"--shutdown_grace=1s"}});
  absl::Status started = server.Start();
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &mine), 0);
  ASSERT_TRUE(started.ok()) << started;

  auto [soft, hard] = OpenFileLimits(server.pid());
  EXPECT_EQ(soft, mine.rlim_max);
  EXPECT_EQ(hard, mine.rlim_max);
  EXPECT_THAT(server.ReadLog(), HasSubstr(absl::StrCat("event=fd_limit soft_before=256 soft=",
                                                       mine.rlim_max, " hard=", mine.rlim_max)));
  auto code = server.Stop(SIGTERM);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace pumptwin
