// Twin: clinical calls - prescription changes (with the drug library and titration
// guard), refills, clinical events, patient-bolus decisions and predictions.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "twin/detectors.h"
#include "twin/integrator.h"
#include "twin/plan_pool.h"
#include "twin/sample_check.h"
#include "twin/twin.h"

namespace pumptwin::twin {

std::string JoinViolations(const std::vector<LimitViolation>& v, bool hard);  // twin.cc

namespace {

bool Finite(double v) { return std::isfinite(v); }

absl::Status CheckVolume(const char* field, double v, double max) {
  if (!Finite(v) || v < 0 || v > max) {
    return absl::InvalidArgumentError(absl::StrCat(field, " ", v, " uL outside [0, ", max, "]"));
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<LimitViolation> Twin::ValidatePrescription(const Prescription& rx,
                                                       const DrugLibrary& library) const {
  const Setup& su = *setup_;
  const bool in_window =
      su.titration_base_time != kNoTime && s_.t - su.titration_base_time < kNsPerDay;
  const MicrogramsPerDay ref = in_window ? su.titration_base : MaxDailyDose(su.current->rx);
  return twin::ValidatePrescription(rx, *su.spec, library, ref);
}

absl::StatusOr<std::vector<LimitViolation>> Twin::SetPrescription(
    const Prescription& rx, absl::Time effective_device_time,
    absl::Span<const std::string> acknowledged, std::vector<AlertTransition>* out,
    const DrugLibrary& library) {
  if (!TimeInRange(effective_device_time)) {
    return absl::InvalidArgumentError("effective_device_time outside [1970, 2200)");
  }
  std::vector<LimitViolation> v = ValidatePrescription(rx, library);
  if (HasHardViolation(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("prescription rejected: ", JoinViolations(v, true)));
  }
  std::vector<std::string> missing;
  for (const LimitViolation& x : v) {
    if (std::find(acknowledged.begin(), acknowledged.end(), x.code) == acknowledged.end()) {
      missing.push_back(x.code);
    }
  }
  if (!missing.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("soft limits need acknowledgement: ", JoinViolations(v, false)));
  }
  auto next = std::make_shared<Setup>(*setup_);
  if (s_.t - next->titration_base_time >= kNsPerDay || next->titration_base_time == kNoTime) {
    next->titration_base = MaxDailyDose(next->current->rx);
    next->titration_base_time = s_.t;
  }
  PlanRef plan = MakePlan(rx, *library.Find(rx.drug));
  const TimeNs eff = ToNs(effective_device_time);
  if (eff <= s_.t) {
    next->current = std::move(plan);
    next->pending.reset();
    next->pending_at = kNoTime;
  } else {
    next->pending = std::move(plan);
    next->pending_at = eff;
  }
  setup_ = std::move(next);
  MarkSession(s_);  // programming: a telemetry session disturbs the readings that follow
  AlertSink sink(s_, s_.t, out);
  TimeChecks(s_, *setup_, DefaultTuning(), s_.t, false, sink);
  return v;
}

absl::StatusOr<RefillResult> Twin::RecordRefill(const Refill& r, std::vector<AlertTransition>* out,
                                                const DrugLibrary& library) {
  const Tuning& tu = DefaultTuning();
  const double cap = setup_->cfg.reservoir_capacity.value();
  if (absl::Status st = CheckVolume("refill.withdrawn_volume_ul", r.withdrawn.value(),
                                    cap * DefaultSampleLimits().reservoir_over_capacity);
      !st.ok()) {
    return st;
  }
  if (absl::Status st = CheckVolume("refill.added_volume_ul", r.added.value(), cap); !st.ok()) {
    return st;
  }
  if (!TimeInRange(r.device_time))
    return absl::InvalidArgumentError("refill.device_time outside [1970, 2200)");
  const double conc = r.concentration.value();
  if (!Finite(conc) || conc < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("refill.concentration_ug_per_ml ", conc, " must be finite and >= 0"));
  }
  const DrugLimits* drug = setup_->current->drug.get();
  if (!r.drug.empty()) {
    drug = library.Find(r.drug);
    if (drug == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("refill.drug '", r.drug, "' is not in the drug library"));
    }
    if (conc == 0)
      return absl::InvalidArgumentError("refill.concentration_ug_per_ml required with a new drug");
  }
  if (conc > drug->max_concentration.value()) {
    return absl::InvalidArgumentError(absl::StrCat("refill.concentration_ug_per_ml ", conc,
                                                   " above the ", drug->key, " maximum ",
                                                   drug->max_concentration.value()));
  }

  CatchUp(ToNs(r.device_time));
  MarkSession(s_);  // the refill session disturbs the readings that follow
  AlertSink sink(s_, s_.t, out);
  RefillResult res;
  const double since = s_.prog_total_ul - s_.prog_at_refill_ul;
  const double withdrawn = r.withdrawn.value();
  // The reservoirs floor at 0; the expectation does not: a model that ran the reservoir dry
  // expects a negative volume (the programmed volume it could not deliver), so the
  // discrepancy is never hidden behind the floor.
  const bool ran_dry = s_.est_ul <= 0 && s_.ratio * since > s_.fill_ul;
  const double expected = ran_dry ? std::min(0.0, s_.fill_ul - s_.ratio * since) : s_.est_ul;
  res.expected_remaining = Microliters(expected);
  res.calculated_remaining = Microliters(s_.calc_ul);
  res.discrepancy = Microliters(withdrawn - expected);
  res.threshold = Microliters(
      std::max(tu.refill_discrepancy_min.value(), tu.refill_discrepancy_fraction * since));
  const bool bad = ran_dry || std::abs(res.discrepancy.value()) > res.threshold.value();
  res.verdict = bad ? RefillVerdict::kDiscrepancy : RefillVerdict::kOk;
  std::vector<Evidence> ev{
      Ev("withdrawn_volume", withdrawn, expected, res.threshold.value(), "uL",
         "threshold applies to |withdrawn - expected|"),
      Ev("calculated_reservoir", s_.calc_ul, expected, 0, "uL", "pump's own calculation"),
      Ev("volume_since_refill", since, since, 0, "uL", "programmed")};
  if (ran_dry) {
    ev.push_back(Ev("model_ran_dry", s_.ratio * since - s_.fill_ul, 0, 0, "uL",
                    "the model delivered the whole reservoir before this refill; observed = "
                    "programmed volume beyond the reservoir content"));
  }
  if (bad) {
    sink.Raise(AlertType::kRefillDiscrepancy, Severity::kWarning, ev,
               ran_dry ? absl::StrFormat("refill: the model ran the reservoir dry (%.2f mL "
                                         "programmed beyond its content); withdrew %.2f mL",
                                         -expected / 1000.0, withdrawn / 1000.0)
                       : absl::StrFormat("refill discrepancy: withdrew %.2f mL, expected %.2f mL",
                                         withdrawn / 1000.0, expected / 1000.0));
  } else {
    sink.Resolve(AlertType::kRefillDiscrepancy, "next refill within tolerance", ev);
  }
  // An (almost) empty withdrawal after at least the reservoir's content was programmed is
  // censored: the pump may have stopped delivering when it emptied, so it bounds the ratio
  // from below but does not measure it (learning from it would drag the ratio down).
  const double empty_sd = 2 * tu.refill_withdrawal_sd.value();
  const bool censored = withdrawn <= empty_sd && since >= s_.fill_ul - empty_sd;
  if (since >= tu.min_refill_ratio_volume.value() && !censored) {
    const double ratio = (s_.fill_ul - r.withdrawn.value()) / since;
    res.observed_ratio = ratio;
    ObserveRatio(s_, tu, ratio, std::sqrt(2.0) * tu.refill_withdrawal_sd.value() / since,
                 "refill withdrawal", sink);
  }
  // The reservoir now holds what was added (emptied first).
  s_.calc_ul = s_.est_ul = s_.fill_ul = r.added.value();
  s_.prog_at_refill_ul = s_.prog_total_ul;
  s_.refill_time = s_.t;
  RestartFlowSegments(s_);
  s_.pocket_run = 0;
  s_.pocket_until = (setup_->spec->signals & kSigMeasuredReservoir) != 0
                        ? s_.t + absl::ToInt64Nanoseconds(tu.pocket_fill_window)
                        : kNoTime;
  sink.Resolve(AlertType::kPocketFill, "reservoir refilled");
  sink.Resolve(AlertType::kRunsDryBeforeAlarm, "reservoir refilled");
  sink.Resolve(AlertType::kDrugStability, "fresh drug in the reservoir");
  if (!r.drug.empty() || conc > 0) {
    auto next = std::make_shared<Setup>(*setup_);
    Prescription rx = next->current->rx;
    rx.drug = drug->key;
    if (conc > 0) rx.concentration = MicrogramsPerMilliliter(conc);
    next->current = MakePlan(rx, *drug);
    setup_ = std::move(next);
  }
  TimeChecks(s_, *setup_, tu, s_.t, false, sink);
  return res;
}

absl::Status Twin::RecordEvent(const ClinicalEvent& e, std::vector<AlertTransition>* out) {
  const int type = static_cast<int>(e.type);
  if (type < 1 || type > static_cast<int>(ClinicalEventType::kTrialEnd)) {
    return absl::InvalidArgumentError(absl::StrCat("event.type ", type, " outside [1, 9]"));
  }
  if (!TimeInRange(e.device_time))
    return absl::InvalidArgumentError("event.device_time outside [1970, 2200)");
  const double cap = setup_->cfg.reservoir_capacity.value();
  if (e.volume.has_value()) {
    if (absl::Status st = CheckVolume("event.volume_ul", e.volume->value(), cap); !st.ok())
      return st;
  }
  if (e.dose.has_value() && (!Finite(e.dose->value()) || e.dose->value() < 0)) {
    return absl::InvalidArgumentError("event.dose_ug must be finite and >= 0");
  }
  if (e.duration < absl::ZeroDuration() || e.duration > absl::Hours(24 * 7)) {
    return absl::InvalidArgumentError("event.duration outside [0, 7 days]");
  }
  const Setup& su = *setup_;
  PumpConfig revised = su.cfg;
  if (e.type == ClinicalEventType::kCatheterRevision) {
    if (!e.catheter_length.has_value() || !e.catheter_inner_diameter.has_value()) {
      return absl::InvalidArgumentError(
          "catheter revision needs catheter length and inner diameter");
    }
    revised.catheter_length = *e.catheter_length;
    revised.catheter_inner_diameter = *e.catheter_inner_diameter;
    if (absl::Status st = ValidatePumpConfig(revised); !st.ok()) return st;
  }
  Microliters bolus(0);
  if (e.type == ClinicalEventType::kClinicianBolus) {
    if (e.volume.has_value()) {
      bolus = *e.volume;
    } else if (e.dose.has_value()) {
      bolus = *e.dose / su.current->rx.concentration;
    } else {
      return absl::InvalidArgumentError("clinician bolus needs volume_ul or dose_ug");
    }
    if (!Finite(bolus.value()) || bolus.value() > cap) {
      return absl::InvalidArgumentError(
          absl::StrCat("clinician bolus volume ", bolus.value(), " uL outside [0, ", cap, "]"));
    }
  } else if (e.type == ClinicalEventType::kPrimingBolus ||
             e.type == ClinicalEventType::kBridgeBolus) {
    bolus = e.volume.value_or(PrimingVolume(*su.spec, su.cfg));
  }

  CatchUp(ToNs(e.device_time));
  MarkSession(s_);  // every clinical event is a session with the pump
  AlertSink sink(s_, s_.t, out);
  switch (e.type) {
    case ClinicalEventType::kClinicianBolus:
    case ClinicalEventType::kBridgeBolus:
      StartBolus(s_, *setup_, bolus, e.duration, /*counts_as_dose=*/true);
      break;
    case ClinicalEventType::kPrimingBolus:
      StartBolus(s_, *setup_, bolus, e.duration, /*counts_as_dose=*/false);
      break;
    case ClinicalEventType::kMri:
      ApplyDeviceEvent(s_, *setup_, DefaultTuning(),
                       DeviceEvent{DeviceEventType::kMagneticField, e.device_time, std::nullopt},
                       sink);
      break;
    case ClinicalEventType::kCatheterRevision: {
      auto next = std::make_shared<Setup>(*setup_);
      next->cfg = revised;
      DeriveSetup(*next, DefaultTuning());
      setup_ = std::move(next);
      s_.p_base = kNaNf;
      s_.p_var = 0;
      s_.n_pressure = s_.high_run = s_.low_run = 0;
      sink.Resolve(AlertType::kCatheterBlockage, "catheter revised");
      sink.Resolve(AlertType::kCatheterLeak, "catheter revised");
      break;
    }
    case ClinicalEventType::kPumpReplacement: {
      auto next = std::make_shared<Setup>(*setup_);
      next->cfg.implant_time = FromNs(s_.t);
      DeriveSetup(*next, DefaultTuning());
      setup_ = std::move(next);
      s_.battery_used_mah = 0;
      s_.last_drive_units = kNoDriveUnits;
      s_.n_current = 0;
      s_.current_ratio = 1.0f;
      for (uint16_t f :
           {kFlagEos, kFlagEriReported, kFlagEarlyDepletion, kFlagStalled, kFlagMriSuspended,
            kFlagStallLong, kFlagDriveSeen, kFlagDriveRefPending, kFlagDepletionPending}) {
        s_.Set(f, false);
      }
      s_.stall_since = s_.mri_since = kNoTime;
      sink.Resolve(AlertType::kBatteryDepletion, "pump replaced");
      sink.Resolve(AlertType::kMotorStall, "pump replaced");
      sink.Resolve(AlertType::kNoResumptionAfterMri, "pump replaced");
      break;
    }
    case ClinicalEventType::kTrialStart:
    case ClinicalEventType::kTrialEnd: {
      auto next = std::make_shared<Setup>(*setup_);
      next->phase =
          e.type == ClinicalEventType::kTrialStart ? TwinPhase::kTrial : TwinPhase::kTrialEnded;
      setup_ = std::move(next);
      break;
    }
    case ClinicalEventType::kAccessPortAspiration:
    case ClinicalEventType::kUnspecified:
      break;
  }
  TimeChecks(s_, *setup_, DefaultTuning(), s_.t, false, sink);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TrajectoryPoint>> Twin::Predict(absl::Time until, absl::Duration step,
                                                           const Prescription* proposed,
                                                           const DrugLibrary& library) const {
  if (!TimeInRange(until) || until < device_time()) {
    return absl::InvalidArgumentError("predict: until must be within [model time, 2200)");
  }
  if (step <= absl::ZeroDuration() || (until - device_time()) / step > 100000) {
    return absl::InvalidArgumentError("predict: step must be > 0 and give at most 100000 points");
  }
  Twin copy = *this;
  if (proposed != nullptr) {
    const std::vector<LimitViolation> v = ValidatePrescription(*proposed, library);
    if (HasHardViolation(v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("proposed prescription rejected: ", JoinViolations(v, true)));
    }
    auto next = std::make_shared<Setup>(*setup_);
    next->current = MakePlan(*proposed, *library.Find(proposed->drug));
    next->pending.reset();
    copy.setup_ = std::move(next);
  }
  std::vector<TrajectoryPoint> points;
  for (absl::Time t = device_time(); t <= until; t += step) {
    copy.CatchUp(ToNs(t));
    points.push_back({t, copy.calculated_reservoir(), copy.estimated_reservoir(),
                      copy.delivered_24h(), copy.battery_charge_fraction()});
  }
  return points;
}

}  // namespace pumptwin::twin
