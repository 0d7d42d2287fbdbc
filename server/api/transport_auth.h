// TransportAuthGate: authentication at the transport, before a request's message is read.
// gRPC receives a whole message before it checks the receive limit (docs/security.md,
// "Message size"), so a handler's token check comes too late to stop a stranger from making
// the server buffer a large message. On a TLS listener this processor runs when a call's
// headers arrive: a TwinService call without a valid bearer token, and (with gateway mTLS) a
// DeviceGateway call without a verified client certificate, are refused UNAUTHENTICATED
// there, and their message is never received. Roles, clinics and the gateway's identity are
// still checked by the handlers; health and reflection stay open (probes).
// Thread-safe: gRPC calls Process from its own threads, concurrently.
#ifndef PUMPTWIN_SERVER_API_TRANSPORT_AUTH_H_
#define PUMPTWIN_SERVER_API_TRANSPORT_AUTH_H_

#include "grpcpp/security/auth_metadata_processor.h"
#include "server/api/token_auth.h"

namespace pumptwin::server {

class TransportAuthGate final : public grpc::AuthMetadataProcessor {
 public:
  // `tokens` (not owned, outlives the server): the table TwinService calls are checked
  // against; null leaves TwinService to its handlers. `require_gateway_certificate`: the
  // listener verifies gateway client certificates (--tls_client_ca_file).
  TransportAuthGate(const TokenAuthorizer* tokens, bool require_gateway_certificate)
      : tokens_(tokens), require_gateway_certificate_(require_gateway_certificate) {}

  bool IsBlocking() const override { return false; }  // a table lookup and a hash
  grpc::Status Process(const InputMetadata& metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed, OutputMetadata* response) override;

 private:
  const TokenAuthorizer* const tokens_;
  const bool require_gateway_certificate_;
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_API_TRANSPORT_AUTH_H_
