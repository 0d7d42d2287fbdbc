// RunCtl: the command-line tree of pumptwinctl, global options, and the helpers shared by
// the command files.
#include <utility>

#include "absl/strings/str_cat.h"
#include "tools/ctl/ctl_commands.h"
#include "tools/ctl/units_parse.h"

#ifndef PUMPTWIN_VERSION
#define PUMPTWIN_VERSION "dev"
#endif

namespace pumptwin::ctl {

const char kExitCodesHelp[] =
    "Exit codes:\n"
    "  0  success\n"
    "  1  usage error (bad command line, missing or unknown unit); nothing was sent\n"
    "  2  the server answered with an error; printed as 'error: CODE: message'\n"
    "  3  cannot connect, server UNAVAILABLE, or deadline (--timeout) exceeded\n"
    "  4  audit verify: the audit hash chain is broken\n"
    "Units are always written with the number (0.5mL/day, 10mg/mL, 500uL); a bare number is\n"
    "refused. See docs/api.md.";

absl::Status FlagError(absl::string_view flag, const absl::Status& status) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", status.message()));
}

absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view flag, const std::string& text) {
  absl::StatusOr<absl::Duration> d = ParseDuration(text);
  if (!d.ok()) return FlagError(flag, d.status());
  if (*d <= absl::ZeroDuration())
    return absl::InvalidArgumentError(absl::StrCat(flag, " must be positive"));
  return d;
}

absl::StatusOr<int64_t> OptionalTimeMs(absl::string_view flag, const std::string& text) {
  if (text.empty()) return 0;
  absl::StatusOr<absl::Time> t = ParseTime(text, absl::Now());
  if (!t.ok()) return FlagError(flag, t.status());
  return absl::ToUnixMillis(*t);
}

void AddPageFlags(CLI::App* cmd, PageFlags* flags) {
  cmd->add_option("--page_size", flags->page_size, "Items per page (0: server default)");
  cmd->add_option("--page_token", flags->page_token, "Continue from a previous page");
  cmd->add_flag("--all", flags->all, "Fetch every page");
}

void NoteMorePages(Ctl& ctl, const std::string& next_page_token) {
  if (next_page_token.empty()) return;
  ctl.err() << "next_page_token: " << next_page_token << " (more: --page_token " << next_page_token
            << ", or --all)\n";
}

void AddStreamFlags(CLI::App* cmd, StreamFlags* flags) {
  cmd->add_option("--count", flags->count, "Stop after N messages (exit 0)");
  cmd->add_option("--for", flags->for_duration,
                  absl::StrCat("Stop after this long (exit 0); ", kDurationUnitsHelp));
}

void OnSelected(CLI::App* cmd, Action* chosen, Action action) {
  cmd->callback([chosen, action = std::move(action)] { *chosen = action; });
}

int RunCtl(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{"pumptwinctl: command-line client of the pumptwin server (gRPC TwinService).",
               "pumptwinctl"};
  GlobalOptions g;
  app.add_option("--server", g.server, "gRPC address of pumptwind (env PUMPTWIN_SERVER)")
      ->envname("PUMPTWIN_SERVER")
      ->capture_default_str();
  app.add_option(
         "--token", g.token,
         "Bearer token sent as 'authorization: Bearer TOKEN' (env PUMPTWIN_TOKEN; prefer the "
         "environment: command lines are visible to other users)")
      ->envname("PUMPTWIN_TOKEN");
  app.add_option("--tls_ca", g.tls_ca,
                 "PEM file of the CA of the server certificate (enables TLS)");
  app.add_option("--tls_cert", g.tls_cert,
                 "PEM client certificate for mutual TLS (with --tls_key)");
  app.add_option("--tls_key", g.tls_key, "PEM private key of --tls_cert");
  app.add_option("--timeout", g.timeout,
                 "Deadline of each call (not of watch streams), e.g. 10s, 1m")
      ->capture_default_str();
  app.add_flag("--json", g.json,
               "JSON output: one object per line (per item for lists, per message for streams)");
  app.set_version_flag("--version", "pumptwinctl " PUMPTWIN_VERSION);
  app.footer(kExitCodesHelp);
  app.require_subcommand(1);
  app.fallthrough();

  Action chosen;
  AddHealthCommand(app, &chosen);
  AddPumpsCommands(app, &chosen);
  AddTherapyCommands(app, &chosen);
  AddEventCommands(app, &chosen);
  AddTwinCommands(app, &chosen);
  AddAlertsCommands(app, &chosen);
  AddDrugsCommands(app, &chosen);
  AddAuditCommands(app, &chosen);
  // Global options may follow the command too: `pumptwinctl pumps get P1 --json`.
  const auto every = [](CLI::App*) { return true; };
  for (CLI::App* sub : app.get_subcommands(every)) {
    sub->fallthrough();
    for (CLI::App* leaf : sub->get_subcommands(every)) leaf->fallthrough();
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e, out, err);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (!chosen) {
    err << "error: no command given\n" << app.help();
    return kExitUsage;
  }
  Ctl ctl(std::move(g), out, err);
  if (absl::Status s = ctl.Init(); !s.ok()) return ctl.Usage(s.message());
  return chosen(ctl);
}

}  // namespace pumptwin::ctl
