// Human output of pumptwinctl: aligned tables with units in headers, RFC 3339 UTC times,
// display-unit numbers, short enum names, JSON lines, prescription summaries.
#include <sstream>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pumptwin/v1/resources.pb.h"
#include "pumptwin/v1/twin_service.pb.h"
#include "tools/ctl/ctl_format.h"
#include "tools/ctl/ctl_prescription.h"

namespace pumptwin::ctl {
namespace {

using ::testing::HasSubstr;

TEST(TableTest, PadsColumnsToWidestCellAndRightAlignsNumbers) {
  Table t({{"PUMP"}, {"RESERVOIR (mL)", true}, {"CLINIC"}});
  t.AddRow({"P1", "12.5", "north"});
  t.AddRow({"PUMP-LONG-ID", "3", "s"});
  EXPECT_EQ(t.ToString(),
            "PUMP          RESERVOIR (mL)  CLINIC\n"
            "P1                      12.5  north\n"
            "PUMP-LONG-ID               3  s\n");
}

TEST(TableTest, HeaderOnlyTableAndShortRows) {
  Table t({{"A"}, {"B", true}});
  EXPECT_EQ(t.ToString(), "A  B\n");
  t.AddRow({"x"});  // missing cell prints empty, no trailing blanks
  EXPECT_EQ(t.ToString(), "A  B\nx\n");
  EXPECT_EQ(t.rows(), 1u);
}

TEST(TableTest, LinesNeverEndInBlanks) {
  Table t({{"NAME"}, {"NOTE"}});
  t.AddRow({"a", ""});
  t.AddRow({"bbbbbb", "n"});
  for (const auto& line : absl::StrSplit(t.ToString(), '\n')) {
    if (!line.empty()) {
      EXPECT_NE(line.back(), ' ') << "'" << line << "'";
    }
  }
}

TEST(PrintFieldsTest, AlignsValues) {
  std::ostringstream s;
  PrintFields(s, {{"pump", "pumps/P1"}, {"reservoir (mL)", "12"}});
  EXPECT_EQ(s.str(),
            "pump:            pumps/P1\n"
            "reservoir (mL):  12\n");
}

TEST(FormatTimeTest, Rfc3339UtcWithMillisecondsOnlyWhenNeeded) {
  EXPECT_EQ(FormatTimeMs(0), "-");
  EXPECT_EQ(FormatTimeMs(1795334400000), "2026-11-22T08:00:00Z");
  EXPECT_EQ(FormatTimeMs(1795334400250), "2026-11-22T08:00:00.250Z");
}

TEST(FormatDurationTest, CompactUnits) {
  EXPECT_EQ(FormatDurationMs(0), "-");
  EXPECT_EQ(FormatDurationMs(90 * 60000), "1h30m");
  EXPECT_EQ(FormatDurationMs(86400000 + 1500), "1d1.5s");
  EXPECT_EQ(FormatDurationMs(-60000), "-1m");
}

TEST(FormatNumberTest, TrimsTrailingZeros) {
  EXPECT_EQ(FormatNumber(0.5, 3), "0.5");
  EXPECT_EQ(FormatNumber(12.0, 3), "12");
  EXPECT_EQ(FormatNumber(0.0484, 3), "0.048");
  EXPECT_EQ(FormatNumber(-0.0001, 3), "0");
  EXPECT_EQ(UlAsMl(20000), "20");
  EXPECT_EQ(UlAsMl(480), "0.48");
  EXPECT_EQ(UlPerDayAsMlPerDay(48.5), "0.0485");
  EXPECT_EQ(UgAsMg(2.4), "0.0024");
  EXPECT_EQ(UgPerMlAsMgPerMl(25), "0.025");
}

TEST(EnumNameTest, ShortNamesRoundTrip) {
  const auto* d = v1::AlertType_descriptor();
  EXPECT_EQ(EnumShortName(d, v1::ALERT_TYPE_LOW_RESERVOIR, "ALERT_TYPE_"), "low-reservoir");
  EXPECT_EQ(*ParseEnumShortName(d, "ALERT_TYPE_", "low-reservoir"), v1::ALERT_TYPE_LOW_RESERVOIR);
  EXPECT_EQ(*ParseEnumShortName(d, "ALERT_TYPE_", "LOW_RESERVOIR"), v1::ALERT_TYPE_LOW_RESERVOIR);
  EXPECT_EQ(*ParseEnumShortName(d, "ALERT_TYPE_", "ALERT_TYPE_LOW_RESERVOIR"),
            v1::ALERT_TYPE_LOW_RESERVOIR);
  EXPECT_EQ(EnumShortName(v1::ClinicalEventType_descriptor(),
                          v1::CLINICAL_EVENT_ACCESS_PORT_ASPIRATION, "CLINICAL_EVENT_"),
            "access-port-aspiration");
}

TEST(EnumNameTest, UnknownAndUnspecifiedAreRefusedWithTheList) {
  const auto* d = v1::Severity_descriptor();
  auto bad = ParseEnumShortName(d, "SEVERITY_", "urgent");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("info, warning, critical"));
  EXPECT_FALSE(ParseEnumShortName(d, "SEVERITY_", "unspecified").ok());
}

TEST(JsonTest, OneLineWithProtoFieldNamesAndDefaults) {
  v1::Pump p;
  p.set_pump_id("P1");
  const std::string json = ToJsonLine(p);
  EXPECT_EQ(json.find('\n'), std::string::npos);
  EXPECT_THAT(json, HasSubstr("\"pump_id\":\"P1\""));
  EXPECT_THAT(json, HasSubstr("\"reservoir_capacity_ul\":0"));
}

TEST(PrescriptionTest, BuildsSimpleContinuousInBaseUnits) {
  PrescriptionFlags f;
  f.drug = "morphine";
  f.concentration = "10mg/mL";
  f.rate = "0.5mL/day";
  auto p = BuildPrescription(f, absl::Now());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->mode(), v1::THERAPY_MODE_SIMPLE_CONTINUOUS);
  EXPECT_DOUBLE_EQ(p->concentration_ug_per_ml(), 10000);
  EXPECT_DOUBLE_EQ(p->rate_ul_per_day(), 500);
  EXPECT_DOUBLE_EQ(DailyDoseUg(*p), 5000);
  EXPECT_EQ(DescribePrescription(*p), "morphine 10 mg/mL, 0.5 mL/day (5 mg/day)");
}

TEST(PrescriptionTest, BuildsSortedFlexScheduleAndAveragesTheDose) {
  PrescriptionFlags f;
  f.drug = "baclofen";
  f.concentration = "500mcg/mL";
  f.steps = {"12:00=0.6mL/day", "00:00=0.4mL/day"};
  auto p = BuildPrescription(f, absl::Now());
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->flex().steps_size(), 2);
  EXPECT_EQ(p->flex().steps(0).start_offset_ms(), 0);
  EXPECT_EQ(p->flex().steps(1).start_offset_ms(), 12 * 3600000);
  // Half a day at 0.4 mL/day, half at 0.6 mL/day: 0.5 mL/day * 500 µg/mL = 250 µg/day.
  EXPECT_NEAR(DailyDoseUg(*p), 250, 1e-6);
  EXPECT_THAT(DescribePrescription(*p),
              HasSubstr("daily flex [00:00=0.4 mL/day, 12:00=0.6 mL/day]"));
}

TEST(PrescriptionTest, UnitMistakesComeFirstThenMissingFields) {
  PrescriptionFlags f;
  f.rate = "0.5";  // no drug, no concentration either: the unit is what must be reported
  auto p = BuildPrescription(f, absl::Now());
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("--rate: '0.5' has no unit"));
  f.rate = "0.5mL/day";
  EXPECT_THAT(std::string(BuildPrescription(f, absl::Now()).status().message()),
              HasSubstr("--drug is required"));
  f.drug = "morphine";
  EXPECT_THAT(std::string(BuildPrescription(f, absl::Now()).status().message()),
              HasSubstr("--concentration is required"));
  f.concentration = "10mg/mL";
  f.stop = true;
  EXPECT_THAT(std::string(BuildPrescription(f, absl::Now()).status().message()),
              HasSubstr("exactly one mode"));
  f.stop = false;
  f.bolus_volume = "50uL";
  EXPECT_THAT(std::string(BuildPrescription(f, absl::Now()).status().message()),
              HasSubstr("patient bolus limits need all of"));
}

}  // namespace
}  // namespace pumptwin::ctl
