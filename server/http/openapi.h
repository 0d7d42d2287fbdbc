// The OpenAPI 3.0 document of the HTTP/JSON API, generated from the service descriptor and
// its google.api.http rules (RouteTable): one operation per method, path and query
// parameters, the JSON body, response schemas (server-streaming methods: Server-Sent
// Events), and one schema per message and enum reachable from the service, with protobuf's
// JSON names and types (64-bit integers as strings). Deterministic output (sorted keys).
#ifndef PUMPTWIN_SERVER_HTTP_OPENAPI_H_
#define PUMPTWIN_SERVER_HTTP_OPENAPI_H_

#include <string>

#include "google/protobuf/descriptor.h"
#include "server/http/http_rules.h"

namespace pumptwin::server::http {

std::string OpenApiDocument(const google::protobuf::ServiceDescriptor* service,
                            const RouteTable& routes, const std::string& version);

// The role comment of each method is not in the descriptor: the document states the role
// rule once (docs/security.md) and each operation's summary names the method.

}  // namespace pumptwin::server::http

#endif  // PUMPTWIN_SERVER_HTTP_OPENAPI_H_
