// Units typed on the pumptwinctl command line: every accepted spelling lands in the
// contract's base unit, and every bare number or unknown unit is refused with a message
// naming the accepted units.
#include "tools/ctl/units_parse.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pumptwin::ctl {
namespace {

using ::testing::HasSubstr;

MATCHER_P(IsInvalidWith, text, "") {
  if (arg.ok()) {
    *result_listener << "parsed fine";
    return false;
  }
  *result_listener << "message: " << arg.status().message();
  return arg.status().code() == absl::StatusCode::kInvalidArgument &&
         absl::string_view(arg.status().message()).find(text) != absl::string_view::npos;
}

struct Case {
  const char* text;
  double base;
};

TEST(ParseVolumeTest, EveryAcceptedSpellingGivesMicrolitres) {
  for (const Case& c : {Case{"0.5mL", 500}, Case{"0.5ml", 500}, Case{"500uL", 500},
                        Case{"500ul", 500}, Case{"500\xC2\xB5L", 500}, Case{"500\xCE\xBCL", 500},
                        Case{"20mL", 20000}, Case{"0.5 mL", 500}, Case{"  3.25mL ", 3250},
                        Case{".5mL", 500}, Case{"0mL", 0}, Case{"+1uL", 1}}) {
    auto v = ParseVolume(c.text);
    ASSERT_TRUE(v.ok()) << c.text << ": " << v.status();
    EXPECT_DOUBLE_EQ(v->ul, c.base) << c.text;
  }
}

TEST(ParseVolumeTest, BareNumberIsRefusedNamingTheUnits) {
  for (const char* text : {"0.5", "500", "0", "12."}) {
    auto v = ParseVolume(text);
    EXPECT_THAT(v, IsInvalidWith("has no unit")) << text;
    EXPECT_THAT(v, IsInvalidWith("mL, uL, \xC2\xB5L")) << text;
  }
}

TEST(ParseVolumeTest, RefusesWrongUnitsNegativesAndGarbage) {
  EXPECT_THAT(ParseVolume("0.5L"), IsInvalidWith("unknown volume unit 'L'"));
  EXPECT_THAT(ParseVolume("0.5mg"), IsInvalidWith("unknown volume unit 'mg'"));
  EXPECT_THAT(ParseVolume("0.5ML"), IsInvalidWith("unknown volume unit"));  // megalitre? no
  EXPECT_THAT(ParseVolume("0.5mL/day"), IsInvalidWith("unknown volume unit"));
  EXPECT_THAT(ParseVolume("-1mL"), IsInvalidWith("cannot be negative"));
  EXPECT_THAT(ParseVolume(""), IsInvalidWith("empty volume"));
  EXPECT_THAT(ParseVolume("mL"), IsInvalidWith("is not a volume"));
  EXPECT_THAT(ParseVolume("1.2.3mL"), IsInvalidWith("is not a volume"));
  EXPECT_THAT(ParseVolume("1e3uL"), IsInvalidWith("unknown volume unit 'e3uL'"));
  EXPECT_THAT(ParseVolume("nanmL"), IsInvalidWith("is not a volume"));
  EXPECT_THAT(ParseVolume("0.5  mL"), IsInvalidWith("unknown volume unit"));
}

TEST(ParseRateTest, EveryAcceptedSpellingGivesMicrolitresPerDay) {
  for (const Case& c :
       {Case{"0.5mL/day", 500}, Case{"0.5mL/d", 500}, Case{"0.5ml/day", 500}, Case{"20uL/h", 480},
        Case{"20uL/hr", 480}, Case{"20uL/hour", 480}, Case{"0.02mL/hr", 480}, Case{"0.02mL/h", 480},
        Case{"480\xC2\xB5L/day", 480}, Case{"20\xCE\xBCL/h", 480}, Case{"100ul/d", 100},
        Case{"0mL/day", 0}}) {
    auto v = ParseRate(c.text);
    ASSERT_TRUE(v.ok()) << c.text << ": " << v.status();
    EXPECT_NEAR(v->ul_per_day, c.base, 1e-9) << c.text;
  }
}

TEST(ParseRateTest, RefusesBareNumbersAndIncompleteRates) {
  EXPECT_THAT(ParseRate("0.5"), IsInvalidWith("has no unit"));
  EXPECT_THAT(ParseRate("0.5"), IsInvalidWith("mL/day"));
  EXPECT_THAT(ParseRate("0.5mL"), IsInvalidWith("unknown rate unit 'mL'"));
  EXPECT_THAT(ParseRate("0.5mL/min"), IsInvalidWith("unknown rate unit"));
  EXPECT_THAT(ParseRate("0.5mL/week"), IsInvalidWith("unknown rate unit"));
  EXPECT_THAT(ParseRate("0.5mg/day"), IsInvalidWith("unknown rate unit"));
  EXPECT_THAT(ParseRate("-0.5mL/day"), IsInvalidWith("cannot be negative"));
}

TEST(ParseConcentrationTest, EveryAcceptedSpellingGivesMicrogramsPerMillilitre) {
  for (const Case& c :
       {Case{"10mg/mL", 10000}, Case{"10mg/ml", 10000}, Case{"500ug/mL", 500},
        Case{"500mcg/mL", 500}, Case{"500\xC2\xB5g/mL", 500}, Case{"500\xCE\xBCg/mL", 500},
        Case{"25mcg/ml", 25}, Case{"0.025mg/mL", 25}}) {
    auto v = ParseConcentration(c.text);
    ASSERT_TRUE(v.ok()) << c.text << ": " << v.status();
    EXPECT_NEAR(v->ug_per_ml, c.base, 1e-9) << c.text;
  }
}

TEST(ParseConcentrationTest, RefusesBareNumbersAndOtherUnits) {
  EXPECT_THAT(ParseConcentration("10"), IsInvalidWith("has no unit"));
  EXPECT_THAT(ParseConcentration("10"), IsInvalidWith("mg/mL, ug/mL, mcg/mL"));
  EXPECT_THAT(ParseConcentration("10mg"), IsInvalidWith("unknown concentration unit 'mg'"));
  EXPECT_THAT(ParseConcentration("10g/L"), IsInvalidWith("unknown concentration unit"));
  EXPECT_THAT(ParseConcentration("10mg/uL"), IsInvalidWith("unknown concentration unit"));
  EXPECT_THAT(ParseConcentration("10%"), IsInvalidWith("unknown concentration unit"));
}

TEST(ParseDoseTest, EveryAcceptedSpellingGivesMicrograms) {
  for (const Case& c : {Case{"15mg", 15000}, Case{"500ug", 500}, Case{"500mcg", 500},
                        Case{"500\xC2\xB5g", 500}, Case{"500\xCE\xBCg", 500}, Case{"0.1mg", 100}}) {
    auto v = ParseDose(c.text);
    ASSERT_TRUE(v.ok()) << c.text << ": " << v.status();
    EXPECT_NEAR(v->ug, c.base, 1e-9) << c.text;
  }
}

TEST(ParseDoseTest, RefusesBareNumbersAndGrams) {
  EXPECT_THAT(ParseDose("15"), IsInvalidWith("has no unit"));
  EXPECT_THAT(ParseDose("15"), IsInvalidWith("mg, ug, mcg"));
  EXPECT_THAT(ParseDose("1g"), IsInvalidWith("unknown dose unit 'g'"));
  EXPECT_THAT(ParseDose("15mL"), IsInvalidWith("unknown dose unit"));
  EXPECT_THAT(ParseDose("15Mg"), IsInvalidWith("unknown dose unit"));
}

TEST(ParseLengthTest, CentimetresAndMillimetres) {
  EXPECT_DOUBLE_EQ(ParseLength("45cm")->mm, 450);
  EXPECT_DOUBLE_EQ(ParseLength("0.53mm")->mm, 0.53);
  EXPECT_THAT(ParseLength("45"), IsInvalidWith("has no unit"));
  EXPECT_THAT(ParseLength("45m"), IsInvalidWith("unknown length unit"));
  EXPECT_THAT(ParseLength("1in"), IsInvalidWith("unknown length unit"));
}

TEST(ParseDurationTest, UnitsAndSums) {
  EXPECT_EQ(*ParseDuration("30m"), absl::Minutes(30));
  EXPECT_EQ(*ParseDuration("30min"), absl::Minutes(30));
  EXPECT_EQ(*ParseDuration("2h"), absl::Hours(2));
  EXPECT_EQ(*ParseDuration("1d"), absl::Hours(24));
  EXPECT_EQ(*ParseDuration("1w"), absl::Hours(24 * 7));
  EXPECT_EQ(*ParseDuration("10s"), absl::Seconds(10));
  EXPECT_EQ(*ParseDuration("250ms"), absl::Milliseconds(250));
  EXPECT_EQ(*ParseDuration("1.5h"), absl::Minutes(90));
  EXPECT_EQ(*ParseDuration("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseDuration("1d12h"), absl::Hours(36));
  EXPECT_EQ(*ParseDuration("0s"), absl::ZeroDuration());
}

TEST(ParseDurationTest, RefusesBareNumbersAndUnknownUnits) {
  EXPECT_THAT(ParseDuration("30"), IsInvalidWith("has no unit"));
  EXPECT_THAT(ParseDuration("30"), IsInvalidWith("ms, s, m or min, h, d, w"));
  EXPECT_THAT(ParseDuration("1y"), IsInvalidWith("unknown duration unit 'y'"));
  EXPECT_THAT(ParseDuration("1h30"), IsInvalidWith("is not a duration"));
  EXPECT_THAT(ParseDuration("-1h"), IsInvalidWith("cannot be negative"));
  EXPECT_THAT(ParseDuration(""), IsInvalidWith("empty duration"));
}

TEST(ParseTimeTest, Rfc3339NowAndRelative) {
  const absl::Time now = absl::FromUnixSeconds(1795000000);
  EXPECT_EQ(*ParseTime("2026-11-22T08:00:00Z", now),
            absl::FromCivil(absl::CivilSecond(2026, 11, 22, 8, 0, 0), absl::UTCTimeZone()));
  EXPECT_EQ(*ParseTime("2026-11-22T09:00:00+01:00", now),
            absl::FromCivil(absl::CivilSecond(2026, 11, 22, 8, 0, 0), absl::UTCTimeZone()));
  EXPECT_EQ(*ParseTime("2026-11-22T08:00:00.250Z", now),
            absl::FromCivil(absl::CivilSecond(2026, 11, 22, 8, 0, 0), absl::UTCTimeZone()) +
                absl::Milliseconds(250));
  EXPECT_EQ(*ParseTime("now", now), now);
  EXPECT_EQ(*ParseTime("now-2h", now), now - absl::Hours(2));
  EXPECT_EQ(*ParseTime("now+1d", now), now + absl::Hours(24));
  EXPECT_EQ(*ParseTime("now-1h30m", now), now - absl::Minutes(90));
}

TEST(ParseTimeTest, RefusesAmbiguousTimes) {
  const absl::Time now = absl::Now();
  EXPECT_THAT(ParseTime("2026-11-22", now), IsInvalidWith("RFC 3339"));
  EXPECT_THAT(ParseTime("2026-11-22T08:00:00", now), IsInvalidWith("RFC 3339"));  // no zone
  EXPECT_THAT(ParseTime("1795000000", now), IsInvalidWith("RFC 3339"));
  EXPECT_THAT(ParseTime("yesterday", now), IsInvalidWith("RFC 3339"));
  EXPECT_THAT(ParseTime("now-2", now), IsInvalidWith("has no unit"));
  EXPECT_THAT(ParseTime("now2h", now), IsInvalidWith("is not a time"));
}

TEST(ParseFlexStepTest, DailyAndWeeklySteps) {
  auto s = ParseFlexStep("07:30=0.6mL/day", false);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->start_offset, absl::Hours(7) + absl::Minutes(30));
  EXPECT_DOUBLE_EQ(s->rate.ul_per_day, 600);
  auto w = ParseFlexStep("Wed-07:00=25uL/h", true);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->start_offset, absl::Hours(2 * 24 + 7));
  EXPECT_DOUBLE_EQ(w->rate.ul_per_day, 600);
  EXPECT_EQ(ParseFlexStep("mon-00:00=0.4mL/day", true)->start_offset, absl::ZeroDuration());
}

TEST(ParseFlexStepTest, RefusesMalformedSteps) {
  EXPECT_THAT(ParseFlexStep("07:00=0.6", false), IsInvalidWith("has no unit"));
  EXPECT_THAT(ParseFlexStep("07:00", false), IsInvalidWith("expected HH:MM=RATE"));
  EXPECT_THAT(ParseFlexStep("24:00=1mL/day", false), IsInvalidWith("bad time of day"));
  EXPECT_THAT(ParseFlexStep("7:00=1mL/day", false), IsInvalidWith("bad time of day"));
  EXPECT_THAT(ParseFlexStep("07:60=1mL/day", false), IsInvalidWith("bad time of day"));
  EXPECT_THAT(ParseFlexStep("07:00=1mL/day", true), IsInvalidWith("weekly steps start with a day"));
  EXPECT_THAT(ParseFlexStep("Xyz-07:00=1mL/day", true),
              IsInvalidWith("weekly steps start with a day"));
}

TEST(NormalizeFlexStepsTest, SortsAndRequiresAStepAtMidnight) {
  auto steps = NormalizeFlexSteps({{absl::Hours(7), {600}}, {absl::ZeroDuration(), {400}}}, false);
  ASSERT_TRUE(steps.ok()) << steps.status();
  ASSERT_EQ(steps->size(), 2u);
  EXPECT_EQ((*steps)[0].start_offset, absl::ZeroDuration());
  EXPECT_EQ((*steps)[1].rate.ul_per_day, 600);
  EXPECT_THAT(NormalizeFlexSteps({{absl::Hours(7), {600}}}, false),
              IsInvalidWith("must start at 00:00"));
  EXPECT_THAT(NormalizeFlexSteps({{absl::Hours(7), {600}}}, true),
              IsInvalidWith("must start at Mon-00:00"));
  EXPECT_THAT(NormalizeFlexSteps({}, false), IsInvalidWith("at least one --step"));
  EXPECT_THAT(NormalizeFlexSteps({{absl::ZeroDuration(), {1}}, {absl::ZeroDuration(), {2}}}, false),
              IsInvalidWith("same time"));
}

}  // namespace
}  // namespace pumptwin::ctl
