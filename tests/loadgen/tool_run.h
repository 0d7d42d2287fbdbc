// Runs one of the load tools and reads the key=value pairs of its summary lines.
#ifndef PUMPTWIN_TESTS_LOADGEN_TOOL_RUN_H_
#define PUMPTWIN_TESTS_LOADGEN_TOOL_RUN_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/support/server_process.h"

namespace pumptwin::testing {

struct ToolRun {
  int exit_code = -1;
  std::string output;                          // stdout + stderr
  std::map<std::string, std::string> summary;  // key=value pairs of the summary lines
  int64_t Int(const std::string& key) const {
    int64_t v = -1;
    auto it = summary.find(key);
    if (it == summary.end() || !absl::SimpleAtoi(it->second, &v)) return -1;
    return v;
  }
};

// Runs `binary args...` (stderr with stdout); the key=value pairs of every line starting
// with `summary_prefix` ("" : of every line).
inline ToolRun RunTool(const std::string& binary, const std::vector<std::string>& args,
                       absl::string_view summary_prefix = "") {
  ToolRun run;
  std::tie(run.exit_code, run.output) =
      RunCommand(absl::StrCat(binary, " ", absl::StrJoin(args, " "), " 2>&1"));
  for (absl::string_view line : absl::StrSplit(run.output, '\n')) {
    if (!absl::StartsWith(line, summary_prefix)) continue;
    for (absl::string_view kv : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
      std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
      run.summary[p.first] = p.second;
    }
  }
  return run;
}

}  // namespace pumptwin::testing

#endif  // PUMPTWIN_TESTS_LOADGEN_TOOL_RUN_H_
