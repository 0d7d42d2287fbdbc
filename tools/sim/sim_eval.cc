// pumpsim evaluate: scores what eval_inputs.h reads (ground truth, alerts, the twins' drift
// bounds) per (fault kind, profile): observability, injected, detected, recall, the right
// cause first, time to detect median/p95 against the clinical baseline (next refill or the
// pump's own alarm); false alerts per pump-year by type; first-week critical false alerts;
// flapping; the goals (eval_goals.h), each met or not. Markdown on stdout, JSON --json_out.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "pumptwin/v1/twin_service.pb.h"
#include "tools/sim/eval_goals.h"
#include "tools/sim/eval_inputs.h"
#include "tools/sim/sim.h"

namespace pumptwin::sim {
namespace {

constexpr double kMsPerHour = 3.6e6;
constexpr int64_t kDayMsEval = 86'400'000;

bool StartsWith(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// Alert types that count as detecting a fault kind (any of them), and the ones that name
// its cause (the differential diagnosis got it right).
struct Matching {
  std::set<int> accepted, right;
};

Matching Match(const std::string& kind) {
  using namespace v1;  // NOLINT
  if (StartsWith(kind, "flow_drift_over")) {
    return {{ALERT_TYPE_FLOW_DRIFT_OVER, ALERT_TYPE_RUNS_DRY_BEFORE_ALARM,
             ALERT_TYPE_REFILL_DISCREPANCY, ALERT_TYPE_DAILY_DOSE_LIMIT},
            {ALERT_TYPE_FLOW_DRIFT_OVER, ALERT_TYPE_REFILL_DISCREPANCY}};
  }
  if (StartsWith(kind, "flow_drift_under")) {
    return {{ALERT_TYPE_FLOW_DRIFT_UNDER, ALERT_TYPE_REFILL_DISCREPANCY},
            {ALERT_TYPE_FLOW_DRIFT_UNDER, ALERT_TYPE_REFILL_DISCREPANCY}};
  }
  if (kind == "occlusion_partial" || kind == "occlusion_complete") {
    return {{ALERT_TYPE_CATHETER_BLOCKAGE, ALERT_TYPE_FLOW_DRIFT_UNDER,
             ALERT_TYPE_REFILL_DISCREPANCY, ALERT_TYPE_MOTOR_STALL},
            {ALERT_TYPE_CATHETER_BLOCKAGE}};
  }
  if (kind == "catheter_leak") return {{ALERT_TYPE_CATHETER_LEAK}, {ALERT_TYPE_CATHETER_LEAK}};
  if (kind == "septum_leak") {
    return {{ALERT_TYPE_REFILL_DISCREPANCY, ALERT_TYPE_POCKET_FILL, ALERT_TYPE_FLOW_DRIFT_OVER,
             ALERT_TYPE_RUNS_DRY_BEFORE_ALARM},
            {ALERT_TYPE_REFILL_DISCREPANCY, ALERT_TYPE_POCKET_FILL}};
  }
  if (kind == "battery_early_depletion") {
    return {{ALERT_TYPE_BATTERY_DEPLETION}, {ALERT_TYPE_BATTERY_DEPLETION}};
  }
  if (StartsWith(kind, "motor_stall")) return {{ALERT_TYPE_MOTOR_STALL}, {ALERT_TYPE_MOTOR_STALL}};
  if (kind == "mri_no_resumption") {
    return {{ALERT_TYPE_NO_RESUMPTION_AFTER_MRI, ALERT_TYPE_MOTOR_STALL},
            {ALERT_TYPE_NO_RESUMPTION_AFTER_MRI}};
  }
  if (kind == "pocket_fill") {
    return {{ALERT_TYPE_POCKET_FILL, ALERT_TYPE_REFILL_DISCREPANCY, ALERT_TYPE_FLOW_DRIFT_OVER,
             ALERT_TYPE_RUNS_DRY_BEFORE_ALARM},
            {ALERT_TYPE_POCKET_FILL}};
  }
  if (kind == "empty_reservoir") {
    return {{ALERT_TYPE_LOW_RESERVOIR, ALERT_TYPE_RUNS_DRY_BEFORE_ALARM,
             ALERT_TYPE_CATHETER_BLOCKAGE, ALERT_TYPE_FLOW_DRIFT_UNDER, ALERT_TYPE_MOTOR_STALL},
            {ALERT_TYPE_LOW_RESERVOIR, ALERT_TYPE_RUNS_DRY_BEFORE_ALARM}};
  }
  return {};
}

// Alert types that say something true of a healthy pump (a refill is due, the gateway is
// down, the drug has aged): listed on fault-free pumps, not counted as false alerts. So is
// "runs dry before its alarm" on a pump the ground truth marks dry_before_alarm.
bool Operational(int type) {
  return type == v1::ALERT_TYPE_LOW_RESERVOIR || type == v1::ALERT_TYPE_SILENT_PUMP ||
         type == v1::ALERT_TYPE_DRUG_STABILITY || type == v1::ALERT_TYPE_PATIENT_BOLUS_LOCKOUT ||
         type == v1::ALERT_TYPE_CLOCK_SKEW;
}

// A battery replacement alert is true of a healthy pump whose battery really reaches its
// replacement indicator soon: a forecast (warning, "ERI within 180 days") when the true ERI
// is within 240 days of the alert (replacement is scheduled weeks ahead: two months early
// still leads to the right action), the ERI itself (critical) within 30 days. An early-
// depletion warning (a forecast beyond the horizon) is never true of a healthy pump.
bool EriDue(const v1::Alert& a, int64_t eri_ms) {
  if (a.type() != v1::ALERT_TYPE_BATTERY_DEPLETION || eri_ms == 0) return false;
  const int64_t t = a.raised_device_time_ms();
  if (a.severity() == v1::SEVERITY_CRITICAL) return eri_ms - t <= 30 * kDayMsEval;
  for (const auto& e : a.evidence()) {
    if (e.signal() == "days_to_eri" && e.observed() <= e.threshold()) {
      return eri_ms - t <= 240 * kDayMsEval;
    }
  }
  return false;
}

// What a profile lets the twin see of a fault, by the simulator's own reports: sensorized
// pumps report reservoir, pressures and battery current; programmable pumps their book-keeping
// (calculated reservoir, drive units), alarm flags and event log; constant-flow pumps nothing
// (only refills and clinic records reach the twin).
enum class Observability { kContinuous, kAtRefill, kNotObservable, kNotApplicable };

Observability Observe(const std::string& kind, const std::string& profile) {
  if (profile == "sensorized") return Observability::kContinuous;
  const bool constant = profile == "constant_flow";
  if (StartsWith(kind, "flow_drift") || kind == "septum_leak" || kind == "pocket_fill") {
    return Observability::kAtRefill;
  }
  if (kind == "occlusion_partial" || kind == "catheter_leak") return Observability::kNotObservable;
  if (kind == "occlusion_complete") {
    return constant ? Observability::kAtRefill : Observability::kContinuous;  // own stall
  }
  if (kind == "battery_early_depletion") {
    return constant ? Observability::kNotApplicable : Observability::kNotObservable;
  }
  if (StartsWith(kind, "motor_stall") || kind == "mri_no_resumption") {
    return constant ? Observability::kNotApplicable : Observability::kContinuous;
  }
  if (kind == "empty_reservoir") return Observability::kContinuous;  // forecast of the volume
  return Observability::kNotObservable;
}

const char* ObservabilityName(Observability o) {
  switch (o) {
    case Observability::kContinuous:
      return "observable";
    case Observability::kAtRefill:
      return "at refill";
    case Observability::kNotObservable:
      return "not observable";
    case Observability::kNotApplicable:
      return "not applicable";
  }
  return "";
}

// Row kind: flow drifts split by size and shape (goals are stated for >= 15 %).
std::string RowKind(const GroundTruth& f) {
  std::string k = f.kind();
  if (!StartsWith(k, "flow_drift") || k.find("within_label") != std::string::npos) return k;
  if (std::abs(f.magnitude()) < 0.15) {
    const bool ramp = k.size() > 5 && k.substr(k.size() - 5) == "_ramp";
    if (ramp) k = k.substr(0, k.size() - 5);
    k += "_10_to_14pct";
    if (ramp) k += "_ramp";
  }
  return k;
}

// NaN for an empty list (printed "–", JSON null).
double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t i =
      std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

std::string Hours(double h) {
  if (std::isnan(h)) return "–";
  if (h == kNotDetected) return "none in run";
  if (h < 48) return absl::StrFormat("%.1f h", h);
  return absl::StrFormat("%.1f d", h / 24);
}

std::string JsonNumber(double v) {
  if (!std::isfinite(v) || v == kNotDetected) return "null";
  return absl::StrFormat("%.4g", v);
}

}  // namespace

absl::Status Evaluate(const EvalOptions& o) {
  absl::StatusOr<EvalInputs> in = ReadEvalInputs(o);
  if (!in.ok()) return in.status();
  auto& [runs, faults, pumps, events, drift_bound] = *in;

  std::map<std::string, const GroundTruth*> fault_of;
  for (const auto& f : faults) fault_of[f.pump_id()] = &f;
  auto window_start = [](const GroundTruth& f) {
    return f.kind() == "empty_reservoir" && f.window_start_device_ms() > 0
               ? f.window_start_device_ms()
               : f.start_device_ms();
  };
  // First matching alert per faulty pump; false alerts; first-week criticals; flapping.
  struct Detection {
    int64_t t = 0;
    int type = 0;
    std::string summary;
  };
  std::map<std::string, Detection> first_detect;
  std::map<int, int> false_by_type, operational_by_type;
  int false_alerts = 0, first_week_critical = 0, flaps = 0;
  std::string first_week_lines;
  std::string false_lines;  // one line per false alert (EVAL_FALSE) and flap (EVAL_FLAP)
  std::map<std::pair<std::string, int>, int64_t> last_raise;  // (pump, type) -> device time
  for (const auto& ev : events) {
    if (ev.transition() != v1::ALERT_TRANSITION_RAISED &&
        ev.transition() != v1::ALERT_TRANSITION_UPDATED) {
      continue;
    }
    const auto& a = ev.alert();
    const int64_t t = a.raised_device_time_ms();
    if (ev.transition() == v1::ALERT_TRANSITION_RAISED) {
      auto key = std::make_pair(a.pump_id(), static_cast<int>(a.type()));
      auto it = last_raise.find(key);
      if (it != last_raise.end() && t - it->second <= kDayMsEval) {
        ++flaps;
        false_lines +=
            absl::StrFormat("EVAL_FLAP %s %s %s %.1f h after the previous raise: %s\n", a.pump_id(),
                            v1::AlertType_Name(a.type()), v1::Severity_Name(a.severity()),
                            static_cast<double>(t - it->second) / kMsPerHour, a.summary());
      }
      last_raise[key] = t;
    }
    auto fit = fault_of.find(a.pump_id());
    const GroundTruth* f = fit == fault_of.end() ? nullptr : fit->second;
    const bool before_fault = f != nullptr && t < window_start(*f);
    // "Runs dry before its alarm" on a pump whose delivery ratio really does that is true.
    const bool true_of_healthy =
        Operational(a.type()) ||
        (a.type() == v1::ALERT_TYPE_RUNS_DRY_BEFORE_ALARM && pumps[a.pump_id()].dry_before_alarm) ||
        EriDue(a, pumps[a.pump_id()].battery_eri_ms);
    if ((f == nullptr || before_fault) && a.severity() == v1::SEVERITY_CRITICAL &&
        !true_of_healthy) {
      const PumpInfo& info = pumps[a.pump_id()];
      if (t - info.enrolment_ms <= 7 * kDayMsEval) {
        ++first_week_critical;
        first_week_lines +=
            absl::StrFormat("- %s (%s) %s at %.1f h after enrolment: %s\n", a.pump_id(),
                            info.profile, v1::AlertType_Name(a.type()),
                            static_cast<double>(t - info.enrolment_ms) / kMsPerHour, a.summary());
      }
    }
    if (f == nullptr) {
      if (ev.transition() == v1::ALERT_TRANSITION_RAISED) {
        if (true_of_healthy) {
          ++operational_by_type[a.type()];
        } else {
          ++false_alerts;
          ++false_by_type[a.type()];
          const PumpInfo& info = pumps[a.pump_id()];
          false_lines +=
              absl::StrFormat("EVAL_FALSE %s %s %s %s day=%.2f %s\n", a.pump_id(), info.profile,
                              v1::AlertType_Name(a.type()), v1::Severity_Name(a.severity()),
                              static_cast<double>(t - info.enrolment_ms) / kDayMsEval, a.summary());
        }
      }
      continue;
    }
    if (before_fault || Match(f->kind()).accepted.count(a.type()) == 0) continue;
    auto [pos, inserted] = first_detect.emplace(f->pump_id(), Detection{t, a.type(), a.summary()});
    if (!inserted && t < pos->second.t) pos->second = {t, a.type(), a.summary()};
  }

  // Rows per (kind, profile), and the goal groups.
  struct Row {
    Observability obs = Observability::kNotObservable;
    int injected = 0, detected = 0, right_name = 0, no_refill_in_run = 0;
    int within_label_at_refills = 0;
    std::vector<double> ttd_h, baseline_h;
  };
  std::map<std::pair<std::string, std::string>, Row> rows;
  struct TimeGoal {
    std::vector<double>
        late_h;  // detection time minus the goal's reference, kNotDetected if missed
  };
  // drift: the goal's pairs; drift_apart: drifts smaller than what the twin states its
  // readings can show within the window (reported apart); drift_all: both.
  TimeGoal drift, drift_apart, drift_all, occl_sensorized, occl_own_stall, battery, mri;
  std::string apart_lines, apart_md;
  int observable_injected = 0, observable_detected = 0;
  std::string fault_lines;
  int after_run = 0;
  for (const auto& f : faults) {
    const PumpInfo& info = pumps[f.pump_id()];
    const int64_t run_end =
        info.enrolment_ms + static_cast<int64_t>(info.days * static_cast<double>(kDayMsEval));
    if (f.start_device_ms() >= run_end) {
      ++after_run;
      continue;
    }
    const std::string kind = RowKind(f);
    Row& r = rows[{kind, f.profile()}];
    r.obs = Observe(kind, f.profile());
    const bool within_label = kind.find("within_label") != std::string::npos;
    int64_t baseline = f.next_refill_device_ms();
    if (f.pump_alarm_device_ms() > 0 && (baseline == 0 || f.pump_alarm_device_ms() < baseline)) {
      baseline = f.pump_alarm_device_ms();
    }
    if (r.obs == Observability::kAtRefill && f.next_refill_device_ms() == 0) {
      ++r.no_refill_in_run;  // the twin cannot have seen it yet: not counted as injected
      continue;
    }
    if (r.obs == Observability::kAtRefill && f.visible_refill_device_ms() == 0) {
      // Every refill in the run withdrew what the pump's labelled accuracy allows: a healthy
      // pump may show as much, so nothing could tell it yet.
      ++r.within_label_at_refills;
      continue;
    }
    ++r.injected;
    r.baseline_h.push_back(baseline > 0
                               ? static_cast<double>(baseline - f.start_device_ms()) / kMsPerHour
                               : kNotDetected);
    auto it = first_detect.find(f.pump_id());
    const bool found = it != first_detect.end();
    double ttd_h = kNotDetected;
    if (found) {
      ++r.detected;
      ttd_h = static_cast<double>(it->second.t - f.start_device_ms()) / kMsPerHour;
      r.ttd_h.push_back(ttd_h);
      if (Match(f.kind()).right.count(it->second.type) > 0) ++r.right_name;
    }
    const bool observable =
        r.obs == Observability::kContinuous || r.obs == Observability::kAtRefill;
    if (observable && !within_label) {
      ++observable_injected;
      observable_detected += found ? 1 : 0;
    }
    auto late = [&](int64_t reference_ms) {
      return found ? static_cast<double>(it->second.t - reference_ms) / kMsPerHour : kNotDetected;
    };
    if (f.profile() == "sensorized" && StartsWith(kind, "flow_drift") && !within_label &&
        f.reached_15pct_device_ms() > 0 && f.reached_15pct_device_ms() < run_end) {
      const double reached = late(f.reached_15pct_device_ms());
      auto b = drift_bound.find(f.pump_id());
      const double bound = b == drift_bound.end() ? std::nan("") : b->second;
      drift_all.late_h.push_back(reached);
      if (std::abs(f.magnitude()) < bound) {  // NaN (no statement): counted in the goal
        drift_apart.late_h.push_back(reached);
        apart_lines += absl::StrFormat(
            "EVAL_DRIFT_APART %s %s magnitude=%.3f twin_bound=%.3f after_15pct_h=%.1f\n",
            f.pump_id(), kind, f.magnitude(), bound, reached == kNotDetected ? -1 : reached);
        apart_md +=
            absl::StrFormat("%s%s %s %.0f %% (bound %.0f %%): %s", apart_md.empty() ? "" : "; ",
                            f.pump_id(), kind, 100 * f.magnitude(), 100 * bound,
                            reached == kNotDetected
                                ? std::string("not found")
                                : absl::StrCat("found ", Hours(reached), " after reaching 15 %"));
      } else {
        drift.late_h.push_back(reached);
      }
    }
    if (kind == "occlusion_complete" && f.profile() == "sensorized") {
      occl_sensorized.late_h.push_back(late(f.start_device_ms()));
    } else if (kind == "occlusion_complete" && f.profile() != "constant_flow" &&
               f.pump_alarm_device_ms() > 0) {
      occl_own_stall.late_h.push_back(late(f.pump_alarm_device_ms()));
    }
    if (kind == "battery_early_depletion" && f.profile() == "sensorized" && f.magnitude() >= 1.5) {
      battery.late_h.push_back(late(f.start_device_ms()));
    }
    if (kind == "mri_no_resumption" && f.expected_resume_device_ms() > 0) {
      mri.late_h.push_back(late(f.expected_resume_device_ms()));
    }
    auto b = drift_bound.find(f.pump_id());
    fault_lines += absl::StrFormat(
        "EVAL_FAULT %s %s %s magnitude=%.3f%s ttd_h=%.1f by=%s (%s)\n", f.pump_id(), kind,
        f.profile(), f.magnitude(),
        b == drift_bound.end() ? "" : absl::StrFormat(" twin_bound_72h=%.3f", b->second),
        found ? ttd_h : -1,
        found ? v1::AlertType_Name(static_cast<v1::AlertType>(it->second.type)) : "none",
        found ? it->second.summary : "");
  }

  // Pump-years: fault-free pumps for false alerts, every pump for flapping.
  double fault_free_years = 0, all_years = 0;
  for (const auto& [id, info] : pumps) {
    all_years += info.days / 365.0;
    if (fault_of.count(id) == 0) fault_free_years += info.days / 365.0;
  }
  const double false_rate = fault_free_years > 0 ? false_alerts / fault_free_years : 0;
  const double flaps_per_100 = all_years > 0 ? 100.0 * flaps / all_years : 0;
  const double recall =
      observable_injected > 0 ? static_cast<double>(observable_detected) / observable_injected : 0;

  struct GoalLine {
    std::string name, measured, bound;
    double value = 0;
    bool measurable = true, met = false;
  };
  std::vector<GoalLine> goals;
  auto time_goal = [&](const std::string& name, const TimeGoal& g, double bound_h) {
    GoalLine l{name, "", absl::StrFormat("p95 <= %.0f h", bound_h)};
    l.measurable = !g.late_h.empty();
    std::vector<double> v = g.late_h;  // missed faults count as never
    for (double& x : v) {
      if (x == kNotDetected) x = 1e12;
    }
    const double p95 = Percentile(v, 0.95);
    int within = 0;
    for (double x : v) within += x <= bound_h ? 1 : 0;
    l.value = p95 >= 1e12 ? kNotDetected : p95;
    l.met = l.measurable && p95 <= bound_h;
    const double median = Percentile(v, 0.5);
    auto shown = [](double x) { return x >= 1e12 ? std::string("missed") : Hours(x); };
    l.measured = l.measurable ? absl::StrFormat("p95 %s, median %s, %d of %zu within", shown(p95),
                                                shown(median), within, v.size())
                              : "none injected";
    goals.push_back(l);
  };
  {
    GoalLine l{"recall_observable",
               absl::StrFormat("%.1f %% (%d of %d)", 100 * recall, observable_detected,
                               observable_injected),
               absl::StrFormat(">= %.0f %%", 100 * kGoalRecall)};
    l.value = recall;
    l.measurable = observable_injected > 0;
    l.met = l.measurable && recall >= kGoalRecall;
    goals.push_back(l);
  }
  {
    // The drifts reported apart, and all of them, for comparison (summaries, not goals).
    const auto summary = [&](const TimeGoal& g) {
      time_goal("", g, kGoalDriftHours);
      const std::string m = goals.back().measured;
      goals.pop_back();
      return m;
    };
    const std::string apart = summary(drift_apart), all = summary(drift_all);
    time_goal("drift_15pct_sensorized", drift, kGoalDriftHours);
    goals.back().measured = absl::StrFormat(
        "%s (observable within %.0f h by the twin's own bound); %zu apart, smaller than the "
        "twin's bound: %s; all %zu: %s",
        goals.back().measured, kGoalDriftHours, drift_apart.late_h.size(),
        drift_apart.late_h.empty() ? "none" : apart, drift_all.late_h.size(), all);
  }
  time_goal("complete_occlusion_sensorized", occl_sensorized, kGoalOcclusionSensorizedHours);
  time_goal("complete_occlusion_after_own_stall", occl_own_stall, kGoalOcclusionOwnStallHours);
  time_goal("battery_1_5x_current_reported", battery, kGoalBatteryHours);
  time_goal("mri_after_resume_window", mri, kGoalMriHours);
  {
    GoalLine l{"false_alerts_per_pump_year",
               absl::StrFormat("%.3f (%d over %.1f pump-years)", false_rate, false_alerts,
                               fault_free_years),
               absl::StrFormat("<= %.1f over >= %.0f pump-years", kGoalFalseAlertsPerPumpYear,
                               kGoalMinPumpYears)};
    l.value = false_rate;
    l.measurable = fault_free_years >= kGoalMinPumpYears;  // a small fleet cannot show 0.1
    l.met = l.measurable && false_rate <= kGoalFalseAlertsPerPumpYear;
    goals.push_back(l);
  }
  {
    GoalLine l{"critical_false_first_week", absl::StrFormat("%d", first_week_critical), "0"};
    l.value = first_week_critical;
    l.met = first_week_critical == 0;
    goals.push_back(l);
  }
  {
    GoalLine l{"flapping_per_100_pump_years",
               absl::StrFormat("%.2f (%d over %.1f pump-years)", flaps_per_100, flaps, all_years),
               absl::StrFormat("<= %.0f", kGoalFlapsPer100PumpYears)};
    l.value = flaps_per_100;
    l.met = flaps_per_100 <= kGoalFlapsPer100PumpYears;
    goals.push_back(l);
  }

  // Markdown.
  std::vector<std::string> seeds;
  for (const auto& r : runs) seeds.push_back(absl::StrCat(r.seed()));
  std::string md = absl::StrFormat(
      "Scenario: %s; %zu pumps over %zu run(s) of %.0f simulated days, seeds %s; %zu alert "
      "events read.\n\n"
      "| fault kind | profile | observability | injected | detected | recall | right cause | "
      "median TTD | p95 TTD | baseline median | baseline p95 |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n",
      runs.front().scenario(), pumps.size(), runs.size(), runs.front().days(),
      absl::StrJoin(seeds, ","), events.size());
  std::string not_observable;
  for (const auto& [key, r] : rows) {
    if (r.obs == Observability::kNotObservable) {
      not_observable +=
          absl::StrCat(not_observable.empty() ? "" : ", ", key.first, " on ", key.second);
    }
    const bool none = r.injected == 0;
    md += absl::StrFormat(
        "| %s | %s | %s | %d%s | %d | %s | %s | %s | %s | %s | %s |\n", key.first, key.second,
        ObservabilityName(r.obs), r.injected,
        absl::StrCat(
            r.no_refill_in_run > 0 ? absl::StrFormat(" (+%d no refill in run)", r.no_refill_in_run)
                                   : "",
            r.within_label_at_refills > 0
                ? absl::StrFormat(" (+%d within label at every refill)", r.within_label_at_refills)
                : ""),
        r.detected, none ? "–" : absl::StrFormat("%.0f %%", 100.0 * r.detected / r.injected),
        r.detected == 0 ? "–" : absl::StrFormat("%d of %d", r.right_name, r.detected),
        Hours(Percentile(r.ttd_h, 0.5)), Hours(Percentile(r.ttd_h, 0.95)),
        Hours(Percentile(r.baseline_h, 0.5)), Hours(Percentile(r.baseline_h, 0.95)));
  }
  md += absl::StrFormat("\nNot observable pairs (the twin should say so, not \"ok\"): %s.\n",
                        not_observable.empty() ? "none injected" : not_observable);
  md += absl::StrFormat(
      "\nFlow drifts on sensorized pumps smaller than what the twin states the pump's readings "
      "can show within %.0f h (its flow-drift detector's own bound; reported apart from that "
      "goal): %s.\n",
      kGoalDriftHours, apart_md.empty() ? "none" : apart_md);
  md += absl::StrFormat(
      "\nFalse alerts on fault-free pumps: %d over %.1f pump-years = **%.3f per pump-year**.\n",
      false_alerts, fault_free_years, false_rate);
  for (const auto& [type, n] : false_by_type) {
    md += absl::StrFormat("- %s: %d (%.3f per pump-year)\n",
                          v1::AlertType_Name(static_cast<v1::AlertType>(type)), n,
                          fault_free_years > 0 ? n / fault_free_years : 0.0);
  }
  if (!operational_by_type.empty()) {
    md +=
        "Alerts true of a healthy pump (operational, and runs-dry on pumps whose ratio does "
        "run them dry before the alarm; not counted):";
    for (const auto& [type, n] : operational_by_type) {
      md += absl::StrFormat(" %s %d;", v1::AlertType_Name(static_cast<v1::AlertType>(type)), n);
    }
    md += "\n";
  }
  md += absl::StrFormat(
      "\nCritical false alerts in the first week after enrolment: %d\n%s", first_week_critical,
      first_week_lines.size() > 4000 ? first_week_lines.substr(0, 4000) + "- ...\n"
                                     : first_week_lines);
  md += absl::StrFormat(
      "Flapping (a raise of the same alert type within 24 h of its previous raise): %d = %.2f "
      "per 100 pump-years.\n",
      flaps, flaps_per_100);
  if (after_run > 0) {
    md += absl::StrFormat("%d faults fall after the end of their run and are not counted.\n",
                          after_run);
  }
  md += "\n| goal | measured | bound | result |\n|---|---|---|---|\n";
  for (const auto& g : goals) {
    md += absl::StrFormat("| %s | %s | %s | %s |\n", g.name, g.measured, g.bound,
                          !g.measurable ? "not measured"
                          : g.met       ? "met"
                                        : "NOT met");
  }
  std::printf("%s", md.c_str());
  std::printf("%s", fault_lines.c_str());
  std::printf("%s", false_lines.c_str());
  std::printf("%s", apart_lines.c_str());
  for (const auto& [key, r] : rows) {
    std::printf("EVAL_PAIR %s %s injected=%d detected=%d\n", key.first.c_str(), key.second.c_str(),
                r.injected, r.detected);
  }
  for (const auto& g : goals) {
    std::printf("EVAL_GOAL %s value=%s measurable=%d met=%d\n", g.name.c_str(),
                JsonNumber(g.value).c_str(), g.measurable ? 1 : 0, g.met ? 1 : 0);
  }
  if (!o.markdown_out.empty()) {
    std::ofstream out(o.markdown_out, std::ios::app);
    out << "Command: `" << o.command_line << "`\n\n" << md << "\n";
  }
  if (!o.json_out.empty()) {
    std::string j = absl::StrFormat(
        "{\"scenario\": \"%s\", \"seeds\": [%s], \"days\": %g, \"pumps\": %zu, \"pairs\": [",
        runs.front().scenario(), absl::StrJoin(seeds, ", "), runs.front().days(), pumps.size());
    bool first = true;
    for (const auto& [key, r] : rows) {
      j += absl::StrFormat(
          "%s\n  {\"kind\": \"%s\", \"profile\": \"%s\", \"observability\": \"%s\", "
          "\"injected\": %d, \"no_refill_in_run\": %d, \"within_label_at_refills\": %d, "
          "\"detected\": %d, \"right_cause\": %d, "
          "\"ttd_median_h\": %s, \"ttd_p95_h\": %s, \"baseline_median_h\": %s, "
          "\"baseline_p95_h\": %s}",
          first ? "" : ",", key.first, key.second, ObservabilityName(r.obs), r.injected,
          r.no_refill_in_run, r.within_label_at_refills, r.detected, r.right_name,
          JsonNumber(Percentile(r.ttd_h, 0.5)), JsonNumber(Percentile(r.ttd_h, 0.95)),
          JsonNumber(Percentile(r.baseline_h, 0.5)), JsonNumber(Percentile(r.baseline_h, 0.95)));
      first = false;
    }
    j += "],\n \"false_alerts_by_type\": {";
    first = true;
    for (const auto& [type, n] : false_by_type) {
      j += absl::StrFormat("%s\"%s\": %d", first ? "" : ", ",
                           v1::AlertType_Name(static_cast<v1::AlertType>(type)), n);
      first = false;
    }
    j += absl::StrFormat("},\n \"fault_free_pump_years\": %.2f, \"goals\": [", fault_free_years);
    first = true;
    for (const auto& g : goals) {
      j += absl::StrFormat(
          "%s\n  {\"name\": \"%s\", \"value\": %s, \"measured\": \"%s\", \"bound\": \"%s\", "
          "\"measurable\": %s, \"met\": %s}",
          first ? "" : ",", g.name, JsonNumber(g.value), g.measured, g.bound,
          g.measurable ? "true" : "false", g.met ? "true" : "false");
      first = false;
    }
    j += "]}\n";
    std::ofstream out(o.json_out, std::ios::trunc);
    out << j;
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", o.json_out));
  }
  return absl::OkStatus();
}

}  // namespace pumptwin::sim
