// The per-invocation context of pumptwinctl: global options, the gRPC channel and stubs,
// the request metadata (bearer token) and deadline, output streams, and the mapping from
// outcomes to the documented exit codes. One Ctl per process run; not thread-safe.
#ifndef PUMPTWIN_TOOLS_CTL_CTL_CONTEXT_H_
#define PUMPTWIN_TOOLS_CTL_CTL_CONTEXT_H_

#include <memory>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"

namespace pumptwin::ctl {

// Exit codes scripts can rely on (documented in --help and docs/api.md).
enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 1,        // bad command line or unit; nothing was sent
  kExitServerError = 2,  // the server answered with an error status
  kExitUnavailable = 3,  // cannot connect, UNAVAILABLE, or deadline exceeded
  kExitAuditFailed = 4,  // audit verify found a broken chain
};

// 0 for OK, 3 for UNAVAILABLE / DEADLINE_EXCEEDED, 2 for every other status.
int ExitCodeForStatus(const grpc::Status& status);
// "UNIMPLEMENTED", "NOT_FOUND"...
std::string StatusCodeName(grpc::StatusCode code);

struct GlobalOptions {
  std::string server = "127.0.0.1:50051";
  std::string token;     // bearer token; empty: none
  std::string tls_ca;    // PEM file of the CA that signed the server; enables TLS
  std::string tls_cert;  // PEM client certificate (mTLS); needs tls_key
  std::string tls_key;
  std::string timeout = "10s";
  bool json = false;
};

class Ctl {
 public:
  Ctl(GlobalOptions options, std::ostream& out, std::ostream& err);
  Ctl(const Ctl&) = delete;
  Ctl& operator=(const Ctl&) = delete;

  // Validates the options and creates the channel (lazily connected). Errors are usage
  // errors: a missing TLS file, a bad --timeout, a token over plaintext to a remote host.
  absl::Status Init();

  // A context with the bearer token and, unless `streaming`, the --timeout deadline.
  std::unique_ptr<grpc::ClientContext> NewContext(bool streaming = false) const;

  pumptwin::v1::TwinService::StubInterface& twin() { return *twin_; }
  grpc::health::v1::Health::StubInterface& health() { return *health_; }
  bool json() const { return options_.json; }
  const GlobalOptions& options() const { return options_; }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }

  // Prints "error: CODE: message" (plus a hint for connection problems) and returns the
  // exit code of the status.
  int Fail(const grpc::Status& status);
  // Prints "error: message" and returns kExitUsage.
  int Usage(absl::string_view message);
  void PrintJson(const google::protobuf::Message& message);

 private:
  GlobalOptions options_;
  std::ostream& out_;
  std::ostream& err_;
  absl::Duration timeout_ = absl::Seconds(10);
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pumptwin::v1::TwinService::StubInterface> twin_;
  std::unique_ptr<grpc::health::v1::Health::StubInterface> health_;
};

// "P1" and "pumps/P1" both name pump P1: returns "pumps/P1". Usage error for "", "/"...
absl::StatusOr<std::string> PumpResourceName(absl::string_view text);

}  // namespace pumptwin::ctl

#endif  // PUMPTWIN_TOOLS_CTL_CTL_CONTEXT_H_
