// Golden scenarios for the time-based flow drift detector on sensorized pumps
// (docs/model.md "Flow drift"): a low-rate pump reporting every 15 min with the profile's
// sensor noise and a 10 µL reading resolution. Device time is the test's clock (no sleeps).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/twin/twin_test_util.h"

namespace pumptwin::twin {
namespace {

using testing::Day;
using testing::Faults;
using testing::FindEvidence;
using testing::First;
using testing::MakeTwin;
using testing::Morphine;
using testing::PumpSim;

constexpr double kLowRateUlPerDay = 400;  // the old 1 mL segments gave one ratio per 2.5 days
constexpr uint64_t kSeeds = 10;

struct PumpRun {
  std::vector<AlertTransition> out;
  Twin twin;
};

// One sensorized pump at `rate`, true ratio `base` until day 10 and `drifted` after, for
// `days`, refilled routinely.
PumpRun Simulate(double rate, double base, double drifted, double days, uint64_t seed) {
  // Half strength keeps the daily dose under morphine's limit at the high test rate.
  PumpRun r{{}, MakeTwin(PumpProfile::kSensorized, Morphine(rate, 5000))};
  Faults f;
  f.start = Day(10);
  f.ratio = drifted;
  PumpSim sim(&r.twin, seed, f);
  sim.interval = absl::Minutes(15);
  sim.base_ratio = base;
  sim.measured_step_ul = 10;
  EXPECT_TRUE(sim.Run(absl::Hours(24 * days), &r.out).ok());
  return r;
}

absl::Duration TimeToDetect(const PumpRun& r, AlertType type) {
  const AlertTransition* a = First(r.out, type);
  return a == nullptr ? absl::InfiniteDuration() : a->device_time - Day(10);
}

// Times to detect a drift to `drifted` over kSeeds pumps, sorted.
std::vector<absl::Duration> TimesToDetect(double drifted, AlertType type) {
  std::vector<absl::Duration> v;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    const PumpRun r = Simulate(kLowRateUlPerDay, 1.0, drifted, 14, seed);
    v.push_back(TimeToDetect(r, type));
    EXPECT_GT(v.back(), absl::ZeroDuration()) << seed;
    if (const AlertTransition* a = First(r.out, type); a != nullptr) {
      // Beyond the band: the learned ratio's change, or the ratio since the change point.
      const Evidence* shift = FindEvidence(*a, "ratio_shift");
      const Evidence* since = FindEvidence(*a, "ratio_since_change");
      EXPECT_TRUE((shift != nullptr && std::abs(shift->observed) > 0.10) ||
                  (since != nullptr && std::abs(since->observed - since->predicted) >
                                           std::abs(since->threshold - since->predicted)))
          << seed;
      EXPECT_NE(FindEvidence(*a, "shift_cusum"), nullptr);
    }
  }
  std::sort(v.begin(), v.end());
  return v;
}

// The target (model.md): median within 72 h; every pump here within 84 h.
TEST(FlowDrift, FifteenPercentOverInfusionOnALowRatePumpIsFoundWithin72h) {
  const std::vector<absl::Duration> v = TimesToDetect(1.15, AlertType::kFlowDriftOver);
  EXPECT_LE(v[kSeeds / 2], absl::Hours(72));
  EXPECT_LE(v.back(), absl::Hours(84));
}

TEST(FlowDrift, FifteenPercentUnderInfusionOnALowRatePumpIsFoundWithin72h) {
  const std::vector<absl::Duration> v = TimesToDetect(0.85, AlertType::kFlowDriftUnder);
  EXPECT_LE(v[kSeeds / 2], absl::Hours(72));
  EXPECT_LE(v.back(), absl::Hours(84));
}

// The ratio since the change point (docs/model.md "Flow drift"): a 15 % step on a pump at
// 300 µL/day is found within 72 h on 9 of 10 pumps, over as well as under. Gated on the
// learned ratio alone (it follows a change only as fast as its random walk) the median was
// 78 h at this rate.
TEST(FlowDrift, FifteenPercentStepOnALowRatePumpIsFoundWithin72hFromTheChangePoint) {
  for (const double drifted : {1.15, 0.85}) {
    const AlertType type = drifted > 1 ? AlertType::kFlowDriftOver : AlertType::kFlowDriftUnder;
    std::vector<absl::Duration> v;
    int from_change_point = 0;
    for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
      const PumpRun r = Simulate(300, 1.0, drifted, 14, seed);
      v.push_back(TimeToDetect(r, type));
      EXPECT_GT(v.back(), absl::ZeroDuration()) << seed;
      const AlertTransition* a = First(r.out, type);
      if (a != nullptr && FindEvidence(*a, "ratio_since_change") != nullptr) ++from_change_point;
    }
    std::sort(v.begin(), v.end());
    // Median 60 h over, 66 h under: every change point is judged on the data after its
    // anchor (one segment pair after the run began), which costs about one pair.
    EXPECT_LE(v[kSeeds / 2], absl::Hours(66)) << drifted;
    EXPECT_LE(v[kSeeds - 2], absl::Hours(72)) << drifted;  // 9 of 10 within 72 h
    EXPECT_GE(from_change_point, static_cast<int>(kSeeds) / 2) << drifted;
  }
}

// A 15 % drift relative to a pump that was 5 % low is still a change of the pump's own
// ratio, although the ratio ends up inside the labelled accuracy.
TEST(FlowDrift, FifteenPercentDriftFromALowBaselineIsFoundAsAShift) {
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    const PumpRun r = Simulate(kLowRateUlPerDay, 0.95, 0.95 * 1.15, 20, seed);
    EXPECT_LE(TimeToDetect(r, AlertType::kFlowDriftOver), absl::Hours(24 * 6)) << seed;
  }
}

TEST(FlowDrift, SevenPercentWithinLabelDriftIsNotAlarmedOverAYear) {
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    const PumpRun r = Simulate(kLowRateUlPerDay, 1.0, 1.07, 365, seed);
    EXPECT_EQ(First(r.out, AlertType::kFlowDriftOver), nullptr) << seed;
    EXPECT_EQ(First(r.out, AlertType::kFlowDriftUnder), nullptr) << seed;
    EXPECT_NEAR(r.twin.delivery_ratio(), 1.07, 0.03) << seed;
  }
}

bool IsFlowAlert(AlertType t) {
  return t == AlertType::kFlowDriftOver || t == AlertType::kFlowDriftUnder ||
         t == AlertType::kCatheterBlockage || t == AlertType::kRunsDryBeforeAlarm;
}

// Fault-free pumps anywhere in ±6 % (inside the labelled ±14.5 %), at a low and a high rate.
TEST(FlowDrift, FaultFreeYearWithNoiseAndQuantisationRaisesNoFlowAlert) {
  for (double rate : {150.0, 2000.0}) {
    for (double base : {0.94, 1.0, 1.06}) {
      for (uint64_t seed = 1; seed <= 4; ++seed) {
        const PumpRun r = Simulate(rate, base, base, 365, seed);
        for (const AlertTransition& a : r.out) {
          if (!IsFlowAlert(a.type)) continue;  // e.g. drug stability at 150 µL/day
          ADD_FAILURE() << "rate " << rate << " base " << base << " seed " << seed << ": "
                        << AlertTypeName(a.type) << " at " << absl::FormatTime(a.device_time)
                        << ": " << a.summary;
        }
      }
    }
  }
}

// A drift that goes away resolves the alert once the CUSUMs have drained.
TEST(FlowDrift, AlertResolvesWhenTheRatioReturns) {
  Twin twin = MakeTwin(PumpProfile::kSensorized, Morphine(kLowRateUlPerDay));
  Faults f;
  f.start = Day(10);
  f.ratio = 1.3;
  PumpSim sim(&twin, 3, f);
  sim.interval = absl::Minutes(15);
  std::vector<AlertTransition> out;
  ASSERT_TRUE(sim.Run(absl::Hours(24 * 16), &out).ok());
  ASSERT_NE(First(out, AlertType::kFlowDriftOver), nullptr);
  PumpSim healed(&twin, 4);  // a new pump state at ratio 1 from the twin's current time
  healed.interval = absl::Minutes(15);
  healed.set_true_reservoir_ul(sim.true_reservoir_ul());
  ASSERT_TRUE(healed.Run(absl::Hours(24 * 60), &out).ok());
  EXPECT_NE(First(out, AlertType::kFlowDriftOver, TransitionKind::kResolved), nullptr);
}

// ---- What a pump's readings can show within 72 h (docs/model.md) ----

// A sensorized pump reporting every `interval` (registered so) with reservoir-sensor noise
// `sd_ul` (the twin is not told: it learns it), true ratio 1 until day 10, `drifted` after.
PumpRun SimulateReporting(double rate, absl::Duration interval, double sd_ul, double drifted,
                          double days, uint64_t seed) {
  PumpConfig cfg = testing::Config(PumpProfile::kSensorized);
  cfg.reporting_interval = interval;
  absl::StatusOr<Twin> twin =
      Twin::Create(cfg, Morphine(rate, 5000), Milliliters(20), testing::T0());
  EXPECT_TRUE(twin.ok()) << twin.status();
  PumpRun r{{}, *std::move(twin)};
  Faults f;
  f.start = Day(10);
  f.ratio = drifted;
  PumpSim sim(&r.twin, seed, f);
  sim.interval = interval;
  sim.reservoir_sd_ul = sd_ul;
  sim.measured_step_ul = 10;
  EXPECT_TRUE(sim.Run(absl::Hours(24 * days), &r.out).ok());
  return r;
}

DetectorStatus DriftStatus(const Twin& t) {
  for (const DetectorStatus& d : t.detectors()) {
    if (d.type == AlertType::kFlowDriftOver) return d;
  }
  return {};
}

// The smallest drift the twin states it finds within 72 h, as a fraction (NaN: none stated).
double StatedBound(const DetectorStatus& d) {
  const std::string key = "detectable within 72 h: >= ";
  const size_t at = d.detail.find(key);
  if (at == std::string::npos) return std::nan("");
  return std::stod(d.detail.substr(at + key.size())) / 100.0;
}

// A pump reporting every 15 min at 400 uL/day shows a 15 % drift within 72 h: the detector
// reads OK and says down to what size. One reporting hourly at 130 uL/day with a noisy
// sensor cannot: "not observable within 72 h", with the size it can show, never OK.
TEST(FlowDriftObservability, EachPumpStatesWhatItsReadingsCanShowWithin72h) {
  const PumpRun fast = SimulateReporting(400, absl::Minutes(15), 50, 1.0, 10, 1);
  const DetectorStatus f = DriftStatus(fast.twin);
  EXPECT_EQ(f.state, DetectorState::kOk) << f.detail;
  EXPECT_LE(StatedBound(f), 0.15) << f.detail;
  EXPECT_GT(StatedBound(f), 0.10) << f.detail;  // never below the warning band

  const PumpRun slow = SimulateReporting(130, absl::Hours(1), 80, 1.0, 10, 1);
  const DetectorStatus s = DriftStatus(slow.twin);
  EXPECT_EQ(s.state, DetectorState::kNotObservable) << s.detail;
  EXPECT_NE(s.detail.find("flow drift of 15 % not observable within 72 h at this pump's noise"),
            std::string::npos)
      << s.detail;
  EXPECT_GT(StatedBound(s), 0.15) << s.detail;
  for (const DetectorStatus& d : slow.twin.detectors()) {
    if (d.type == AlertType::kFlowDriftUnder) {
      EXPECT_EQ(d.state, DetectorState::kNotObservable);
    }
  }
}

// The bound comes from the noise the twin learnt, not from the profile: the same pump with
// a quieter sensor states a smaller drift.
TEST(FlowDriftObservability, TheBoundFollowsTheLearnedNoise) {
  const double noisy =
      StatedBound(DriftStatus(SimulateReporting(200, absl::Minutes(30), 80, 1.0, 10, 2).twin));
  const double quiet =
      StatedBound(DriftStatus(SimulateReporting(200, absl::Minutes(30), 20, 1.0, 10, 2).twin));
  EXPECT_LT(quiet, noisy);
  EXPECT_GT(noisy / quiet, 1.5);
}

// The statement holds on the pump: a step of the size each pump states (from its own learnt
// noise, the day before) is found within 72 h on at least 9 of 10 pumps (the statement is
// for 95 % of them).
TEST(FlowDriftObservability, AStepOfTheStatedSizeIsFoundWithin72h) {
  int within = 0;
  std::string seen;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    // The same seed gives the same readings until the step: the stated bound at day 10.
    const double bound =
        StatedBound(DriftStatus(SimulateReporting(150, absl::Minutes(30), 60, 1.0, 10, seed).twin));
    EXPECT_GT(bound, 0.15) << seed;
    EXPECT_LT(bound, 0.6) << seed;
    const PumpRun r = SimulateReporting(150, absl::Minutes(30), 60, 1.0 + bound, 14, seed);
    const absl::Duration t = TimeToDetect(r, AlertType::kFlowDriftOver);
    within += t <= absl::Hours(72) ? 1 : 0;
    absl::StrAppend(&seen, " ", bound, ":", absl::FormatDuration(t));
  }
  EXPECT_GE(within, static_cast<int>(kSeeds) - 1) << seen;
}

// One displaced stretch of readings on a healthy pump: `first_ul` lower for one segment's
// time, `second_ul` lower for the next, then back. Reporting every 30 min at 180 uL/day with
// a 36 uL sensor (the fleet pump whose noise gave a critical "delivers 202 %").
std::vector<AlertTransition> DisplacedReadings(double first_ul, double second_ul, uint64_t seed,
                                               absl::Duration offset) {
  Twin twin = MakeTwin(PumpProfile::kSensorized, Morphine(180, 5000));
  PumpSim sim(&twin, seed);
  sim.interval = absl::Minutes(30);
  sim.reservoir_sd_ul = 36;
  sim.measured_step_ul = 10;
  std::vector<AlertTransition> out;
  EXPECT_TRUE(sim.Run(absl::Hours(24 * 20) + offset, &out).ok());
  out.clear();
  sim.pocket_offset_ = -first_ul;
  EXPECT_TRUE(sim.Run(absl::Minutes(390), &out).ok());
  sim.pocket_offset_ = -second_ul;
  EXPECT_TRUE(sim.Run(absl::Minutes(390), &out).ok());
  sim.pocket_offset_ = 0;
  EXPECT_TRUE(sim.Run(absl::Hours(72), &out).ok());
  return out;
}

// The pattern of the fleet's critical false "delivers 202 %": a run starts on one low
// segment mean, the next mean is lower still (a few sd), and the readings come back. The
// run's CUSUM crosses h only with the excess from before its anchor; the ratio since the
// change point is that one mean. It must not alarm: every anchor is judged on its own data.
// (Before that, 8 of these 50 pumps raised a critical over-infusion.)
TEST(FlowDrift, OneLowStretchOfReadingsOnAHealthyPumpIsNotADrift) {
  int raised = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    for (int half_hours = 0; half_hours < 13; half_hours += 3) {  // against the segments
      const std::vector<AlertTransition> out =
          DisplacedReadings(30, 60, seed, absl::Minutes(30 * half_hours));
      for (const AlertTransition& a : out) {
        if (a.type != AlertType::kFlowDriftOver && a.type != AlertType::kFlowDriftUnder) continue;
        if (a.kind != TransitionKind::kRaised) continue;
        ++raised;
        ADD_FAILURE() << "seed " << seed << " +" << half_hours << " x 30 min: " << a.summary;
      }
    }
  }
  EXPECT_EQ(raised, 0);
}

}  // namespace
}  // namespace pumptwin::twin
