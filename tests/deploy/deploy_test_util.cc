// Helpers of the deploy integration tests (see deploy_test_util.h).
#include "tests/deploy/deploy_test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "tests/support/server_process.h"
#include "tests/support/telemetry_fixtures.h"

namespace pumptwin::testing {

absl::StatusOr<int> FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return absl::InternalError("bind/getsockname on 127.0.0.1:0 failed");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

ChildProcess::~ChildProcess() { Stop(); }

absl::Status ChildProcess::Start(const std::vector<std::string>& argv,
                                 const std::string& log_path) {
  std::vector<std::string> args = argv;
  std::vector<char*> c_argv;
  for (auto& a : args) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execv(c_argv[0], c_argv.data());
    _exit(127);
  }
  pid_ = pid;
  return absl::OkStatus();
}

bool ChildProcess::alive() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

int ChildProcess::Stop(absl::Duration timeout) {
  if (pid_ <= 0) return 0;
  kill(pid_, SIGTERM);
  int status = 0;
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    absl::SleepFor(absl::Milliseconds(20));  // waiting for another process to exit (bounded)
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

absl::StatusOr<google::protobuf::Struct> PrometheusApi(int port, const std::string& path) {
  auto body = HttpGet(port, path);
  if (!body.ok()) return body.status();
  google::protobuf::Struct out;
  auto st = google::protobuf::util::JsonStringToMessage(*body, &out);
  if (!st.ok()) return absl::DataLossError(absl::StrCat("bad JSON from ", path, ": ", *body));
  auto it = out.fields().find("status");
  if (it == out.fields().end() || it->second.string_value() != "success") {
    return absl::UnavailableError(absl::StrCat(path, " answered: ", *body));
  }
  return out;
}

absl::StatusOr<double> PrometheusQueryValue(int port, const std::string& promql) {
  auto r = PrometheusApi(port, "/api/v1/query?query=" + UrlEncode(promql));
  if (!r.ok()) return r.status();
  const auto& data = r->fields().at("data").struct_value();
  const auto& result = data.fields().at("result").list_value();
  if (result.values_size() == 0) return absl::NotFoundError(absl::StrCat("no series: ", promql));
  const auto& value = result.values(0).struct_value().fields().at("value").list_value();
  if (value.values_size() != 2) return absl::DataLossError("sample without [time, value]");
  return std::stod(value.values(1).string_value());
}

absl::StatusOr<std::string> PrometheusAlertState(int port, const std::string& name) {
  auto r = PrometheusApi(port, "/api/v1/alerts");
  if (!r.ok()) return r.status();
  const auto& alerts = r->fields().at("data").struct_value().fields().at("alerts").list_value();
  std::string state;
  for (const auto& a : alerts.values()) {
    const auto& f = a.struct_value().fields();
    const auto& labels = f.at("labels").struct_value().fields();
    auto n = labels.find("alertname");
    if (n == labels.end() || n->second.string_value() != name) continue;
    state = f.at("state").string_value();
    if (state == "firing") return state;
  }
  if (state.empty()) return absl::NotFoundError(absl::StrCat(name, " is not active"));
  return state;
}

grpc::Status RegisterPumpReportingEvery(v1::TwinService::Stub& stub, const std::string& pump,
                                        const std::string& gateway, int64_t reporting_interval_ms,
                                        absl::Time now) {
  return RegisterHealthyPump(stub, pump, gateway, "e2e-clinic",
                             absl::ToUnixMillis(now - absl::Hours(24)), reporting_interval_ms);
}

v1::TelemetrySample SampleNow(const std::string& pump, uint64_t seq, absl::Time device_time) {
  // A day at 500 µL/day since implant.
  return HealthySample(pump, seq, absl::ToUnixMillis(device_time), 500.0);
}

}  // namespace pumptwin::testing
