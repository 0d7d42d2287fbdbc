// Helpers of the auth integration tests: issuing tokens with the real pumptwin-token
// binary, calling any TwinService method generically (raw bytes, so a method added to
// the contract is called without new test code), finding the server child's pid, and
// making a throw-away CA + server certificate with the openssl CLI.
// Not thread-safe: one test thread uses them.
#ifndef PUMPTWIN_TESTS_AUTH_AUTH_TEST_UTIL_H_
#define PUMPTWIN_TESTS_AUTH_AUTH_TEST_UTIL_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace pumptwin::testing {

struct IssuedToken {
  std::string token;  // what the client sends after "Bearer "
  std::string line;   // "<name> <role> <sha256hex>" for the token file
};

// Runs `pumptwin-token new --quiet --name NAME --role ROLE [extra_args]` (extra_args e.g.
// "--clinic north --expires 2027-01-01T00:00:00Z").
absl::StatusOr<IssuedToken> IssueToken(const std::string& name, const std::string& role,
                                       const std::string& extra_args = "");

absl::Status WriteTextFile(const std::string& path, const std::string& content);
absl::StatusOr<std::string> ReadTextFile(const std::string& path);

struct GenericResult {
  grpc::Status status;
  bool got_message = false;  // at least one response message arrived
};

// Calls `method` ("/pkg.Service/Method") with an empty request message. `token` empty:
// no authorization metadata. A streaming call that delivers a message is cancelled
// after the first one (status CANCELLED, got_message true).
GenericResult CallEmpty(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                        const std::string& token, absl::Duration deadline);
// The same with `request` (a serialized request message) as the request.
GenericResult CallBytes(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                        const std::string& token, const std::string& request,
                        absl::Duration deadline);

// The pid of this process's child whose command name is "pumptwind" (the one
// ServerProcess started), or -1.
pid_t FindServerChildPid();

// Creates ca.pem, ca.key, server.pem, server.key in `dir` (server cert for localhost
// and 127.0.0.1, signed by the CA) with the openssl CLI.
absl::Status MakeTestCertificates(const std::string& dir);

}  // namespace pumptwin::testing

#endif  // PUMPTWIN_TESTS_AUTH_AUTH_TEST_UTIL_H_
