#include "server/http/http_gateway.h"

#include <civetweb.h>
#include <sys/stat.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "common/grpc_status.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/generic/generic_stub.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "server/api/twin_service.h"
#include "server/http/http_internal.h"
#include "server/http/openapi.h"
#include "server/http/tls_terminator.h"

namespace pumptwin::server::http {
namespace {

bool IsLoopbackListen(const std::string& listen) {
  std::string host = listen.substr(0, listen.rfind(':'));
  return absl::StartsWith(host, "127.") || host == "localhost" || host == "[::1]" || host == "::1";
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  (void)buffer.Dump(&slices);
  std::string out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

std::unique_ptr<google::protobuf::Message> NewMessage(const google::protobuf::Descriptor* d) {
  const google::protobuf::Message* proto =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(d);
  return std::unique_ptr<google::protobuf::Message>(proto->New());
}

const google::protobuf::ServiceDescriptor* TwinServiceDescriptor() {
  return google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
      v1::TwinService::service_full_name());
}

// Waits for `tag` on `cq` (the calls here have one operation outstanding at a time).
bool Await(grpc::CompletionQueue& cq, void* tag) {
  void* got = nullptr;
  bool ok = false;
  while (cq.Next(&got, &ok)) {
    if (got == tag) return ok;
  }
  return false;
}

// The web app's files: the strict CSP of the app, revalidated on every load.

// A completion queue whose waiting thread does not poll for I/O: the calls on it go over the
// in-process channel, which needs no poller, and a thousand open event streams each
// waiting on a polling queue would each join gRPC's pollers.
class NonPollingQueue : public grpc::CompletionQueue {
 public:
  NonPollingQueue()
      : grpc::CompletionQueue(grpc_completion_queue_attributes{
            GRPC_CQ_CURRENT_VERSION, GRPC_CQ_NEXT, GRPC_CQ_NON_POLLING, nullptr}) {}
};

}  // namespace

int HttpCodeOf(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::CANCELLED:
      return 499;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED:
      return 409;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::UNIMPLEMENTED:
      return 501;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    default:
      return 500;
  }
}

std::string ErrorJson(grpc::StatusCode code, const std::string& message) {
  google::protobuf::Struct s;
  (*s.mutable_fields())["code"].set_number_value(static_cast<int>(code));
  (*s.mutable_fields())["status"].set_string_value(common::GrpcCodeName(static_cast<int>(code)));
  (*s.mutable_fields())["message"].set_string_value(message);
  return ToJson(s);
}

HttpGateway::HttpGateway(HttpGatewayOptions options, std::shared_ptr<grpc::Channel> in_process)
    : options_(std::move(options)), channel_(std::move(in_process)) {}

HttpGateway::~HttpGateway() { Stop(); }

absl::StatusOr<std::string> HttpGateway::OpenApi(const std::string& version) {
  auto routes = RouteTable::ForService(TwinServiceDescriptor());
  if (!routes.ok()) return routes.status();
  return OpenApiDocument(TwinServiceDescriptor(), *routes, version);
}

absl::Status HttpGateway::Start() {
  auto routes = RouteTable::ForService(TwinServiceDescriptor());
  if (!routes.ok()) return routes.status();
  routes_ = *std::move(routes);
  sessions_ = std::make_unique<SessionStore>(options_.sessions, options_.now);
  openapi_ = OpenApiDocument(TwinServiceDescriptor(), routes_, options_.version);

  const bool tls = !options_.tls_cert_file.empty();
  tls_ = tls;
  if (!tls && !options_.insecure && !IsLoopbackListen(options_.listen)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_listen=", options_.listen,
                     " is not a loopback address: give --tls_cert_file/--tls_key_file (HTTPS), or "
                     "--insecure on an isolated test network"));
  }
  // Over TLS CivetWeb listens in plaintext on loopback behind the TLS terminator
  // (tls_terminator.h says why).
  std::string ports = tls ? "127.0.0.1:0" : options_.listen;
  const std::string threads = absl::StrCat(options_.max_streams + options_.workers);
  std::vector<const char*> opts = {
      "listening_ports",   ports.c_str(), "num_threads",        threads.c_str(),
      "enable_keep_alive", "yes",         "request_timeout_ms", "30000"};
  opts.push_back(nullptr);
  mg_init_library(0);
  mg_callbacks callbacks{};
  ctx_ = mg_start(&callbacks, this, opts.data());
  if (ctx_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on --http_listen=", options_.listen, " (address in use?)"));
  }
  mg_set_request_handler(ctx_, "/", &HttpGateway::Handle, this);
  mg_server_port server_ports[4];
  int n = mg_get_server_ports(ctx_, 4, server_ports);
  port_ = n > 0 ? server_ports[0].port : 0;
  if (tls) {
    auto terminator = TlsTerminator::Start({
        .listen = options_.listen,
        .cert_file = options_.tls_cert_file,
        .key_file = options_.tls_key_file,
        .backend_port = port_,
        .max_connections = options_.max_streams + options_.workers,
    });
    if (!terminator.ok()) {
      mg_stop(ctx_);
      ctx_ = nullptr;
      return terminator.status();
    }
    tls_terminator_ = *std::move(terminator);
    port_ = tls_terminator_->port();
  }
  return absl::OkStatus();
}

void HttpGateway::Stop() {
  if (ctx_ == nullptr) return;
  if (tls_terminator_ != nullptr) tls_terminator_->Stop();  // no new HTTPS requests
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (grpc::ClientContext* c : stream_calls_) c->TryCancel();
  }
  mg_stop(ctx_);
  ctx_ = nullptr;
}

int HttpGateway::Handle(mg_connection* conn, void* self) {
  return static_cast<HttpGateway*>(self)->Serve(conn);
}

int HttpGateway::Serve(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  const std::string method = ri->request_method != nullptr ? ri->request_method : "";
  const std::string path = ri->local_uri != nullptr ? ri->local_uri : "";
  if (path == "/") {
    Redirect(conn, kAppPrefix);
    return 302;
  }
  if (path == "/app" || absl::StartsWith(path, kAppPrefix)) return ServeAsset(conn, method, path);
  if (path == kSessionPath) return ServeSession(conn, method);
  if (path == kOpenApiPath) {
    if (method != "GET") {
      ReplyStatus(conn, grpc::StatusCode::UNIMPLEMENTED,
                  absl::StrCat(method, " ", path, ": only GET"), "Allow: GET\r\n", 405);
      return 405;
    }
    Reply(conn, 200, openapi_);
    return 200;
  }
  std::vector<std::string> allowed;
  std::optional<RouteTable::Match> match = routes_.Find(method, path, &allowed);
  if (!match.has_value()) {
    if (!allowed.empty()) {
      std::string allow = absl::StrJoin(allowed, ", ");
      ReplyStatus(conn, grpc::StatusCode::UNIMPLEMENTED,
                  absl::StrCat(method, " ", path, " is not an API method; this path takes ", allow),
                  absl::StrCat("Allow: ", allow, "\r\n"), 405);
      return 405;
    }
    ReplyStatus(conn, grpc::StatusCode::NOT_FOUND,
                absl::StrCat("no API method at ", method, " ", path.substr(0, 200),
                             " (the API is described at ", kOpenApiPath, ")"));
    return 404;
  }
  const Route& route = *match->route;

  // The caller: a bearer token, else the session of the cookie (its token), whose changes
  // need the session's CSRF token.
  const char* auth = mg_get_header(conn, "Authorization");
  std::string authorization = auth != nullptr ? auth : "";
  std::string session_id;
  absl::Time deadline = absl::InfiniteFuture();
  if (const char* cookie = mg_get_header(conn, "Cookie");
      authorization.empty() && cookie != nullptr) {
    if (std::optional<std::string> id = CookieValue(cookie, CookieName()); id.has_value()) {
      std::optional<Session> session = sessions_->Use(*id);
      if (!session.has_value()) {
        ReplyStatus(conn, grpc::StatusCode::UNAUTHENTICATED,
                    "the session has ended (logged out, idle too long or expired): log in again",
                    SessionCookie("", 0));
        return 401;
      }
      if (method != "GET" && method != "HEAD") {
        const char* csrf = mg_get_header(conn, "X-CSRF-Token");
        if (csrf == nullptr || !SecretEquals(csrf, session->csrf)) {
          ReplyStatus(conn, grpc::StatusCode::PERMISSION_DENIED,
                      absl::StrCat(method, " ", path.substr(0, 200),
                                   " with the session cookie needs the session's X-CSRF-Token "
                                   "header (GET /session tells it)"));
          return 403;
        }
      }
      authorization = absl::StrCat("Bearer ", session->token);
      session_id = *std::move(id);
      deadline = session->expires;
    }
  }

  // The body, bounded before it is read whole.
  std::string body;
  if (ri->content_length > static_cast<long long>(options_.max_body_bytes)) {
    ReplyStatus(conn, grpc::StatusCode::RESOURCE_EXHAUSTED,
                absl::StrCat("request body of ", ri->content_length, " bytes; at most ",
                             options_.max_body_bytes, " are accepted"),
                "", 413);
    return 413;
  }
  char buf[16384];
  for (;;) {
    int n = mg_read(conn, buf, sizeof buf);
    if (n <= 0) break;
    body.append(buf, static_cast<size_t>(n));
    if (body.size() > options_.max_body_bytes) {
      ReplyStatus(conn, grpc::StatusCode::RESOURCE_EXHAUSTED,
                  absl::StrCat("request body over ", options_.max_body_bytes, " bytes"), "", 413);
      return 413;
    }
  }

  auto query = ParseQuery(ri->query_string != nullptr ? ri->query_string : "");
  if (!query.ok()) {
    ReplyStatus(conn, grpc::StatusCode::INVALID_ARGUMENT, std::string(query.status().message()));
    return 400;
  }
  std::unique_ptr<google::protobuf::Message> request = NewMessage(route.method->input_type());
  if (absl::Status s = BuildRequest(route, match->variable_value, *query, body, request.get());
      !s.ok()) {
    ReplyStatus(conn, grpc::StatusCode::INVALID_ARGUMENT, std::string(s.message()));
    return 400;
  }
  // An event stream resumes after the Last-Event-ID a browser sends on reconnect.
  const auto* from = route.method->input_type()->FindFieldByName("from_cursor");
  if (const char* last = mg_get_header(conn, "Last-Event-ID");
      last != nullptr && from != nullptr && route.method->server_streaming()) {
    uint64_t cursor = 0;
    if (!absl::SimpleAtoi(last, &cursor)) {
      ReplyStatus(conn, grpc::StatusCode::INVALID_ARGUMENT,
                  absl::StrCat("Last-Event-ID: '", std::string(last).substr(0, 32),
                               "' is not an event id of this stream"));
      return 400;
    }
    request->GetReflection()->SetUInt64(request.get(), from, cursor);
  }
  std::string bytes = request->SerializeAsString();
  return route.method->server_streaming()
             ? ServeStream(conn, route, bytes, authorization, deadline)
             : ServeUnary(conn, route, bytes, authorization, session_id);
}

int HttpGateway::ServeUnary(mg_connection* conn, const Route& route, const std::string& request,
                            const std::string& authorization, const std::string& session_id) {
  grpc::GenericStub stub(channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.call_deadline));
  if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
  grpc::Slice slice(request);
  grpc::ByteBuffer req(&slice, 1);
  grpc::ByteBuffer resp;
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&ctx,
                 absl::StrCat("/", route.method->service()->full_name(), "/", route.method->name()),
                 grpc::StubOptions(), &req, &resp, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) {
    // A session whose token is refused (revoked, expired) ends with it.
    const bool end_session =
        !session_id.empty() && status.error_code() == grpc::StatusCode::UNAUTHENTICATED;
    if (end_session) sessions_->End(session_id);
    ReplyStatus(conn, status.error_code(), status.error_message(),
                end_session ? SessionCookie("", 0) : "");
    return HttpCodeOf(status.error_code());
  }
  std::unique_ptr<google::protobuf::Message> out = NewMessage(route.method->output_type());
  if (!out->ParseFromString(Flatten(resp))) {
    ReplyStatus(conn, grpc::StatusCode::INTERNAL, "the response does not parse");
    return 500;
  }
  Reply(conn, 200, ToJson(*out));
  return 200;
}

int HttpGateway::ServeStream(mg_connection* conn, const Route& route, const std::string& request,
                             const std::string& authorization, absl::Time deadline) {
  grpc::ClientContext ctx;
  // A session's stream ends when the session does (the browser reconnects and logs in).
  if (deadline != absl::InfiniteFuture()) ctx.set_deadline(absl::ToChronoTime(deadline));
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      ReplyStatus(conn, grpc::StatusCode::UNAVAILABLE, "the server is stopping; reconnect");
      return 503;
    }
    if (open_streams_ >= options_.max_streams) {
      ReplyStatus(conn, grpc::StatusCode::RESOURCE_EXHAUSTED,
                  absl::StrCat(open_streams_,
                               " event streams are open, the maximum of this "
                               "server; retry later"),
                  "Retry-After: 5\r\n");
      return 429;
    }
    ++open_streams_;
    stream_calls_.insert(&ctx);
  }
  if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
  grpc::GenericStub stub(channel_);
  NonPollingQueue cq;
  auto call = stub.PrepareCall(
      &ctx, absl::StrCat("/", route.method->service()->full_name(), "/", route.method->name()),
      &cq);
  int tags[5];
  int code = 200;
  bool headers_sent = false;
  call->StartCall(&tags[0]);
  bool ok = Await(cq, &tags[0]);
  if (ok) {
    grpc::Slice slice(request);
    grpc::ByteBuffer req(&slice, 1);
    call->WriteLast(req, grpc::WriteOptions(), &tags[1]);
    ok = Await(cq, &tags[1]);
  }
  if (ok) {
    // An accepted stream says so in its initial metadata; a refused one ends at once.
    call->ReadInitialMetadata(&tags[2]);
    ok = Await(cq, &tags[2]) && ctx.GetServerInitialMetadata().count(kStreamOpenMetadata) > 0;
  }
  const bool has_cursor = route.method->output_type()->FindFieldByName("cursor") != nullptr;
  if (ok) {
    // Accepted: from here the answer is an event stream; its end carries the status.
    std::string head = absl::StrCat(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n", kCommonHeaders,
        "X-Accel-Buffering: no\r\nConnection: close\r\n\r\n: ", route.method->name(), "\n\n");
    headers_sent = mg_write(conn, head.data(), head.size()) > 0;
    bool client_gone = !headers_sent;
    if (client_gone) ctx.TryCancel();
    grpc::ByteBuffer buffer;
    call->Read(&buffer, &tags[3]);
    std::unique_ptr<google::protobuf::Message> msg = NewMessage(route.method->output_type());
    for (;;) {
      void* got = nullptr;
      bool read_ok = false;
      auto next =
          cq.AsyncNext(&got, &read_ok, absl::ToChronoTime(absl::Now() + options_.keepalive));
      if (next == grpc::CompletionQueue::SHUTDOWN) break;
      if (next == grpc::CompletionQueue::TIMEOUT) {
        // An idle stream: a comment line keeps proxies open and finds a closed client.
        if (!client_gone && mg_write(conn, ": keepalive\n\n", 13) <= 0) {
          client_gone = true;
          ctx.TryCancel();
        }
        continue;
      }
      if (got != &tags[3]) continue;
      if (!read_ok) break;
      msg->Clear();
      if (!client_gone && msg->ParseFromString(Flatten(buffer))) {
        std::string event;
        if (has_cursor) {
          const auto* f = msg->GetDescriptor()->FindFieldByName("cursor");
          absl::StrAppend(&event, "id: ", msg->GetReflection()->GetUInt64(*msg, f), "\n");
        }
        absl::StrAppend(&event, "event: ", route.method->output_type()->name(),
                        "\ndata: ", ToJson(*msg), "\n\n");
        if (mg_write(conn, event.data(), event.size()) <= 0) {
          client_gone = true;
          ctx.TryCancel();
        }
      }
      call->Read(&buffer, &tags[3]);
    }
    grpc::Status status;
    call->Finish(&status, &tags[4]);
    Await(cq, &tags[4]);
    if (!client_gone) {
      std::string end = absl::StrCat(
          "event: end\ndata: ", ErrorJson(status.error_code(), status.error_message()), "\n\n");
      mg_write(conn, end.data(), end.size());
    }
  } else {
    grpc::Status status;
    call->Finish(&status, &tags[4]);
    Await(cq, &tags[4]);
    code = status.ok() ? 200 : HttpCodeOf(status.error_code());
    ReplyStatus(conn, status.error_code(), status.error_message());
  }
  cq.Shutdown();
  void* tag;
  bool ignored;
  while (cq.Next(&tag, &ignored)) {
  }
  {
    absl::MutexLock lock(&mu_);
    --open_streams_;
    stream_calls_.erase(&ctx);
  }
  return code;
}

}  // namespace pumptwin::server::http
