// One fault-free year per pump profile, hourly telemetry with realistic (seeded) sensor
// noise and routine refills: no alert may be raised.
#include "gtest/gtest.h"
#include "tests/twin/twin_test_util.h"

namespace pumptwin::twin {
namespace {

using testing::MakeTwin;
using testing::Morphine;
using testing::PumpSim;

class FaultFreeYear : public ::testing::TestWithParam<PumpProfile> {};

TEST_P(FaultFreeYear, RaisesNoAlert) {
  const PumpProfile profile = GetParam();
  const double capacity = profile == PumpProfile::kConstantFlow ? 30 : 20;
  Twin twin = MakeTwin(profile, Morphine(profile == PumpProfile::kConstantFlow ? 500 : 480),
                       capacity, capacity);
  for (uint64_t seed = 1; seed <= 20; ++seed) {  // 20 pump-years per profile
    Twin t = twin;
    PumpSim sim(&t, seed);
    sim.refill_below_ml = 5;
    sim.refill_to_ml = capacity;
    std::vector<AlertTransition> out;
    absl::Status st = sim.Run(absl::Hours(24 * 365), &out);
    ASSERT_TRUE(st.ok()) << st;
    for (const AlertTransition& a : out) {
      ADD_FAILURE() << PumpProfileName(profile) << " seed " << seed << ": " << AlertTypeName(a.type)
                    << " " << static_cast<int>(a.kind) << " at " << absl::FormatTime(a.device_time)
                    << ": " << a.summary;
    }
    EXPECT_GE(sim.refills, 6);
    EXPECT_NEAR(t.delivery_ratio(), 1.0, 0.06);
    for (const DetectorStatus& d : t.detectors()) {
      EXPECT_NE(d.state, DetectorState::kAlerting) << AlertTypeName(d.type);
      EXPECT_NE(d.state, DetectorState::kUnknown) << AlertTypeName(d.type);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Profiles, FaultFreeYear,
                         ::testing::Values(PumpProfile::kProgrammablePeristaltic,
                                           PumpProfile::kProgrammableValve,
                                           PumpProfile::kConstantFlow, PumpProfile::kSensorized),
                         [](const auto& info) { return std::string(PumpProfileName(info.param)); });

}  // namespace
}  // namespace pumptwin::twin
