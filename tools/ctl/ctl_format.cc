#include "tools/ctl/ctl_format.h"

#include <algorithm>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"

namespace pumptwin::ctl {

Table::Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> width(columns_.size());
  for (size_t c = 0; c < columns_.size(); ++c) {
    width[c] = columns_[c].header.size();
    for (const auto& row : rows_) width[c] = std::max(width[c], row[c].size());
  }
  auto print_row = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t c = 0; c < cells.size(); ++c) {
      const size_t pad = width[c] - cells[c].size();
      if (c > 0) line += "  ";
      if (columns_[c].right_aligned) {
        line.append(pad, ' ');
        line += cells[c];
      } else {
        line += cells[c];
        if (c + 1 < cells.size()) line.append(pad, ' ');
      }
    }
    // No trailing blanks: a left-aligned last column is not padded; strip the rest.
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << '\n';
  };
  std::vector<std::string> headers;
  for (const auto& c : columns_) headers.push_back(c.header);
  print_row(headers);
  for (const auto& row : rows_) print_row(row);
}

std::string Table::ToString() const {
  std::ostringstream s;
  Print(s);
  return s.str();
}

void PrintFields(std::ostream& out, const Fields& fields) {
  size_t width = 0;
  for (const auto& [label, value] : fields) width = std::max(width, label.size() + 1);
  for (const auto& [label, value] : fields) {
    out << label << ':' << std::string(width - label.size() - 1 + 2, ' ')
        << (value.empty() ? "-" : value) << '\n';
  }
}

std::string FormatTimeMs(int64_t ms) {
  if (ms == 0) return "-";
  const absl::Time t = absl::FromUnixMillis(ms);
  const char* format = ms % 1000 == 0 ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%dT%H:%M:%E3SZ";
  return absl::FormatTime(format, t, absl::UTCTimeZone());
}

std::string FormatDurationMs(int64_t ms) {
  if (ms == 0) return "-";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  const int64_t day = 86400000, hour = 3600000, minute = 60000;
  if (ms >= day) absl::StrAppend(&out, ms / day, "d");
  ms %= day;
  if (ms >= hour) absl::StrAppend(&out, ms / hour, "h");
  ms %= hour;
  if (ms >= minute) absl::StrAppend(&out, ms / minute, "m");
  ms %= minute;
  if (ms > 0) absl::StrAppend(&out, FormatNumber(static_cast<double>(ms) / 1000.0, 3), "s");
  return out;
}

std::string FormatNumber(double value, int max_decimals) {
  std::string s = absl::StrFormat("%.*f", max_decimals, value);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

std::string UlAsMl(double ul) { return FormatNumber(ul / 1000.0, 3); }
std::string UlPerDayAsMlPerDay(double ul_per_day) { return FormatNumber(ul_per_day / 1000.0, 4); }
std::string UgAsMg(double ug) { return FormatNumber(ug / 1000.0, 4); }
std::string UgPerMlAsMgPerMl(double ug_per_ml) { return FormatNumber(ug_per_ml / 1000.0, 4); }

std::string EnumShortName(const google::protobuf::EnumDescriptor* type, int value,
                          absl::string_view prefix) {
  const google::protobuf::EnumValueDescriptor* v = type->FindValueByNumber(value);
  if (v == nullptr) return absl::StrCat(value);
  absl::string_view name = v->name();
  absl::ConsumePrefix(&name, prefix);
  return absl::StrReplaceAll(absl::AsciiStrToLower(name), {{"_", "-"}});
}

absl::StatusOr<int> ParseEnumShortName(const google::protobuf::EnumDescriptor* type,
                                       absl::string_view prefix, absl::string_view text) {
  const std::string wanted = absl::StrReplaceAll(absl::AsciiStrToLower(text), {{"_", "-"}});
  for (int i = 0; i < type->value_count(); ++i) {
    const google::protobuf::EnumValueDescriptor* v = type->value(i);
    if (v->number() == 0) continue;
    const std::string full = absl::StrReplaceAll(absl::AsciiStrToLower(v->name()), {{"_", "-"}});
    if (wanted == EnumShortName(type, v->number(), prefix) || wanted == full) return v->number();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("'", text, "' is not one of: ", EnumShortNames(type, prefix)));
}

std::string EnumShortNames(const google::protobuf::EnumDescriptor* type, absl::string_view prefix) {
  std::vector<std::string> names;
  for (int i = 0; i < type->value_count(); ++i) {
    if (type->value(i)->number() != 0)
      names.push_back(EnumShortName(type, type->value(i)->number(), prefix));
  }
  return absl::StrJoin(names, ", ");
}

std::string ToJsonLine(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok())
    return absl::StrCat("{\"error\":\"cannot print as JSON: ", status.ToString(), "\"}");
  return out;
}

}  // namespace pumptwin::ctl
