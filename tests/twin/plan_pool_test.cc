// Interning of therapy plans and drug limits (twin/plan_pool.h): equal values are one
// object shared by every twin, distinct values are not merged, and a plan nobody uses any
// more leaves the pool.
#include "twin/plan_pool.h"

#include <optional>
#include <vector>

#include "gtest/gtest.h"
#include "tests/twin/twin_test_util.h"

namespace pumptwin::twin {
namespace {

using testing::Config;
using testing::MakeTwin;
using testing::Morphine;
using testing::T0;

TEST(PlanPoolTest, EqualPrescriptionsShareOnePlanAndDistinctOnesDoNot) {
  Twin a = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(500));
  Twin b = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(500));
  Twin c = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(501));
  EXPECT_EQ(&a.prescription(), &b.prescription());
  EXPECT_NE(&a.prescription(), &c.prescription());
  EXPECT_EQ(c.prescription().rate.value(), 501);
  // Different plans of the same drug share the drug limits.
  EXPECT_EQ(&a.drug(), &c.drug());
}

TEST(PlanPoolTest, AVersionOrConcentrationChangeIsADistinctPlan) {
  Prescription v2 = Morphine(500);
  v2.version = 2;
  Twin a = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(500));
  Twin b = MakeTwin(PumpProfile::kProgrammablePeristaltic, v2);
  Twin c = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(500, 5000));
  EXPECT_NE(&a.prescription(), &b.prescription());
  EXPECT_NE(&a.prescription(), &c.prescription());
  EXPECT_EQ(b.prescription().version, 2u);
  EXPECT_EQ(c.prescription().concentration.value(), 5000);
}

TEST(PlanPoolTest, DecodedTwinsShareThePlanOfTheLiveTwin) {
  Twin a = MakeTwin(PumpProfile::kSensorized, Morphine(300));
  absl::StatusOr<Twin> back = Twin::Deserialize(a.Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(&back->prescription(), &a.prescription());
  EXPECT_EQ(back->Serialize(), a.Serialize());
}

TEST(PlanPoolTest, APendingPlanIsInternedAndTakesOverAtItsTime) {
  Twin a = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(500));
  Twin b = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(500));
  Prescription next = Morphine(600);
  next.version = 2;
  ASSERT_TRUE(a.SetPrescription(next, T0() + absl::Hours(2), {}, nullptr).ok());
  ASSERT_TRUE(b.SetPrescription(next, T0() + absl::Hours(2), {}, nullptr).ok());
  ASSERT_TRUE(a.pending_prescription().has_value());
  EXPECT_EQ(a.prescription().rate.value(), 500);
  ASSERT_TRUE(a.Advance(T0() + absl::Hours(3)).ok());
  ASSERT_TRUE(b.Advance(T0() + absl::Hours(3)).ok());
  EXPECT_FALSE(a.pending_prescription().has_value());
  EXPECT_EQ(a.prescription().rate.value(), 600);
  EXPECT_EQ(&a.prescription(), &b.prescription());
}

TEST(PlanPoolTest, PlansNobodyUsesLeaveThePool) {
  const size_t before = PlanPoolStats().plans;
  {
    std::vector<Twin> twins;
    for (int i = 0; i < 50; ++i) {
      twins.push_back(MakeTwin(PumpProfile::kProgrammableValve, Morphine(1000 + i)));
    }
    EXPECT_EQ(PlanPoolStats().plans, before + 50);
  }
  EXPECT_EQ(PlanPoolStats().plans, before);
}

TEST(PlanPoolTest, MakePlanDerivesTheScheduleFields) {
  DrugLimits drug = *DrugLibrary::Default().Find("morphine");
  std::shared_ptr<const TherapyPlan> p = MakePlan(Morphine(720), drug);
  EXPECT_DOUBLE_EQ(p->mean_daily_rate.value(), 720);
  EXPECT_EQ(p->stability_ns, absl::ToInt64Nanoseconds(drug.stability));
  EXPECT_EQ(*p->drug, drug);
}

}  // namespace
}  // namespace pumptwin::twin
