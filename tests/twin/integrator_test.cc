// Closed-form and property tests of the lockstep integrator.
#include <random>

#include "gtest/gtest.h"
#include "tests/twin/twin_test_util.h"

namespace pumptwin::twin {
namespace {

using testing::Day;
using testing::MakeTwin;
using testing::Morphine;
using testing::T0;

void ExpectRel(double actual, double expected, double rel, const char* what) {
  EXPECT_LE(std::abs(actual - expected), rel * std::max(1.0, std::abs(expected)))
      << what << ": actual " << actual << " expected " << expected;
}

TEST(Integrator, HalfMlPerDayForTenDaysFromTwentyLeavesFifteen) {
  Twin twin = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(500));
  ASSERT_TRUE(twin.Advance(Day(10)).ok());
  EXPECT_NEAR(twin.calculated_reservoir().value(), 15000.0, 1e-9);
  EXPECT_NEAR(twin.estimated_reservoir().value(), 15000.0, 1e-9);
  EXPECT_NEAR(twin.delivered_total().value(), 5000.0, 1e-9);
  // 0.5 mL/day x 10 mg/mL = 5 mg/day.
  EXPECT_NEAR(twin.delivered_24h().value(), 5000.0, 1e-3);
}

Prescription Flex13() {
  Prescription rx = Morphine(0);
  rx.mode = TherapyMode::kFlex;
  const int offsets_min[13] = {0, 60, 150, 240, 390, 480, 600, 690, 780, 900, 1080, 1200, 1350};
  for (int i = 0; i < 13; ++i) {
    rx.flex.steps.push_back({absl::Minutes(offsets_min[i]), MicrolitersPerDay(100.0 + 37.0 * i)});
  }
  return rx;
}

TEST(Integrator, ThirteenStepFlexScheduleDeliversTheSumOfItsStepsPerDay) {
  const Prescription rx = Flex13();
  double per_day = 0;
  for (size_t i = 0; i < rx.flex.steps.size(); ++i) {
    const absl::Duration end =
        i + 1 < rx.flex.steps.size() ? rx.flex.steps[i + 1].start_offset : absl::Hours(24);
    per_day += rx.flex.steps[i].rate.value() *
               absl::ToDoubleHours(end - rx.flex.steps[i].start_offset) / 24.0;
  }
  Twin twin = MakeTwin(PumpProfile::kProgrammablePeristaltic, rx);
  for (int d = 1; d <= 3; ++d) {
    const double before = twin.programmed_total().value();
    ASSERT_TRUE(twin.Advance(Day(d)).ok());
    ExpectRel(twin.programmed_total().value() - before, per_day, 1e-12, "day volume");
  }
  // Also from a mid-day start: any 24 h window delivers one period.
  Twin mid = MakeTwin(PumpProfile::kProgrammablePeristaltic, rx);
  ASSERT_TRUE(mid.Advance(T0() + absl::Minutes(437)).ok());
  const double before = mid.programmed_total().value();
  ASSERT_TRUE(mid.Advance(T0() + absl::Minutes(437) + absl::Hours(24)).ok());
  ExpectRel(mid.programmed_total().value() - before, per_day, 1e-12, "any 24 h window");
}

TEST(Integrator, ScheduleStepAcrossMidnight) {
  Prescription rx = Morphine(0);
  rx.mode = TherapyMode::kFlex;
  rx.flex.steps = {{absl::ZeroDuration(), MicrolitersPerDay(240)},
                   {absl::Hours(6), MicrolitersPerDay(480)},
                   {absl::Hours(22), MicrolitersPerDay(960)}};
  Twin twin = MakeTwin(PumpProfile::kProgrammablePeristaltic, rx);
  ASSERT_TRUE(twin.Advance(T0() + absl::Hours(21)).ok());
  const double before = twin.programmed_total().value();
  ASSERT_TRUE(twin.Advance(T0() + absl::Hours(26)).ok());
  // 21-22: 480/24; 22-24: 2 x 960/24; 00-02: 2 x 240/24.
  ExpectRel(twin.programmed_total().value() - before, 20 + 80 + 20, 1e-12, "across midnight");
  // Delivered today resets at midnight: only 00:00-02:00 counts (20 uL x 10 ug/uL).
  EXPECT_NEAR(twin.delivered_today().value(), 20 * 10.0, 1e-6);
}

TEST(Integrator, WeeklyPatternDeliversPerWeekday) {
  Prescription rx = Morphine(0);
  rx.mode = TherapyMode::kFlex;
  rx.flex.weekly = true;
  // Monday-Friday 600 uL/day, weekend 300 uL/day.
  rx.flex.steps = {{absl::ZeroDuration(), MicrolitersPerDay(600)},
                   {absl::Hours(24 * 5), MicrolitersPerDay(300)}};
  Twin twin = MakeTwin(PumpProfile::kProgrammablePeristaltic, rx);  // T0 is a Monday
  ASSERT_TRUE(twin.Advance(Day(5)).ok());
  ExpectRel(twin.programmed_total().value(), 3000, 1e-12, "weekdays");
  ASSERT_TRUE(twin.Advance(Day(7)).ok());
  ExpectRel(twin.programmed_total().value(), 3600, 1e-12, "week");
  EXPECT_NEAR(MeanDailyRate(rx).value(), 3600.0 / 7, 1e-9);
  EXPECT_NEAR(MaxDailyBasalVolume(rx).value(), 600, 1e-9);
}

TEST(Integrator, BolusOverlappingScheduleEdgeAddsItsVolume) {
  Prescription rx = Morphine(0);
  rx.mode = TherapyMode::kFlex;
  rx.flex.steps = {{absl::ZeroDuration(), MicrolitersPerDay(240)},
                   {absl::Hours(12), MicrolitersPerDay(720)}};
  Twin twin = MakeTwin(PumpProfile::kProgrammablePeristaltic, rx);
  ClinicalEvent bolus{ClinicalEventType::kClinicianBolus,
                      T0() + absl::Hours(11),
                      Microliters(100),
                      std::nullopt,
                      absl::Hours(2),
                      std::nullopt,
                      std::nullopt};
  ASSERT_TRUE(twin.RecordEvent(bolus, nullptr).ok());
  ASSERT_TRUE(twin.Advance(T0() + absl::Hours(14)).ok());
  // basal: 12 h x 10 uL/h + 2 h x 30 uL/h = 180; bolus 100.
  ExpectRel(twin.programmed_total().value(), 280, 1e-12, "basal + bolus");
}

TEST(Integrator, StoppedTherapyDeliversNothing) {
  Prescription rx = Morphine(0);
  rx.mode = TherapyMode::kStopped;
  Twin twin = MakeTwin(PumpProfile::kProgrammablePeristaltic, rx);
  ASSERT_TRUE(twin.Advance(Day(30)).ok());
  EXPECT_EQ(twin.calculated_reservoir().value(), 20000.0);
  EXPECT_EQ(twin.delivered_total().value(), 0.0);
}

TEST(Integrator, MriStallSuspendsDeliveryUntilResumed) {
  Twin twin = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(480));
  ClinicalEvent mri{ClinicalEventType::kMri, Day(1),       std::nullopt, std::nullopt,
                    absl::ZeroDuration(),    std::nullopt, std::nullopt};
  ASSERT_TRUE(twin.RecordEvent(mri, nullptr).ok());
  EXPECT_TRUE(twin.delivery_suspended());
  ASSERT_TRUE(twin.Advance(Day(1.5)).ok());
  EXPECT_NEAR(twin.programmed_total().value(), 480, 1e-9);
  Sample s;
  s.seq = 1;
  s.device_time = Day(1.5) + absl::Hours(1);
  s.events.push_back({DeviceEventType::kDeliveryResumed, Day(1.5), std::nullopt});
  ASSERT_TRUE(twin.Observe(s, s.device_time, nullptr).ok());
  EXPECT_FALSE(twin.delivery_suspended());
  EXPECT_NEAR(twin.programmed_total().value(), 480 + 20, 1e-9);
}

TEST(Integrator, PrimingBolusUsesTubingPlusCatheterVolumeAndGivesNoDose) {
  Twin twin = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(0.0 + 48));
  const double catheter = 3.14159265358979 * 0.265 * 0.265 * 500;  // mm^3 == uL
  EXPECT_NEAR(PrimingVolume(twin.spec(), twin.config()).value(), 140 + catheter, 1e-9);
  ClinicalEvent prime{ClinicalEventType::kPrimingBolus,
                      T0(),
                      std::nullopt,
                      std::nullopt,
                      absl::ZeroDuration(),
                      std::nullopt,
                      std::nullopt};
  ASSERT_TRUE(twin.RecordEvent(prime, nullptr).ok());
  EXPECT_NEAR(twin.calculated_reservoir().value(), 20000 - 140 - catheter, 1e-9);
  EXPECT_EQ(twin.delivered_24h().value(), 0.0);
}

TEST(Integrator, ReservoirsFloorAtZero) {
  Twin twin = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(1000), 2);
  ASSERT_TRUE(twin.Advance(Day(5)).ok());
  EXPECT_EQ(twin.calculated_reservoir().value(), 0.0);
  EXPECT_EQ(twin.estimated_reservoir().value(), 0.0);
  EXPECT_NEAR(twin.delivered_total().value(), 2000, 1e-9);  // only what was there
  EXPECT_NEAR(twin.programmed_total().value(), 5000, 1e-9);
}

// ---- properties over random schedules and boluses ----

Prescription RandomRx(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> rate(0, 1500);
  Prescription rx = Morphine(48, 2000);
  const int kind = static_cast<int>(rng() % 3);
  if (kind == 0) {
    rx.rate = MicrolitersPerDay(48 + rate(rng));
    return rx;
  }
  rx.mode = TherapyMode::kFlex;
  rx.flex.weekly = kind == 2;
  const int64_t period_min = rx.flex.weekly ? 7 * 1440 : 1440;
  const int n = 1 + static_cast<int>(rng() % 13);
  std::vector<int64_t> offs{0};
  while (static_cast<int>(offs.size()) < n)
    offs.push_back(1 + static_cast<int64_t>(rng() % (period_min - 1)));
  std::sort(offs.begin(), offs.end());
  offs.erase(std::unique(offs.begin(), offs.end()), offs.end());
  for (int64_t o : offs) {
    const double r = (rng() % 5 == 0) ? 0.0 : 48 + rate(rng);
    rx.flex.steps.push_back({absl::Minutes(o), MicrolitersPerDay(r)});
  }
  return rx;
}

struct Script {
  Prescription rx;
  std::vector<std::pair<absl::Duration, ClinicalEvent>> events;  // sorted
};

Script RandomScript(uint64_t seed) {
  std::mt19937_64 rng(seed);
  Script sc;
  sc.rx = RandomRx(rng);
  const int n = static_cast<int>(rng() % 4);
  for (int i = 0; i < n; ++i) {
    ClinicalEvent e;
    e.type = ClinicalEventType::kClinicianBolus;
    e.volume = Microliters(1 + static_cast<double>(rng() % 500));
    e.duration = absl::Minutes(static_cast<int64_t>(rng() % 600));
    const absl::Duration at = absl::Seconds(static_cast<int64_t>(rng() % (10 * 86400)));
    sc.events.push_back({at, e});
  }
  std::sort(sc.events.begin(), sc.events.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return sc;
}

// Runs the script to T0 + `until`, stopping at each time in `stops` on the way.
Twin RunScript(const Script& sc, std::vector<absl::Duration> stops) {
  Twin twin = MakeTwin(PumpProfile::kProgrammablePeristaltic, sc.rx, 40, 40);
  std::sort(stops.begin(), stops.end());
  size_t ei = 0;
  for (absl::Duration stop : stops) {
    while (ei < sc.events.size() && sc.events[ei].first <= stop) {
      ClinicalEvent e = sc.events[ei].second;
      e.device_time = T0() + sc.events[ei].first;
      EXPECT_TRUE(twin.RecordEvent(e, nullptr).ok());
      ++ei;
    }
    EXPECT_TRUE(twin.Advance(T0() + stop).ok());
  }
  return twin;
}

TEST(IntegratorProperty, ReservoirDropEqualsDeliveredVolume) {
  for (uint64_t seed = 1; seed <= 2000; ++seed) {
    const Script sc = RandomScript(seed);
    std::mt19937_64 rng(seed * 7919);
    const absl::Duration end = absl::Seconds(static_cast<int64_t>(rng() % (10 * 86400)) + 1);
    const Twin twin = RunScript(sc, {end});
    // Independent expectation: basal over [0, end) plus boluses finished before `end`
    // (or their delivered part).
    double expected = BasalVolume(sc.rx, ToNs(T0()), ToNs(T0() + end)).value();
    for (const auto& [at, e] : sc.events) {
      if (at > end) break;
      const absl::Duration d = std::min(e.duration, end - at);
      expected += e.duration == absl::ZeroDuration()
                      ? e.volume->value()
                      : e.volume->value() * absl::FDivDuration(d, e.duration);
    }
    const double drop_calc = 40000 - twin.calculated_reservoir().value();
    const double drop_est = 40000 - twin.estimated_reservoir().value();
    const double tol = 1e-9 * std::max(1.0, twin.programmed_total().value());
    ASSERT_NEAR(drop_calc, twin.programmed_total().value(), tol) << "seed " << seed;
    ASSERT_NEAR(drop_est, twin.delivered_total().value(), tol) << "seed " << seed;
    // Overlapping boluses merge (volume kept, end = later end): compare only when they
    // cannot overlap.
    bool overlap = false;
    for (size_t i = 1; i < sc.events.size(); ++i) {
      overlap |= sc.events[i].first < sc.events[i - 1].first + sc.events[i - 1].second.duration;
    }
    if (!overlap) {
      ASSERT_NEAR(drop_calc, expected, 1e-9 * std::max(1.0, expected)) << "seed " << seed;
    }
  }
}

TEST(IntegratorProperty, IntegratingAtoCEqualsAtoBPlusBtoC) {
  for (uint64_t seed = 1; seed <= 2000; ++seed) {
    const Script sc = RandomScript(seed);
    std::mt19937_64 rng(seed * 104729);
    const absl::Duration c = absl::Seconds(static_cast<int64_t>(rng() % (10 * 86400)) + 2);
    const absl::Duration b =
        absl::Seconds(static_cast<int64_t>(rng() % absl::ToInt64Seconds(c)) + 1);
    const Twin direct = RunScript(sc, {c});
    const Twin split = RunScript(sc, {b, c});
    const double tol = 1e-9 * std::max(1.0, direct.programmed_total().value());
    ASSERT_NEAR(direct.calculated_reservoir().value(), split.calculated_reservoir().value(), tol)
        << "seed " << seed;
    ASSERT_NEAR(direct.estimated_reservoir().value(), split.estimated_reservoir().value(), tol);
    ASSERT_NEAR(direct.delivered_24h().value(), split.delivered_24h().value(),
                1e-6 * std::max(1.0, direct.delivered_24h().value()));
    ASSERT_NEAR(direct.delivered_today().value(), split.delivered_today().value(),
                1e-9 * std::max(1.0, direct.delivered_today().value()) * 1e3);
    ASSERT_NEAR(direct.battery_charge_fraction(), split.battery_charge_fraction(), 1e-12);
  }
}

TEST(IntegratorProperty, SameInputsGiveSameBytes) {
  for (uint64_t seed = 1; seed <= 1000; ++seed) {
    const Script sc = RandomScript(seed);
    const absl::Duration end = absl::Hours(24 * 3 + static_cast<int64_t>(seed % 100));
    const std::string a = RunScript(sc, {absl::Hours(5), end}).Serialize();
    const std::string b = RunScript(sc, {absl::Hours(5), end}).Serialize();
    ASSERT_EQ(a, b) << "seed " << seed;
  }
}

TEST(IntegratorProperty, Delivered24hMatchesScheduleForConstantRates) {
  for (uint64_t seed = 1; seed <= 500; ++seed) {
    std::mt19937_64 rng(seed);
    Prescription rx = Morphine(48 + static_cast<double>(rng() % 3000), 2000);
    Twin twin = MakeTwin(PumpProfile::kProgrammablePeristaltic, rx, 40, 40);
    const absl::Time t = Day(2) + absl::Seconds(static_cast<int64_t>(rng() % 86400));
    ASSERT_TRUE(twin.Advance(t).ok());
    const double expected = rx.rate.value() * rx.concentration.value() / 1000.0;
    ASSERT_NEAR(twin.delivered_24h().value(), expected, 1e-5 * expected) << "seed " << seed;
  }
}

}  // namespace
}  // namespace pumptwin::twin
