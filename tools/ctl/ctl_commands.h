// Registration of pumptwinctl's commands on a CLI11 app, and the helpers they share.
// Each Add*Commands() adds its sub-commands to `root`; when the command line selects one,
// its callback stores in *chosen the action to run once the Ctl context exists.
// Registration happens once on the main thread; actions run on that thread too.
#ifndef PUMPTWIN_TOOLS_CTL_CTL_COMMANDS_H_
#define PUMPTWIN_TOOLS_CTL_CTL_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tools/ctl/ctl_context.h"

namespace pumptwin::ctl {

using Action = std::function<int(Ctl&)>;

void AddHealthCommand(CLI::App& root, Action* chosen);    // ctl_admin.cc
void AddDrugsCommands(CLI::App& root, Action* chosen);    // ctl_admin.cc
void AddAuditCommands(CLI::App& root, Action* chosen);    // ctl_audit.cc
void AddPumpsCommands(CLI::App& root, Action* chosen);    // ctl_pumps.cc
void AddTherapyCommands(CLI::App& root, Action* chosen);  // ctl_therapy.cc: prescription, whatif
void AddEventCommands(CLI::App& root, Action* chosen);    // ctl_events.cc: refill, event
void AddTwinCommands(CLI::App& root, Action* chosen);     // ctl_twin.cc: twin, telemetry
void AddAlertsCommands(CLI::App& root, Action* chosen);   // ctl_alerts.cc

// The whole program: parses argv, runs the command, returns the exit code (see ExitCode).
int RunCtl(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

// Text of the exit-code table shown at the end of every --help.
extern const char kExitCodesHelp[];

// ---- helpers shared by the command files

// Prefixes a parse error with the flag it came from: "--rate: '0.5' has no unit...".
absl::Status FlagError(absl::string_view flag, const absl::Status& status);

// Parses an optional flag value with `parse` unless it is empty. Usage: see ctl_therapy.cc.
template <typename T, typename Parser>
absl::Status ParseOptionalFlag(absl::string_view flag, const std::string& text, Parser parse,
                               T* out, bool* present = nullptr) {
  if (present != nullptr) *present = !text.empty();
  if (text.empty()) return absl::OkStatus();
  auto v = parse(text);
  if (!v.ok()) return FlagError(flag, v.status());
  *out = *v;
  return absl::OkStatus();
}

// ParseDuration with the flag name in the error; must be positive.
absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view flag, const std::string& text);

// Milliseconds since the epoch of an optional time flag (0 when empty).
absl::StatusOr<int64_t> OptionalTimeMs(absl::string_view flag, const std::string& text);

struct PageFlags {
  int32_t page_size = 0;  // 0: server default
  std::string page_token;
  bool all = false;  // follow next_page_token until the end
};
void AddPageFlags(CLI::App* cmd, PageFlags* flags);
// After the last page fetched: tells a human (on stderr) how to get the next one.
void NoteMorePages(Ctl& ctl, const std::string& next_page_token);

// Options of streaming commands: stop after N messages or after a duration (exit 0).
struct StreamFlags {
  uint64_t count = 0;        // 0: unlimited
  std::string for_duration;  // empty: until the server ends the stream
};
void AddStreamFlags(CLI::App* cmd, StreamFlags* flags);

// Human view of a twin (ctl_twin.cc); also shown after refills and clinical events.
void PrintTwinState(Ctl& ctl, const pumptwin::v1::TwinState& twin);

// Reads a server stream until the server ends it, --count messages arrived, or --for elapsed
// (both of the latter exit 0). `start(ctx)` opens the stream; `on_message` prints one message.
// On an error end, `on_error` (may be empty) can add a hint after "error: CODE: message".
template <typename Resp, typename Start, typename OnMessage>
int ReadStream(Ctl& ctl, const StreamFlags& flags, Start start, OnMessage on_message,
               std::function<void()> on_error = {}) {
  absl::Duration for_duration = absl::InfiniteDuration();
  if (!flags.for_duration.empty()) {
    absl::StatusOr<absl::Duration> d = ParseDurationFlag("--for", flags.for_duration);
    if (!d.ok()) return ctl.Usage(d.status().message());
    for_duration = *d;
  }
  std::unique_ptr<grpc::ClientContext> ctx = ctl.NewContext(/*streaming=*/true);
  if (for_duration != absl::InfiniteDuration())
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + for_duration));
  auto reader = start(ctx.get());
  Resp msg;
  uint64_t n = 0;
  bool enough = false;
  while (reader->Read(&msg)) {
    on_message(msg);
    if (flags.count != 0 && ++n >= flags.count) {
      enough = true;
      ctx->TryCancel();
      break;
    }
  }
  const grpc::Status s = reader->Finish();
  if (enough || s.ok()) return kExitOk;
  if (for_duration != absl::InfiniteDuration() &&
      s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return kExitOk;
  }
  const int rc = ctl.Fail(s);
  if (on_error) on_error();
  return rc;
}

// Stores `action` into *chosen when `cmd` is selected on the command line.
void OnSelected(CLI::App* cmd, Action* chosen, Action action);

}  // namespace pumptwin::ctl

#endif  // PUMPTWIN_TOOLS_CTL_CTL_COMMANDS_H_
