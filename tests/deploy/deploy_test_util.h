// Helpers of the deploy integration tests: a free loopback port, a child process started
// and stopped by pid (Prometheus), Prometheus HTTP API queries parsed into protobuf Structs,
// and pump registration with a short reporting interval. Single-threaded test use.
#ifndef PUMPTWIN_TESTS_DEPLOY_DEPLOY_TEST_UTIL_H_
#define PUMPTWIN_TESTS_DEPLOY_DEPLOY_TEST_UTIL_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"

namespace pumptwin::testing {

// A port that was free on 127.0.0.1 a moment ago (bind to :0, read it, close).
absl::StatusOr<int> FreeLoopbackPort();

// A child process (argv[0] is the program path), stdout+stderr to `log_path`.
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();  // Stop()
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  absl::Status Start(const std::vector<std::string>& argv, const std::string& log_path);
  // SIGTERM, wait up to `timeout`, then SIGKILL; returns the exit status (waitpid form).
  int Stop(absl::Duration timeout = absl::Seconds(10));
  bool alive();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// "%XX" encoding of everything but unreserved characters.
std::string UrlEncode(const std::string& s);

// GET a Prometheus API path; parses the JSON; error unless "status" is "success".
absl::StatusOr<google::protobuf::Struct> PrometheusApi(int port, const std::string& path);

// The scalar value of the first sample of an instant query (NOT_FOUND if empty).
absl::StatusOr<double> PrometheusQueryValue(int port, const std::string& promql);

// The state ("pending", "firing") of alert `name` in /api/v1/alerts; NOT_FOUND if absent.
absl::StatusOr<std::string> PrometheusAlertState(int port, const std::string& name);

// Registers a sensorized pump bound to `gateway`, implanted a day before `now`, with the
// given reporting interval (silent after 3 intervals of server time).
grpc::Status RegisterPumpReportingEvery(v1::TwinService::Stub& stub, const std::string& pump,
                                        const std::string& gateway, int64_t reporting_interval_ms,
                                        absl::Time now);

// A plausible sample of that pump at `device_time`, `seq`.
v1::TelemetrySample SampleNow(const std::string& pump, uint64_t seq, absl::Time device_time);

}  // namespace pumptwin::testing

#endif  // PUMPTWIN_TESTS_DEPLOY_DEPLOY_TEST_UTIL_H_
