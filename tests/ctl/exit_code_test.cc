// pumptwinctl's exit codes and error output, driven in-process through RunCtl: usage errors
// exit 1 before anything is sent, an unreachable server exits 3, help exits 0.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/ctl/ctl_commands.h"
#include "tools/ctl/ctl_context.h"

namespace pumptwin::ctl {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

struct Result {
  int code;
  std::string out, err;
};

Result RunArgs(std::vector<std::string> args) {
  args.insert(args.begin(), "pumptwinctl");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  const int code = RunCtl(static_cast<int>(argv.size()), argv.data(), out, err);
  return {code, out.str(), err.str()};
}

// A loopback port that refuses connections: bound (so nobody else gets it), never listening.
class ClosedPort {
 public:
  ClosedPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~ClosedPort() { close(fd_); }
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(ExitCodeForStatusTest, MapsStatusesToDocumentedCodes) {
  EXPECT_EQ(ExitCodeForStatus(grpc::Status::OK), 0);
  EXPECT_EQ(ExitCodeForStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "")), 3);
  EXPECT_EQ(ExitCodeForStatus(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "")), 3);
  for (auto code : {grpc::StatusCode::UNIMPLEMENTED, grpc::StatusCode::NOT_FOUND,
                    grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::FAILED_PRECONDITION,
                    grpc::StatusCode::ABORTED, grpc::StatusCode::PERMISSION_DENIED,
                    grpc::StatusCode::UNAUTHENTICATED, grpc::StatusCode::RESOURCE_EXHAUSTED,
                    grpc::StatusCode::INTERNAL, grpc::StatusCode::CANCELLED}) {
    EXPECT_EQ(ExitCodeForStatus(grpc::Status(code, "")), 2) << StatusCodeName(code);
  }
  EXPECT_EQ(StatusCodeName(grpc::StatusCode::UNIMPLEMENTED), "UNIMPLEMENTED");
}

TEST(CtlFailTest, PrintsCodeAndMessage) {
  std::ostringstream out, err;
  Ctl ctl(GlobalOptions{}, out, err);
  EXPECT_EQ(ctl.Fail(grpc::Status(grpc::StatusCode::NOT_FOUND, "pump pumps/X is not registered")),
            2);
  EXPECT_THAT(err.str(), HasSubstr("error: NOT_FOUND: pump pumps/X is not registered\n"));
  EXPECT_THAT(out.str(), IsEmpty());
}

TEST(RunCtlTest, HelpExitsZeroEverywhereAndDocumentsExitCodes) {
  for (std::vector<std::string> args : {std::vector<std::string>{"--help"},
                                        {"pumps", "--help"},
                                        {"pumps", "list", "--help"},
                                        {"alerts", "watch", "--help"},
                                        {"audit", "verify", "--help"},
                                        {"event", "record", "--help"}}) {
    Result r = RunArgs(args);
    EXPECT_EQ(r.code, 0) << args.back() << r.err;
    EXPECT_THAT(r.out, HasSubstr("Exit codes:"));
  }
  EXPECT_THAT(RunArgs({"--help"}).out, HasSubstr("4  audit verify"));
}

TEST(RunCtlTest, BareNumbersAreUsageErrorsNamingTheUnits) {
  Result r = RunArgs({"prescription", "set", "P1", "--rate", "0.5"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("--rate: '0.5' has no unit"));
  EXPECT_THAT(r.err, HasSubstr("mL/day"));
  r = RunArgs({"refill", "P1", "--withdrawn", "3", "--added", "20mL", "--drug", "m",
               "--concentration", "10mg/mL"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("--withdrawn: '3' has no unit"));
  r = RunArgs({"event", "record", "P1", "clinician-bolus", "--dose", "15", "--duration", "30m"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("--dose: '15' has no unit"));
  r = RunArgs({"--timeout", "10", "health"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("--timeout: '10' has no unit"));
}

TEST(RunCtlTest, CommandLineMistakesAreUsageErrors) {
  EXPECT_EQ(RunArgs({}).code, 1);
  EXPECT_EQ(RunArgs({"pumps"}).code, 1);
  EXPECT_EQ(RunArgs({"pumps", "get"}).code, 1);
  EXPECT_EQ(RunArgs({"nonsense"}).code, 1);
  EXPECT_EQ(RunArgs({"pumps", "list", "--bogus"}).code, 1);
  Result r = RunArgs({"event", "record", "P1", "lunch"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("clinician-bolus"));
  r = RunArgs({"prescription", "set", "P1", "--drug", "morphine", "--concentration", "10mg/mL",
               "--rate", "0.5mL/day"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("--expected_version N is required"));
  r = RunArgs({"alerts", "ack", "P1", "--comment", "seen"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("is not an alert"));
  r = RunArgs({"--token", "t", "--server", "10.1.2.3:50051", "health"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("refusing to send a bearer token in plaintext"));
  r = RunArgs({"--tls_ca", "/nonexistent/ca.pem", "health"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("--tls_ca: cannot read"));
}

TEST(RunCtlTest, UnreachableServerExitsThree) {
  ClosedPort port;
  Result r = RunArgs({"--server", port.target(), "pumps", "get", "P1"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_THAT(r.err, HasSubstr("error: UNAVAILABLE: "));
  r = RunArgs({"--server", port.target(), "--timeout", "2s", "health"});
  EXPECT_EQ(r.code, 3) << r.err;
  r = RunArgs({"--server", port.target(), "--timeout", "300ms", "health", "--wait"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_THAT(r.err, HasSubstr("error: DEADLINE_EXCEEDED: "));
}

}  // namespace
}  // namespace pumptwin::ctl
