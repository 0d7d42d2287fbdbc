// pumptwinctl alerts list|watch|ack.
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "tools/ctl/ctl_commands.h"
#include "tools/ctl/ctl_format.h"

namespace pumptwin::ctl {
namespace {

namespace v1 = pumptwin::v1;

std::string Type(v1::AlertType t) {
  return EnumShortName(v1::AlertType_descriptor(), t, "ALERT_TYPE_");
}
std::string Sev(v1::Severity s) { return EnumShortName(v1::Severity_descriptor(), s, "SEVERITY_"); }
std::string State(v1::AlertState s) {
  return EnumShortName(v1::AlertState_descriptor(), s, "ALERT_STATE_");
}

template <typename E>
absl::Status ParseEnumFlag(absl::string_view flag, const std::string& text,
                           const google::protobuf::EnumDescriptor* d, absl::string_view prefix,
                           E* out) {
  if (text.empty()) return absl::OkStatus();
  absl::StatusOr<int> v = ParseEnumShortName(d, prefix, text);
  if (!v.ok()) return FlagError(flag, v.status());
  *out = static_cast<E>(*v);
  return absl::OkStatus();
}

struct ListFlags {
  std::string pump, clinic, type, min_severity, state;
  bool active = false;
  PageFlags page;
};

int RunList(Ctl& ctl, const ListFlags& f) {
  v1::ListAlertsRequest req;
  if (!f.pump.empty()) {
    absl::StatusOr<std::string> name = PumpResourceName(f.pump);
    if (!name.ok()) return ctl.Usage(name.status().message());
    req.set_pump_id(name->substr(6));  // the request wants the bare id
  }
  req.set_clinic(f.clinic);
  v1::AlertType type = v1::ALERT_TYPE_UNSPECIFIED;
  v1::Severity sev = v1::SEVERITY_UNSPECIFIED;
  v1::AlertState state = v1::ALERT_STATE_UNSPECIFIED;
  for (absl::Status s :
       {ParseEnumFlag("--type", f.type, v1::AlertType_descriptor(), "ALERT_TYPE_", &type),
        ParseEnumFlag("--min_severity", f.min_severity, v1::Severity_descriptor(), "SEVERITY_",
                      &sev),
        ParseEnumFlag("--state", f.state, v1::AlertState_descriptor(), "ALERT_STATE_", &state)}) {
    if (!s.ok()) return ctl.Usage(s.message());
  }
  req.set_type(type);
  req.set_min_severity(sev);
  req.set_state(state);
  req.set_active_only(f.active);
  req.set_page_size(f.page.page_size);
  req.set_page_token(f.page.page_token);
  Table t({{"ALERT"},
           {"SEVERITY"},
           {"STATE"},
           {"TYPE"},
           {"RAISED (UTC)"},
           {"UPDATED (UTC)"},
           {"SUMMARY"}});
  v1::ListAlertsResponse resp;
  do {
    resp.Clear();
    auto ctx = ctl.NewContext();
    grpc::Status s = ctl.twin().ListAlerts(ctx.get(), req, &resp);
    if (!s.ok()) return ctl.Fail(s);
    for (const auto& a : resp.alerts()) {
      if (ctl.json()) {
        ctl.PrintJson(a);
        continue;
      }
      t.AddRow({a.name(), Sev(a.severity()), State(a.state()), Type(a.type()),
                FormatTimeMs(a.raised_time_ms()), FormatTimeMs(a.updated_time_ms()), a.summary()});
    }
    req.set_page_token(resp.next_page_token());
  } while (f.page.all && !resp.next_page_token().empty());
  if (!ctl.json()) t.Print(ctl.out());
  if (!f.page.all) NoteMorePages(ctl, resp.next_page_token());
  return kExitOk;
}

struct WatchFlags {
  uint64_t from = 0;
  std::string clinic, min_severity;
  StreamFlags stream;
};

int RunWatch(Ctl& ctl, const WatchFlags& f) {
  v1::WatchAlertsRequest req;
  req.set_from_cursor(f.from);
  req.set_clinic(f.clinic);
  v1::Severity sev = v1::SEVERITY_UNSPECIFIED;
  if (absl::Status s = ParseEnumFlag("--min_severity", f.min_severity, v1::Severity_descriptor(),
                                     "SEVERITY_", &sev);
      !s.ok()) {
    return ctl.Usage(s.message());
  }
  req.set_min_severity(sev);
  uint64_t last_cursor = f.from;
  constexpr char kRow[] = "%10s  %-12s  %-8s  %-12s  %-26s  %-40s  %s\n";
  if (!ctl.json()) {
    ctl.out() << absl::StrFormat(kRow, "CURSOR", "TRANSITION", "SEVERITY", "STATE", "TYPE", "ALERT",
                                 "SUMMARY");
    ctl.out().flush();
  }
  return ReadStream<v1::AlertEvent>(
      ctl, f.stream, [&](grpc::ClientContext* ctx) { return ctl.twin().WatchAlerts(ctx, req); },
      [&](const v1::AlertEvent& e) {
        last_cursor = e.cursor();
        if (ctl.json()) return ctl.PrintJson(e);
        const v1::Alert& a = e.alert();
        ctl.out() << absl::StrFormat(kRow, absl::StrCat(e.cursor()),
                                     EnumShortName(v1::AlertTransitionKind_descriptor(),
                                                   e.transition(), "ALERT_TRANSITION_"),
                                     Sev(a.severity()), State(a.state()), Type(a.type()), a.name(),
                                     a.summary());
        ctl.out().flush();
      },
      [&] {
        ctl.err() << "resume without gap or duplicate: pumptwinctl alerts watch --from "
                  << last_cursor << "\n";
      });
}

// "pumps/P1/alerts/A7" or the short "P1/A7".
absl::StatusOr<std::string> AlertResourceName(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '/');
  if (parts.size() == 4 && parts[0] == "pumps" && parts[2] == "alerts" && !parts[1].empty() &&
      !parts[3].empty()) {
    return std::string(text);
  }
  if (parts.size() == 2 && !parts[0].empty() && !parts[1].empty()) {
    return absl::StrCat("pumps/", parts[0], "/alerts/", parts[1]);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "'", text, "' is not an alert: give pumps/PUMP_ID/alerts/ALERT_ID or PUMP_ID/ALERT_ID"));
}

int RunAck(Ctl& ctl, const std::string& alert, const std::string& comment) {
  absl::StatusOr<std::string> name = AlertResourceName(alert);
  if (!name.ok()) return ctl.Usage(name.status().message());
  if (comment.empty()) return ctl.Usage("--comment is required (what was done about the alert)");
  v1::AcknowledgeAlertRequest req;
  req.set_name(*name);
  req.set_comment(comment);
  v1::Alert resp;
  auto ctx = ctl.NewContext();
  grpc::Status s = ctl.twin().AcknowledgeAlert(ctx.get(), req, &resp);
  if (!s.ok()) return ctl.Fail(s);
  if (ctl.json()) {
    ctl.PrintJson(resp);
    return kExitOk;
  }
  PrintFields(ctl.out(), {
                             {"alert", resp.name()},
                             {"type", Type(resp.type())},
                             {"severity", Sev(resp.severity())},
                             {"state", State(resp.state())},
                             {"acknowledged by", resp.acknowledged_by()},
                             {"acknowledged (UTC)", FormatTimeMs(resp.acknowledged_time_ms())},
                             {"comment", resp.acknowledge_comment()},
                             {"summary", resp.summary()},
                         });
  return kExitOk;
}

}  // namespace

void AddAlertsCommands(CLI::App& root, Action* chosen) {
  auto* alerts = root.add_subcommand("alerts", "Alerts raised by the twins' detectors");
  alerts->require_subcommand(1);

  auto* list = alerts->add_subcommand("list", "ListAlerts: alerts, filtered");
  auto lf = std::make_shared<ListFlags>();
  list->add_option("--pump", lf->pump, "Only this pump");
  list->add_option("--clinic", lf->clinic, "Only this clinic");
  list->add_option(
      "--type", lf->type,
      absl::StrCat("Only this type: ", EnumShortNames(v1::AlertType_descriptor(), "ALERT_TYPE_")));
  list->add_option(
      "--min_severity", lf->min_severity,
      absl::StrCat("At least: ", EnumShortNames(v1::Severity_descriptor(), "SEVERITY_")));
  list->add_option(
      "--state", lf->state,
      absl::StrCat("Only: ", EnumShortNames(v1::AlertState_descriptor(), "ALERT_STATE_")));
  list->add_flag("--active", lf->active, "Only raised or acknowledged alerts");
  AddPageFlags(list, &lf->page);
  OnSelected(list, chosen, [lf](Ctl& ctl) { return RunList(ctl, *lf); });

  auto* watch =
      alerts->add_subcommand("watch",
                             "WatchAlerts: replay every alert event after --from, then follow live "
                             "ones (no gap, no duplicate). "
                             "Keep the last CURSOR you saw and pass it to --from to resume");
  auto wf = std::make_shared<WatchFlags>();
  watch
      ->add_option("--from", wf->from,
                   "Resume after this cursor (0: from the start of retained history)")
      ->capture_default_str();
  watch->add_option("--clinic", wf->clinic, "Only this clinic");
  watch->add_option("--min_severity", wf->min_severity, "At least this severity");
  AddStreamFlags(watch, &wf->stream);
  OnSelected(watch, chosen, [wf](Ctl& ctl) { return RunWatch(ctl, *wf); });

  auto* ack = alerts->add_subcommand("ack", "AcknowledgeAlert (clinician), with a comment");
  auto alert = std::make_shared<std::string>();
  auto comment = std::make_shared<std::string>();
  ack->add_option("ALERT", *alert, "pumps/PUMP_ID/alerts/ALERT_ID or PUMP_ID/ALERT_ID")->required();
  ack->add_option("--comment", *comment, "What was done (required)");
  OnSelected(ack, chosen, [alert, comment](Ctl& ctl) { return RunAck(ctl, *alert, *comment); });
}

}  // namespace pumptwin::ctl
