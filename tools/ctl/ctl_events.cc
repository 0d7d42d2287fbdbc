// pumptwinctl refill and event record (RecordRefill, RecordEvent).
#include <memory>

#include "absl/strings/str_cat.h"
#include "tools/ctl/ctl_commands.h"
#include "tools/ctl/ctl_format.h"
#include "tools/ctl/units_parse.h"

namespace pumptwin::ctl {
namespace {

namespace v1 = pumptwin::v1;

struct RefillFlags {
  std::string pump, withdrawn, added, drug, concentration, time, reason;
  bool time_approximate = false;
};

absl::StatusOr<v1::RecordRefillRequest> BuildRefill(const RefillFlags& f) {
  absl::StatusOr<std::string> name = PumpResourceName(f.pump);
  if (!name.ok()) return name.status();
  VolumeUl withdrawn, added;
  ConcentrationUgPerMl conc;
  bool has_withdrawn = false, has_added = false, has_conc = false;
  if (auto s =
          ParseOptionalFlag("--withdrawn", f.withdrawn, ParseVolume, &withdrawn, &has_withdrawn);
      !s.ok())
    return s;
  if (auto s = ParseOptionalFlag("--added", f.added, ParseVolume, &added, &has_added); !s.ok())
    return s;
  if (auto s = ParseOptionalFlag("--concentration", f.concentration, ParseConcentration, &conc,
                                 &has_conc);
      !s.ok())
    return s;
  absl::StatusOr<int64_t> when = OptionalTimeMs("--time", f.time);
  if (!when.ok()) return when.status();
  if (!has_withdrawn)
    return absl::InvalidArgumentError(
        absl::StrCat("--withdrawn is required (volume aspirated before filling; 0mL if none): ",
                     kVolumeUnitsHelp));
  if (!has_added)
    return absl::InvalidArgumentError(absl::StrCat("--added is required: ", kVolumeUnitsHelp));
  if (f.drug.empty()) return absl::InvalidArgumentError("--drug is required");
  if (!has_conc)
    return absl::InvalidArgumentError(
        absl::StrCat("--concentration is required: ", kConcentrationUnitsHelp));
  v1::RecordRefillRequest req;
  req.set_name(*name);
  req.set_withdrawn_volume_ul(withdrawn.ul);
  req.set_added_volume_ul(added.ul);
  req.set_drug(f.drug);
  req.set_concentration_ug_per_ml(conc.ug_per_ml);
  req.set_device_time_ms(*when);
  req.set_time_approximate(f.time_approximate);
  req.set_reason(f.reason);
  return req;
}

int RunRefill(Ctl& ctl, const RefillFlags& f) {
  absl::StatusOr<v1::RecordRefillRequest> req = BuildRefill(f);
  if (!req.ok()) return ctl.Usage(req.status().message());
  v1::RecordRefillResponse resp;
  auto ctx = ctl.NewContext();
  grpc::Status s = ctl.twin().RecordRefill(ctx.get(), *req, &resp);
  if (!s.ok()) return ctl.Fail(s);
  if (ctl.json()) {
    ctl.PrintJson(resp);
    return kExitOk;
  }
  const bool discrepancy = resp.verdict() == v1::REFILL_VERDICT_DISCREPANCY;
  ctl.out() << "refill recorded for " << req->name() << ": "
            << (discrepancy ? "DISCREPANCY (alert raised)" : "ok") << "\n";
  PrintFields(ctl.out(), {
                             {"expected remaining (mL)", UlAsMl(resp.expected_remaining_ul())},
                             {"withdrawn (mL)", UlAsMl(req->withdrawn_volume_ul())},
                             {"discrepancy (mL)", UlAsMl(resp.discrepancy_ul())},
                             {"threshold (mL)", UlAsMl(resp.threshold_ul())},
                             {"added (mL)", UlAsMl(req->added_volume_ul())},
                         });
  if (resp.has_twin()) PrintTwinState(ctl, resp.twin());
  return kExitOk;
}

struct EventFlags {
  std::string pump, type, volume, dose, duration, catheter_length, catheter_diameter, outcome, time,
      reason;
};

constexpr char kEventPrefix[] = "CLINICAL_EVENT_";

absl::StatusOr<v1::RecordEventRequest> BuildEvent(const EventFlags& f) {
  absl::StatusOr<std::string> name = PumpResourceName(f.pump);
  if (!name.ok()) return name.status();
  VolumeUl volume;
  DoseUg dose;
  absl::Duration duration;
  LengthMm length, diameter;
  bool has_volume = false, has_dose = false, has_duration = false, has_length = false,
       has_diameter = false;
  if (auto s = ParseOptionalFlag("--volume", f.volume, ParseVolume, &volume, &has_volume); !s.ok())
    return s;
  if (auto s = ParseOptionalFlag("--dose", f.dose, ParseDose, &dose, &has_dose); !s.ok()) return s;
  if (auto s = ParseOptionalFlag("--duration", f.duration, ParseDuration, &duration, &has_duration);
      !s.ok())
    return s;
  if (auto s = ParseOptionalFlag("--catheter_length", f.catheter_length, ParseLength, &length,
                                 &has_length);
      !s.ok())
    return s;
  if (auto s = ParseOptionalFlag("--catheter_diameter", f.catheter_diameter, ParseLength, &diameter,
                                 &has_diameter);
      !s.ok())
    return s;
  absl::StatusOr<int64_t> when = OptionalTimeMs("--time", f.time);
  if (!when.ok()) return when.status();
  absl::StatusOr<int> type =
      ParseEnumShortName(v1::ClinicalEventType_descriptor(), kEventPrefix, f.type);
  if (!type.ok())
    return absl::InvalidArgumentError(absl::StrCat("event TYPE: ", type.status().message()));

  switch (static_cast<v1::ClinicalEventType>(*type)) {
    case v1::CLINICAL_EVENT_CLINICIAN_BOLUS:
    case v1::CLINICAL_EVENT_PRIMING_BOLUS:
    case v1::CLINICAL_EVENT_BRIDGE_BOLUS:
      if (has_volume == has_dose)
        return absl::InvalidArgumentError("a bolus needs exactly one of --volume or --dose");
      if (!has_duration) return absl::InvalidArgumentError("a bolus needs --duration (e.g. 30m)");
      break;
    case v1::CLINICAL_EVENT_CATHETER_REVISION:
      if (!has_length || !has_diameter) {
        return absl::InvalidArgumentError(
            "catheter-revision needs --catheter_length and --catheter_diameter");
      }
      break;
    case v1::CLINICAL_EVENT_ACCESS_PORT_ASPIRATION:
    case v1::CLINICAL_EVENT_TRIAL_END:
      if (f.outcome.empty()) return absl::InvalidArgumentError("this event needs --outcome");
      break;
    default:
      break;
  }
  v1::RecordEventRequest req;
  req.set_name(*name);
  req.set_type(static_cast<v1::ClinicalEventType>(*type));
  req.set_device_time_ms(*when);
  req.set_volume_ul(volume.ul);
  req.set_dose_ug(dose.ug);
  req.set_duration_ms(absl::ToInt64Milliseconds(duration));
  req.set_catheter_length_cm(length.mm / 10.0);
  req.set_catheter_inner_diameter_mm(diameter.mm);
  req.set_outcome(f.outcome);
  req.set_reason(f.reason);
  return req;
}

int RunEvent(Ctl& ctl, const EventFlags& f) {
  absl::StatusOr<v1::RecordEventRequest> req = BuildEvent(f);
  if (!req.ok()) return ctl.Usage(req.status().message());
  v1::RecordEventResponse resp;
  auto ctx = ctl.NewContext();
  grpc::Status s = ctl.twin().RecordEvent(ctx.get(), *req, &resp);
  if (!s.ok()) return ctl.Fail(s);
  if (ctl.json()) {
    ctl.PrintJson(resp);
    return kExitOk;
  }
  ctl.out() << EnumShortName(v1::ClinicalEventType_descriptor(), req->type(), kEventPrefix)
            << " recorded for " << req->name() << "\n";
  if (resp.has_twin()) PrintTwinState(ctl, resp.twin());
  return kExitOk;
}

}  // namespace

void AddEventCommands(CLI::App& root, Action* chosen) {
  auto* refill = root.add_subcommand(
      "refill",
      "RecordRefill (clinician): e.g. refill P1 --withdrawn 3.2mL --added 20mL --drug morphine "
      "--concentration 10mg/mL; prints the discrepancy verdict");
  auto rf = std::make_shared<RefillFlags>();
  refill->add_option("PUMP", rf->pump, "PUMP_ID or pumps/PUMP_ID")->required();
  refill->add_option("--withdrawn", rf->withdrawn,
                     absl::StrCat("Volume aspirated before filling: ", kVolumeUnitsHelp));
  refill->add_option("--added", rf->added, absl::StrCat("Volume added: ", kVolumeUnitsHelp));
  refill->add_option("--drug", rf->drug, "Drug library key");
  refill->add_option("--concentration", rf->concentration,
                     absl::StrCat("Concentration: ", kConcentrationUnitsHelp));
  refill->add_option("--time", rf->time, absl::StrCat("When (default now): ", kTimeHelp));
  refill->add_option("--reason", rf->reason, "Note for the audit log");
  refill->add_flag("--time-approximate", rf->time_approximate,
                   "--time is approximate (e.g. rounded): the pump's refill log entry within 2 h "
                   "sets the exact time");
  OnSelected(refill, chosen, [rf](Ctl& ctl) { return RunRefill(ctl, *rf); });

  auto* event = root.add_subcommand("event", "Clinical events");
  event->require_subcommand(1);
  auto* record = event->add_subcommand(
      "record",
      "RecordEvent (clinician): e.g. event record P1 clinician-bolus --volume 50uL --duration 30m");
  auto ef = std::make_shared<EventFlags>();
  record->add_option("PUMP", ef->pump, "PUMP_ID or pumps/PUMP_ID")->required();
  record
      ->add_option("TYPE", ef->type,
                   absl::StrCat("One of: ",
                                EnumShortNames(v1::ClinicalEventType_descriptor(), kEventPrefix)))
      ->required();
  record->add_option("--volume", ef->volume, absl::StrCat("Bolus volume: ", kVolumeUnitsHelp));
  record->add_option("--dose", ef->dose,
                     absl::StrCat("Bolus dose (instead of --volume): ", kDoseUnitsHelp));
  record->add_option("--duration", ef->duration,
                     absl::StrCat("Bolus duration: ", kDurationUnitsHelp));
  record->add_option("--catheter_length", ef->catheter_length,
                     absl::StrCat("catheter-revision: new length: ", kLengthUnitsHelp));
  record->add_option("--catheter_diameter", ef->catheter_diameter,
                     absl::StrCat("catheter-revision: new inner diameter: ", kLengthUnitsHelp));
  record->add_option(
      "--outcome", ef->outcome,
      "access-port-aspiration result, trial-end outcome (e.g. \"success: 60% relief\")");
  record->add_option("--time", ef->time, absl::StrCat("When (default now): ", kTimeHelp));
  record->add_option("--reason", ef->reason, "Note for the audit log");
  OnSelected(record, chosen, [ef](Ctl& ctl) { return RunEvent(ctl, *ef); });
}

}  // namespace pumptwin::ctl
