// TlsTerminator: the HTTPS side of the HTTP listener. Debian 12's CivetWeb 1.15 loads OpenSSL
// at run time by its 1.1 names and calls SSL_get_peer_certificate on every TLS connection, a
// function OpenSSL 3 no longer exports: each HTTPS connection would crash pumptwind. So TLS
// is terminated here, with OpenSSL linked as usual: connections are accepted on the public
// address, the handshake is made (TLS 1.2 or later, the server certificate chain and key of
// --tls_cert_file/--tls_key_file), and the bytes are relayed both ways to CivetWeb listening
// in plaintext on an ephemeral loopback port. One thread per connection (as CivetWeb has),
// at most `max_connections`; more are closed at once. A handshake has `handshake_timeout`.
// Thread-safety: Start and Stop from one thread.
#ifndef PUMPTWIN_SERVER_HTTP_TLS_TERMINATOR_H_
#define PUMPTWIN_SERVER_HTTP_TLS_TERMINATOR_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace pumptwin::server::http {

struct TlsTerminatorOptions {
  std::string listen;  // host:port (port 0: ephemeral), IPv4 or [IPv6]
  std::string cert_file, key_file;
  int backend_port = 0;  // CivetWeb on 127.0.0.1
  int max_connections = 1016;
  absl::Duration handshake_timeout = absl::Seconds(10);
};

class TlsTerminator {
 public:
  // INVALID_ARGUMENT: unreadable or mismatched certificate and key, malformed address;
  // UNAVAILABLE: the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<TlsTerminator>> Start(TlsTerminatorOptions options);
  ~TlsTerminator();
  TlsTerminator(const TlsTerminator&) = delete;
  TlsTerminator& operator=(const TlsTerminator&) = delete;

  int port() const { return port_; }
  // Stops accepting, closes every connection, waits for their threads.
  void Stop();

 private:
  explicit TlsTerminator(TlsTerminatorOptions options) : options_(std::move(options)) {}
  void AcceptLoop();
  void Relay(int client_fd);

  const TlsTerminatorOptions options_;
  SSL_CTX* ctx_ = nullptr;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // written by Stop: the accept loop ends
  int port_ = 0;
  std::unique_ptr<std::thread> acceptor_;
  absl::Mutex mu_;
  absl::flat_hash_set<int> open_ ABSL_GUARDED_BY(mu_);  // client sockets of live relays
  int active_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace pumptwin::server::http

#endif  // PUMPTWIN_SERVER_HTTP_TLS_TERMINATOR_H_
