// Pieces the HTTP listener's files share (http_gateway.cc: routing, transcoding, streams;
// http_gateway_web.cc: the web app's files and browser sessions): the paths, the headers of
// every answer, writing an answer. Not part of the listener's API.
#ifndef PUMPTWIN_SERVER_HTTP_HTTP_INTERNAL_H_
#define PUMPTWIN_SERVER_HTTP_HTTP_INTERNAL_H_

#include <civetweb.h>

#include <cstddef>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/support/status.h"
#include "server/http/http_gateway.h"

namespace pumptwin::server::http {

constexpr char kOpenApiPath[] = "/v1/openapi.json";
constexpr char kSessionPath[] = "/session";
constexpr char kAppPrefix[] = "/app/";
constexpr size_t kMaxLoginBodyBytes = 8192;

// Headers on every answer: nothing cached, no sniffing, no framing, no referrer; the API
// serves JSON only, so its CSP allows nothing.
constexpr char kCommonHeaders[] =
    "Cache-Control: no-store\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "X-Frame-Options: DENY\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n";

inline void Reply(mg_connection* conn, int code, const std::string& body,
                  const std::string& extra_headers = "",
                  const char* content_type = "application/json") {
  std::string head =
      absl::StrCat("HTTP/1.1 ", code, " ", mg_get_response_code_text(conn, code),
                   "\r\nContent-Type: ", content_type, "\r\nContent-Length: ", body.size(), "\r\n",
                   kCommonHeaders, extra_headers, "\r\n");
  mg_write(conn, head.data(), head.size());
  mg_write(conn, body.data(), body.size());
}

inline void ReplyStatus(mg_connection* conn, grpc::StatusCode code, const std::string& message,
                        const std::string& extra_headers = "", int http_code = 0) {
  Reply(conn, http_code != 0 ? http_code : HttpCodeOf(code), ErrorJson(code, message),
        extra_headers);
}

inline std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out);
  return out;
}

inline void Redirect(mg_connection* conn, const char* location) {
  Reply(conn, 302, "", absl::StrCat("Location: ", location, "\r\n"), "text/plain");
}

}  // namespace pumptwin::server::http

#endif  // PUMPTWIN_SERVER_HTTP_HTTP_INTERNAL_H_
