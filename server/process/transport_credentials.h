// The TLS (or plaintext) transport of pumptwind's gRPC listener and of the calls one cluster
// replica makes to another, from the --tls_* flag files. A file that cannot be read or holds
// no PEM certificate / key is INVALID_ARGUMENT naming the flag and the path, found before
// binding (gRPC itself would only report a failed bind).
#ifndef PUMPTWIN_SERVER_PROCESS_TRANSPORT_CREDENTIALS_H_
#define PUMPTWIN_SERVER_PROCESS_TRANSPORT_CREDENTIALS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace pumptwin::server {

// The listener: plaintext without a certificate file; else TLS with that chain and key, and
// with `client_ca_file`, client certificates requested and verified against it (gateways).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerTransportCredentials(
    const std::string& cert_file, const std::string& key_file, const std::string& client_ca_file);

// To the other replicas (forwarded TwinService calls): plaintext when this server listens
// without TLS; else TLS trusting the chain of `cert_file` (the replicas of one deployment
// share it, as one Kubernetes Secret does).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> PeerTransportCredentials(
    const std::string& cert_file);

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_PROCESS_TRANSPORT_CREDENTIALS_H_
