// The browser side of the HTTP listener: the web app's files (embedded, server/web/) and
// browser sessions (POST/GET/DELETE /session; docs/web.md, docs/security.md).
#include <civetweb.h>

#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "server/http/http_gateway.h"
#include "server/http/http_internal.h"
#include "server/web/web_assets.h"

namespace pumptwin::server::http {
namespace {

void ReplyAsset(mg_connection* conn, const web::WebAsset& asset, bool head_only) {
  std::string head =
      absl::StrCat("HTTP/1.1 200 OK\r\nContent-Type: ",
                   absl::string_view(asset.content_type.data(), asset.content_type.size()),
                   "\r\nContent-Length: ", asset.data.size(),
                   "\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n"
                   "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"
                   "Cross-Origin-Opener-Policy: same-origin\r\nContent-Security-Policy: ",
                   kWebAppCsp, "\r\n\r\n");
  mg_write(conn, head.data(), head.size());
  if (!head_only) mg_write(conn, asset.data.data(), asset.data.size());
}

// Reads the whole body, at most `limit` bytes; false when it is longer.
bool ReadBody(mg_connection* conn, size_t limit, std::string* body) {
  char buf[4096];
  for (;;) {
    int n = mg_read(conn, buf, sizeof buf);
    if (n <= 0) return true;
    body->append(buf, static_cast<size_t>(n));
    if (body->size() > limit) return false;
  }
}

std::string IdentityJson(const Session& s) {
  google::protobuf::Struct out;
  auto& f = *out.mutable_fields();
  f["actor"].set_string_value(s.who.actor);
  f["role"].set_string_value(s.who.role);
  f["clinic"].set_string_value(s.who.clinic);
  f["expiresTimeMs"].set_number_value(static_cast<double>(absl::ToUnixMillis(s.expires)));
  f["csrfToken"].set_string_value(s.csrf);
  return ToJson(out);
}
}  // namespace

std::string HttpGateway::CookieName() const {
  // Over TLS the __Host- prefix: Secure, Path=/, no Domain, so no other host sets it.
  return tls_ ? "__Host-pt_session" : "pt_session";
}

std::string HttpGateway::SessionCookie(const std::string& id, int64_t max_age_s) const {
  return absl::StrCat("Set-Cookie: ", CookieName(), "=", id, "; Path=/; Max-Age=", max_age_s,
                      "; HttpOnly; SameSite=Strict", tls_ ? "; Secure" : "", "\r\n");
}

int HttpGateway::ServeAsset(mg_connection* conn, const std::string& method,
                            const std::string& path) {
  if (method != "GET" && method != "HEAD") {
    ReplyStatus(conn, grpc::StatusCode::UNIMPLEMENTED,
                absl::StrCat(method, " ", path.substr(0, 200), ": the web app's files take GET"),
                "Allow: GET, HEAD\r\n", 405);
    return 405;
  }
  if (path == "/app") {
    Redirect(conn, kAppPrefix);
    return 302;
  }
  std::string name = path.substr(sizeof(kAppPrefix) - 1);
  if (name.empty()) name = "index.html";
  const web::WebAsset* asset = web::FindWebAsset(name);
  if (asset == nullptr) {
    ReplyStatus(conn, grpc::StatusCode::NOT_FOUND,
                absl::StrCat("no file of the web app at ", path.substr(0, 200)));
    return 404;
  }
  ReplyAsset(conn, *asset, method == "HEAD");
  return 200;
}

int HttpGateway::ServeSession(mg_connection* conn, const std::string& method) {
  const char* cookie = mg_get_header(conn, "Cookie");
  std::optional<std::string> id =
      cookie != nullptr ? CookieValue(cookie, CookieName()) : std::nullopt;
  if (method == "GET") {
    std::optional<Session> s = id.has_value() ? sessions_->Use(*id) : std::nullopt;
    if (!s.has_value()) {
      ReplyStatus(conn, grpc::StatusCode::UNAUTHENTICATED, "not logged in",
                  id.has_value() ? SessionCookie("", 0) : "");
      return 401;
    }
    Reply(conn, 200, IdentityJson(*s));
    return 200;
  }
  if (method == "DELETE") {
    std::optional<Session> s = id.has_value() ? sessions_->Use(*id) : std::nullopt;
    if (s.has_value()) {
      const char* csrf = mg_get_header(conn, "X-CSRF-Token");
      if (csrf == nullptr || !SecretEquals(csrf, s->csrf)) {
        ReplyStatus(conn, grpc::StatusCode::PERMISSION_DENIED,
                    "logging out needs the session's X-CSRF-Token header");
        return 403;
      }
      sessions_->End(*id);
    }
    Reply(conn, 200, "{}", SessionCookie("", 0));
    return 200;
  }
  if (method != "POST") {
    ReplyStatus(conn, grpc::StatusCode::UNIMPLEMENTED,
                absl::StrCat(method, " /session: POST logs in, GET tells who, DELETE logs out"),
                "Allow: GET, POST, DELETE\r\n", 405);
    return 405;
  }
  // A login comes from the app's own page: JSON (a cross-site form cannot send it without
  // a CORS preflight, which this server never grants) and, when the browser says where it
  // comes from, from this origin.
  const char* type = mg_get_header(conn, "Content-Type");
  if (type == nullptr || !absl::StartsWithIgnoreCase(type, "application/json")) {
    ReplyStatus(conn, grpc::StatusCode::INVALID_ARGUMENT,
                "a login is a JSON body {\"token\": \"...\"} with Content-Type: application/json",
                "", 415);
    return 415;
  }
  const char* origin = mg_get_header(conn, "Origin");
  const char* host = mg_get_header(conn, "Host");
  if (origin != nullptr &&
      (host == nullptr ||
       std::string(origin) != absl::StrCat(tls_ ? "https://" : "http://", host))) {
    ReplyStatus(conn, grpc::StatusCode::PERMISSION_DENIED,
                absl::StrCat("a login from origin '", std::string(origin).substr(0, 200),
                             "' is refused: log in from this server's own page"));
    return 403;
  }
  std::string body;
  if (!ReadBody(conn, kMaxLoginBodyBytes, &body)) {
    ReplyStatus(conn, grpc::StatusCode::RESOURCE_EXHAUSTED,
                absl::StrCat("a login body holds at most ", kMaxLoginBodyBytes, " bytes"), "", 413);
    return 413;
  }
  google::protobuf::Struct login;
  if (!google::protobuf::util::JsonStringToMessage(body, &login).ok() ||
      !login.fields().contains("token") || !login.fields().at("token").has_string_value() ||
      login.fields().at("token").string_value().empty()) {
    ReplyStatus(conn, grpc::StatusCode::INVALID_ARGUMENT,
                "a login is a JSON body {\"token\": \"...\"} (optionally \"name\" too)");
    return 400;
  }
  if (!options_.identify) {
    ReplyStatus(conn, grpc::StatusCode::UNIMPLEMENTED,
                "this server takes no browser logins; use a bearer token");
    return 501;
  }
  std::string token = login.fields().at("token").string_value();
  absl::StatusOr<SessionIdentity> who = options_.identify(token);
  if (!who.ok()) {
    auto code = static_cast<grpc::StatusCode>(who.status().code());
    // The token check's advice is about gRPC metadata; a person at the login page needs
    // only the reason.
    std::string why(who.status().message());
    if (size_t cut = why.find(": send metadata"); cut != std::string::npos) why.resize(cut);
    ReplyStatus(conn, code, why);
    return HttpCodeOf(code);
  }
  if (login.fields().contains("name") && !login.fields().at("name").string_value().empty() &&
      login.fields().at("name").string_value() != who->actor) {
    ReplyStatus(conn, grpc::StatusCode::UNAUTHENTICATED, "the name and the token do not match");
    return 401;
  }
  std::string new_id = sessions_->Create(std::move(token), *std::move(who));
  std::optional<Session> s = sessions_->Use(new_id);
  if (!s.has_value()) {  // the token expires this instant
    ReplyStatus(conn, grpc::StatusCode::UNAUTHENTICATED, "the token has expired");
    return 401;
  }
  Reply(conn, 200, IdentityJson(*s), SessionCookie(new_id, sessions_->MaxAgeSeconds(*s)));
  return 200;
}

}  // namespace pumptwin::server::http
