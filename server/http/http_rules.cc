#include "server/http/http_rules.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/api/annotations.pb.h"
#include "google/protobuf/util/json_util.h"

namespace pumptwin::server::http {
namespace {

using google::protobuf::FieldDescriptor;

// Splits "a/b/c:verb" into segments and the verb (a ':' in the last segment only).
std::pair<std::vector<std::string>, std::string> SplitPath(absl::string_view path) {
  std::string verb;
  size_t last_slash = path.rfind('/');
  size_t colon = path.find(':', last_slash == absl::string_view::npos ? 0 : last_slash);
  if (colon != absl::string_view::npos) {
    verb = std::string(path.substr(colon + 1));
    path = path.substr(0, colon);
  }
  std::vector<std::string> segs = absl::StrSplit(path, '/');
  return {segs, verb};
}

// "pumps" -> "pump_id", "auditRecords" -> "auditRecord_id".
std::string ParamName(absl::string_view literal) {
  absl::string_view s = literal;
  if (absl::EndsWith(s, "s") && s.size() > 1) s.remove_suffix(1);
  return absl::StrCat(s, "_id");
}

// The JSON value of query parameter `value` for `field`: booleans bare, everything else
// quoted (protobuf's JSON parser takes quoted numbers for every numeric type).
absl::StatusOr<std::string> JsonValue(const FieldDescriptor* field, const std::string& key,
                                      const std::string& value) {
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_BOOL:
      if (value == "true" || value == "1" || value.empty()) return std::string("true");
      if (value == "false" || value == "0") return std::string("false");
      return absl::InvalidArgumentError(
          absl::StrCat("query parameter ", key, "=", value, " must be true or false"));
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return absl::InvalidArgumentError(absl::StrCat(
          "query parameter ", key, " is a message field: send it in a JSON body (POST)"));
    default: {
      // A JSON string literal of `value`.
      std::string quoted;
      quoted.reserve(value.size() + 2);
      quoted.push_back('"');
      for (char c : value) {
        switch (c) {
          case '"':
            quoted += "\\\"";
            break;
          case '\\':
            quoted += "\\\\";
            break;
          default:
            if (static_cast<unsigned char>(c) < 0x20) {
              absl::StrAppend(&quoted, "\\u00",
                              absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
            } else {
              quoted.push_back(c);
            }
        }
      }
      quoted.push_back('"');
      return quoted;
    }
  }
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

absl::StatusOr<std::string> Unescape(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      int hi = i + 1 < in.size() ? HexDigit(in[i + 1]) : -1;
      int lo = i + 2 < in.size() ? HexDigit(in[i + 2]) : -1;
      if (hi < 0 || lo < 0)
        return absl::InvalidArgumentError("bad percent escape in the query string");
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<PathTemplate> PathTemplate::Parse(absl::string_view text) {
  PathTemplate t;
  t.text = std::string(text);
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("HTTP rule path '", text, "': ", why));
  };
  if (!absl::ConsumePrefix(&text, "/")) return bad("must start with '/'");
  // The verb: after the last ':' that follows the last '}' and the last '/'.
  size_t brace = text.rfind('}');
  size_t colon = text.rfind(':');
  if (colon != absl::string_view::npos && (brace == absl::string_view::npos || colon > brace) &&
      colon > text.rfind('/')) {
    t.verb = std::string(text.substr(colon + 1));
    text = text.substr(0, colon);
  }
  while (!text.empty()) {
    if (absl::ConsumePrefix(&text, "{")) {
      if (!t.variable.empty()) return bad("more than one variable");
      size_t close = text.find('}');
      if (close == absl::string_view::npos) return bad("unclosed '{'");
      absl::string_view var = text.substr(0, close);
      text.remove_prefix(close + 1);
      absl::ConsumePrefix(&text, "/");
      std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(var, '=');
      t.variable = std::string(kv.first);
      absl::string_view pattern = kv.second.empty() ? "*" : kv.second;
      for (absl::string_view seg : absl::StrSplit(pattern, '/')) {
        if (seg == "**") return bad("'**' is not supported");
        t.segments.push_back({seg == "*" ? "" : std::string(seg), true});
      }
      continue;
    }
    size_t slash = text.find('/');
    absl::string_view seg = text.substr(0, slash);
    if (seg.empty() || seg == "*" || absl::StrContains(seg, "{")) {
      return bad("empty or wildcard segment outside a variable");
    }
    t.segments.push_back({std::string(seg), false});
    text = slash == absl::string_view::npos ? absl::string_view() : text.substr(slash + 1);
  }
  return t;
}

std::optional<std::string> PathTemplate::Match(absl::string_view path) const {
  if (!absl::ConsumePrefix(&path, "/")) return std::nullopt;
  auto [segs, verb] = SplitPath(path);
  if (verb != this->verb || segs.size() != segments.size()) return std::nullopt;
  std::vector<absl::string_view> value;
  for (size_t i = 0; i < segs.size(); ++i) {
    const TemplateSegment& t = segments[i];
    if (segs[i].empty()) return std::nullopt;
    if (!t.literal.empty() && segs[i] != t.literal) return std::nullopt;
    if (t.in_variable) value.push_back(segs[i]);
  }
  return absl::StrJoin(value, "/");
}

std::string PathTemplate::OpenApiPath(std::vector<std::string>* params) const {
  std::string out;
  std::string previous;
  for (const TemplateSegment& s : segments) {
    if (s.literal.empty()) {
      std::string name = ParamName(previous);
      params->push_back(name);
      absl::StrAppend(&out, "/{", name, "}");
    } else {
      absl::StrAppend(&out, "/", s.literal);
      previous = s.literal;
    }
  }
  if (!verb.empty()) absl::StrAppend(&out, ":", verb);
  return out;
}

std::string PathTemplate::VariableFrom(const std::vector<std::string>& values) const {
  std::vector<std::string> parts;
  size_t next = 0;
  for (const TemplateSegment& s : segments) {
    if (!s.in_variable) continue;
    parts.push_back(s.literal.empty() ? (next < values.size() ? values[next++] : "") : s.literal);
  }
  return absl::StrJoin(parts, "/");
}

absl::StatusOr<RouteTable> RouteTable::ForService(
    const google::protobuf::ServiceDescriptor* service) {
  RouteTable table;
  for (int i = 0; i < service->method_count(); ++i) {
    const auto* m = service->method(i);
    if (!m->options().HasExtension(google::api::http)) continue;
    const google::api::HttpRule& rule = m->options().GetExtension(google::api::http);
    Route r;
    r.method = m;
    r.body = rule.body();
    std::string path;
    switch (rule.pattern_case()) {
      case google::api::HttpRule::kGet:
        r.http_method = "GET";
        path = rule.get();
        break;
      case google::api::HttpRule::kPost:
        r.http_method = "POST";
        path = rule.post();
        break;
      case google::api::HttpRule::kPut:
        r.http_method = "PUT";
        path = rule.put();
        break;
      case google::api::HttpRule::kPatch:
        r.http_method = "PATCH";
        path = rule.patch();
        break;
      case google::api::HttpRule::kDelete:
        r.http_method = "DELETE";
        path = rule.delete_();
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat(m->full_name(), ": HTTP rule without a supported pattern"));
    }
    if (!r.body.empty() && r.body != "*") {
      return absl::InvalidArgumentError(
          absl::StrCat(m->full_name(), ": only body \"*\" or none is supported"));
    }
    auto t = PathTemplate::Parse(path);
    if (!t.ok()) return t.status();
    if (!t->variable.empty() && m->input_type()->FindFieldByName(t->variable) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(m->full_name(), ": path variable '",
                                                     t->variable, "' is not a request field"));
    }
    r.path = *std::move(t);
    table.routes_.push_back(std::move(r));
  }
  return table;
}

std::optional<RouteTable::Match> RouteTable::Find(absl::string_view http_method,
                                                  absl::string_view path,
                                                  std::vector<std::string>* allowed) const {
  for (const Route& r : routes_) {
    std::optional<std::string> value = r.path.Match(path);
    if (!value.has_value()) continue;
    if (r.http_method == http_method) return Match{&r, *std::move(value)};
    if (allowed != nullptr) allowed->push_back(r.http_method);
  }
  return std::nullopt;
}

absl::StatusOr<std::multimap<std::string, std::string>> ParseQuery(absl::string_view query) {
  std::multimap<std::string, std::string> out;
  for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    auto k = Unescape(kv.first);
    if (!k.ok()) return k.status();
    auto v = Unescape(kv.second);
    if (!v.ok()) return v.status();
    out.emplace(*std::move(k), *std::move(v));
  }
  return out;
}

absl::Status BuildRequest(const Route& route, const std::string& variable_value,
                          const std::multimap<std::string, std::string>& query,
                          absl::string_view body, google::protobuf::Message* request) {
  google::protobuf::util::JsonParseOptions strict;
  strict.ignore_unknown_fields = false;
  const auto* d = request->GetDescriptor();
  if (route.body == "*") {
    absl::string_view trimmed = absl::StripAsciiWhitespace(body);
    if (!trimmed.empty()) {
      auto s = google::protobuf::util::JsonStringToMessage(std::string(trimmed), request, strict);
      if (!s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("request body is not a JSON ", d->name(), ": ", std::string(s.message())));
      }
    }
  } else if (!absl::StripAsciiWhitespace(body).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(route.http_method, " ", route.path.text,
                                                   " takes no body; use query parameters"));
  }
  if (!query.empty()) {
    // Query parameters become one JSON object merged into the request.
    std::map<std::string, std::vector<std::string>> fields;
    std::map<std::string, const FieldDescriptor*> descriptors;
    for (const auto& [key, value] : query) {
      const FieldDescriptor* f = d->FindFieldByName(key);
      for (int i = 0; f == nullptr && i < d->field_count(); ++i) {
        if (d->field(i)->json_name() == key) f = d->field(i);
      }
      if (f == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown query parameter '", key.substr(0, 64), "' for ", d->name()));
      }
      if (route.body == "*") {
        return absl::InvalidArgumentError(
            absl::StrCat("query parameter '", key, "': ", route.http_method, " ", route.path.text,
                         " takes its fields in the JSON body"));
      }
      auto json = JsonValue(f, key, value);
      if (!json.ok()) return json.status();
      if (!f->is_repeated() && !fields[f->json_name()].empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("query parameter '", key, "' given twice; it is not a list"));
      }
      fields[f->json_name()].push_back(*std::move(json));
      descriptors[f->json_name()] = f;
    }
    std::vector<std::string> members;
    for (const auto& [name, values] : fields) {
      const bool repeated = descriptors[name]->is_repeated();
      members.push_back(absl::StrCat("\"", name, "\":", repeated ? "[" : "",
                                     absl::StrJoin(values, ","), repeated ? "]" : ""));
    }
    std::unique_ptr<google::protobuf::Message> part(request->New());
    auto s = google::protobuf::util::JsonStringToMessage(
        absl::StrCat("{", absl::StrJoin(members, ","), "}"), part.get(), strict);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("query parameters: ", std::string(s.message())));
    }
    request->MergeFrom(*part);
  }
  if (!route.path.variable.empty()) {
    const FieldDescriptor* f = d->FindFieldByName(route.path.variable);
    request->GetReflection()->SetString(request, f, variable_value);
  }
  return absl::OkStatus();
}

}  // namespace pumptwin::server::http
