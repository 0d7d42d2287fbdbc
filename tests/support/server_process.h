// ServerProcess: runs the real pumptwind binary as a child process on ephemeral loopback
// ports for integration tests; learns the ports from --port_file; stops it with a
// signal and reports the exit status. Also TempDir, a scoped temporary directory.
// Not thread-safe: one test thread drives one ServerProcess.
#ifndef PUMPTWIN_TESTS_SUPPORT_SERVER_PROCESS_H_
#define PUMPTWIN_TESTS_SUPPORT_SERVER_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pumptwin::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct ServerProcessOptions {
  std::string binary;    // default: PUMPTWIND_BINARY (compile definition)
  std::string data_dir;  // required
  std::vector<std::string> extra_args;
  absl::Duration start_timeout = absl::Seconds(30);
};

class ServerProcess {
 public:
  explicit ServerProcess(ServerProcessOptions options);
  ~ServerProcess();  // SIGKILLs a still-running child
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Spawns the server and waits (bounded) until it has written its port file.
  absl::Status Start();
  // Sends `sig` and waits (bounded) for the exit; returns the exit code, or 128+signal.
  absl::StatusOr<int> Stop(int sig, absl::Duration timeout = absl::Seconds(30));
  // SIGKILL without waiting for anything but the reap.
  void Kill();

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  int http_port() const { return http_port_; }  // 0 when the server was given --http_listen=
  std::string grpc_target() const { return "127.0.0.1:" + std::to_string(grpc_port_); }
  const std::string& log_path() const { return log_path_; }
  std::string ReadLog() const;

 private:
  ServerProcessOptions options_;
  pid_t pid_ = -1;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  int http_port_ = 0;
  std::string port_file_;
  std::string log_path_;
};

// Runs `command` with /bin/sh (append " 2>&1" to capture stderr too); returns its exit code
// (-1 if it did not exit normally) and its standard output.
std::pair<int, std::string> RunCommand(const std::string& command);

// Runs `pumptwind --verify --data_dir=DIR` (the server must be stopped); returns the exit
// code and the combined output.
std::pair<int, std::string> RunVerify(const std::string& data_dir);

// GET http://127.0.0.1:port/path over a plain socket (HTTP/1.0); returns the body.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

}  // namespace pumptwin::testing

#endif  // PUMPTWIN_TESTS_SUPPORT_SERVER_PROCESS_H_
