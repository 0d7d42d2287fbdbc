// pumptwinctl pumps register|get|list|decommission.
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tools/ctl/ctl_commands.h"
#include "tools/ctl/ctl_format.h"
#include "tools/ctl/ctl_prescription.h"
#include "tools/ctl/units_parse.h"

namespace pumptwin::ctl {
namespace {

namespace v1 = pumptwin::v1;

std::string Profile(v1::PumpProfile p) {
  return EnumShortName(v1::PumpProfile_descriptor(), p, "PUMP_PROFILE_");
}
std::string Lifecycle(v1::PumpLifecycle l) {
  return EnumShortName(v1::PumpLifecycle_descriptor(), l, "PUMP_LIFECYCLE_");
}

void PrintPump(Ctl& ctl, const v1::Pump& p) {
  if (ctl.json()) return ctl.PrintJson(p);
  PrintFields(ctl.out(), {
      {"pump", p.name()},
      {"lifecycle", Lifecycle(p.lifecycle())},
      {"profile", Profile(p.profile())},
      {"model", p.model_name()},
      {"reservoir capacity (mL)", UlAsMl(p.reservoir_capacity_ul())},
      {"catheter length (cm)", FormatNumber(p.catheter_length_cm(), 2)},
      {"catheter inner diameter (mm)", FormatNumber(p.catheter_inner_diameter_mm(), 3)},
      {"implanted", FormatTimeMs(p.implant_time_ms())},
      {"registered", FormatTimeMs(p.register_time_ms())},
      {"patient", p.patient_ref()},
      {"clinic", p.clinic()},
      {"gateways", absl::StrJoin(p.gateway_ids(), ", ")},
      {"reporting interval", FormatDurationMs(p.reporting_interval_ms())},
      {"replaces", p.replaces_pump_id().empty() ? "-" : p.replaces_pump_id()},
      {"replaced by", p.replaced_by_pump_id().empty() ? "-" : p.replaced_by_pump_id()},
  });
}

struct RegisterFlags {
  std::string pump_id, profile, model, reservoir, catheter_length, catheter_diameter, implant_time,
      patient, clinic, reporting_interval, replaces, fill, reason;
  std::vector<std::string> gateways;
  PrescriptionFlags prescription;
};

absl::StatusOr<v1::RegisterPumpRequest> BuildRegister(const RegisterFlags& f) {
  v1::RegisterPumpRequest req;
  v1::Pump* p = req.mutable_pump();
  if (f.pump_id.empty() || f.pump_id.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("'", f.pump_id, "' is not a pump id (no '/')"));
  }
  p->set_pump_id(f.pump_id);
  p->set_name(absl::StrCat("pumps/", f.pump_id));
  VolumeUl reservoir, fill;
  LengthMm length, diameter;
  absl::Duration interval;
  bool has_reservoir = false;
  if (auto s = ParseOptionalFlag("--reservoir", f.reservoir, ParseVolume, &reservoir, &has_reservoir); !s.ok()) return s;
  if (auto s = ParseOptionalFlag("--fill", f.fill, ParseVolume, &fill); !s.ok()) return s;
  if (auto s = ParseOptionalFlag("--catheter_length", f.catheter_length, ParseLength, &length); !s.ok()) return s;
  if (auto s = ParseOptionalFlag("--catheter_diameter", f.catheter_diameter, ParseLength, &diameter); !s.ok()) return s;
  if (auto s = ParseOptionalFlag("--reporting_interval", f.reporting_interval, ParseDuration, &interval); !s.ok()) return s;
  absl::StatusOr<int64_t> implant = OptionalTimeMs("--implant_time", f.implant_time);
  if (!implant.ok()) return implant.status();
  if (f.prescription.Any()) {
    absl::StatusOr<v1::Prescription> rx = BuildPrescription(f.prescription, absl::Now());
    if (!rx.ok()) return rx.status();
    *req.mutable_initial_prescription() = *rx;
  }
  absl::StatusOr<int> profile =
      ParseEnumShortName(v1::PumpProfile_descriptor(), "PUMP_PROFILE_", f.profile);
  if (!profile.ok()) return FlagError("--profile", profile.status());
  if (!has_reservoir) return absl::InvalidArgumentError(absl::StrCat("--reservoir is required: ", kVolumeUnitsHelp));
  p->set_profile(static_cast<v1::PumpProfile>(*profile));
  p->set_model_name(f.model);
  p->set_reservoir_capacity_ul(reservoir.ul);
  p->set_catheter_length_cm(length.mm / 10.0);
  p->set_catheter_inner_diameter_mm(diameter.mm);
  p->set_implant_time_ms(*implant);
  p->set_patient_ref(f.patient);
  p->set_clinic(f.clinic);
  for (const auto& g : f.gateways) p->add_gateway_ids(g);
  p->set_reporting_interval_ms(absl::ToInt64Milliseconds(interval));
  p->set_replaces_pump_id(f.replaces);
  req.set_initial_reservoir_ul(fill.ul);
  req.set_reason(f.reason);
  return req;
}

int RunRegister(Ctl& ctl, const RegisterFlags& f) {
  absl::StatusOr<v1::RegisterPumpRequest> req = BuildRegister(f);
  if (!req.ok()) return ctl.Usage(req.status().message());
  v1::Pump resp;
  auto ctx = ctl.NewContext();
  grpc::Status s = ctl.twin().RegisterPump(ctx.get(), *req, &resp);
  if (!s.ok()) return ctl.Fail(s);
  PrintPump(ctl, resp);
  return kExitOk;
}

int RunGet(Ctl& ctl, const std::string& pump) {
  absl::StatusOr<std::string> name = PumpResourceName(pump);
  if (!name.ok()) return ctl.Usage(name.status().message());
  v1::GetPumpRequest req;
  req.set_name(*name);
  v1::Pump resp;
  auto ctx = ctl.NewContext();
  grpc::Status s = ctl.twin().GetPump(ctx.get(), req, &resp);
  if (!s.ok()) return ctl.Fail(s);
  PrintPump(ctl, resp);
  return kExitOk;
}

struct ListFlags {
  std::string clinic, min_severity, refill_due_before, battery_due_before, order;
  bool alerting = false, stale = false, include_decommissioned = false;
  PageFlags page;
};

int RunList(Ctl& ctl, const ListFlags& f) {
  v1::ListPumpsRequest req;
  req.set_clinic(f.clinic);
  req.set_alerting_only(f.alerting);
  req.set_stale_only(f.stale);
  req.set_include_decommissioned(f.include_decommissioned);
  if (!f.min_severity.empty()) {
    absl::StatusOr<int> sev = ParseEnumShortName(v1::Severity_descriptor(), "SEVERITY_", f.min_severity);
    if (!sev.ok()) return ctl.Usage(FlagError("--min_severity", sev.status()).message());
    req.set_min_severity(static_cast<v1::Severity>(*sev));
  }
  if (!f.order.empty()) {
    absl::StatusOr<int> order = ParseEnumShortName(v1::PumpOrder_descriptor(), "PUMP_ORDER_", f.order);
    if (!order.ok()) return ctl.Usage(FlagError("--order", order.status()).message());
    req.set_order(static_cast<v1::PumpOrder>(*order));
  }
  absl::StatusOr<int64_t> refill = OptionalTimeMs("--refill_due_before", f.refill_due_before);
  if (!refill.ok()) return ctl.Usage(refill.status().message());
  absl::StatusOr<int64_t> battery = OptionalTimeMs("--battery_due_before", f.battery_due_before);
  if (!battery.ok()) return ctl.Usage(battery.status().message());
  req.set_refill_due_before_ms(*refill);
  req.set_battery_replacement_due_before_ms(*battery);
  req.set_page_size(f.page.page_size);
  req.set_page_token(f.page.page_token);

  Table t({{"PUMP"}, {"LIFECYCLE"}, {"PROFILE"}, {"CLINIC"}, {"PATIENT"}, {"RESERVOIR (mL)", true},
           {"IMPLANTED (UTC)"}, {"GATEWAYS"}});
  v1::ListPumpsResponse resp;
  do {
    resp.Clear();
    auto ctx = ctl.NewContext();
    grpc::Status s = ctl.twin().ListPumps(ctx.get(), req, &resp);
    if (!s.ok()) return ctl.Fail(s);
    for (const auto& p : resp.pumps()) {
      if (ctl.json()) {
        ctl.PrintJson(p);
        continue;
      }
      t.AddRow({p.pump_id(), Lifecycle(p.lifecycle()), Profile(p.profile()), p.clinic(), p.patient_ref(),
                UlAsMl(p.reservoir_capacity_ul()), FormatTimeMs(p.implant_time_ms()),
                absl::StrJoin(p.gateway_ids(), ",")});
    }
    req.set_page_token(resp.next_page_token());
  } while (f.page.all && !resp.next_page_token().empty());
  if (!ctl.json()) t.Print(ctl.out());
  if (!f.page.all) NoteMorePages(ctl, resp.next_page_token());
  return kExitOk;
}

struct DecommissionFlags {
  std::string pump, reason, replaced_by;
};

int RunDecommission(Ctl& ctl, const DecommissionFlags& f) {
  absl::StatusOr<std::string> name = PumpResourceName(f.pump);
  if (!name.ok()) return ctl.Usage(name.status().message());
  if (f.reason.empty()) return ctl.Usage("--reason is required (e.g. explant, replacement)");
  v1::DecommissionPumpRequest req;
  req.set_name(*name);
  req.set_reason(f.reason);
  req.set_replaced_by_pump_id(f.replaced_by);
  v1::Pump resp;
  auto ctx = ctl.NewContext();
  grpc::Status s = ctl.twin().DecommissionPump(ctx.get(), req, &resp);
  if (!s.ok()) return ctl.Fail(s);
  PrintPump(ctl, resp);
  return kExitOk;
}

}  // namespace

void AddPumpsCommands(CLI::App& root, Action* chosen) {
  auto* pumps = root.add_subcommand("pumps", "Registered pumps");
  pumps->require_subcommand(1);

  auto* reg = pumps->add_subcommand("register", "RegisterPump (admin): register an implanted or trial pump");
  auto rf = std::make_shared<RegisterFlags>();
  reg->add_option("PUMP_ID", rf->pump_id, "New pump id")->required();
  reg->add_option("--profile", rf->profile,
                  absl::StrCat("Pump profile: ", EnumShortNames(v1::PumpProfile_descriptor(), "PUMP_PROFILE_")))
      ->required();
  reg->add_option("--model", rf->model, "Model name, e.g. \"SynchroMed II 40 mL\"");
  reg->add_option("--reservoir", rf->reservoir, absl::StrCat("Reservoir capacity (required): ", kVolumeUnitsHelp));
  reg->add_option("--fill", rf->fill, absl::StrCat("Volume filled at implant: ", kVolumeUnitsHelp));
  reg->add_option("--catheter_length", rf->catheter_length, absl::StrCat("Catheter length: ", kLengthUnitsHelp));
  reg->add_option("--catheter_diameter", rf->catheter_diameter,
                  absl::StrCat("Catheter inner diameter: ", kLengthUnitsHelp));
  reg->add_option("--implant_time", rf->implant_time, absl::StrCat("Implant time: ", kTimeHelp));
  reg->add_option("--patient", rf->patient, "Opaque patient reference (no PHI)");
  reg->add_option("--clinic", rf->clinic, "Clinic");
  reg->add_option("--gateway", rf->gateways, "Gateway allowed to report for the pump (repeatable)")
      ->allow_extra_args(false);
  reg->add_option("--reporting_interval", rf->reporting_interval,
                  absl::StrCat("Expected reporting interval: ", kDurationUnitsHelp));
  reg->add_option("--replaces", rf->replaces, "Predecessor pump id when this pump is a replacement");
  AddPrescriptionFlags(reg, &rf->prescription);  // optional initial prescription
  OnSelected(reg, chosen, [rf](Ctl& ctl) { return RunRegister(ctl, *rf); });

  auto* get = pumps->add_subcommand("get", "GetPump: one pump's registration");
  auto pump = std::make_shared<std::string>();
  get->add_option("PUMP", *pump, "PUMP_ID or pumps/PUMP_ID")->required();
  OnSelected(get, chosen, [pump](Ctl& ctl) { return RunGet(ctl, *pump); });

  auto* list = pumps->add_subcommand("list", "ListPumps: pumps, filtered (the clinic's worklists)");
  auto lf = std::make_shared<ListFlags>();
  list->add_option("--clinic", lf->clinic, "Only this clinic");
  list->add_flag("--alerting", lf->alerting, "Only pumps with an active alert");
  list->add_option("--min_severity", lf->min_severity,
                   absl::StrCat("With --alerting: ", EnumShortNames(v1::Severity_descriptor(), "SEVERITY_")));
  list->add_flag("--stale", lf->stale, "Only silent pumps");
  list->add_option("--refill_due_before", lf->refill_due_before, absl::StrCat("Refill due before: ", kTimeHelp));
  list->add_option("--battery_due_before", lf->battery_due_before,
                   absl::StrCat("Battery replacement due before: ", kTimeHelp));
  list->add_flag("--include_decommissioned", lf->include_decommissioned, "Include archived pumps");
  list->add_option("--order", lf->order, "urgency (most severe alert first) or unspecified (by id)");
  AddPageFlags(list, &lf->page);
  OnSelected(list, chosen, [lf](Ctl& ctl) { return RunList(ctl, *lf); });

  auto* dec = pumps->add_subcommand("decommission", "DecommissionPump (admin): archive (never delete) a pump");
  auto df = std::make_shared<DecommissionFlags>();
  dec->add_option("PUMP", df->pump, "PUMP_ID or pumps/PUMP_ID")->required();
  dec->add_option("--reason", df->reason, "explant, replacement, ... (required)");
  dec->add_option("--replaced_by", df->replaced_by, "Successor pump id (registered)");
  OnSelected(dec, chosen, [df](Ctl& ctl) { return RunDecommission(ctl, *df); });
}

}  // namespace pumptwin::ctl
