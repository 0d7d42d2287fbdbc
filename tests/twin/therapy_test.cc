// Drug library, prescription validation (incl. titration guard), forecasts, refills.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/twin/twin_test_util.h"

namespace pumptwin::twin {
namespace {

using testing::Day;
using ::testing::HasSubstr;
using testing::MakeTwin;
using testing::Morphine;
using testing::T0;

const PumpSpec& Peristaltic() { return *FindPumpSpec(PumpProfile::kProgrammablePeristaltic); }

std::vector<std::string> Codes(const std::vector<LimitViolation>& v) {
  std::vector<std::string> c;
  for (const auto& x : v) c.push_back(x.code);
  return c;
}

TEST(DrugLibrary, DefaultTableHasModelDefaults) {
  const DrugLibrary& lib = DrugLibrary::Default();
  EXPECT_EQ(lib.drugs().size(), 8u);
  const DrugLimits* m = lib.Find("morphine");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->max_concentration.value(), 20000);
  EXPECT_EQ(m->max_daily_dose.value(), 15000);
  EXPECT_EQ(m->stability, absl::Hours(24 * 90));
  EXPECT_EQ(m->oral_morphine_equivalence, 300);
  EXPECT_EQ(lib.Find("ziconotide")->max_daily_dose.value(), 19.2);
  EXPECT_EQ(lib.Find("baclofen")->max_concentration.value(), 2000);
  EXPECT_EQ(lib.Find("nope"), nullptr);
}

TEST(DrugLibrary, ParseFormatRoundTripAndErrors) {
  const DrugLibrary& lib = DrugLibrary::Default();
  absl::StatusOr<DrugLibrary> back = DrugLibrary::Parse(lib.Format());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->drugs(), lib.drugs());
  EXPECT_THAT(std::string(DrugLibrary::Parse("a|A|1|2|1|0.2|90|0\n").status().message()),
              HasSubstr("line 1: expected 9 fields"));
  EXPECT_THAT(std::string(DrugLibrary::Parse("# c\na|A|x|2|1|0.2|90|0|s").status().message()),
              HasSubstr("line 2: max_conc_ug_per_ml 'x' is not a number"));
  EXPECT_THAT(std::string(DrugLibrary::Parse("a|A|1|2|3|0.2|90|0|s").status().message()),
              HasSubstr("above max_daily_dose_ug"));
  EXPECT_FALSE(DrugLibrary::Parse("a|A|1|2|1|0.2|90|0|s\na|B|1|2|1|0.2|90|0|s").ok());
}

TEST(ValidatePrescription, ReturnsEveryViolationWithFieldValueAndLimit) {
  Prescription rx = Morphine(30000, 25000);  // rate above max, concentration above max
  const auto v = ValidatePrescription(rx, Peristaltic(), DrugLibrary::Default(), std::nullopt);
  EXPECT_THAT(Codes(v), ::testing::UnorderedElementsAre("HARD_CONCENTRATION", "HARD_RATE_MAX"));
  for (const auto& x : v) {
    if (x.code == "HARD_CONCENTRATION") {
      EXPECT_EQ(x.field, "prescription.concentration_ug_per_ml");
      EXPECT_EQ(x.value, 25000);
      EXPECT_EQ(x.limit, 20000);
      EXPECT_TRUE(x.hard);
    }
  }
  Prescription unknown = Morphine(500);
  unknown.drug = "unobtainium";
  EXPECT_THAT(
      Codes(ValidatePrescription(unknown, Peristaltic(), DrugLibrary::Default(), std::nullopt)),
      ::testing::ElementsAre("UNKNOWN_DRUG"));
}

TEST(ValidatePrescription, DailyDoseHardAndSoftLimitsIncludePatientBoluses) {
  Prescription rx = Morphine(1300, 10000);  // 13 mg/day: above soft 12, below hard 15
  auto v = ValidatePrescription(rx, Peristaltic(), DrugLibrary::Default(), std::nullopt);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].code, "SOFT_DAILY_DOSE");
  EXPECT_FALSE(v[0].hard);
  EXPECT_EQ(v[0].field, "prescription.daily_dose_ug");
  rx.patient_bolus = PatientBolusLimits{Microliters(100), absl::Minutes(5), absl::Hours(1), 4};
  v = ValidatePrescription(rx, Peristaltic(), DrugLibrary::Default(), std::nullopt);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].code, "HARD_DAILY_DOSE");
  EXPECT_NEAR(v[0].value, 17000, 1e-6);
}

TEST(ValidatePrescription, FlexScheduleStructureAndConstantFlowRules) {
  Prescription rx = Morphine(0);
  rx.mode = TherapyMode::kFlex;
  rx.flex.steps = {{absl::Hours(1), MicrolitersPerDay(100)},
                   {absl::Hours(1), MicrolitersPerDay(10)}};
  const auto v = ValidatePrescription(rx, Peristaltic(), DrugLibrary::Default(), std::nullopt);
  EXPECT_THAT(Codes(v),
              ::testing::ElementsAre("INVALID_SCHEDULE", "INVALID_SCHEDULE", "HARD_RATE_MIN"));
  EXPECT_EQ(v[2].field, "prescription.flex.steps[1].rate_ul_per_day");
  const PumpSpec& cf = *FindPumpSpec(PumpProfile::kConstantFlow);
  rx.flex.steps = {{absl::ZeroDuration(), MicrolitersPerDay(500)}};
  EXPECT_THAT(Codes(ValidatePrescription(rx, cf, DrugLibrary::Default(), std::nullopt)),
              ::testing::Contains("NOT_PROGRAMMABLE"));
}

TEST(Twin, TitrationGuardIsASoftLimitNeedingAcknowledgement) {
  Twin twin = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(500));  // 5 mg/day
  ASSERT_TRUE(twin.Advance(Day(2)).ok());
  Prescription up = Morphine(700);  // +40 %
  const auto v = twin.ValidatePrescription(up);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].code, "SOFT_TITRATION");
  EXPECT_NEAR(v[0].limit, 6500, 1e-9);
  absl::StatusOr<std::vector<LimitViolation>> r = twin.SetPrescription(up, Day(2), {}, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  r = twin.SetPrescription(up, Day(2), {"SOFT_TITRATION"}, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size(), 1u);
  EXPECT_EQ(twin.prescription().rate.value(), 700);
  // Two +20 % steps within 24 h add up against the same window base.
  Twin t2 = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(500));
  ASSERT_TRUE(t2.Advance(Day(2)).ok());
  ASSERT_TRUE(t2.SetPrescription(Morphine(600), Day(2), {}, nullptr).ok());
  ASSERT_TRUE(t2.Advance(Day(2.5)).ok());
  EXPECT_THAT(Codes(t2.ValidatePrescription(Morphine(720))),
              ::testing::ElementsAre("SOFT_TITRATION"));
}

TEST(Twin, PendingPrescriptionTakesEffectAtItsTime) {
  Twin twin = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(480));
  ASSERT_TRUE(twin.SetPrescription(Morphine(240), Day(1), {}, nullptr).ok());
  EXPECT_TRUE(twin.pending_prescription().has_value());
  ASSERT_TRUE(twin.Advance(Day(2)).ok());
  EXPECT_FALSE(twin.pending_prescription().has_value());
  EXPECT_NEAR(twin.programmed_total().value(), 720, 1e-9);
}

TEST(Forecast, ReservoirDatesForSimpleContinuous) {
  Twin twin = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(500));
  const Forecast f = twin.ForecastAt(T0());
  EXPECT_EQ(f.calculated_empty, Day(40));
  EXPECT_EQ(f.calculated_low_reservoir, Day(36));
  EXPECT_EQ(f.estimated_empty, Day(40));
  EXPECT_LT(f.estimated_empty_earliest, f.estimated_empty);
  EXPECT_GT(f.estimated_empty_latest, f.estimated_empty);
  EXPECT_EQ(f.next_refill_due, Day(36));
  EXPECT_NEAR(f.dose_today_prescribed.value(), 5000, 1e-6);
  // Battery: 0.5 mL/day reaches the 7-year hard stop first (label).
  EXPECT_EQ(f.battery_eos, T0() + absl::Hours(24 * 365.25 * 7));
  EXPECT_EQ(f.battery_eri, T0() + absl::Hours(24 * 365.25 * 7) - absl::Hours(24 * 90));
  // Constant flow pumps have no battery.
  EXPECT_EQ(
      MakeTwin(PumpProfile::kConstantFlow, Morphine(1000), 20, 30).ForecastAt(T0()).battery_eri,
      absl::InfiniteFuture());
}

TEST(Forecast, FlexScheduleAndStoppedPump) {
  Prescription rx = Morphine(0);
  rx.mode = TherapyMode::kFlex;
  rx.flex.steps = {{absl::ZeroDuration(), MicrolitersPerDay(0)},
                   {absl::Hours(12), MicrolitersPerDay(2000)}};
  Twin twin = MakeTwin(PumpProfile::kProgrammablePeristaltic, rx);  // 1 mL/day, all after noon
  const Forecast f = twin.ForecastAt(T0());
  EXPECT_EQ(f.calculated_empty, Day(19) + absl::Hours(24));  // 20th day's last hour ends at 24:00
  Prescription stopped = Morphine(0);
  stopped.mode = TherapyMode::kStopped;
  EXPECT_EQ(
      MakeTwin(PumpProfile::kProgrammablePeristaltic, stopped).ForecastAt(T0()).calculated_empty,
      absl::InfiniteFuture());
}

TEST(Twin, PredictFollowsAProposedPrescription) {
  Twin twin = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(500));
  const Prescription proposed = Morphine(1000);
  absl::StatusOr<std::vector<TrajectoryPoint>> p =
      twin.Predict(Day(10), absl::Hours(24), &proposed);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->size(), 11u);
  EXPECT_NEAR(p->back().calculated_reservoir.value(), 10000, 1e-9);
  EXPECT_EQ(twin.device_time(), T0());  // untouched
  EXPECT_EQ(twin.Predict(Day(10), absl::ZeroDuration()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pumptwin::twin
