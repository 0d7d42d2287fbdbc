#include "server/api/transport_auth.h"

#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace pumptwin::server {
namespace {

std::optional<absl::string_view> Find(const grpc::AuthMetadataProcessor::InputMetadata& md,
                                      absl::string_view key) {
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return std::nullopt;
  return absl::string_view(it->second.data(), it->second.size());
}

}  // namespace

grpc::Status TransportAuthGate::Process(const InputMetadata& metadata, grpc::AuthContext* context,
                                        OutputMetadata* /*consumed*/,
                                        OutputMetadata* /*response*/) {
  const absl::string_view path = Find(metadata, ":path").value_or("");
  if (tokens_ != nullptr && absl::StartsWith(path, "/pumptwin.v1.TwinService/")) {
    if (metadata.count("authorization") > 1) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "more than one authorization header");
    }
    absl::StatusOr<Principal> who =
        tokens_->CheckAuthorization(Find(metadata, "authorization"), Role::kViewer);
    if (!who.ok() && who.status().code() == absl::StatusCode::kUnauthenticated) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(who.status().message()));
    }
  }
  if (require_gateway_certificate_ && absl::StartsWith(path, "/pumptwin.v1.DeviceGateway/") &&
      (context == nullptr || !context->IsPeerAuthenticated())) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "a client certificate naming the gateway is required");
  }
  return grpc::Status::OK;
}

}  // namespace pumptwin::server
