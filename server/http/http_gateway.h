// HttpGateway: pumptwind's HTTP/JSON listener (docs/http_api.md). Every TwinService method
// with a google.api.http rule is served at its path: the request (path variable, query
// parameters, JSON body) is transcoded into the method's protobuf request with protobuf's
// JSON mapping and handed to the gRPC server itself over its in-process channel, with the
// caller's `Authorization` header as the call's metadata; so authentication, roles, clinic
// scope, validation, audit and metrics are the gRPC handlers' own, with no second code path.
// The gRPC status comes back as the standard HTTP code with {"code", "status", "message"}.
// Server-streaming methods (WatchAlerts, WatchTwin) are Server-Sent Events; WatchAlerts
// resumes after the `Last-Event-ID` header (the AlertEvent cursor) with no gap and no
// duplicate, as the gRPC stream does after from_cursor. GET /v1/openapi.json serves the
// OpenAPI document generated from the same rules.
//
// The same listener serves the web app (docs/web.md): `/` redirects to `/app/`, whose files
// are embedded in the binary (server/web), under a strict Content-Security-Policy; and
// browser sessions at `/session` (POST: log in with a token, GET: who am I, DELETE: log
// out; web_session.h). A request with the session cookie and no Authorization header is
// made with the session's token; a cookie request that changes something (any method but
// GET) must carry the session's `X-CSRF-Token`.
//
// Threads: CivetWeb's worker pool (one worker per request; an open event stream holds its
// worker): `max_streams` streams plus `workers` for the other requests. Start/Stop from one
// thread; Stop cancels open streams and returns once every worker has finished.
#ifndef PUMPTWIN_SERVER_HTTP_HTTP_GATEWAY_H_
#define PUMPTWIN_SERVER_HTTP_HTTP_GATEWAY_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/http/http_rules.h"
#include "server/http/web_session.h"

struct mg_context;
struct mg_connection;

namespace pumptwin::server::http {

class TlsTerminator;

struct HttpGatewayOptions {
  std::string listen = "127.0.0.1:8480";  // host:port; port 0 = ephemeral
  // PEM files: when set the listener speaks HTTPS only (required off loopback unless
  // `insecure`), terminated by TlsTerminator in front of CivetWeb on loopback.
  std::string tls_cert_file;
  std::string tls_key_file;
  bool insecure = false;
  size_t max_body_bytes = 1 << 20;  // larger bodies: 413
  int max_streams = 1000;           // open event streams; beyond: 429
  int workers = 16;                 // for requests other than streams
  absl::Duration call_deadline = absl::Seconds(60);
  absl::Duration keepalive = absl::Seconds(15);  // comment line on an idle event stream
  std::string version;                           // in the OpenAPI document
  // Browser sessions: who a token is (a login asks it); unset: logins are refused
  // (UNIMPLEMENTED) and only bearer tokens work.
  IdentifyFn identify;
  SessionOptions sessions;
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

// The Content-Security-Policy of the web app's pages: its own origin only, no inline
// script or style, no framing.
inline constexpr char kWebAppCsp[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'";

// The HTTP code of a gRPC status code (the mapping of google.rpc.Code, as grpc-gateway).
int HttpCodeOf(grpc::StatusCode code);
// {"code": <int>, "status": "NOT_FOUND", "message": "..."}.
std::string ErrorJson(grpc::StatusCode code, const std::string& message);

class HttpGateway {
 public:
  HttpGateway(HttpGatewayOptions options, std::shared_ptr<grpc::Channel> in_process);
  ~HttpGateway();
  HttpGateway(const HttpGateway&) = delete;
  HttpGateway& operator=(const HttpGateway&) = delete;

  // Builds the routes from TwinService's rules and starts listening. INVALID_ARGUMENT for
  // a bad option (plaintext off loopback), UNAVAILABLE when the address cannot be bound.
  absl::Status Start();
  void Stop();
  int port() const { return port_; }
  const std::string& openapi() const { return openapi_; }
  // The generated document without a server (pumptwind --print_openapi).
  static absl::StatusOr<std::string> OpenApi(const std::string& version);

 private:
  static int Handle(mg_connection* conn, void* self);
  int Serve(mg_connection* conn);
  int ServeAsset(mg_connection* conn, const std::string& method, const std::string& path);
  int ServeSession(mg_connection* conn, const std::string& method);
  int ServeUnary(mg_connection* conn, const Route& route, const std::string& request,
                 const std::string& authorization, const std::string& session_id);
  int ServeStream(mg_connection* conn, const Route& route, const std::string& request,
                  const std::string& authorization, absl::Time deadline);
  std::string CookieName() const;
  std::string SessionCookie(const std::string& id, int64_t max_age_s) const;

  HttpGatewayOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  RouteTable routes_;
  std::string openapi_;
  mg_context* ctx_ = nullptr;
  std::unique_ptr<TlsTerminator> tls_terminator_;  // over TLS
  int port_ = 0;
  bool tls_ = false;
  std::unique_ptr<SessionStore> sessions_;

  absl::Mutex mu_;
  int open_streams_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::set<grpc::ClientContext*> stream_calls_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pumptwin::server::http

#endif  // PUMPTWIN_SERVER_HTTP_HTTP_GATEWAY_H_
