// TwinService trial methods: a pump registered with lifecycle TRIAL (an external trial
// pump, typically 24-48 h) gets its outcome recorded (RecordTrialOutcome), then moves to
// IMPLANTED with the implanted pump's data (ImplantAfterTrial: the twin restarts at
// implant) or ends without implant (EndTrial: DECOMMISSIONED, trial record kept). Each
// change is audited. See docs/api.md "Trial".
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "server/api/twin_service.h"
#include "server/api/twin_service_common.h"
#include "server/core/convert.h"
#include "server/core/pump_registration.h"

namespace pumptwin::server {
namespace {

// Relief at or above which a trial succeeds (the usual selection criterion for implant).
constexpr double kTrialReliefThresholdPercent = 50.0;
constexpr size_t kMaxTrialNotes = 2000;

using TrialChange =
    std::function<absl::Status(v1::Pump& after, twin::Twin& twin, MutationContext& mctx)>;

// Runs `change` on the newest registration of a TRIAL pump on its shard: FAILED_PRECONDITION
// for any other lifecycle; the result is staged, stored, audited and answered.
grpc::ServerUnaryReactor* MutateTrial(PumpChange& call, PumpDirectory* dir, const char* method,
                                      const std::string& reason, TrialChange change,
                                      v1::Pump* resp) {
  return call.ApplyAnyLifecycle(
      method, reason,
      [dir, method, resp,
       change = std::move(change)](PumpChangeScope& c) -> absl::StatusOr<ChangeJson> {
        auto pump = c.LoadRegistration();
        if (!pump.ok()) return pump.status();
        if (pump->lifecycle() != v1::PUMP_LIFECYCLE_TRIAL) {
          return absl::FailedPreconditionError(
              absl::StrCat("pump '", c.pump_id(), "' is not in a trial (lifecycle ",
                           v1::PumpLifecycle_Name(pump->lifecycle()), "); ", method,
                           " applies to pumps registered with lifecycle PUMP_LIFECYCLE_TRIAL"));
        }
        v1::Pump after = *pump;
        if (absl::Status s = change(after, c.twin(), c.mutation()); !s.ok()) return s;
        c.StageRegistration(after);
        if (after.lifecycle() != pump->lifecycle() ||
            after.gateway_ids_size() != pump->gateway_ids_size() ||
            after.clinic() != pump->clinic()) {
          dir->Put(after);
        }
        *resp = after;
        return ChangeJson{MessageJson(*pump), MessageJson(after)};
      });
}

// A time of a trial call: 0 -> now; otherwise not before the trial start and not too far
// ahead of the server time.
absl::StatusOr<int64_t> TrialTime(const char* field, int64_t ms, const v1::Pump& pump,
                                  absl::Time now, absl::Duration max_future) {
  if (ms < 0)
    return absl::InvalidArgumentError(absl::StrCat(field, "=", ms, " must be >= 0 (0: now)"));
  if (ms == 0) ms = ToUnixMs(now);
  if (absl::Status s = CheckNotTooFarAhead(field, ms, now, max_future); !s.ok()) return s;
  if (ms < pump.trial().start_time_ms()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, "=", ms, " is before the trial start ", pump.trial().start_time_ms()));
  }
  return ms;
}

}  // namespace

grpc::ServerUnaryReactor* TwinServiceImpl::RecordTrialOutcome(
    grpc::CallbackServerContext* ctx, const v1::RecordTrialOutcomeRequest* req, v1::Pump* resp) {
  PumpChange call(deps_, &overlay_, ctx, Role::kClinician, req->name());
  if (!call.ok()) return call.Fail(call.status());
  auto fail = [&call](const absl::Status& s) { return call.Fail(s); };
  const double relief = req->pain_relief_percent();
  if (!std::isfinite(relief) || relief < 0 || relief > 100) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "pain_relief_percent=", relief, " outside [0, 100] (percent of the baseline pain)")));
  }
  if (req->notes().size() > kMaxTrialNotes) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("notes has ", req->notes().size(), " bytes; at most ", kMaxTrialNotes)));
  }
  const absl::Time now = deps_.now();
  const absl::Duration max_future = deps_.max_device_time_in_future;
  const int64_t assessed_ms = req->assessed_time_ms();
  const std::string notes = req->notes();
  TrialChange change = [=](v1::Pump& after, twin::Twin&, MutationContext&) -> absl::Status {
    auto at = TrialTime("assessed_time_ms", assessed_ms, after, now, max_future);
    if (!at.ok()) return at.status();
    v1::TrialRecord* t = after.mutable_trial();
    t->set_assessed_time_ms(*at);
    t->set_pain_relief_percent(relief);
    t->set_result(relief >= kTrialReliefThresholdPercent ? v1::TRIAL_RESULT_SUCCESS
                                                         : v1::TRIAL_RESULT_INSUFFICIENT);
    t->set_notes(notes);
    return absl::OkStatus();
  };
  return MutateTrial(call, &deps_.registry->directory(), "RecordTrialOutcome", req->reason(),
                     std::move(change), resp);
}

grpc::ServerUnaryReactor* TwinServiceImpl::ImplantAfterTrial(
    grpc::CallbackServerContext* ctx, const v1::ImplantAfterTrialRequest* req, v1::Pump* resp) {
  PumpChange call(deps_, &overlay_, ctx, Role::kAdmin, req->name());
  if (!call.ok()) return call.Fail(call.status());
  auto fail = [&call](const absl::Status& s) { return call.Fail(s); };
  const std::string& id = call.pump_id();
  const v1::Pump& implant = req->pump();
  if (!implant.pump_id().empty() && implant.pump_id() != id) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "pump.pump_id='", implant.pump_id().substr(0, 128), "' differs from the trial pump '", id,
        "'; leave it empty (the pump keeps its id), or register the implanted pump separately")));
  }
  if (implant.implant_time_ms() <= 0) {
    return fail(absl::InvalidArgumentError(
        "pump.implant_time_ms is required: the device time (Unix ms) of the implant"));
  }
  if (!req->has_initial_prescription()) {
    return fail(absl::InvalidArgumentError(
        "initial_prescription is required: the drug and concentration the implanted pump is "
        "filled with (mode THERAPY_MODE_STOPPED if it is not infusing yet)"));
  }
  const absl::Time now = deps_.now();
  const absl::Duration max_future = deps_.max_device_time_in_future;
  auto lib = DrugLibraryHolder::Current(deps_.drugs);
  const bool ack = req->acknowledge_insufficient_relief();
  v1::ImplantAfterTrialRequest request = *req;
  TrialChange change = [=](v1::Pump& after, twin::Twin& pump_twin,
                           MutationContext& mctx) -> absl::Status {
    const v1::TrialRecord& trial = after.trial();
    if (trial.result() != v1::TRIAL_RESULT_SUCCESS && !ack) {
      return absl::FailedPreconditionError(
          trial.result() == v1::TRIAL_RESULT_UNSPECIFIED
              ? std::string("no trial outcome is recorded: record it (RecordTrialOutcome), or "
                            "set acknowledge_insufficient_relief to implant anyway")
              : absl::StrCat("the trial gave ", trial.pain_relief_percent(),
                             " % relief, below the ", kTrialReliefThresholdPercent,
                             " % threshold: set acknowledge_insufficient_relief to implant "
                             "anyway"));
    }
    const v1::Pump& in = request.pump();
    if (in.implant_time_ms() < trial.start_time_ms()) {
      return absl::InvalidArgumentError(absl::StrCat("pump.implant_time_ms=", in.implant_time_ms(),
                                                     " is before the trial start ",
                                                     trial.start_time_ms()));
    }
    v1::Pump next = after;
    next.set_profile(in.profile());
    next.set_reservoir_capacity_ul(in.reservoir_capacity_ul());
    next.set_catheter_length_cm(in.catheter_length_cm());
    next.set_catheter_inner_diameter_mm(in.catheter_inner_diameter_mm());
    next.set_implant_time_ms(in.implant_time_ms());
    next.set_reporting_interval_ms(in.reporting_interval_ms());
    if (!in.model_name().empty()) next.set_model_name(in.model_name());
    if (!in.patient_ref().empty()) next.set_patient_ref(in.patient_ref());
    if (!in.clinic().empty()) next.set_clinic(in.clinic());
    if (!in.time_zone().empty()) next.set_time_zone(in.time_zone());
    if (in.gateway_ids_size() > 0) *next.mutable_gateway_ids() = in.gateway_ids();
    next.set_lifecycle(v1::PUMP_LIFECYCLE_IMPLANTED);
    next.mutable_trial()->set_end_time_ms(in.implant_time_ms());
    auto twin = RegistrationTwin({.pump = &next,
                                  .initial_prescription = &request.initial_prescription(),
                                  .initial_reservoir_ul = request.initial_reservoir_ul()},
                                 now, max_future, lib->library);
    if (!twin.ok()) return twin.status();
    // Same pump id: telemetry numbering continues after the trial's samples; the trial
    // twin's open alerts are closed.
    twin->ContinueSequence(pump_twin.last_seq());
    pump_twin.ResolveAll("trial ended: the implanted pump's twin starts", &mctx.transitions);
    pump_twin = *std::move(twin);
    after = std::move(next);
    return absl::OkStatus();
  };
  return MutateTrial(call, &deps_.registry->directory(), "ImplantAfterTrial", req->reason(),
                     std::move(change), resp);
}

grpc::ServerUnaryReactor* TwinServiceImpl::EndTrial(grpc::CallbackServerContext* ctx,
                                                    const v1::EndTrialRequest* req,
                                                    v1::Pump* resp) {
  PumpChange call(deps_, &overlay_, ctx, Role::kAdmin, req->name());
  if (!call.ok()) return call.Fail(call.status());
  const absl::Time now = deps_.now();
  const absl::Duration max_future = deps_.max_device_time_in_future;
  const int64_t end_ms = req->end_time_ms();
  TrialChange change = [=](v1::Pump& after, twin::Twin& pump_twin,
                           MutationContext& mctx) -> absl::Status {
    auto at = TrialTime("end_time_ms", end_ms, after, now, max_future);
    if (!at.ok()) return at.status();
    twin::ClinicalEvent end;
    end.type = twin::ClinicalEventType::kTrialEnd;
    end.device_time = FromUnixMs(*at);
    if (absl::Status s = pump_twin.RecordEvent(end, &mctx.transitions); !s.ok()) return s;
    pump_twin.ResolveAll("trial ended without implant", &mctx.transitions);
    after.set_lifecycle(v1::PUMP_LIFECYCLE_DECOMMISSIONED);
    after.mutable_trial()->set_end_time_ms(*at);
    return absl::OkStatus();
  };
  return MutateTrial(call, &deps_.registry->directory(), "EndTrial", req->reason(),
                     std::move(change), resp);
}

}  // namespace pumptwin::server
