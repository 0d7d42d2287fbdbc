// Bad input is rejected with a precise status and leaves the twin unchanged.
#include <limits>

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

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

class BadSample : public ::testing::Test {
 protected:
  BadSample() : twin_(MakeTwin(PumpProfile::kSensorized, Morphine(500))) {
    Sample s;
    s.seq = 1;
    s.device_time = Day(1);
    s.measured_reservoir = Microliters(19500);
    EXPECT_TRUE(twin_.Observe(s, Day(1), nullptr).ok());
    before_ = twin_.Serialize();
  }
  Sample Good() const {
    Sample s;
    s.seq = 2;
    s.device_time = Day(1) + absl::Hours(1);
    return s;
  }
  void ExpectRejected(const Sample& s, absl::StatusCode code, const std::string& text) {
    std::vector<AlertTransition> out;
    const absl::Status st = twin_.Observe(s, s.device_time, &out);
    EXPECT_EQ(st.code(), code) << st;
    EXPECT_THAT(std::string(st.message()), HasSubstr(text));
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(twin_.Serialize(), before_) << "state changed after " << st;
  }
  Twin twin_;
  std::string before_;
};

TEST_F(BadSample, NaNInfNegativeAndAbsurdValuesAreInvalidArgumentNamingFieldAndLimit) {
  Sample s = Good();
  s.measured_reservoir = Microliters(kNaN);
  ExpectRejected(s, absl::StatusCode::kInvalidArgument, "sample.measured_reservoir_ul is NaN");
  s.measured_reservoir = Microliters(kInf);
  ExpectRejected(s, absl::StatusCode::kInvalidArgument, "sample.measured_reservoir_ul is infinite");
  s.measured_reservoir = Microliters(-1);
  ExpectRejected(s, absl::StatusCode::kInvalidArgument, "below the limit 0 uL");
  s.measured_reservoir = Microliters(50000);
  ExpectRejected(s, absl::StatusCode::kInvalidArgument, "above the limit 22000 uL");
  s = Good();
  s.stroke_pressure_peak = Mmhg(5000);
  ExpectRejected(s, absl::StatusCode::kInvalidArgument,
                 "sample.stroke_pressure_peak_mmhg 5000 mmHg above the limit 1000 mmHg");
  s = Good();
  s.battery_voltage = Volts(-3);
  ExpectRejected(s, absl::StatusCode::kInvalidArgument, "sample.battery_voltage_v");
  s = Good();
  s.temperature_c = kNaN;
  ExpectRejected(s, absl::StatusCode::kInvalidArgument, "sample.temperature_c is NaN");
  s = Good();
  s.alarm_flags = 1u << 7;
  ExpectRejected(s, absl::StatusCode::kInvalidArgument, "sample.alarm_flags");
}

TEST_F(BadSample, TimeGoingBackwardsIsFailedPrecondition) {
  Sample s = Good();
  s.device_time = Day(1) - absl::Seconds(1);
  ExpectRejected(s, absl::StatusCode::kFailedPrecondition, "before the model time");
}

TEST_F(BadSample, AbsurdTimesAndEventsAreInvalidArgument) {
  Sample s = Good();
  s.device_time = absl::FromUnixSeconds(8000000000);  // year 2223
  ExpectRejected(s, absl::StatusCode::kInvalidArgument, "outside [1970, 2200)");
  s = Good();
  s.events.push_back(
      {DeviceEventType::kMotorStall, s.device_time + absl::Seconds(1), std::nullopt});
  ExpectRejected(s, absl::StatusCode::kInvalidArgument, "sample.events[0].device_time");
  s = Good();
  s.events.push_back({static_cast<DeviceEventType>(99), s.device_time, std::nullopt});
  ExpectRejected(s, absl::StatusCode::kInvalidArgument, "sample.events[0].type 99");
  s = Good();
  s.events.push_back({DeviceEventType::kPatientBolusGranted, s.device_time, Microliters(kNaN)});
  ExpectRejected(s, absl::StatusCode::kInvalidArgument, "sample.events[].value_ul is NaN");
}

TEST(BadInput, ClinicalCallsRejectBadValuesWithoutChangingState) {
  Twin twin = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(500));
  ASSERT_TRUE(twin.Advance(Day(2)).ok());
  const std::string before = twin.Serialize();
  Refill r{Microliters(kNaN), Milliliters(20), "", MicrogramsPerMilliliter(0), Day(2)};
  EXPECT_EQ(twin.RecordRefill(r, nullptr).status().code(), absl::StatusCode::kInvalidArgument);
  r = Refill{Milliliters(10), Milliliters(25), "", MicrogramsPerMilliliter(0), Day(2)};
  EXPECT_THAT(std::string(twin.RecordRefill(r, nullptr).status().message()),
              HasSubstr("refill.added_volume_ul 25000 uL outside [0, 20000]"));
  r = Refill{Milliliters(10), Milliliters(20), "unobtainium", MicrogramsPerMilliliter(10), Day(2)};
  EXPECT_EQ(twin.RecordRefill(r, nullptr).status().code(), absl::StatusCode::kInvalidArgument);
  r = Refill{Milliliters(10), Milliliters(20), "", MicrogramsPerMilliliter(50000), Day(2)};
  EXPECT_THAT(std::string(twin.RecordRefill(r, nullptr).status().message()),
              HasSubstr("above the morphine maximum 20000"));
  ClinicalEvent e{ClinicalEventType::kClinicianBolus,
                  Day(2),
                  std::nullopt,
                  std::nullopt,
                  absl::Hours(1),
                  std::nullopt,
                  std::nullopt};
  EXPECT_EQ(twin.RecordEvent(e, nullptr).code(), absl::StatusCode::kInvalidArgument);
  e.volume = Microliters(-5);
  EXPECT_EQ(twin.RecordEvent(e, nullptr).code(), absl::StatusCode::kInvalidArgument);
  e = ClinicalEvent{ClinicalEventType::kCatheterRevision,
                    Day(2),
                    std::nullopt,
                    std::nullopt,
                    absl::ZeroDuration(),
                    Millimeters(5),
                    Millimeters(0.5)};
  EXPECT_THAT(std::string(twin.RecordEvent(e, nullptr).message()),
              HasSubstr("pump_config.catheter_length_mm 5 outside"));
  Prescription rx = Morphine(100000);
  EXPECT_EQ(twin.SetPrescription(rx, Day(2), {}, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(twin.Advance(Day(1)).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(twin.Serialize(), before);
}

TEST(BadInput, CreateRejectsBadConfigAndReservoir) {
  PumpConfig cfg = testing::Config(PumpProfile::kSensorized);
  EXPECT_THAT(
      std::string(Twin::Create(cfg, Morphine(500), Milliliters(25), T0()).status().message()),
      HasSubstr("initial_reservoir_ul 25000 outside [0, 20000]"));
  cfg.profile = PumpProfile::kUnspecified;
  EXPECT_EQ(Twin::Create(cfg, Morphine(500), Milliliters(10), T0()).status().code(),
            absl::StatusCode::kInvalidArgument);
  cfg = testing::Config(PumpProfile::kSensorized);
  cfg.reservoir_capacity = Microliters(kNaN);
  EXPECT_THAT(
      std::string(Twin::Create(cfg, Morphine(500), Milliliters(10), T0()).status().message()),
      HasSubstr("pump_config.reservoir_capacity_ul"));
}

}  // namespace
}  // namespace pumptwin::twin
