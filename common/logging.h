// Structured logging: one line per event, `ts=... level=... event=... key=value ...`,
// written with a single write(2) so concurrent lines never interleave. Thread-safe.
#ifndef PUMPTWIN_COMMON_LOGGING_H_
#define PUMPTWIN_COMMON_LOGGING_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace pumptwin::server {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

struct LogField {
  LogField(absl::string_view k, absl::string_view v) : key(k), value(v) {}
  LogField(absl::string_view k, const std::string& v) : key(k), value(v) {}
  LogField(absl::string_view k, const char* v) : key(k), value(v) {}
  template <typename T>
  LogField(absl::string_view k, T v) : key(k), value(std::to_string(v)) {}
  std::string key;
  std::string value;
};

// Formats one line (exposed for tests). Values with spaces, quotes or '=' are quoted.
std::string FormatLogLine(LogLevel level, absl::string_view event,
                          std::initializer_list<LogField> fields);

// Writes one line to stderr.
void Log(LogLevel level, absl::string_view event, std::initializer_list<LogField> fields = {});

}  // namespace pumptwin::server

#endif  // PUMPTWIN_COMMON_LOGGING_H_
