// ServerApp: the composition root of pumptwind. Owns the gRPC server, the metrics
// exposer and (as they land) the store, the shard registry and the alert hub; runs
// start-up (recovery) with Health NOT_SERVING, then serves; shuts down cleanly.
// Start/Shutdown are called from one thread (main); the services it owns are thread-safe.
#ifndef PUMPTWIN_SERVER_SERVER_APP_H_
#define PUMPTWIN_SERVER_SERVER_APP_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "server/metrics.h"

namespace pumptwin::server {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";        // gRPC address; port 0 = ephemeral
  std::string metrics_listen = "127.0.0.1:9464";  // Prometheus /metrics; port 0 = ephemeral
  std::string data_dir = "./data";
  std::string tls_cert_file;       // PEM server certificate chain; empty = no TLS
  std::string tls_key_file;        // PEM private key
  std::string tls_client_ca_file;  // PEM CA that signs gateway client certificates (mTLS)
  bool insecure = false;           // allow plaintext on a non-loopback address
  std::string port_file;           // if set, "grpc_port=N\nmetrics_port=M\n" is written here
};

// Returns true for "localhost", 127.0.0.0/8 and ::1 (with or without brackets).
bool IsLoopbackHost(const std::string& host);

// Splits "host:port" / "[v6]:port" into host and port; unix: addresses have no port.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& address);

// Checks the options before anything binds (e.g. plaintext on a public address).
absl::Status ValidateOptions(const ServerOptions& options);

class ServerApp {
 public:
  explicit ServerApp(ServerOptions options);
  ~ServerApp();
  ServerApp(const ServerApp&) = delete;
  ServerApp& operator=(const ServerApp&) = delete;

  // Binds, recovers, then marks Health SERVING. Returns an error (and serves nothing)
  // when the options are invalid or a port cannot be bound.
  absl::Status Start();

  // Health NOT_SERVING, stop accepting, give in-flight calls `grace` to finish, cancel
  // the rest, flush the store. Idempotent.
  void Shutdown(absl::Duration grace);

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }

 private:
  absl::Status WritePortFile() const;

  ServerOptions options_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<grpc::Service> twin_service_;
  std::unique_ptr<grpc::Server> server_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_SERVER_APP_H_
