// The HTTP/JSON routes of TwinService, read from the google.api.http rules of the service
// descriptor (AIP-127, the mapping grpc-gateway and Envoy use): path templates such as
// "/v1/{name=pumps/*}:decommission" matched against request paths, the bound variables,
// and the transcoding of a request (path variables, query parameters, JSON body) into the
// method's request message with protobuf's JSON mapping. Supported template syntax: literal
// segments, '*' inside a variable, one variable per template, a trailing ":verb". Pure
// functions and immutable tables: thread-safe after construction.
#ifndef PUMPTWIN_SERVER_HTTP_HTTP_RULES_H_
#define PUMPTWIN_SERVER_HTTP_HTTP_RULES_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace pumptwin::server::http {

// One segment of a template: a literal, or '*' (one segment of a variable's value).
struct TemplateSegment {
  std::string literal;  // empty: '*'
  bool in_variable = false;
};

struct PathTemplate {
  std::string text;                       // as written in the rule
  std::vector<TemplateSegment> segments;  // after the leading '/'
  std::string variable;                   // field bound by the variable; empty: none
  std::string verb;                       // custom verb after ':'; empty: none

  // Parses "/v1/{name=pumps/*}/twin:verb". INVALID_ARGUMENT for syntax outside the subset.
  static absl::StatusOr<PathTemplate> Parse(absl::string_view text);
  // The variable's value when `path` matches, nullopt otherwise ("" when no variable).
  std::optional<std::string> Match(absl::string_view path) const;
  // The OpenAPI form: "/v1/pumps/{pump_id}/twin:verb" (one parameter per '*', named after
  // the literal before it, singular, + "_id"), and those parameter names.
  std::string OpenApiPath(std::vector<std::string>* params) const;
  // The variable's value from OpenAPI parameter values (same order as OpenApiPath).
  std::string VariableFrom(const std::vector<std::string>& values) const;
};

struct Route {
  std::string http_method;  // "GET", "POST", ...
  PathTemplate path;
  std::string body;  // "*": the whole request message is the JSON body; "": none
  const google::protobuf::MethodDescriptor* method = nullptr;
};

class RouteTable {
 public:
  // The routes of every method of `service` that has a google.api.http rule.
  // INVALID_ARGUMENT when a rule cannot be parsed.
  static absl::StatusOr<RouteTable> ForService(const google::protobuf::ServiceDescriptor* service);

  struct Match {
    const Route* route = nullptr;
    std::string variable_value;
  };
  // The route for (method, path), or nullopt; then `allowed` (when given) lists the HTTP
  // methods that the path has routes for (empty: no route at all).
  std::optional<Match> Find(absl::string_view http_method, absl::string_view path,
                            std::vector<std::string>* allowed = nullptr) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

// Builds the request message of `route` from the matched variable, the query parameters
// (field names in JSON (lowerCamelCase) or proto form; repeated fields repeat the
// parameter) and the JSON body. INVALID_ARGUMENT naming the parameter or the JSON error.
absl::Status BuildRequest(const Route& route, const std::string& variable_value,
                          const std::multimap<std::string, std::string>& query,
                          absl::string_view body, google::protobuf::Message* request);

// Decodes an application/x-www-form-urlencoded query string. INVALID_ARGUMENT on a bad
// percent escape.
absl::StatusOr<std::multimap<std::string, std::string>> ParseQuery(absl::string_view query);

}  // namespace pumptwin::server::http

#endif  // PUMPTWIN_SERVER_HTTP_HTTP_RULES_H_
