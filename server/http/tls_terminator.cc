#include "server/http/tls_terminator.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace pumptwin::server::http {
namespace {

std::string SslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown error" : out;
}

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Waits until `fd` is readable (`events` POLLIN) or writable (POLLOUT), or `timeout_ms`.
bool WaitFor(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, timeout_ms) > 0 && (p.revents & (events | POLLHUP | POLLERR)) != 0;
}

// Writes all of `data` to the plaintext backend socket (non-blocking; waits for room).
bool WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w > 0) {
      data += w;
      n -= static_cast<size_t>(w);
    } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!WaitFor(fd, POLLOUT, 60'000)) return false;
    } else {
      return false;
    }
  }
  return true;
}

// Writes all of `data` to the TLS client (non-blocking socket: retries the same buffer).
bool SslWriteAll(SSL* ssl, int fd, const char* data, size_t n) {
  while (n > 0) {
    const int w = SSL_write(ssl, data, static_cast<int>(std::min<size_t>(n, 1 << 30)));
    if (w > 0) {
      data += w;
      n -= static_cast<size_t>(w);
      continue;
    }
    const int err = SSL_get_error(ssl, w);
    if (err == SSL_ERROR_WANT_WRITE) {
      if (!WaitFor(fd, POLLOUT, 60'000)) return false;
    } else if (err == SSL_ERROR_WANT_READ) {
      if (!WaitFor(fd, POLLIN, 60'000)) return false;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsTerminator>> TlsTerminator::Start(TlsTerminatorOptions options) {
  auto t = std::unique_ptr<TlsTerminator>(new TlsTerminator(std::move(options)));
  const TlsTerminatorOptions& o = t->options_;
  t->ctx_ = SSL_CTX_new(TLS_server_method());
  if (t->ctx_ == nullptr) return absl::InternalError("cannot create a TLS context");
  SSL_CTX_set_min_proto_version(t->ctx_, TLS1_2_VERSION);
  SSL_CTX_set_mode(t->ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(t->ctx_, o.cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(t->ctx_, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(t->ctx_) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTPS: cannot use --tls_cert_file/--tls_key_file: ", SslErrors()));
  }
  // host:port, the host maybe in brackets (IPv6).
  const size_t colon = o.listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(o.listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_listen=", o.listen, " is not host:port"));
  }
  std::string host = o.listen.substr(0, colon);
  if (host == "*" || host == "0.0.0.0") host.clear();
  host = std::string(absl::StripSuffix(absl::StripPrefix(host, "["), "]"));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = absl::StrCat(port);
  if (::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res) != 0 ||
      res == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("--http_listen=", o.listen, ": unknown host"));
  }
  const int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const bool bound =
      fd >= 0 && ::bind(fd, res->ai_addr, res->ai_addrlen) == 0 && ::listen(fd, 128) == 0;
  ::freeaddrinfo(res);
  if (!bound) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on --http_listen=", o.listen, ": ", why));
  }
  sockaddr_storage bound_addr{};
  socklen_t len = sizeof(bound_addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound_addr), &len);
  t->port_ = ntohs(bound_addr.ss_family == AF_INET6
                       ? reinterpret_cast<sockaddr_in6*>(&bound_addr)->sin6_port
                       : reinterpret_cast<sockaddr_in*>(&bound_addr)->sin_port);
  t->listen_fd_ = fd;
  if (::pipe2(t->wake_, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  TlsTerminator* raw = t.get();
  t->acceptor_ = std::make_unique<std::thread>([raw] { raw->AcceptLoop(); });
  return t;
}

TlsTerminator::~TlsTerminator() {
  Stop();
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

void TlsTerminator::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    for (int fd : open_) ::shutdown(fd, SHUT_RDWR);  // their relays end
  }
  if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
  if (acceptor_ != nullptr) acceptor_->join();
  {
    absl::MutexLock lock(&mu_);
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return active_ == 0; };
    mu_.Await(absl::Condition(&idle));
  }
  for (int fd : {listen_fd_, wake_[0], wake_[1]}) {
    if (fd >= 0) ::close(fd);
  }
  listen_fd_ = wake_[0] = wake_[1] = -1;
}

void TlsTerminator::AcceptLoop() {
  while (true) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) return;
    if (p[1].revents != 0) return;
    if ((p[0].revents & POLLIN) == 0) continue;
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ || active_ >= options_.max_connections) {
        ::close(client);
        continue;
      }
      ++active_;
      open_.insert(client);
    }
    std::thread([this, client] {
      Relay(client);
      absl::MutexLock lock(&mu_);
      open_.erase(client);
      ::close(client);
      --active_;
    }).detach();
  }
}

void TlsTerminator::Relay(int client) {
  // The handshake, bounded in time.
  timeval tv{static_cast<time_t>(absl::ToInt64Seconds(options_.handshake_timeout)), 0};
  ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return;
  SSL_set_fd(ssl, client);
  if (SSL_accept(ssl) != 1) {
    ERR_clear_error();
    SSL_free(ssl);
    return;
  }
  const int backend = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(options_.backend_port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (backend < 0 || ::connect(backend, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (backend >= 0) ::close(backend);
    SSL_free(ssl);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      ::close(backend);
      SSL_free(ssl);
      return;
    }
    open_.insert(backend);  // Stop shuts it down too: a relay waiting on it ends
  }
  SetNonBlocking(client);
  SetNonBlocking(backend);
  char buf[16384];
  bool open = true;
  while (open) {
    pollfd p[2] = {{client, POLLIN, 0}, {backend, POLLIN, 0}};
    // Bytes OpenSSL already decrypted do not show on the socket.
    if (SSL_pending(ssl) == 0 && ::poll(p, 2, -1) < 0 && errno != EINTR) break;
    if (SSL_pending(ssl) > 0 || (p[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const int n = SSL_read(ssl, buf, sizeof(buf));
      if (n > 0) {
        open = WriteAll(backend, buf, static_cast<size_t>(n));
      } else {
        const int err = SSL_get_error(ssl, n);
        open = err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
      }
    }
    if (open && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t n = ::recv(backend, buf, sizeof(buf), 0);
      if (n > 0) {
        open = SslWriteAll(ssl, client, buf, static_cast<size_t>(n));
      } else {
        open = n < 0 && (errno == EAGAIN || errno == EINTR);
      }
    }
  }
  SSL_shutdown(ssl);
  ERR_clear_error();
  SSL_free(ssl);
  absl::MutexLock lock(&mu_);
  open_.erase(backend);
  ::close(backend);
}

}  // namespace pumptwin::server::http
