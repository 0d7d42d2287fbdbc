// Output helpers of pumptwinctl: aligned text tables, RFC 3339 UTC times, numbers shown in
// clinical display units, short enum names ("low-reservoir" for ALERT_TYPE_LOW_RESERVOIR) and
// one-line JSON of API messages. Value types and pure functions: thread-compatible.
#ifndef PUMPTWIN_TOOLS_CTL_CTL_FORMAT_H_
#define PUMPTWIN_TOOLS_CTL_CTL_FORMAT_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace pumptwin::ctl {

// A table printed with columns padded to their widest cell, two spaces apart.
class Table {
 public:
  struct Column {
    std::string header;          // with its unit, e.g. "RESERVOIR (mL)"
    bool right_aligned = false;  // numbers
  };
  explicit Table(std::vector<Column> columns);
  void AddRow(std::vector<std::string> cells);  // missing cells print empty, extra ones are dropped
  size_t rows() const { return rows_.size(); }
  void Print(std::ostream& out) const;
  std::string ToString() const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// "label:  value" lines with the values aligned; labels carry units ("reservoir (mL)");
// an empty value prints as "-".
using Fields = std::vector<std::pair<std::string, std::string>>;
void PrintFields(std::ostream& out, const Fields& fields);

// "2026-11-22T08:00:00Z" (milliseconds shown only when not whole seconds); "-" for 0.
std::string FormatTimeMs(int64_t ms_since_epoch);
// "1d2h", "30m", "1.5s"; "-" for 0.
std::string FormatDurationMs(int64_t ms);
// Fixed-point with at most `max_decimals`, trailing zeros removed: 0.5, 12, 0.048.
std::string FormatNumber(double value, int max_decimals);
// Display conversions (the header names the unit): µL -> mL, µg -> mg, µg/mL -> mg/mL.
std::string UlAsMl(double ul);
std::string UlPerDayAsMlPerDay(double ul_per_day);
std::string UgAsMg(double ug);
std::string UgPerMlAsMgPerMl(double ug_per_ml);

// Short, lower-case, dash-separated name of an enum value without its prefix:
// EnumShortName(AlertType_descriptor(), 6, "ALERT_TYPE_") == "low-reservoir".
std::string EnumShortName(const google::protobuf::EnumDescriptor* type, int value,
                          absl::string_view prefix);
// Inverse of EnumShortName; also accepts the full proto name. Never returns the 0 value.
// The error lists the accepted names.
absl::StatusOr<int> ParseEnumShortName(const google::protobuf::EnumDescriptor* type,
                                       absl::string_view prefix, absl::string_view text);
// "a, b, c": the accepted short names (the 0 value excluded), for --help texts.
std::string EnumShortNames(const google::protobuf::EnumDescriptor* type, absl::string_view prefix);

// The message as one line of JSON with proto field names and default values printed.
std::string ToJsonLine(const google::protobuf::Message& message);

}  // namespace pumptwin::ctl

#endif  // PUMPTWIN_TOOLS_CTL_CTL_FORMAT_H_
