#include "server/http/openapi.h"

#include <map>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace pumptwin::server::http {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Struct;
using google::protobuf::Value;

Value Str(const std::string& s) {
  Value v;
  v.set_string_value(s);
  return v;
}
Value Obj(const Struct& s) {
  Value v;
  *v.mutable_struct_value() = s;
  return v;
}
Value Ref(const std::string& full_name) {
  Struct s;
  (*s.mutable_fields())["$ref"] = Str("#/components/schemas/" + full_name);
  return Obj(s);
}

class SchemaBuilder {
 public:
  void AddMessage(const Descriptor* d) {
    if (!seen_.insert(d->full_name()).second) return;
    Struct schema;
    (*schema.mutable_fields())["type"] = Str("object");
    Struct props;
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      (*props.mutable_fields())[f->json_name()] = FieldSchema(f);
    }
    (*schema.mutable_fields())["properties"] = Obj(props);
    schemas_[d->full_name()] = Obj(schema);
  }

  void AddEnum(const EnumDescriptor* e) {
    if (!seen_.insert(e->full_name()).second) return;
    Struct schema;
    (*schema.mutable_fields())["type"] = Str("string");
    Value values;
    for (int i = 0; i < e->value_count(); ++i) {
      *values.mutable_list_value()->add_values() = Str(e->value(i)->name());
    }
    (*schema.mutable_fields())["enum"] = values;
    schemas_[e->full_name()] = Obj(schema);
  }

  Value FieldSchema(const FieldDescriptor* f) {
    if (f->is_map()) {
      Struct s;
      (*s.mutable_fields())["type"] = Str("object");
      (*s.mutable_fields())["additionalProperties"] =
          FieldSchema(f->message_type()->FindFieldByName("value"));
      return Obj(s);
    }
    Value item = ScalarSchema(f);
    if (!f->is_repeated()) return item;
    Struct s;
    (*s.mutable_fields())["type"] = Str("array");
    (*s.mutable_fields())["items"] = item;
    return Obj(s);
  }

  Value ScalarSchema(const FieldDescriptor* f) {
    Struct s;
    auto type = [&](const char* t, const char* format = nullptr) {
      (*s.mutable_fields())["type"] = Str(t);
      if (format != nullptr) (*s.mutable_fields())["format"] = Str(format);
    };
    switch (f->type()) {
      case FieldDescriptor::TYPE_MESSAGE:
      case FieldDescriptor::TYPE_GROUP:
        AddMessage(f->message_type());
        return Ref(f->message_type()->full_name());
      case FieldDescriptor::TYPE_ENUM:
        AddEnum(f->enum_type());
        return Ref(f->enum_type()->full_name());
      case FieldDescriptor::TYPE_BOOL:
        type("boolean");
        break;
      case FieldDescriptor::TYPE_STRING:
        type("string");
        break;
      case FieldDescriptor::TYPE_BYTES:
        type("string", "byte");
        break;
      case FieldDescriptor::TYPE_DOUBLE:
        type("number", "double");
        break;
      case FieldDescriptor::TYPE_FLOAT:
        type("number", "float");
        break;
      case FieldDescriptor::TYPE_INT64:
      case FieldDescriptor::TYPE_SINT64:
      case FieldDescriptor::TYPE_SFIXED64:
        type("string", "int64");  // protobuf's JSON mapping: 64-bit integers are strings
        break;
      case FieldDescriptor::TYPE_UINT64:
      case FieldDescriptor::TYPE_FIXED64:
        type("string", "uint64");
        break;
      case FieldDescriptor::TYPE_UINT32:
      case FieldDescriptor::TYPE_FIXED32:
        type("integer", "int64");
        break;
      default:
        type("integer", "int32");
    }
    return Obj(s);
  }

  Struct Build() const {
    Struct out;
    for (const auto& [name, v] : schemas_) (*out.mutable_fields())[name] = v;
    return out;
  }

 private:
  std::set<std::string> seen_;
  std::map<std::string, Value> schemas_;
};

Value Parameter(const std::string& name, const char* in, bool required, Value schema,
                const std::string& description) {
  Struct p;
  (*p.mutable_fields())["name"] = Str(name);
  (*p.mutable_fields())["in"] = Str(in);
  (*p.mutable_fields())["required"].set_bool_value(required);
  (*p.mutable_fields())["schema"] = std::move(schema);
  if (!description.empty()) (*p.mutable_fields())["description"] = Str(description);
  return Obj(p);
}

Value JsonContent(Value schema, const char* type = "application/json") {
  Struct media;
  (*media.mutable_fields())["schema"] = std::move(schema);
  Struct content;
  (*content.mutable_fields())[type] = Obj(media);
  return Obj(content);
}

}  // namespace

std::string OpenApiDocument(const google::protobuf::ServiceDescriptor* service,
                            const RouteTable& routes, const std::string& version) {
  SchemaBuilder schemas;
  Struct paths;
  for (const Route& r : routes.routes()) {
    const auto* m = r.method;
    schemas.AddMessage(m->input_type());
    schemas.AddMessage(m->output_type());
    std::vector<std::string> path_params;
    std::string path = r.path.OpenApiPath(&path_params);
    Struct op;
    (*op.mutable_fields())["operationId"] = Str(m->name());
    (*op.mutable_fields())["summary"] = Str(absl::StrCat(service->name(), ".", m->name()));
    (*op.mutable_fields())["tags"].mutable_list_value()->add_values()->set_string_value(
        service->name());
    Value params;
    for (const std::string& p : path_params) {
      Struct s;
      (*s.mutable_fields())["type"] = Str("string");
      *params.mutable_list_value()->add_values() = Parameter(
          p, "path", true, Obj(s),
          absl::StrCat("part of the request's `", r.path.variable, "` (", r.path.text, ")"));
    }
    if (r.body.empty()) {
      for (int i = 0; i < m->input_type()->field_count(); ++i) {
        const FieldDescriptor* f = m->input_type()->field(i);
        if (f->name() == r.path.variable) continue;
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) continue;
        *params.mutable_list_value()->add_values() =
            Parameter(f->json_name(), "query", false, schemas.FieldSchema(f), "");
      }
      if (m->server_streaming() && m->output_type()->FindFieldByName("cursor") != nullptr) {
        Struct s;
        (*s.mutable_fields())["type"] = Str("string");
        *params.mutable_list_value()->add_values() =
            Parameter("Last-Event-ID", "header", false, Obj(s),
                      "the last event id received: the stream resumes after it (no gap, no "
                      "duplicate)");
      }
    } else {
      Struct body;
      (*body.mutable_fields())["required"].set_bool_value(true);
      (*body.mutable_fields())["content"] = JsonContent(Ref(m->input_type()->full_name()));
      (*op.mutable_fields())["requestBody"] = Obj(body);
    }
    if (params.list_value().values_size() > 0 || params.has_list_value()) {
      (*op.mutable_fields())["parameters"] = params;
    }
    Struct ok;
    if (m->server_streaming()) {
      Struct s;
      (*s.mutable_fields())["type"] = Str("string");
      (*ok.mutable_fields())["description"] = Str(absl::StrCat(
          "Server-Sent Events: each event's data is a JSON ", m->output_type()->full_name(),
          " (schema below); the stream's end ", "is an `end` event carrying the status"));
      (*ok.mutable_fields())["content"] = JsonContent(Obj(s), "text/event-stream");
    } else {
      (*ok.mutable_fields())["description"] = Str(m->output_type()->name());
      (*ok.mutable_fields())["content"] = JsonContent(Ref(m->output_type()->full_name()));
    }
    Struct error;
    (*error.mutable_fields())["description"] =
        Str("the gRPC status: HTTP code by the standard mapping, the gRPC code, its name and "
            "a message a person can act on");
    (*error.mutable_fields())["content"] = JsonContent(Ref("pumptwin.http.Error"));
    Struct responses;
    (*responses.mutable_fields())["200"] = Obj(ok);
    (*responses.mutable_fields())["default"] = Obj(error);
    (*op.mutable_fields())["responses"] = Obj(responses);

    std::string verb = r.http_method;
    for (char& c : verb) c = static_cast<char>(tolower(c));
    Value& item = (*paths.mutable_fields())[path];
    (*item.mutable_struct_value()->mutable_fields())[verb] = Obj(op);
  }

  Struct components;
  Struct all = schemas.Build();
  {
    Struct err;
    (*err.mutable_fields())["type"] = Str("object");
    Struct props;
    Struct code;
    (*code.mutable_fields())["type"] = Str("integer");
    (*props.mutable_fields())["code"] = Obj(code);
    Struct s;
    (*s.mutable_fields())["type"] = Str("string");
    (*props.mutable_fields())["status"] = Obj(s);
    (*props.mutable_fields())["message"] = Obj(s);
    (*err.mutable_fields())["properties"] = Obj(props);
    (*all.mutable_fields())["pumptwin.http.Error"] = Obj(err);
  }
  (*components.mutable_fields())["schemas"] = Obj(all);
  Struct bearer;
  (*bearer.mutable_fields())["type"] = Str("http");
  (*bearer.mutable_fields())["scheme"] = Str("bearer");
  Struct schemes;
  (*schemes.mutable_fields())["bearer"] = Obj(bearer);
  (*components.mutable_fields())["securitySchemes"] = Obj(schemes);

  Struct info;
  (*info.mutable_fields())["title"] = Str("pumptwin TwinService (HTTP/JSON)");
  (*info.mutable_fields())["version"] = Str(version);
  (*info.mutable_fields())["description"] =
      Str("Generated from proto/pumptwin/v1/twin_service.proto and its google.api.http rules. "
          "Roles and clinic scope: docs/security.md. Decision support for clinicians, not a "
          "medical device.");
  Struct doc;
  (*doc.mutable_fields())["openapi"] = Str("3.0.3");
  (*doc.mutable_fields())["info"] = Obj(info);
  (*doc.mutable_fields())["paths"] = Obj(paths);
  (*doc.mutable_fields())["components"] = Obj(components);
  Struct req;
  (*req.mutable_fields())["bearer"].mutable_list_value();
  (*doc.mutable_fields())["security"]
      .mutable_list_value()
      ->add_values()
      ->mutable_struct_value()
      ->MergeFrom(req);

  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  (void)google::protobuf::util::MessageToJsonString(doc, &out, o);
  return out;
}

}  // namespace pumptwin::server::http
