// Golden scenarios for the time-based flow drift detector on sensorized pumps
// (docs/model.md "Flow drift"): a low-rate pump reporting every 15 min with the profile's
// sensor noise and a 10 µL reading resolution. Device time is the test's clock (no sleeps).
#include <algorithm>
#include <cmath>
#include <vector>

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
// 300 µL/day is found within 72 h on nearly every pump, over as well as under. Gated on the
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
    EXPECT_LE(v[kSeeds / 2], absl::Hours(60)) << drifted;
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

}  // namespace
}  // namespace pumptwin::twin
