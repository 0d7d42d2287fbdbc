// Unit tests of the HTTP/JSON routing and transcoding (no server): the path templates of
// google.api.http, the route table of TwinService (every method has a rule, no two routes
// collide), requests built from path, query and body, the gRPC-to-HTTP status mapping, and
// the OpenAPI document's coverage and references.
#include "server/http/http_rules.h"

#include <set>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "server/http/http_gateway.h"
#include "server/http/openapi.h"

namespace pumptwin::server::http {
namespace {

using ::testing::HasSubstr;

const google::protobuf::ServiceDescriptor* Service() {
  return google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
      v1::TwinService::service_full_name());
}

TEST(PathTemplate, MatchesLiteralsVariablesAndVerbs) {
  auto t = PathTemplate::Parse("/v1/{name=pumps/*/alerts/*}:acknowledge");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->variable, "name");
  EXPECT_EQ(t->verb, "acknowledge");
  EXPECT_EQ(t->Match("/v1/pumps/P-1/alerts/motor_stall-7:acknowledge"),
            "pumps/P-1/alerts/motor_stall-7");
  EXPECT_EQ(t->Match("/v1/pumps/P-1/alerts/motor_stall-7"), std::nullopt);  // no verb
  EXPECT_EQ(t->Match("/v1/pumps/P-1/alarms/x:acknowledge"), std::nullopt);  // literal
  EXPECT_EQ(t->Match("/v1/pumps//alerts/x:acknowledge"), std::nullopt);     // empty segment
  EXPECT_EQ(t->Match("/v1/pumps/P-1/alerts/x/y:acknowledge"), std::nullopt);
  std::vector<std::string> params;
  EXPECT_EQ(t->OpenApiPath(&params), "/v1/pumps/{pump_id}/alerts/{alert_id}:acknowledge");
  EXPECT_THAT(params, ::testing::ElementsAre("pump_id", "alert_id"));
  EXPECT_EQ(t->VariableFrom({"P9", "a-1"}), "pumps/P9/alerts/a-1");

  auto plain = PathTemplate::Parse("/v1/alerts:watch");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->Match("/v1/alerts:watch"), "");
  EXPECT_EQ(plain->Match("/v1/alerts"), std::nullopt);

  for (const char* bad : {"v1/x", "/v1/{a=*}/{b=*}", "/v1/{name=**}", "/v1/*/x", "/v1/{x"}) {
    EXPECT_FALSE(PathTemplate::Parse(bad).ok()) << bad;
  }
}

TEST(RouteTable, EveryTwinServiceMethodHasOneRouteAndRoutesDoNotCollide) {
  auto table = RouteTable::ForService(Service());
  ASSERT_TRUE(table.ok()) << table.status();
  std::set<std::string> methods;
  for (const Route& r : table->routes()) methods.insert(r.method->name());
  for (int i = 0; i < Service()->method_count(); ++i) {
    EXPECT_TRUE(methods.contains(Service()->method(i)->name()))
        << Service()->method(i)->name() << " has no google.api.http rule";
  }
  // A request to each route's own path reaches that route and no other.
  for (const Route& r : table->routes()) {
    std::vector<std::string> params;
    std::string path = r.path.OpenApiPath(&params);
    for (const std::string& p : params) {
      path.replace(path.find("{" + p + "}"), p.size() + 2, "X" + p);
    }
    auto m = table->Find(r.http_method, path);
    ASSERT_TRUE(m.has_value()) << path;
    EXPECT_EQ(m->route, &r) << path << " reached " << m->route->method->name();
  }
  std::vector<std::string> allowed;
  EXPECT_FALSE(table->Find("DELETE", "/v1/pumps/P1", &allowed).has_value());
  EXPECT_THAT(allowed, ::testing::ElementsAre("GET"));
  allowed.clear();
  EXPECT_FALSE(table->Find("GET", "/v2/pumps", &allowed).has_value());
  EXPECT_TRUE(allowed.empty());
}

TEST(BuildRequest, PathQueryAndBodyBecomeTheRequest) {
  auto table = RouteTable::ForService(Service());
  ASSERT_TRUE(table.ok());
  auto list = table->Find("GET", "/v1/pumps");
  ASSERT_TRUE(list.has_value());
  auto q = ParseQuery("clinic=north%20wing&pageSize=5&alerting_only=true&order=PUMP_ORDER_URGENCY");
  ASSERT_TRUE(q.ok());
  v1::ListPumpsRequest lr;
  ASSERT_TRUE(BuildRequest(*list->route, "", *q, "", &lr).ok());
  EXPECT_EQ(lr.clinic(), "north wing");
  EXPECT_EQ(lr.page_size(), 5);
  EXPECT_TRUE(lr.alerting_only());
  EXPECT_EQ(lr.order(), v1::PUMP_ORDER_URGENCY);

  auto refill = table->Find("POST", "/v1/pumps/P1/refills");
  ASSERT_TRUE(refill.has_value());
  v1::RecordRefillRequest rr;
  ASSERT_TRUE(BuildRequest(*refill->route, refill->variable_value, {},
                           R"({"name": "pumps/ignored", "reason": "refill"})", &rr)
                  .ok());
  EXPECT_EQ(rr.name(), "pumps/P1");  // the path wins over the body
  EXPECT_EQ(rr.reason(), "refill");

  auto watch = table->Find("GET", "/v1/twins:watch");
  ASSERT_TRUE(watch.has_value());
  v1::WatchTwinRequest wr;
  auto wq = ParseQuery("names=pumps/A&names=pumps/B");
  ASSERT_TRUE(BuildRequest(*watch->route, "", *wq, "", &wr).ok());
  EXPECT_THAT(wr.names(), ::testing::ElementsAre("pumps/A", "pumps/B"));

  struct Bad {
    const char* query;
    const char* body;
    bool post;
    const char* error;
  } bad[] = {
      {"bogus=1", "", false, "unknown query parameter 'bogus'"},
      {"pageSize=5&pageSize=6", "", false, "given twice"},
      {"pageSize=many", "", false, "query parameters:"},
      {"alertingOnly=maybe", "", false, "must be true or false"},
      {"", "{}", false, "takes no body"},
      {"", "{not json", true, "request body is not a JSON RecordRefillRequest"},
      {"", R"({"unknownField": 1})", true, "request body is not a JSON"},
      {"reason=x", "", true, "takes its fields in the JSON body"},
  };
  for (const Bad& b : bad) {
    auto bq = ParseQuery(b.query);
    ASSERT_TRUE(bq.ok());
    absl::Status s;
    if (b.post) {
      v1::RecordRefillRequest r;
      s = BuildRequest(*refill->route, "pumps/P1", *bq, b.body, &r);
    } else {
      v1::ListPumpsRequest r;
      s = BuildRequest(*list->route, "", *bq, b.body, &r);
    }
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << b.query << b.body;
    EXPECT_THAT(s.message(), HasSubstr(b.error)) << b.query << b.body;
  }
  EXPECT_FALSE(ParseQuery("a=%zz").ok());
  EXPECT_FALSE(ParseQuery("a=%4").ok());
}

TEST(StatusMapping, GrpcCodesMapToTheStandardHttpCodes) {
  EXPECT_EQ(HttpCodeOf(grpc::StatusCode::OK), 200);
  EXPECT_EQ(HttpCodeOf(grpc::StatusCode::INVALID_ARGUMENT), 400);
  EXPECT_EQ(HttpCodeOf(grpc::StatusCode::FAILED_PRECONDITION), 400);
  EXPECT_EQ(HttpCodeOf(grpc::StatusCode::UNAUTHENTICATED), 401);
  EXPECT_EQ(HttpCodeOf(grpc::StatusCode::PERMISSION_DENIED), 403);
  EXPECT_EQ(HttpCodeOf(grpc::StatusCode::NOT_FOUND), 404);
  EXPECT_EQ(HttpCodeOf(grpc::StatusCode::ALREADY_EXISTS), 409);
  EXPECT_EQ(HttpCodeOf(grpc::StatusCode::ABORTED), 409);
  EXPECT_EQ(HttpCodeOf(grpc::StatusCode::RESOURCE_EXHAUSTED), 429);
  EXPECT_EQ(HttpCodeOf(grpc::StatusCode::UNIMPLEMENTED), 501);
  EXPECT_EQ(HttpCodeOf(grpc::StatusCode::UNAVAILABLE), 503);
  EXPECT_EQ(HttpCodeOf(grpc::StatusCode::DEADLINE_EXCEEDED), 504);
  EXPECT_EQ(HttpCodeOf(grpc::StatusCode::DATA_LOSS), 500);
  google::protobuf::Struct e;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  ErrorJson(grpc::StatusCode::NOT_FOUND, "pump 'X' \"quoted\""), &e)
                  .ok());
  EXPECT_EQ(e.fields().at("code").number_value(), 5);
  EXPECT_EQ(e.fields().at("status").string_value(), "NOT_FOUND");
  EXPECT_EQ(e.fields().at("message").string_value(), "pump 'X' \"quoted\"");
}

// Every "$ref" in `v` names a schema of `schemas`.
void ExpectRefsResolve(const google::protobuf::Value& v, const google::protobuf::Struct& schemas,
                       int* refs) {
  if (v.has_struct_value()) {
    for (const auto& [k, child] : v.struct_value().fields()) {
      if (k == "$ref") {
        ++*refs;
        std::string name = child.string_value();
        ASSERT_TRUE(absl::StartsWith(name, "#/components/schemas/")) << name;
        EXPECT_TRUE(schemas.fields().contains(name.substr(21))) << name;
      } else {
        ExpectRefsResolve(child, schemas, refs);
      }
    }
  } else if (v.has_list_value()) {
    for (const auto& child : v.list_value().values()) ExpectRefsResolve(child, schemas, refs);
  }
}

TEST(OpenApi, EveryMethodIsAnOperationAndEveryReferenceResolves) {
  auto doc_text = HttpGateway::OpenApi("test");
  ASSERT_TRUE(doc_text.ok()) << doc_text.status();
  google::protobuf::Struct doc;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*doc_text, &doc).ok());
  EXPECT_EQ(doc.fields().at("openapi").string_value(), "3.0.3");
  std::set<std::string> operations;
  for (const auto& [path, item] : doc.fields().at("paths").struct_value().fields()) {
    for (const auto& [verb, op] : item.struct_value().fields()) {
      operations.insert(op.struct_value().fields().at("operationId").string_value());
      // Every {param} of the path is declared as a path parameter.
      size_t open = 0;
      while ((open = path.find('{', open)) != std::string::npos) {
        std::string name = path.substr(open + 1, path.find('}', open) - open - 1);
        bool declared = false;
        for (const auto& p : op.struct_value().fields().at("parameters").list_value().values()) {
          declared |= p.struct_value().fields().at("name").string_value() == name &&
                      p.struct_value().fields().at("in").string_value() == "path";
        }
        EXPECT_TRUE(declared) << verb << " " << path << ": {" << name << "}";
        ++open;
      }
    }
  }
  for (int i = 0; i < Service()->method_count(); ++i) {
    EXPECT_TRUE(operations.contains(Service()->method(i)->name())) << Service()->method(i)->name();
  }
  const auto& schemas =
      doc.fields().at("components").struct_value().fields().at("schemas").struct_value();
  EXPECT_TRUE(schemas.fields().contains("pumptwin.v1.Pump"));
  EXPECT_TRUE(schemas.fields().contains("pumptwin.v1.AlertEvent"));
  int refs = 0;
  ExpectRefsResolve(doc.fields().at("paths"), schemas, &refs);
  google::protobuf::Value all;
  *all.mutable_struct_value() = schemas;
  ExpectRefsResolve(all, schemas, &refs);
  EXPECT_GT(refs, 40);
}

}  // namespace
}  // namespace pumptwin::server::http
