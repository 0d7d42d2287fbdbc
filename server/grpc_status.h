// absl::Status -> grpc::Status (same codes, same message). Header-only; thread-safe.
#ifndef PUMPTWIN_SERVER_GRPC_STATUS_H_
#define PUMPTWIN_SERVER_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/status.h"

namespace pumptwin::server {

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

// Finishes a unary call with `s` and returns its reactor: `return FinishWith(reactor, s);`.
inline grpc::ServerUnaryReactor* FinishWith(grpc::ServerUnaryReactor* reactor,
                                            const absl::Status& s) {
  reactor->Finish(ToGrpc(s));
  return reactor;
}

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_GRPC_STATUS_H_
