// pumptwinctl prescription set|history and whatif (ReplayTwin).
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tools/ctl/ctl_commands.h"
#include "tools/ctl/ctl_format.h"
#include "tools/ctl/ctl_prescription.h"
#include "tools/ctl/units_parse.h"

namespace pumptwin::ctl {
namespace {

namespace v1 = pumptwin::v1;

void PrintViolations(Ctl& ctl, const google::protobuf::RepeatedPtrField<v1::LimitViolation>& vs,
                     absl::string_view title) {
  if (vs.empty()) return;
  ctl.out() << title << "\n";
  Table t({{"CODE"}, {"KIND"}, {"FIELD"}, {"VALUE", true}, {"LIMIT", true}, {"MESSAGE"}});
  for (const auto& v : vs) {
    t.AddRow({v.code(), v.hard() ? "hard" : "soft", v.field(), FormatNumber(v.value(), 3),
              FormatNumber(v.limit(), 3), v.message()});
  }
  t.Print(ctl.out());
}

struct SetFlags {
  std::string pump, expected_version;
  std::vector<std::string> acks;
  PrescriptionFlags rx;
};

int RunSet(Ctl& ctl, const SetFlags& f) {
  absl::StatusOr<std::string> name = PumpResourceName(f.pump);
  if (!name.ok()) return ctl.Usage(name.status().message());
  absl::StatusOr<v1::Prescription> rx = BuildPrescription(f.rx, absl::Now());
  if (!rx.ok()) return ctl.Usage(rx.status().message());
  uint64_t expected = 0;
  if (f.expected_version.empty() || !absl::SimpleAtoi(f.expected_version, &expected)) {
    return ctl.Usage(
        "--expected_version N is required: the version of the prescription you are replacing "
        "(see `prescription history`; 0 when the pump has none). A different current version means "
        "someone else changed it: the server answers ABORTED");
  }
  v1::SetPrescriptionRequest req;
  req.set_name(*name);
  *req.mutable_prescription() = *rx;
  req.set_expected_version(expected);
  for (const auto& a : f.acks) req.add_acknowledged_warnings(a);
  v1::SetPrescriptionResponse resp;
  auto ctx = ctl.NewContext();
  grpc::Status s = ctl.twin().SetPrescription(ctx.get(), req, &resp);
  if (!s.ok()) {
    const int rc = ctl.Fail(s);
    if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      ctl.err()
          << "hint: soft-limit warnings must be acknowledged: repeat with --ack CODE for each\n";
    } else if (s.error_code() == grpc::StatusCode::ABORTED) {
      ctl.err() << "hint: the prescription changed since version " << expected
                << "; review `prescription history` before retrying\n";
    }
    return rc;
  }
  if (ctl.json()) {
    ctl.PrintJson(resp);
    return kExitOk;
  }
  ctl.out() << *name << ": prescription version " << resp.prescription().version()
            << " stored: " << DescribePrescription(resp.prescription()) << "\n";
  PrintViolations(ctl, resp.warnings(), "acknowledged warnings:");
  return kExitOk;
}

struct HistoryFlags {
  std::string pump;
  PageFlags page;
};

int RunHistory(Ctl& ctl, const HistoryFlags& f) {
  absl::StatusOr<std::string> name = PumpResourceName(f.pump);
  if (!name.ok()) return ctl.Usage(name.status().message());
  v1::GetPrescriptionHistoryRequest req;
  req.set_name(*name);
  req.set_page_size(f.page.page_size);
  req.set_page_token(f.page.page_token);
  Table t({{"VERSION", true},
           {"EFFECTIVE (UTC)"},
           {"SET BY"},
           {"DAILY DOSE (mg/day)", true},
           {"PRESCRIPTION"},
           {"REASON"}});
  v1::GetPrescriptionHistoryResponse resp;
  do {
    resp.Clear();
    auto ctx = ctl.NewContext();
    grpc::Status s = ctl.twin().GetPrescriptionHistory(ctx.get(), req, &resp);
    if (!s.ok()) return ctl.Fail(s);
    for (const auto& p : resp.prescriptions()) {
      if (ctl.json()) {
        ctl.PrintJson(p);
        continue;
      }
      t.AddRow({absl::StrCat(p.version()), FormatTimeMs(p.effective_time_ms()), p.set_by(),
                UgAsMg(DailyDoseUg(p)), DescribePrescription(p), p.reason()});
    }
    req.set_page_token(resp.next_page_token());
  } while (f.page.all && !resp.next_page_token().empty());
  if (!ctl.json()) t.Print(ctl.out());
  if (!f.page.all) NoteMorePages(ctl, resp.next_page_token());
  return kExitOk;
}

struct WhatIfFlags {
  std::string pump, horizon = "30d", resolution = "1d";
  PrescriptionFlags rx;
};

int RunWhatIf(Ctl& ctl, const WhatIfFlags& f) {
  absl::StatusOr<std::string> name = PumpResourceName(f.pump);
  if (!name.ok()) return ctl.Usage(name.status().message());
  v1::ReplayTwinRequest req;
  req.set_name(*name);
  if (f.rx.Any()) {
    absl::StatusOr<v1::Prescription> rx = BuildPrescription(f.rx, absl::Now());
    if (!rx.ok()) return ctl.Usage(rx.status().message());
    *req.mutable_proposed_prescription() = *rx;
  }
  absl::StatusOr<absl::Duration> horizon = ParseDuration(f.horizon);
  if (!horizon.ok()) return ctl.Usage(FlagError("--horizon", horizon.status()).message());
  absl::StatusOr<absl::Duration> resolution = ParseDuration(f.resolution);
  if (!resolution.ok()) return ctl.Usage(FlagError("--resolution", resolution.status()).message());
  if (*horizon <= absl::ZeroDuration() || *resolution <= absl::ZeroDuration()) {
    return ctl.Usage("--horizon and --resolution must be positive");
  }
  req.set_horizon_ms(absl::ToInt64Milliseconds(*horizon));
  req.set_step_ms(absl::ToInt64Milliseconds(*resolution));
  v1::ReplayTwinResponse resp;
  auto ctx = ctl.NewContext();
  grpc::Status s = ctl.twin().ReplayTwin(ctx.get(), req, &resp);
  if (!s.ok()) return ctl.Fail(s);
  if (ctl.json()) {
    ctl.PrintJson(resp);
    return kExitOk;
  }
  ctl.out() << "what-if for " << *name << " (nothing was changed): "
            << (f.rx.Any() ? DescribePrescription(req.proposed_prescription())
                           : "current prescription")
            << "\n";
  Table t({{"TIME (UTC)"},
           {"CALCULATED RESERVOIR (mL)", true},
           {"ESTIMATED RESERVOIR (mL)", true},
           {"DELIVERED 24H (mg)", true},
           {"BATTERY (%)", true}});
  for (const auto& p : resp.trajectory()) {
    t.AddRow({FormatTimeMs(p.device_time_ms()), UlAsMl(p.calculated_reservoir_ul()),
              UlAsMl(p.estimated_reservoir_ul()), UgAsMg(p.delivered_24h_ug()),
              FormatNumber(p.battery_charge_fraction() * 100.0, 1)});
  }
  t.Print(ctl.out());
  const auto& fc = resp.forecast();
  ctl.out() << "forecast:\n";
  PrintFields(
      ctl.out(),
      {
          {"  reservoir low (estimated)", FormatTimeMs(fc.estimated_low_reservoir_time_ms())},
          {"  reservoir empty (estimated)", FormatTimeMs(fc.estimated_empty_time_ms())},
          {"  empty earliest .. latest",
           absl::StrCat(FormatTimeMs(fc.estimated_empty_earliest_ms()), " .. ",
                        FormatTimeMs(fc.estimated_empty_latest_ms()))},
          {"  next refill due", FormatTimeMs(fc.next_refill_due_ms())},
          {"  battery ERI", FormatTimeMs(fc.battery_eri_time_ms())},
          {"  battery EOS", FormatTimeMs(fc.battery_eos_time_ms())},
      });
  PrintViolations(ctl, resp.violations(), "limit violations (what SetPrescription would say):");
  return kExitOk;
}

}  // namespace

void AddTherapyCommands(CLI::App& root, Action* chosen) {
  auto* rx = root.add_subcommand("prescription", "Prescriptions of a pump");
  rx->require_subcommand(1);

  auto* set = rx->add_subcommand("set",
                                 "SetPrescription (clinician): e.g. prescription set P1 --drug "
                                 "morphine --concentration 10mg/mL "
                                 "--rate 0.5mL/day --expected_version 3");
  auto sf = std::make_shared<SetFlags>();
  set->add_option("PUMP", sf->pump, "PUMP_ID or pumps/PUMP_ID")->required();
  AddPrescriptionFlags(set, &sf->rx);
  set->add_option(
      "--expected_version", sf->expected_version,
      "Version being replaced (required; 0 when none); ABORTED if it changed meanwhile");
  set->add_option("--ack", sf->acks, "Acknowledge a soft-limit warning by its code (repeatable)")
      ->allow_extra_args(false);
  OnSelected(set, chosen, [sf](Ctl& ctl) { return RunSet(ctl, *sf); });

  auto* hist = rx->add_subcommand("history", "GetPrescriptionHistory: every version, newest first");
  auto hf = std::make_shared<HistoryFlags>();
  hist->add_option("PUMP", hf->pump, "PUMP_ID or pumps/PUMP_ID")->required();
  AddPageFlags(hist, &hf->page);
  OnSelected(hist, chosen, [hf](Ctl& ctl) { return RunHistory(ctl, *hf); });

  auto* whatif = root.add_subcommand(
      "whatif",
      "ReplayTwin: predict reservoir, dose and battery over a horizon with a proposed prescription "
      "(or the current one); changes nothing");
  auto wf = std::make_shared<WhatIfFlags>();
  whatif->add_option("PUMP", wf->pump, "PUMP_ID or pumps/PUMP_ID")->required();
  AddPrescriptionFlags(whatif, &wf->rx);
  whatif->add_option("--horizon", wf->horizon, absl::StrCat("How far ahead: ", kDurationUnitsHelp))
      ->capture_default_str();
  whatif->add_option("--resolution", wf->resolution, "Trajectory step, e.g. 1d, 6h")
      ->capture_default_str();
  OnSelected(whatif, chosen, [wf](Ctl& ctl) { return RunWhatIf(ctl, *wf); });
}

}  // namespace pumptwin::ctl
