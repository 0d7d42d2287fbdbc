// Makes `--help` list this program's own flags. By default absl only lists flags defined
// in a file named after the program, which hides the flags of every tool whose main file
// has another name. Header-only; call once at the start of main, before parsing.
#ifndef PUMPTWIN_TOOLS_COMMON_HELP_FLAGS_H_
#define PUMPTWIN_TOOLS_COMMON_HELP_FLAGS_H_

#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace pumptwin::tools {

inline void ListOwnFlagsInHelp() {
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return !absl::StrContains(file, "absl/");
  };
  absl::SetFlagsUsageConfig(usage);
}

}  // namespace pumptwin::tools

#endif  // PUMPTWIN_TOOLS_COMMON_HELP_FLAGS_H_
