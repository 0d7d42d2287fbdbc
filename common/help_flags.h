// Command-line parsing shared by every absl-flags binary of pumptwin (pumptwind, pumpsim,
// the load tools). Header-only.
//
// ParseFlagsOrExit replaces absl::ParseCommandLine with the project's conventions:
//  * --help, --helpfull, --helpshort, --helpon, --helpmatch, --version and --only_check_args
//    print to stdout and exit 0 (absl exits 1 after --help);
//  * a usage error (unknown flag, unparseable value, unreadable --flagfile) exits 2, the
//    code pumptwin documents for a configuration error (absl exits 1);
//  * --help lists this program's own flags (absl lists only flags defined in a file named
//    after the program) and names their files relative to the source tree, never by the
//    build machine's absolute path.
#ifndef PUMPTWIN_TOOLS_COMMON_HELP_FLAGS_H_
#define PUMPTWIN_TOOLS_COMMON_HELP_FLAGS_H_

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/internal/parse.h"
#include "absl/flags/internal/usage.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace pumptwin::tools {

inline constexpr int kExitUsageError = 2;

namespace flags_detail {

// The source tree's root, derived from this header's own path (<root>/common/...).
inline absl::string_view SourceRoot() {
  absl::string_view self = __FILE__;
  return absl::StripSuffix(self, "common/help_flags.h");
}

// "<root>/server/main.cc" or "../../server/main.cc" (a build with relative paths) ->
// "server/process/main.cc"; any other absolute path -> its file name.
inline std::string RelativeSourcePath(absl::string_view file) {
  const absl::string_view root = SourceRoot();
  if (root != __FILE__ && !root.empty() && absl::ConsumePrefix(&file, root)) {
    return std::string(file);
  }
  while (absl::ConsumePrefix(&file, "../") || absl::ConsumePrefix(&file, "./")) {
  }
  if (absl::StartsWith(file, "/")) file = file.substr(file.rfind('/') + 1);
  return std::string(file);
}

inline std::atomic<bool>& Parsing() {
  static std::atomic<bool> parsing{false};
  return parsing;
}

// absl reports a usage error by calling std::exit(1) from inside the parser; this exit
// handler turns that into exit code 2. It does nothing once parsing has returned.
inline void ExitUsageErrorWhileParsing() {
  if (!Parsing().load()) return;
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(kExitUsageError);
}

}  // namespace flags_detail

// Help lists this program's flags (every flag not defined inside absl), by source-relative
// file name. `version` (e.g. "pumptwind 0.1.0") is what --version prints; empty: the
// program name. Call before ParseFlagsOrExit (which calls it with no version if not).
inline void ListOwnFlagsInHelp(std::string version = "") {
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return !absl::StrContains(file, "absl/");
  };
  usage.normalize_filename = [](absl::string_view file) {
    return flags_detail::RelativeSourcePath(file);
  };
  if (!version.empty()) {
    usage.version_string = [version] { return version + "\n"; };
  }
  absl::SetFlagsUsageConfig(usage);
}

// Parses argv (absl flags). Returns the positional arguments (argv[0] first). Exits 0
// after a help or version request, 2 on a usage error (see the file comment).
inline std::vector<char*> ParseFlagsOrExit(int argc, char** argv) {
  static const bool registered = [] {
    std::atexit(flags_detail::ExitUsageErrorWhileParsing);
    return true;
  }();
  (void)registered;
  flags_detail::Parsing().store(true);
  // absl's own ParseCommandLine minus its handling of the usage flags, which would exit 1.
  std::vector<char*> positional = absl::flags_internal::ParseCommandLineImpl(
      argc, argv, absl::flags_internal::ArgvListAction::kRemoveParsedArgs,
      absl::flags_internal::UsageFlagsAction::kIgnoreUsage,
      absl::flags_internal::OnUndefinedFlag::kAbortIfUndefined);
  flags_detail::Parsing().store(false);
  const int usage = absl::flags_internal::HandleUsageFlags(std::cout, absl::ProgramUsageMessage());
  if (usage != -1) {
    std::cout.flush();
    std::exit(0);  // the help or version that was asked for has been printed
  }
  return positional;
}

}  // namespace pumptwin::tools

#endif  // PUMPTWIN_TOOLS_COMMON_HELP_FLAGS_H_
