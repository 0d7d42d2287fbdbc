// Twin: creation, telemetry (Observe/Tick/Advance), forecasts, serialisation, accessors.
// Clinical calls (prescription, refill, events, predictions) are in twin_clinical.cc.
#include "twin/twin.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "twin/codec.h"
#include "twin/detectors.h"
#include "twin/integrator.h"
#include "twin/plan_pool.h"
#include "twin/sample_check.h"

namespace pumptwin::twin {

const Tuning& DefaultTuning() {
  static const Tuning kTuning;
  return kTuning;
}

const SampleLimits& DefaultSampleLimits() {
  static const SampleLimits kLimits;
  return kLimits;
}

void DerivePlan(TherapyPlan& plan) {
  plan.mean_daily_rate = MeanDailyRate(plan.rx);
  plan.stability_ns = absl::ToInt64Nanoseconds(plan.drug->stability);
  plan.period_ns = SchedulePeriodNs(plan.rx);
  plan.origin_ns =
      (plan.rx.mode == TherapyMode::kFlex && plan.rx.flex.weekly) ? kMondayOriginNs : 0;
  plan.step_start_ns.clear();
  if (plan.rx.mode == TherapyMode::kFlex) {
    for (const ScheduleStep& st : plan.rx.flex.steps) {
      plan.step_start_ns.push_back(absl::ToInt64Nanoseconds(st.start_offset));
    }
  }
}

namespace {

BasalPiece PlanBasalAtWall(const TherapyPlan& plan, TimeNs t) {
  const auto& starts = plan.step_start_ns;
  if (starts.empty()) return {MicrolitersPerDay(0), kNeverNs};
  TimeNs off = (t - plan.origin_ns) % plan.period_ns;
  if (off < 0) off += plan.period_ns;
  const auto it = std::upper_bound(starts.begin(), starts.end(), off);
  const size_t i = static_cast<size_t>(it - starts.begin()) - (it == starts.begin() ? 0 : 1);
  const TimeNs next = it == starts.end() ? plan.period_ns : *it;
  return {plan.rx.flex.steps[i].rate, t + (next - off)};
}

}  // namespace

BasalPiece PlanBasalAt(const TherapyPlan& plan, TimeNs t, const LocalZone& zone) {
  if (plan.rx.mode != TherapyMode::kFlex) return BasalAt(plan.rx, t);
  return LocalBasal(t, zone, [&plan](TimeNs w) { return PlanBasalAtWall(plan, w); });
}

void DeriveSetup(Setup& s, const Tuning& tuning) {
  s.spec = FindPumpSpec(s.cfg.profile);
  s.expected_stroke = ExpectedStrokePressure(*s.spec, s.cfg, tuning.hydraulics);
  if (s.spec->has_battery) {
    const TimeNs implant = ToNs(s.cfg.implant_time);
    s.eri_cap_ns = implant + absl::ToInt64Nanoseconds(s.spec->max_service_life) -
                   absl::ToInt64Nanoseconds(s.spec->eri_to_eos);
  } else {
    s.eri_cap_ns = kNeverNs;
  }
}

absl::string_view AlertTypeName(AlertType type) {
  static constexpr absl::string_view kNames[kNumAlertTypes] = {
      "unspecified",           "flow_drift_over",   "flow_drift_under", "catheter_blockage",
      "catheter_leak",         "battery_depletion", "low_reservoir",    "runs_dry_before_alarm",
      "refill_discrepancy",    "pocket_fill",       "motor_stall",      "no_resumption_after_mri",
      "patient_bolus_lockout", "daily_dose_limit",  "silent_pump",      "clock_skew",
      "drug_stability"};
  const int i = static_cast<int>(type);
  return (i >= 0 && i < kNumAlertTypes) ? kNames[i] : kNames[0];
}

absl::string_view SeverityName(Severity severity) {
  switch (severity) {
    case Severity::kInfo:
      return "info";
    case Severity::kWarning:
      return "warning";
    case Severity::kCritical:
      return "critical";
    default:
      return "unspecified";
  }
}

std::string JoinViolations(const std::vector<LimitViolation>& v, bool hard) {
  std::vector<std::string> parts;
  for (const LimitViolation& x : v) {
    if (x.hard == hard) parts.push_back(absl::StrCat(x.code, " ", x.field, ": ", x.message));
  }
  return absl::StrJoin(parts, "; ");
}

absl::StatusOr<Twin> Twin::Start(const PumpConfig& cfg, const Prescription& rx, double reservoir_ul,
                                 absl::Time start, const DrugLibrary& library) {
  if (absl::Status st = ValidatePumpConfig(cfg); !st.ok()) return st;
  if (!TimeInRange(start)) {
    return absl::InvalidArgumentError("start_device_time outside [1970, 2200)");
  }
  const PumpSpec& spec = *FindPumpSpec(cfg.profile);
  const std::vector<LimitViolation> v = twin::ValidatePrescription(rx, spec, library, std::nullopt);
  if (HasHardViolation(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("prescription rejected: ", JoinViolations(v, true)));
  }
  auto su = std::make_shared<Setup>();
  su->cfg = cfg;
  su->current = MakePlan(rx, *library.Find(rx.drug));
  const TimeNs t0 = ToNs(start);
  su->titration_base = MaxDailyDose(rx);
  su->titration_base_time = t0;
  DeriveSetup(*su, DefaultTuning());

  ModelState s;
  s.t = t0;
  s.hour_index = static_cast<int32_t>(FloorDiv(t0, kNsPerHour));
  s.refill_time = t0;
  s.calc_ul = s.est_ul = s.fill_ul = reservoir_ul;
  const double prior_sd = DefaultTuning().ratio_prior_sd;
  s.ratio_var = prior_sd * prior_sd;
  // A twin started after implant begins with the modelled battery use.
  if (spec.has_battery && cfg.implant_time < start) {
    const double days = absl::ToDoubleHours(start - cfg.implant_time) / 24.0;
    s.battery_used_mah =
        std::min(spec.battery_capacity.value(),
                 days * (spec.idle_current_ua * 24e-3 +
                         spec.motor_mah_per_ul * su->current->mean_daily_rate.value()));
  }
  return Twin(std::move(su), s);
}

absl::StatusOr<Twin> Twin::Create(const PumpConfig& cfg, const Prescription& rx,
                                  Microliters initial_reservoir, absl::Time start_device_time,
                                  const DrugLibrary& library) {
  const double init = initial_reservoir.value();
  if (!std::isfinite(init) || init < 0 || init > cfg.reservoir_capacity.value()) {
    return absl::InvalidArgumentError(absl::StrCat("initial_reservoir_ul ", init, " outside [0, ",
                                                   cfg.reservoir_capacity.value(), "]"));
  }
  return Start(cfg, rx, init, start_device_time, library);
}

absl::StatusOr<Twin> Twin::Enrol(const PumpConfig& cfg, const Prescription& rx, const Enrolment& e,
                                 const DrugLibrary& library) {
  if (absl::Status st = ValidatePumpConfig(cfg); !st.ok()) return st;
  auto ms = [](absl::Time t) { return absl::ToUnixMillis(t); };
  if (!TimeInRange(e.interrogation_time) || e.interrogation_time == absl::UnixEpoch()) {
    return absl::InvalidArgumentError(
        "enrolment.interrogation_time_ms is required (device time of the last interrogation)");
  }
  if (e.interrogation_time < cfg.implant_time) {
    return absl::InvalidArgumentError(
        absl::StrCat("enrolment.interrogation_time_ms=", ms(e.interrogation_time),
                     " is before pump.implant_time_ms=", ms(cfg.implant_time),
                     "; an enrolment starts at an interrogation after implant"));
  }
  const double cap = cfg.reservoir_capacity.value();
  const double calc = e.calculated_reservoir.value();
  if (!std::isfinite(calc) || calc < 0 || calc > cap) {
    return absl::InvalidArgumentError(absl::StrCat("enrolment.calculated_reservoir_ul=", calc,
                                                   " outside [0, ", cap,
                                                   "] (pump.reservoir_capacity_ul)"));
  }
  if (e.last_refill_time.has_value()) {
    if (*e.last_refill_time < cfg.implant_time) {
      return absl::InvalidArgumentError(
          absl::StrCat("enrolment.last_refill_time_ms=", ms(*e.last_refill_time),
                       " is before pump.implant_time_ms=", ms(cfg.implant_time)));
    }
    if (*e.last_refill_time > e.interrogation_time) {
      return absl::InvalidArgumentError(
          absl::StrCat("enrolment.last_refill_time_ms=", ms(*e.last_refill_time),
                       " is after enrolment.interrogation_time_ms=", ms(e.interrogation_time)));
    }
  }
  double fill = calc;
  if (e.last_refill_volume.has_value()) {
    fill = e.last_refill_volume->value();
    if (!std::isfinite(fill) || fill <= 0 || fill > cap) {
      return absl::InvalidArgumentError(absl::StrCat("enrolment.last_refill_volume_ul=", fill,
                                                     " outside (0, ", cap,
                                                     "] (pump.reservoir_capacity_ul; 0: unknown)"));
    }
    if (calc > fill) {
      return absl::InvalidArgumentError(absl::StrCat(
          "enrolment.calculated_reservoir_ul=", calc, " is above enrolment.last_refill_volume_ul=",
          fill, "; the pump's calculated reservoir only falls between refills"));
    }
  }
  const PumpSpec& spec = *FindPumpSpec(cfg.profile);
  if (!spec.has_battery && (e.battery_indicator_fraction.has_value() || e.battery_eri_shown)) {
    return absl::InvalidArgumentError(
        absl::StrCat("enrolment.battery_indicator_fraction / battery_eri_shown: ", spec.name,
                     " pumps have no battery; leave them unset"));
  }
  if (e.battery_indicator_fraction.has_value()) {
    const double f = *e.battery_indicator_fraction;
    if (!std::isfinite(f) || f < 0 || f > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("enrolment.battery_indicator_fraction=", f,
                       " outside [0, 1] (fraction of usable charge)"));
    }
  }
  absl::StatusOr<Twin> twin = Start(cfg, rx, calc, e.interrogation_time, library);
  if (!twin.ok()) return twin;
  ModelState& s = twin->s_;
  const Tuning& tu = DefaultTuning();
  s.Set(kFlagEnrolled, true);
  s.fill_ul = fill;
  // The programmed volume since the last refill is what the pump's calculation lost.
  s.prog_at_refill_ul = -(fill - calc);
  if (e.last_refill_time.has_value()) s.refill_time = ToNs(*e.last_refill_time);
  // Nothing is known yet about this pump's delivery: a wide prior on the ratio.
  s.ratio_var = tu.enrol_ratio_prior_sd * tu.enrol_ratio_prior_sd;
  if (spec.has_battery) {
    const double capacity = spec.battery_capacity.value();
    if (e.battery_indicator_fraction.has_value()) {
      s.battery_used_mah = capacity * (1.0 - *e.battery_indicator_fraction);
      // The pump's own mean drain since implant, in this model's capacity units (the
      // indicator is a fraction: the true capacity cancels out of the forecast).
      const double days = absl::ToDoubleHours(e.interrogation_time - cfg.implant_time) / 24.0;
      if (days >= absl::ToDoubleHours(tu.drain_history_min) / 24.0) {
        const double ua = s.battery_used_mah / days / 24e-3;
        s.cur_base =
            static_cast<float>(std::clamp(ua, tu.drain_history_min_ua, tu.current_prior_max_ua));
        s.Set(kFlagDrainFromHistory, true);
      }
    }
    if (e.battery_eri_shown) {
      s.battery_used_mah = std::max(s.battery_used_mah, capacity * (1.0 - spec.eri_fraction));
      s.Set(kFlagEriReported, true);
    }
  }
  return twin;
}

void Twin::SetRegistered(absl::Time server_time) {
  if (!TimeInRange(server_time) || s_.last_server != kNoTime) return;
  s_.last_server = ToNs(server_time);
  s_.Set(kFlagNoSampleYet, true);
}

void Twin::ResolveAll(absl::string_view summary, std::vector<AlertTransition>* out) {
  AlertSink sink(s_, s_.t, out);
  for (int i = 1; i < kNumAlertTypes; ++i)
    sink.Resolve(static_cast<AlertType>(i), std::string(summary));
}

void Twin::ContinueSequence(uint64_t last_seq) { s_.last_seq = std::max(s_.last_seq, last_seq); }

void Twin::CatchUp(TimeNs t) {
  if (t > s_.t) twin::Advance(s_, setup_, t);
}

absl::Status Twin::Advance(absl::Time device_time) {
  if (!TimeInRange(device_time))
    return absl::InvalidArgumentError("device_time outside [1970, 2200)");
  const TimeNs t = ToNs(device_time);
  if (t < s_.t) {
    return absl::FailedPreconditionError(absl::StrCat("device_time ", absl::FormatTime(device_time),
                                                      " is before the model time ",
                                                      absl::FormatTime(FromNs(s_.t))));
  }
  twin::Advance(s_, setup_, t);
  return absl::OkStatus();
}

void Twin::ApplySignals(const Sample& sample, TimeNs prev_t, std::vector<AlertTransition>* out) {
  const Tuning& tu = DefaultTuning();
  const Setup& su = *setup_;
  const uint32_t sig = su.spec->signals;
  AlertSink sink(s_, s_.t, out);
  bool advanced = false;
  // Alarm flags first: a stall first seen in this sample's flags makes this sample's drive
  // units the stall's reference, and a stall flag still on is never resumption.
  const bool alarms = (sig & kSigAlarms) != 0;
  if (alarms) ApplyAlarmFlags(s_, su, sample.alarm_flags, sink);
  const bool drive_reported =
      (sig & kSigDriveUnits) != 0 && sample.cumulative_drive_units.has_value();
  if (drive_reported) {
    const bool stall_flag = alarms && (sample.alarm_flags & kAlarmMotorStall) != 0;
    ObserveDriveUnits(s_, *sample.cumulative_drive_units, stall_flag, &advanced, sink);
  }
  if ((sig & kSigMeasuredReservoir) != 0 && sample.measured_reservoir.has_value()) {
    ObserveMeasuredReservoir(s_, su, tu, sample.measured_reservoir->value(), advanced, sink);
  }
  if ((sig & kSigStrokePressure) != 0 && sample.stroke_pressure_peak.has_value()) {
    std::optional<double> puls;
    if (sample.csf_pulsation.has_value()) puls = sample.csf_pulsation->value();
    const bool quiet = drive_reported && !advanced &&
                       VolumeUl(su.current->mean_daily_rate.value(), s_.t - prev_t) >=
                           tu.motor_stopped_strokes * su.spec->stroke_volume.value();
    ObserveStrokePressure(s_, su, tu, sample.stroke_pressure_peak->value(), puls, quiet, sink);
  }
  ObserveBattery(s_, su, tu, sample.battery_voltage, sample.battery_current_ua,
                 static_cast<double>(s_.t - prev_t) / kNsPerHour, sink);
}

absl::Status Twin::Observe(const Sample& sample, absl::Time server_time,
                           std::vector<AlertTransition>* out) {
  if (absl::Status st = CheckSample(sample, server_time, setup_->cfg, s_.t, DefaultSampleLimits());
      !st.ok()) {
    return st;
  }
  const Tuning& tu = DefaultTuning();
  const TimeNs prev_t = s_.t;
  AlertSink sink(s_, ToNs(sample.device_time), out);
  if (s_.Has(kFlagSilent)) {
    s_.Set(kFlagSilent, false);
    sink.Resolve(AlertType::kSilentPump, "pump reporting again");
  }
  if ((setup_->spec->signals & kSigEventLog) != 0 && !sample.events.empty()) {
    // Event-log entries in time order (stable for equal times); an entry stamped before
    // the model time (pump clock jitter) is applied at the model time.
    std::vector<uint32_t> order(sample.events.size());
    std::iota(order.begin(), order.end(), 0u);
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return sample.events[a].device_time < sample.events[b].device_time;
    });
    for (uint32_t i : order) {
      const DeviceEvent& e = sample.events[i];
      CatchUp(ToNs(e.device_time));
      sink.set_now(s_.t);
      TimeChecks(s_, *setup_, tu, s_.t, false, sink);
      ApplyDeviceEvent(s_, *setup_, tu, e, sink);
    }
  }
  CatchUp(ToNs(sample.device_time));
  ApplySignals(sample, prev_t, out);
  sink.set_now(s_.t);
  const bool low_flag =
      (setup_->spec->signals & kSigAlarms) != 0 && (sample.alarm_flags & kAlarmLowReservoir) != 0;
  TimeChecks(s_, *setup_, tu, s_.t, low_flag, sink);
  if ((setup_->spec->signals & kSigClock) != 0) ObserveSkew(s_, tu, ToNs(server_time), sink);
  s_.last_server = ToNs(server_time);
  s_.Set(kFlagNoSampleYet, false);
  s_.last_seq = sample.seq;
  return absl::OkStatus();
}

void Twin::Tick(absl::Time server_time, std::vector<AlertTransition>* out) {
  if (!TimeInRange(server_time)) return;
  const Tuning& tu = DefaultTuning();
  const TimeNs server = ToNs(server_time);
  if (!ReportsTelemetry()) {
    // No telemetry by design and no device clock: the model runs on server time, so the
    // forecasts, refill-due, low-reservoir, runs-dry and dose checks come from it alone.
    // The model stays at its last input unless the tick changes an alert: a tick that only
    // advances is not kept, so the twin is always the fold of its stored inputs (a tick that
    // raises or resolves is stored as an input by the shard) and a later record whose time
    // falls before this server time is still applied in its place.
    if (server <= s_.t) return;
    std::vector<AlertTransition> own;
    std::vector<AlertTransition>* to = out != nullptr ? out : &own;
    const size_t had = to->size();
    const ModelState kept = s_;
    twin::Advance(s_, setup_, server);
    AlertSink sink(s_, s_.t, to);
    TimeChecks(s_, *setup_, tu, s_.t, false, sink);
    if (to->size() == had) s_ = kept;
    return;
  }
  // Silence counts from the last sample, or from registration until the first one.
  if (s_.last_server == kNoTime) return;
  const bool sampled = !s_.Has(kFlagNoSampleYet);
  const absl::Duration interval = setup_->cfg.reporting_interval;
  const double limit_h = absl::ToDoubleHours(interval) * tu.silent_after_intervals;
  // Silence is the tick's time less the last sample's receipt. A receipt stamp further
  // ahead of the tick than the silence limit is on another clock: the tick runs on the
  // data clock (a replay or simulation of the past, stamped on receipt by the wall clock),
  // so silence is measured from the pump's own model time, the clock the tick runs on.
  const bool data_clock =
      sampled && interval > absl::ZeroDuration() &&
      static_cast<double>(s_.last_server - server) > limit_h * static_cast<double>(kNsPerHour);
  const TimeNs since = data_clock ? s_.t : s_.last_server;
  const TimeNs silent_for = std::max<TimeNs>(0, server - since);
  // Estimated device time: the model time plus the silence; before any sample, the server
  // time (no clock skew is known yet).
  const TimeNs now = sampled ? s_.t + silent_for : std::max(s_.t, server);
  AlertSink sink(s_, now, out);
  if (interval > absl::ZeroDuration()) {
    const double silent_h = static_cast<double>(silent_for) / kNsPerHour;
    if (silent_h > limit_h && !s_.Has(kFlagSilent)) {
      s_.Set(kFlagSilent, true);
      sink.Raise(AlertType::kSilentPump, Severity::kWarning,
                 {Ev(sampled ? "hours_since_last_sample" : "hours_since_registration", silent_h,
                     absl::ToDoubleHours(interval), limit_h, "h",
                     data_clock ? "data-clock time; detectors now UNKNOWN"
                                : "server time; detectors now UNKNOWN")},
                 sampled
                     ? absl::StrCat("no telemetry for ",
                                    absl::FormatDuration(absl::Nanoseconds(silent_for)))
                     : absl::StrCat("no telemetry since registration ",
                                    absl::FormatDuration(absl::Nanoseconds(silent_for)), " ago"));
    }
  }
  TimeChecks(s_, *setup_, tu, now, false, sink);
}

PatientBolusDecision Twin::CheckPatientBolus(absl::Time device_time) const {
  const auto& pb = setup_->current->rx.patient_bolus;
  if (!pb.has_value()) return PatientBolusDecision::kNotConfigured;
  const TimeNs t = std::max(ToNs(device_time), s_.t);
  if (s_.ptm_last_grant != kNoTime &&
      t - s_.ptm_last_grant < absl::ToInt64Nanoseconds(pb->lockout)) {
    return PatientBolusDecision::kDenyLockout;
  }
  const bool stale = s_.ptm_last_grant == kNoTime || t - s_.ptm_last_grant >= kNsPerDay;
  const uint32_t n = stale ? 0 : s_.GrantsIn24h(t);
  return n >= pb->max_per_24h ? PatientBolusDecision::kDenyDailyMax : PatientBolusDecision::kGrant;
}

Forecast Twin::ForecastAt(absl::Time device_time) const {
  Twin copy = *this;
  if (TimeInRange(device_time)) copy.CatchUp(ToNs(device_time));
  return ComputeForecast(copy.s_, *copy.setup_, DefaultTuning());
}

std::string Twin::Serialize() const { return TwinCodec::Encode(*this); }

absl::StatusOr<Twin> Twin::Deserialize(absl::string_view bytes) { return TwinCodec::Decode(bytes); }

size_t Twin::StateBytes() const { return sizeof(Twin); }

size_t Twin::SharedBytes() const {
  auto str = [](const std::string& s) { return s.capacity() > 15 ? s.capacity() + 1 : 0; };
  const Setup& su = *setup_;
  return sizeof(Setup) + str(su.cfg.pump_id);
}

// ---- accessors ----
const PumpConfig& Twin::config() const { return setup_->cfg; }
const PumpSpec& Twin::spec() const { return *setup_->spec; }
const Prescription& Twin::prescription() const { return setup_->current->rx; }
const DrugLimits& Twin::drug() const { return *setup_->current->drug; }
std::optional<Prescription> Twin::pending_prescription() const {
  if (setup_->pending == nullptr) return std::nullopt;
  return setup_->pending->rx;
}
absl::Time Twin::device_time() const { return FromNs(s_.t); }
std::optional<absl::Time> Twin::last_sample_server_time() const {
  if (s_.last_server == kNoTime || s_.Has(kFlagNoSampleYet)) return std::nullopt;
  return FromNs(s_.last_server);
}
uint64_t Twin::last_seq() const { return s_.last_seq; }
Microliters Twin::calculated_reservoir() const { return Microliters(s_.calc_ul); }
Microliters Twin::estimated_reservoir() const { return Microliters(s_.est_ul); }
double Twin::delivery_ratio() const { return s_.ratio; }
double Twin::delivery_ratio_stddev() const { return std::sqrt(s_.ratio_var); }
Micrograms Twin::delivered_today() const { return Micrograms(s_.dose_today_ug); }
Micrograms Twin::delivered_24h() const { return Micrograms(Delivered24hUg(s_)); }
Microliters Twin::delivered_total() const { return Microliters(s_.est_total_ul); }
Microliters Twin::programmed_total() const { return Microliters(s_.prog_total_ul); }
double Twin::battery_charge_fraction() const { return BatteryFraction(s_, *setup_->spec); }
Mmhg Twin::expected_stroke_pressure() const { return setup_->expected_stroke; }
Mmhg Twin::pressure_baseline() const {
  return std::isnan(s_.p_base) ? setup_->expected_stroke : Mmhg(s_.p_base);
}
absl::Duration Twin::clock_skew() const {
  return absl::Microseconds(std::llround(SkewEstimateMs(s_) * 1000.0));
}
std::optional<Microliters> Twin::last_measured_reservoir() const {
  auto v = OptF(s_.last_meas_res);
  return v ? std::optional<Microliters>(Microliters(*v)) : std::nullopt;
}
std::optional<Microliters> Twin::reservoir_residual() const {
  auto v = OptF(s_.res_residual);
  return v ? std::optional<Microliters>(Microliters(*v)) : std::nullopt;
}
std::optional<Mmhg> Twin::last_stroke_pressure() const {
  auto v = OptF(s_.last_stroke);
  return v ? std::optional<Mmhg>(Mmhg(*v)) : std::nullopt;
}
std::optional<Mmhg> Twin::pressure_residual() const {
  auto v = OptF(s_.p_residual);
  return v ? std::optional<Mmhg>(Mmhg(*v)) : std::nullopt;
}
std::optional<Volts> Twin::last_battery_voltage() const {
  auto v = OptF(s_.last_voltage);
  return v ? std::optional<Volts>(Volts(*v)) : std::nullopt;
}
absl::Time Twin::last_refill_time() const { return FromNs(s_.refill_time); }
bool Twin::delivery_suspended() const { return Suspended(s_); }
uint32_t Twin::patient_boluses_granted() const { return s_.n_grants; }
uint32_t Twin::patient_boluses_denied() const { return s_.n_denials; }
uint32_t Twin::motor_stalls() const { return s_.n_stalls; }
Severity Twin::active_alert(AlertType type) const {
  const int i = static_cast<int>(type);
  return (i > 0 && i < kNumAlertTypes) ? s_.active(type) : Severity::kUnspecified;
}
bool Twin::ReportsTelemetry() const { return setup_->spec->signals != 0; }
bool Twin::enrolled() const { return s_.Has(kFlagEnrolled); }
std::vector<DetectorStatus> Twin::detectors() const {
  std::vector<DetectorStatus> v;
  v.reserve(kNumAlertTypes - 1);
  for (int i = 1; i < kNumAlertTypes; ++i) {
    DetectorStatus d;
    d.type = static_cast<AlertType>(i);
    d.state = ComputeDetectorState(d.type, s_, *setup_, DefaultTuning(), &d.detail);
    // Silence is only judged against an expected reporting interval.
    if (d.type == AlertType::kSilentPump && d.state != DetectorState::kAlerting &&
        (!ReportsTelemetry() || setup_->cfg.reporting_interval <= absl::ZeroDuration())) {
      d.state = DetectorState::kNotObservable;
      d.detail = ReportsTelemetry()
                     ? "no expected reporting interval: silence is not judged"
                     : absl::StrCat(setup_->spec->name, " pumps report no telemetry by design");
    }
    v.push_back(std::move(d));
  }
  return v;
}

}  // namespace pumptwin::twin
