// pumptwinctl pumps register|get|list|decommission.
#include <memory>

#include "absl/strings/numbers.h"
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
  PrintFields(ctl.out(),
              {
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
                  {"time zone", p.time_zone().empty() ? "UTC" : p.time_zone()},
                  {"replaces", p.replaces_pump_id().empty() ? "-" : p.replaces_pump_id()},
                  {"replaced by", p.replaced_by_pump_id().empty() ? "-" : p.replaced_by_pump_id()},
              });
  if (p.has_trial()) {
    const v1::TrialRecord& t = p.trial();
    PrintFields(ctl.out(),
                {
                    {"trial started", FormatTimeMs(t.start_time_ms())},
                    {"trial relief (%)",
                     t.assessed_time_ms() > 0 ? FormatNumber(t.pain_relief_percent(), 1) : "-"},
                    {"trial result",
                     EnumShortName(v1::TrialResult_descriptor(), t.result(), "TRIAL_RESULT_")},
                    {"trial ended", t.end_time_ms() > 0 ? FormatTimeMs(t.end_time_ms()) : "-"},
                });
  }
}

struct EnrolFlags {
  std::string interrogation_time, calculated_reservoir, last_refill_time, last_refill_volume,
      battery;
  bool eri = false;
  bool Any() const {
    return !interrogation_time.empty() || !calculated_reservoir.empty() ||
           !last_refill_time.empty() || !last_refill_volume.empty() || !battery.empty() || eri;
  }
};

struct RegisterFlags {
  std::string pump_id, profile, model, reservoir, catheter_length, catheter_diameter, implant_time,
      patient, clinic, reporting_interval, replaces, fill, reason, time_zone;
  std::vector<std::string> gateways;
  bool trial = false;
  EnrolFlags enrol;
  PrescriptionFlags prescription;
};

// --enrol_* flags -> Enrolment. The battery indicator is a fraction (0.4) or a percent (40%).
absl::Status BuildEnrolment(const EnrolFlags& f, v1::Enrolment* e) {
  if (f.interrogation_time.empty() || f.calculated_reservoir.empty()) {
    return absl::InvalidArgumentError(
        "--enrol_interrogation_time and --enrol_reservoir are required to enrol a pump");
  }
  absl::StatusOr<int64_t> at = OptionalTimeMs("--enrol_interrogation_time", f.interrogation_time);
  if (!at.ok()) return at.status();
  absl::StatusOr<int64_t> refill = OptionalTimeMs("--enrol_last_refill_time", f.last_refill_time);
  if (!refill.ok()) return refill.status();
  VolumeUl calc, refill_volume;
  if (auto s = ParseOptionalFlag("--enrol_reservoir", f.calculated_reservoir, ParseVolume, &calc);
      !s.ok())
    return s;
  if (auto s = ParseOptionalFlag("--enrol_last_refill_volume", f.last_refill_volume, ParseVolume,
                                 &refill_volume);
      !s.ok())
    return s;
  e->set_interrogation_time_ms(*at);
  e->set_calculated_reservoir_ul(calc.ul);
  e->set_last_refill_time_ms(*refill);
  e->set_last_refill_volume_ul(refill_volume.ul);
  if (!f.battery.empty()) {
    std::string text = f.battery;
    const bool percent = !text.empty() && text.back() == '%';
    if (percent) text.pop_back();
    double v = 0;
    if (!absl::SimpleAtod(text, &v)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--enrol_battery='", f.battery, "' is not a fraction (0.4) or a percent (40%)"));
    }
    e->set_battery_indicator_fraction(percent ? v / 100.0 : v);
  }
  e->set_battery_eri_shown(f.eri);
  return absl::OkStatus();
}

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
  if (auto s =
          ParseOptionalFlag("--reservoir", f.reservoir, ParseVolume, &reservoir, &has_reservoir);
      !s.ok())
    return s;
  if (auto s = ParseOptionalFlag("--fill", f.fill, ParseVolume, &fill); !s.ok()) return s;
  if (auto s = ParseOptionalFlag("--catheter_length", f.catheter_length, ParseLength, &length);
      !s.ok())
    return s;
  if (auto s =
          ParseOptionalFlag("--catheter_diameter", f.catheter_diameter, ParseLength, &diameter);
      !s.ok())
    return s;
  if (auto s =
          ParseOptionalFlag("--reporting_interval", f.reporting_interval, ParseDuration, &interval);
      !s.ok())
    return s;
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
  if (!has_reservoir)
    return absl::InvalidArgumentError(absl::StrCat("--reservoir is required: ", kVolumeUnitsHelp));
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
  p->set_time_zone(f.time_zone);
  if (f.trial) p->set_lifecycle(v1::PUMP_LIFECYCLE_TRIAL);
  if (f.enrol.Any()) {
    if (absl::Status s = BuildEnrolment(f.enrol, req.mutable_enrolment()); !s.ok()) return s;
  }
  req.set_initial_reservoir_ul(fill.ul);
  // --reason is the prescription flags' (one audit reason for the whole registration).
  req.set_reason(f.reason.empty() ? f.prescription.reason : f.reason);
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

// Prints the pump a call answered, or fails with its status.
int PumpAnswer(Ctl& ctl, const grpc::Status& s, const v1::Pump& resp) {
  if (!s.ok()) return ctl.Fail(s);
  PrintPump(ctl, resp);
  return kExitOk;
}

struct TrialFlags {
  std::string pump, relief, time, notes, reason;
  bool acknowledge = false;
  RegisterFlags implant;  // implant-after-trial: the implanted pump
};

int RunTrialOutcome(Ctl& ctl, const TrialFlags& f) {
  absl::StatusOr<std::string> name = PumpResourceName(f.pump);
  if (!name.ok()) return ctl.Usage(name.status().message());
  std::string relief = f.relief;
  if (!relief.empty() && relief.back() == '%') relief.pop_back();
  double percent = 0;
  if (!absl::SimpleAtod(relief, &percent)) {
    return ctl.Usage(absl::StrCat("--relief='", f.relief, "' is not a percent (e.g. 60 or 60%)"));
  }
  absl::StatusOr<int64_t> at = OptionalTimeMs("--time", f.time);
  if (!at.ok()) return ctl.Usage(at.status().message());
  v1::RecordTrialOutcomeRequest req;
  req.set_name(*name);
  req.set_pain_relief_percent(percent);
  req.set_assessed_time_ms(*at);
  req.set_notes(f.notes);
  req.set_reason(f.reason);
  v1::Pump resp;
  auto ctx = ctl.NewContext();
  return PumpAnswer(ctl, ctl.twin().RecordTrialOutcome(ctx.get(), req, &resp), resp);
}

int RunImplantAfterTrial(Ctl& ctl, const TrialFlags& f) {
  absl::StatusOr<std::string> name = PumpResourceName(f.pump);
  if (!name.ok()) return ctl.Usage(name.status().message());
  RegisterFlags rf = f.implant;
  rf.pump_id = name->substr(6);
  absl::StatusOr<v1::RegisterPumpRequest> reg = BuildRegister(rf);
  if (!reg.ok()) return ctl.Usage(reg.status().message());
  v1::ImplantAfterTrialRequest req;
  req.set_name(*name);
  *req.mutable_pump() = reg->pump();
  req.mutable_pump()->clear_name();
  if (reg->has_initial_prescription())
    *req.mutable_initial_prescription() = reg->initial_prescription();
  req.set_initial_reservoir_ul(reg->initial_reservoir_ul());
  req.set_acknowledge_insufficient_relief(f.acknowledge);
  req.set_reason(reg->reason());
  v1::Pump resp;
  auto ctx = ctl.NewContext();
  return PumpAnswer(ctl, ctl.twin().ImplantAfterTrial(ctx.get(), req, &resp), resp);
}

int RunEndTrial(Ctl& ctl, const TrialFlags& f) {
  absl::StatusOr<std::string> name = PumpResourceName(f.pump);
  if (!name.ok()) return ctl.Usage(name.status().message());
  absl::StatusOr<int64_t> at = OptionalTimeMs("--time", f.time);
  if (!at.ok()) return ctl.Usage(at.status().message());
  v1::EndTrialRequest req;
  req.set_name(*name);
  req.set_end_time_ms(*at);
  req.set_reason(f.reason);
  v1::Pump resp;
  auto ctx = ctl.NewContext();
  return PumpAnswer(ctl, ctl.twin().EndTrial(ctx.get(), req, &resp), resp);
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
    absl::StatusOr<int> sev =
        ParseEnumShortName(v1::Severity_descriptor(), "SEVERITY_", f.min_severity);
    if (!sev.ok()) return ctl.Usage(FlagError("--min_severity", sev.status()).message());
    req.set_min_severity(static_cast<v1::Severity>(*sev));
  }
  if (!f.order.empty()) {
    absl::StatusOr<int> order =
        ParseEnumShortName(v1::PumpOrder_descriptor(), "PUMP_ORDER_", f.order);
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

  Table t({{"PUMP"},
           {"LIFECYCLE"},
           {"PROFILE"},
           {"CLINIC"},
           {"PATIENT"},
           {"RESERVOIR (mL)", true},
           {"IMPLANTED (UTC)"},
           {"GATEWAYS"}});
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
      t.AddRow({p.pump_id(), Lifecycle(p.lifecycle()), Profile(p.profile()), p.clinic(),
                p.patient_ref(), UlAsMl(p.reservoir_capacity_ul()),
                FormatTimeMs(p.implant_time_ms()), absl::StrJoin(p.gateway_ids(), ",")});
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

  auto* reg = pumps->add_subcommand("register",
                                    "RegisterPump (admin): register an implanted or trial pump");
  auto rf = std::make_shared<RegisterFlags>();
  reg->add_option("PUMP_ID", rf->pump_id, "New pump id")->required();
  reg->add_option("--profile", rf->profile,
                  absl::StrCat("Pump profile: ",
                               EnumShortNames(v1::PumpProfile_descriptor(), "PUMP_PROFILE_")))
      ->required();
  reg->add_option("--model", rf->model, "Model name, e.g. \"SynchroMed II 40 mL\"");
  reg->add_option("--reservoir", rf->reservoir,
                  absl::StrCat("Reservoir capacity (required): ", kVolumeUnitsHelp));
  reg->add_option("--fill", rf->fill, absl::StrCat("Volume filled at implant: ", kVolumeUnitsHelp));
  reg->add_option("--catheter_length", rf->catheter_length,
                  absl::StrCat("Catheter length: ", kLengthUnitsHelp));
  reg->add_option("--catheter_diameter", rf->catheter_diameter,
                  absl::StrCat("Catheter inner diameter: ", kLengthUnitsHelp));
  reg->add_option("--implant_time", rf->implant_time, absl::StrCat("Implant time: ", kTimeHelp));
  reg->add_option("--patient", rf->patient, "Opaque patient reference (no PHI)");
  reg->add_option("--clinic", rf->clinic, "Clinic");
  reg->add_option("--gateway", rf->gateways, "Gateway allowed to report for the pump (repeatable)")
      ->allow_extra_args(false);
  reg->add_option("--reporting_interval", rf->reporting_interval,
                  absl::StrCat("Expected reporting interval: ", kDurationUnitsHelp));
  reg->add_option("--replaces", rf->replaces,
                  "Predecessor pump id when this pump is a replacement");
  reg->add_option(
      "--time_zone", rf->time_zone,
      "Patient's IANA time zone, e.g. Europe/Berlin (flex steps are local time; default UTC)");
  reg->add_flag("--trial", rf->trial,
                "Register an external trial pump (--implant_time: the trial start)");
  reg->add_option(
      "--enrol_interrogation_time", rf->enrol.interrogation_time,
      absl::StrCat("Enrol a pump implanted earlier: time of its last interrogation: ", kTimeHelp));
  reg->add_option("--enrol_reservoir", rf->enrol.calculated_reservoir,
                  absl::StrCat("Enrolment: the pump's calculated reservoir at the interrogation: ",
                               kVolumeUnitsHelp));
  reg->add_option("--enrol_last_refill_time", rf->enrol.last_refill_time,
                  absl::StrCat("Enrolment: time of the last refill (unknown: omit): ", kTimeHelp));
  reg->add_option("--enrol_last_refill_volume", rf->enrol.last_refill_volume,
                  absl::StrCat("Enrolment: volume added at the last refill (unknown: omit): ",
                               kVolumeUnitsHelp));
  reg->add_option("--enrol_battery", rf->enrol.battery,
                  "Enrolment: battery indicator, fraction (0.4) or percent (40%) of usable charge "
                  "(unknown: omit, modelled from --implant_time)");
  reg->add_flag("--enrol_eri", rf->enrol.eri,
                "Enrolment: the programmer showed the elective replacement indicator");
  AddPrescriptionFlags(reg, &rf->prescription);  // initial prescription (in force at enrolment)
  OnSelected(reg, chosen, [rf](Ctl& ctl) { return RunRegister(ctl, *rf); });

  auto* outcome = pumps->add_subcommand(
      "trial-outcome", "RecordTrialOutcome (clinician): record a trial's pain relief");
  auto of = std::make_shared<TrialFlags>();
  outcome->add_option("PUMP", of->pump, "PUMP_ID or pumps/PUMP_ID (lifecycle TRIAL)")->required();
  outcome
      ->add_option("--relief", of->relief,
                   "Pain relief in percent of baseline, 0..100 (>= 50: success)")
      ->required();
  outcome->add_option("--time", of->time,
                      absl::StrCat("When it was assessed (default now): ", kTimeHelp));
  outcome->add_option("--notes", of->notes, "Free text (no PHI)");
  outcome->add_option("--reason", of->reason, "Audit reason");
  OnSelected(outcome, chosen, [of](Ctl& ctl) { return RunTrialOutcome(ctl, *of); });

  auto* implant = pumps->add_subcommand(
      "implant-after-trial",
      "ImplantAfterTrial (admin): move a trial to IMPLANTED with the implanted pump");
  auto itf = std::make_shared<TrialFlags>();
  implant->add_option("PUMP", itf->pump, "PUMP_ID or pumps/PUMP_ID (lifecycle TRIAL)")->required();
  implant
      ->add_option("--profile", itf->implant.profile,
                   absl::StrCat("Implanted pump profile: ",
                                EnumShortNames(v1::PumpProfile_descriptor(), "PUMP_PROFILE_")))
      ->required();
  implant->add_option("--model", itf->implant.model, "Model name");
  implant->add_option("--reservoir", itf->implant.reservoir,
                      absl::StrCat("Reservoir capacity (required): ", kVolumeUnitsHelp));
  implant->add_option("--fill", itf->implant.fill,
                      absl::StrCat("Volume filled at implant: ", kVolumeUnitsHelp));
  implant->add_option("--catheter_length", itf->implant.catheter_length,
                      absl::StrCat("Catheter length: ", kLengthUnitsHelp));
  implant->add_option("--catheter_diameter", itf->implant.catheter_diameter,
                      absl::StrCat("Catheter inner diameter: ", kLengthUnitsHelp));
  implant
      ->add_option("--implant_time", itf->implant.implant_time,
                   absl::StrCat("Implant time (required): ", kTimeHelp))
      ->required();
  implant->add_option("--reporting_interval", itf->implant.reporting_interval,
                      absl::StrCat("Expected reporting interval: ", kDurationUnitsHelp));
  implant->add_option("--time_zone", itf->implant.time_zone,
                      "Patient's IANA time zone (default: the trial's)");
  implant
      ->add_option("--gateway", itf->implant.gateways, "Gateway (repeatable; default: the trial's)")
      ->allow_extra_args(false);
  implant->add_flag("--acknowledge_insufficient_relief", itf->acknowledge,
                    "Implant although the trial gave < 50 % relief or has no outcome");
  AddPrescriptionFlags(implant, &itf->implant.prescription);
  OnSelected(implant, chosen, [itf](Ctl& ctl) { return RunImplantAfterTrial(ctl, *itf); });

  auto* end = pumps->add_subcommand("end-trial",
                                    "EndTrial (admin): end a trial without implant (archived)");
  auto ef = std::make_shared<TrialFlags>();
  end->add_option("PUMP", ef->pump, "PUMP_ID or pumps/PUMP_ID (lifecycle TRIAL)")->required();
  end->add_option("--time", ef->time, absl::StrCat("When it ended (default now): ", kTimeHelp));
  end->add_option("--reason", ef->reason, "Audit reason");
  OnSelected(end, chosen, [ef](Ctl& ctl) { return RunEndTrial(ctl, *ef); });

  auto* get = pumps->add_subcommand("get", "GetPump: one pump's registration");
  auto pump = std::make_shared<std::string>();
  get->add_option("PUMP", *pump, "PUMP_ID or pumps/PUMP_ID")->required();
  OnSelected(get, chosen, [pump](Ctl& ctl) { return RunGet(ctl, *pump); });

  auto* list = pumps->add_subcommand("list", "ListPumps: pumps, filtered (the clinic's worklists)");
  auto lf = std::make_shared<ListFlags>();
  list->add_option("--clinic", lf->clinic, "Only this clinic");
  list->add_flag("--alerting", lf->alerting, "Only pumps with an active alert");
  list->add_option(
      "--min_severity", lf->min_severity,
      absl::StrCat("With --alerting: ", EnumShortNames(v1::Severity_descriptor(), "SEVERITY_")));
  list->add_flag("--stale", lf->stale, "Only silent pumps");
  list->add_option("--refill_due_before", lf->refill_due_before,
                   absl::StrCat("Refill due before: ", kTimeHelp));
  list->add_option("--battery_due_before", lf->battery_due_before,
                   absl::StrCat("Battery replacement due before: ", kTimeHelp));
  list->add_flag("--include_decommissioned", lf->include_decommissioned, "Include archived pumps");
  list->add_option("--order", lf->order,
                   "urgency (most severe alert first) or unspecified (by id)");
  AddPageFlags(list, &lf->page);
  OnSelected(list, chosen, [lf](Ctl& ctl) { return RunList(ctl, *lf); });

  auto* dec = pumps->add_subcommand("decommission",
                                    "DecommissionPump (admin): archive (never delete) a pump");
  auto df = std::make_shared<DecommissionFlags>();
  dec->add_option("PUMP", df->pump, "PUMP_ID or pumps/PUMP_ID")->required();
  dec->add_option("--reason", df->reason, "explant, replacement, ... (required)");
  dec->add_option("--replaced_by", df->replaced_by, "Successor pump id (registered)");
  OnSelected(dec, chosen, [df](Ctl& ctl) { return RunDecommission(ctl, *df); });
}

}  // namespace pumptwin::ctl
