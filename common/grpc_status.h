// absl::Status -> grpc::Status (same code; the message cut to kMaxStatusMessageBytes, so a
// message that repeats client input can never exceed gRPC's metadata limit and turn into
// RESOURCE_EXHAUSTED). Values are quoted into messages with device_link::Echo, which bounds
// each one; the cut here is the backstop. Header-only; thread-safe.
#ifndef PUMPTWIN_COMMON_GRPC_STATUS_H_
#define PUMPTWIN_COMMON_GRPC_STATUS_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/status.h"

namespace pumptwin::common {

inline constexpr size_t kMaxStatusMessageBytes = 1024;

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  absl::string_view message = s.message();
  if (message.size() <= kMaxStatusMessageBytes) {
    return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(message));
  }
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      absl::StrCat(message.substr(0, kMaxStatusMessageBytes), "... (cut at ",
                                   kMaxStatusMessageBytes, " of ", message.size(), " bytes)"));
}

// The canonical name of a gRPC status code ("INVALID_ARGUMENT"; gRPC and absl share codes
// and names), "UNKNOWN" for a value outside them: metric labels and JSON error bodies.
inline std::string GrpcCodeName(int code) {
  std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  return name.empty() ? "UNKNOWN" : name;
}

// Finishes a unary call with `s` and returns its reactor: `return FinishWith(reactor, s);`.
inline grpc::ServerUnaryReactor* FinishWith(grpc::ServerUnaryReactor* reactor,
                                            const absl::Status& s) {
  reactor->Finish(ToGrpc(s));
  return reactor;
}

}  // namespace pumptwin::common

// The API layer's handlers call these unqualified.
namespace pumptwin::server {
using common::FinishWith;
using common::kMaxStatusMessageBytes;
using common::ToGrpc;
}  // namespace pumptwin::server

#endif  // PUMPTWIN_COMMON_GRPC_STATUS_H_
