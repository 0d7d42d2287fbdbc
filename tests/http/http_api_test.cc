// The HTTP/JSON API against the real pumptwind (loopback, ephemeral ports): every
// TwinService method answers at its route with the gRPC handler's own status (same auth,
// same validation), JSON round trips equal the gRPC answers, the alert event stream resumes
// after Last-Event-ID with no gap and no duplicate across a reconnect, request bodies are
// bounded, the served OpenAPI document is the one checked in as docs/openapi.json, a browser
// session acts as its token and needs its CSRF token for changes, and the web app's files
// are served under a strict CSP.
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "server/http/http_gateway.h"
#include "server/http/http_rules.h"
#include "tests/alerts/alerts_test_util.h"
#include "tests/auth/auth_test_util.h"
#include "tests/support/http_client.h"
#include "tests/support/server_process.h"

namespace pumptwin {
namespace {

using ::testing::HasSubstr;
using testing::HttpCall;
using testing::HttpResponse;
using testing::SseStream;

google::protobuf::Struct ParseJson(const std::string& text) {
  google::protobuf::Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(text, &s).ok()) << text;
  return s;
}

// The gRPC status in an error body, checked against the HTTP code.
struct ApiError {
  int code = -1;
  std::string status;
  std::string message;
};
ApiError ErrorOf(const HttpResponse& r) {
  google::protobuf::Struct s = ParseJson(r.body);
  ApiError e;
  if (s.fields().contains("code")) e.code = static_cast<int>(s.fields().at("code").number_value());
  if (s.fields().contains("status")) e.status = s.fields().at("status").string_value();
  if (s.fields().contains("message")) e.message = s.fields().at("message").string_value();
  EXPECT_EQ(r.status, server::http::HttpCodeOf(static_cast<grpc::StatusCode>(e.code))) << r.body;
  return e;
}

constexpr int kMaxAlertStreams = 3;  // the test server's --watch_alerts_max_subscribers

class HttpApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    struct Want {
      const char* name;
      const char* role;
      const char* args;
    };
    std::string file;
    for (const Want& w : std::vector<Want>{{"admin", "admin", ""},
                                           {"nurse", "clinician", "--clinic north"},
                                           {"viewer", "viewer", "--clinic north"}}) {
      auto t = testing::IssueToken(w.name, w.role, w.args);
      ASSERT_TRUE(t.ok()) << t.status();
      tokens_[w.name] = t->token;
      absl::StrAppend(&file, t->line, "\n");
    }
    ASSERT_TRUE(testing::WriteTextFile(dir_.path() + "/tokens", file).ok());
    server_ = std::make_unique<testing::ServerProcess>(testing::ServerProcessOptions{
        .data_dir = dir_.path() + "/data",
        .extra_args = {"--auth_tokens_file=" + dir_.path() + "/tokens", "--shutdown_grace=1s",
                       absl::StrCat("--watch_alerts_max_subscribers=", kMaxAlertStreams)}});
    ASSERT_TRUE(server_->Start().ok()) << server_->ReadLog();
    ASSERT_GT(server_->http_port(), 0);
    channel_ = grpc::CreateChannel(server_->grpc_target(), grpc::InsecureChannelCredentials());
    stub_ = v1::TwinService::NewStub(channel_);
  }

  std::vector<std::string> As(const std::string& who) {
    return {"Authorization: Bearer " + tokens_.at(who)};
  }
  HttpResponse Call(const std::string& method, const std::string& path, const std::string& who,
                    const std::string& body = "") {
    auto r = HttpCall(server_->http_port(), method, path,
                      who.empty() ? std::vector<std::string>{} : As(who), body);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpResponse{};
  }
  void Register(const std::string& pump, const std::string& clinic) {
    std::string json;
    ASSERT_TRUE(google::protobuf::util::MessageToJsonString(
                    alerts_test::MotorPumpRequest(pump, clinic), &json)
                    .ok());
    HttpResponse r = Call("POST", "/v1/pumps", "admin", json);
    ASSERT_EQ(r.status, 200) << r.body;
  }

  testing::TempDir dir_;
  std::map<std::string, std::string> tokens_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::TwinService::Stub> stub_;
};

TEST_F(HttpApiTest, EveryMethodAnswersAtItsRouteWithTheGrpcStatus) {
  ASSERT_NO_FATAL_FAILURE(Register("PN", "north"));
  auto table = server::http::RouteTable::ForService(
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          v1::TwinService::service_full_name()));
  ASSERT_TRUE(table.ok());
  int reached = 0;
  for (const auto& route : table->routes()) {
    SCOPED_TRACE(route.method->name());
    std::vector<std::string> params;
    std::string path = route.path.OpenApiPath(&params);
    for (const std::string& p : params) {
      path.replace(path.find("{" + p + "}"), p.size() + 2, p == "pump_id" ? "PN" : "motor_stall-1");
    }
    if (route.method->server_streaming()) {
      std::string query = route.method->name() == "WatchTwin" ? "?names=pumps/PN" : "";
      auto s = SseStream::Open(server_->http_port(), path + query, As("admin"), absl::Seconds(20));
      ASSERT_TRUE(s.ok()) << s.status();
      EXPECT_EQ((*s)->status(), 200) << (*s)->error_body();
      EXPECT_EQ((*s)->content_type(), "text/event-stream");
      if (route.method->name() == "WatchTwin") {  // the current twin comes first
        auto first = (*s)->Next(absl::Seconds(20));
        ASSERT_TRUE(first.has_value());
        EXPECT_EQ(first->event, route.method->output_type()->name());
      }
      ++reached;
      continue;
    }
    // Without a token: the gRPC handler's UNAUTHENTICATED, not a route error.
    HttpResponse anon = Call(route.http_method, path, "", route.body.empty() ? "" : "{}");
    EXPECT_EQ(anon.status, 401) << anon.body;
    EXPECT_EQ(ErrorOf(anon).status, "UNAUTHENTICATED");
    // As admin: any answer of the handler (an empty request may be invalid), never "no
    // API method"; errors carry the status the code says.
    HttpResponse r = Call(route.http_method, path, "admin", route.body.empty() ? "" : "{}");
    EXPECT_THAT(r.body, ::testing::Not(HasSubstr("no API method"))) << path;
    if (r.status != 200) (void)ErrorOf(r);
    ++reached;
  }
  EXPECT_EQ(reached, table->routes().size());
  EXPECT_GE(reached, 20);
}

TEST_F(HttpApiTest, StatusesRolesAndClinicScopeAreTheGrpcHandlers) {
  ASSERT_NO_FATAL_FAILURE(Register("PN", "north"));
  ASSERT_NO_FATAL_FAILURE(Register("PS", "south"));
  HttpResponse missing = Call("GET", "/v1/pumps/NOPE", "admin");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(ErrorOf(missing).message, "pump 'NOPE' is not registered");

  HttpResponse viewer_refill = Call("POST", "/v1/pumps/PN/refills", "viewer", "{}");
  EXPECT_EQ(viewer_refill.status, 403);
  EXPECT_THAT(ErrorOf(viewer_refill).message, HasSubstr("requires role clinician"));

  HttpResponse other_clinic = Call("GET", "/v1/pumps/PS/twin", "nurse");
  EXPECT_EQ(other_clinic.status, 403);
  EXPECT_THAT(ErrorOf(other_clinic).message, HasSubstr("clinic 'north'"));

  HttpResponse listed = Call("GET", "/v1/pumps", "nurse");
  ASSERT_EQ(listed.status, 200) << listed.body;
  v1::ListPumpsResponse pumps;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(listed.body, &pumps).ok());
  ASSERT_EQ(pumps.pumps_size(), 1);
  EXPECT_EQ(pumps.pumps(0).pump_id(), "PN");

  HttpResponse bad_json = Call("POST", "/v1/pumps/PN/refills", "nurse", "{\"withdrawnVolumeUl\":");
  EXPECT_EQ(bad_json.status, 400);
  EXPECT_EQ(ErrorOf(bad_json).status, "INVALID_ARGUMENT");

  HttpResponse invalid =
      Call("POST", "/v1/pumps/PN/refills", "nurse", R"({"addedVolumeUl": -5, "drug": "morphine"})");
  EXPECT_EQ(invalid.status, 400);
  EXPECT_EQ(ErrorOf(invalid).status, "INVALID_ARGUMENT");

  HttpResponse unknown_param = Call("GET", "/v1/alerts?severity=high", "nurse");
  EXPECT_EQ(unknown_param.status, 400);
  EXPECT_THAT(ErrorOf(unknown_param).message, HasSubstr("unknown query parameter 'severity'"));

  HttpResponse wrong_method = Call("DELETE", "/v1/pumps/PN", "admin");
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_EQ(wrong_method.headers["allow"], "GET");

  HttpResponse no_route = Call("GET", "/v1/nothing", "admin");
  EXPECT_EQ(no_route.status, 404);
  EXPECT_THAT(ErrorOf(no_route).message, HasSubstr("no API method at GET /v1/nothing"));

  HttpResponse big = Call("POST", "/v1/pumps/PN/refills", "nurse",
                          absl::StrCat("{\"reason\": \"", std::string(2 << 20, 'x'), "\"}"));
  EXPECT_EQ(big.status, 413);  // Payload Too Large, with the gRPC code of a refused size
  EXPECT_THAT(big.body, HasSubstr("\"RESOURCE_EXHAUSTED\""));

  // The security headers are on every answer.
  EXPECT_EQ(missing.headers["x-content-type-options"], "nosniff");
  EXPECT_EQ(missing.headers["cache-control"], "no-store");
  EXPECT_THAT(missing.headers["content-security-policy"], HasSubstr("default-src 'none'"));
}

TEST_F(HttpApiTest, JsonAnswersEqualTheGrpcAnswers) {
  ASSERT_NO_FATAL_FAILURE(Register("PN", "north"));
  for (const char* path : {"/v1/pumps/PN", "/v1/pumps/PN/twin", "/v1/drugs"}) {
    SCOPED_TRACE(path);
    HttpResponse r = Call("GET", path, "admin");
    ASSERT_EQ(r.status, 200) << r.body;
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + tokens_["admin"]);
    std::unique_ptr<google::protobuf::Message> from_http, from_grpc;
    grpc::Status s;
    if (absl::EndsWith(path, "/twin")) {
      v1::GetTwinRequest req;
      req.set_name("pumps/PN");
      auto* out = new v1::TwinState;
      from_grpc.reset(out);
      s = stub_->GetTwin(&ctx, req, out);
      from_http = std::make_unique<v1::TwinState>();
    } else if (absl::EndsWith(path, "/drugs")) {
      auto* out = new v1::ListDrugsResponse;
      from_grpc.reset(out);
      s = stub_->ListDrugs(&ctx, v1::ListDrugsRequest(), out);
      from_http = std::make_unique<v1::ListDrugsResponse>();
    } else {
      v1::GetPumpRequest req;
      req.set_name("pumps/PN");
      auto* out = new v1::Pump;
      from_grpc.reset(out);
      s = stub_->GetPump(&ctx, req, out);
      from_http = std::make_unique<v1::Pump>();
    }
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.body, from_http.get()).ok());
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*from_http, *from_grpc))
        << from_http->DebugString() << "\nvs\n"
        << from_grpc->DebugString();
  }
}

TEST_F(HttpApiTest, AlertStreamResumesAfterLastEventIdWithNoGapAndNoDuplicate) {
  ASSERT_NO_FATAL_FAILURE(Register("PN", "north"));
  // 40 samples: 20 stalls raised and resolved, 40 alert events (and the registration's own).
  ASSERT_NO_FATAL_FAILURE(alerts_test::Feed(server_->grpc_target(), "PN", 1, 40));
  std::vector<uint64_t> ids;
  std::string last;
  {
    auto s =
        SseStream::Open(server_->http_port(), "/v1/alerts:watch", As("viewer"), absl::Seconds(20));
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_EQ((*s)->status(), 200) << (*s)->error_body();
    for (int i = 0; i < 15; ++i) {
      auto e = (*s)->Next(absl::Seconds(20));
      ASSERT_TRUE(e.has_value()) << "event " << i;
      EXPECT_EQ(e->event, "AlertEvent");
      v1::AlertEvent ev;
      ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(e->data, &ev).ok()) << e->data;
      EXPECT_EQ(e->id, absl::StrCat(ev.cursor()));
      ids.push_back(ev.cursor());
      last = e->id;
    }
  }  // the browser goes away mid-stream
  // More alerts while disconnected, then the reconnect a browser makes with Last-Event-ID.
  ASSERT_NO_FATAL_FAILURE(alerts_test::Feed(server_->grpc_target(), "PN", 41, 60));
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + tokens_["admin"]);
  v1::ListAlertsRequest lr;
  lr.set_page_size(1000);
  v1::ListAlertsResponse all;
  ASSERT_TRUE(stub_->ListAlerts(&ctx, lr, &all).ok());
  auto s = SseStream::Open(server_->http_port(), "/v1/alerts:watch",
                           {"Authorization: Bearer " + tokens_["viewer"], "Last-Event-ID: " + last},
                           absl::Seconds(20));
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ((*s)->status(), 200);
  // Every stall raised (1 event) and resolved (1 event): 60 samples give 60 stall events.
  while (ids.size() < 60) {
    auto e = (*s)->Next(absl::Seconds(20));
    if (!e.has_value()) break;
    uint64_t id = 0;
    ASSERT_TRUE(absl::SimpleAtoi(e->id, &id)) << e->id;
    ids.push_back(id);
  }
  for (size_t i = 1; i < ids.size(); ++i) {
    ASSERT_EQ(ids[i], ids[i - 1] + 1) << "gap or duplicate at " << i;
  }
  EXPECT_EQ(ids.front(), 1u);
  EXPECT_GE(ids.size(), 60u);
  EXPECT_GE(all.alerts_size(), 30);  // 30 stalls at least, each an alert
}

TEST_F(HttpApiTest, RefusedStreamAnswersWithTheStatusNotAnEmptyStream) {
  auto s = SseStream::Open(server_->http_port(), "/v1/alerts:watch?clinic=south", As("viewer"),
                           absl::Seconds(20));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->status(), 403);
  EXPECT_THAT((*s)->error_body(), HasSubstr("PERMISSION_DENIED"));
  auto anon =
      SseStream::Open(server_->http_port(), "/v1/twins:watch?names=pumps/X", {}, absl::Seconds(20));
  ASSERT_TRUE(anon.ok());
  EXPECT_EQ((*anon)->status(), 401);
}

// A WatchAlerts stream beyond the server's maximum is an error answer (429 with the status),
// not a 200 event stream that ends at once: a browser's EventSource retries the latter by
// itself, and reported "live" for a stream it did not have.
TEST_F(HttpApiTest, AnAlertStreamBeyondTheMaximumIsRefused429) {
  std::vector<std::unique_ptr<SseStream>> held;
  for (int i = 0; i < kMaxAlertStreams; ++i) {
    auto s =
        SseStream::Open(server_->http_port(), "/v1/alerts:watch", As("viewer"), absl::Seconds(20));
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_EQ((*s)->status(), 200) << i;
    held.push_back(*std::move(s));
  }
  auto refused =
      SseStream::Open(server_->http_port(), "/v1/alerts:watch", As("viewer"), absl::Seconds(20));
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ((*refused)->status(), 429);
  EXPECT_THAT((*refused)->error_body(), HasSubstr("RESOURCE_EXHAUSTED"));
  EXPECT_THAT((*refused)->error_body(), HasSubstr("--watch_alerts_max_subscribers"));
}

TEST_F(HttpApiTest, BrowserSessionActsAsItsTokenAndNeedsCsrfForChanges) {
  ASSERT_NO_FATAL_FAILURE(Register("PN", "north"));
  ASSERT_NO_FATAL_FAILURE(Register("PS", "south"));
  const int port = server_->http_port();
  const std::vector<std::string> json = {"Content-Type: application/json"};
  auto login = HttpCall(port, "POST", "/session", json,
                        absl::StrCat(R"({"token": ")", tokens_["nurse"], R"("})"));
  ASSERT_TRUE(login.ok()) << login.status();
  ASSERT_EQ(login->status, 200) << login->body;
  const std::string cookie = login->headers["set-cookie"];
  EXPECT_THAT(cookie, HasSubstr("; HttpOnly"));
  EXPECT_THAT(cookie, HasSubstr("; SameSite=Strict"));
  EXPECT_THAT(cookie, HasSubstr("; Path=/"));
  EXPECT_THAT(cookie, ::testing::Not(HasSubstr("Secure")));  // plaintext loopback
  ASSERT_TRUE(absl::StartsWith(cookie, "pt_session="));
  const std::string jar = "Cookie: " + cookie.substr(0, cookie.find(';'));
  google::protobuf::Struct who = ParseJson(login->body);
  EXPECT_EQ(who.fields().at("actor").string_value(), "nurse");
  EXPECT_EQ(who.fields().at("clinic").string_value(), "north");
  const std::string csrf = who.fields().at("csrfToken").string_value();
  EXPECT_EQ(csrf.size(), 43u);
  EXPECT_THAT(login->body, ::testing::Not(HasSubstr(tokens_["nurse"])));

  // Reads as the token: its clinic only.
  auto own = HttpCall(port, "GET", "/v1/pumps/PN/twin", {jar});
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(own->status, 200) << own->body;
  auto other = HttpCall(port, "GET", "/v1/pumps/PS/twin", {jar});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->status, 403);
  // Changes: refused without the CSRF token, made (and audited as the token) with it.
  const std::string mri = R"({"type": "CLINICAL_EVENT_MRI", "reason": "session test"})";
  auto no_csrf = HttpCall(port, "POST", "/v1/pumps/PN/events", {jar, json[0]}, mri);
  ASSERT_TRUE(no_csrf.ok());
  EXPECT_EQ(no_csrf->status, 403);
  EXPECT_THAT(no_csrf->body, HasSubstr("X-CSRF-Token"));
  auto with_csrf =
      HttpCall(port, "POST", "/v1/pumps/PN/events", {jar, json[0], "X-CSRF-Token: " + csrf}, mri);
  ASSERT_TRUE(with_csrf.ok());
  EXPECT_NE(with_csrf->status, 403) << with_csrf->body;
  EXPECT_NE(with_csrf->status, 401) << with_csrf->body;

  // Logins: JSON only, own origin only, known tokens only.
  auto form =
      HttpCall(port, "POST", "/session", {"Content-Type: application/x-www-form-urlencoded"},
               "token=" + tokens_["nurse"]);
  ASSERT_TRUE(form.ok());
  EXPECT_EQ(form->status, 415);
  auto foreign = HttpCall(port, "POST", "/session", {json[0], "Origin: http://evil.example"},
                          absl::StrCat(R"({"token": ")", tokens_["nurse"], R"("})"));
  ASSERT_TRUE(foreign.ok());
  EXPECT_EQ(foreign->status, 403);
  auto unknown = HttpCall(port, "POST", "/session", json, R"({"token": "ptw_unknown"})");
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->status, 401);

  // Logout needs the CSRF token, then the cookie is worth nothing.
  auto bare_logout = HttpCall(port, "DELETE", "/session", {jar});
  ASSERT_TRUE(bare_logout.ok());
  EXPECT_EQ(bare_logout->status, 403);
  auto logout = HttpCall(port, "DELETE", "/session", {jar, "X-CSRF-Token: " + csrf});
  ASSERT_TRUE(logout.ok());
  EXPECT_EQ(logout->status, 200);
  EXPECT_THAT(logout->headers["set-cookie"], HasSubstr("Max-Age=0"));
  auto after = HttpCall(port, "GET", "/v1/pumps/PN/twin", {jar});
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->status, 401);
}

TEST_F(HttpApiTest, WebAppIsServedUnderAStrictCsp) {
  auto root = HttpCall(server_->http_port(), "GET", "/");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->status, 302);
  EXPECT_EQ(root->headers["location"], "/app/");
  auto index = HttpCall(server_->http_port(), "GET", "/app/");
  ASSERT_TRUE(index.ok());
  ASSERT_EQ(index->status, 200);
  EXPECT_THAT(index->headers["content-type"], HasSubstr("text/html"));
  EXPECT_EQ(index->headers["content-security-policy"], server::http::kWebAppCsp);
  EXPECT_THAT(index->body, HasSubstr("app.js"));
  for (const char* asset : {"/app/app.js", "/app/vendor/uPlot.iife.min.js", "/app/style.css"}) {
    auto r = HttpCall(server_->http_port(), "GET", asset);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 200) << asset;
    EXPECT_GT(r->body.size(), 100u) << asset;
  }
  auto missing = HttpCall(server_->http_port(), "GET", "/app/nothing.js");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  auto post = HttpCall(server_->http_port(), "POST", "/app/", {}, "x");
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->status, 405);
}

TEST_F(HttpApiTest, ServedOpenApiIsTheCheckedInDocument) {
  HttpResponse r = Call("GET", "/v1/openapi.json", "");
  ASSERT_EQ(r.status, 200);
  auto checked_in = testing::ReadTextFile(PUMPTWIN_SOURCE_DIR "/docs/openapi.json");
  ASSERT_TRUE(checked_in.ok()) << checked_in.status();
  google::protobuf::Struct served = ParseJson(r.body), file = ParseJson(*checked_in);
  // The version differs between builds; the rest is generated from the protos.
  (*served.mutable_fields())["info"].mutable_struct_value()->mutable_fields()->erase("version");
  (*file.mutable_fields())["info"].mutable_struct_value()->mutable_fields()->erase("version");
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(served, file))
      << "docs/openapi.json is not what the protos generate: run\n  build/bin/pumptwind "
         "--print_openapi | python3 -m json.tool --sort-keys > docs/openapi.json";
}

}  // namespace
}  // namespace pumptwin
