// Twins that do not start as a fresh implant with regular telemetry: enrolment at the last
// interrogation of a pump implanted years ago, pumps that never report (model-only time
// checks from registration), refills after the model ran the reservoir dry, and flex
// schedules in the patient's local time across a DST change.
#include <optional>
#include <string>
#include <vector>

#include "absl/time/civil_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/twin/twin_test_util.h"
#include "twin/local_zone.h"
#include "twin/twin.h"

namespace pumptwin::twin::testing {
namespace {

using ::testing::HasSubstr;

Enrolment FourYearsIn() {
  Enrolment e;
  e.interrogation_time = T0() + absl::Hours(24 * 365 * 4);
  e.calculated_reservoir = Milliliters(12);
  e.last_refill_time = e.interrogation_time - absl::Hours(24 * 10);
  e.last_refill_volume = Milliliters(17);
  e.battery_indicator_fraction = 0.4;
  return e;
}

DetectorState StateOf(const Twin& t, AlertType type) {
  for (const DetectorStatus& d : t.detectors()) {
    if (d.type == type) return d.state;
  }
  return DetectorState::kUnspecified;
}

TEST(Enrolment, StartsAtTheInterrogationWithWhatItDoesNotKnow) {
  const Enrolment e = FourYearsIn();
  auto t = Twin::Enrol(Config(PumpProfile::kProgrammablePeristaltic), Morphine(500), e,
                       DrugLibrary::Default());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->device_time(), e.interrogation_time);
  EXPECT_TRUE(t->enrolled());
  EXPECT_DOUBLE_EQ(t->calculated_reservoir().value(), 12000);
  EXPECT_DOUBLE_EQ(t->estimated_reservoir().value(), 12000);
  EXPECT_EQ(t->last_refill_time(), *e.last_refill_time);
  EXPECT_NEAR(t->battery_charge_fraction(), 0.4, 1e-9);
  // The delivery ratio prior is wider than a fresh implant's, and nothing is learnt yet.
  const Twin fresh = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(500));
  EXPECT_GT(t->delivery_ratio_stddev(), 1.5 * fresh.delivery_ratio_stddev());
  // A programmable pump shows drift and runs-dry only at a refill: not observable until
  // then. A sensorized pump enrolled the same way has them, still learning.
  EXPECT_EQ(StateOf(*t, AlertType::kFlowDriftUnder), DetectorState::kNotObservable);
  EXPECT_EQ(StateOf(*t, AlertType::kRunsDryBeforeAlarm), DetectorState::kNotObservable);
  auto sensorized =
      Twin::Enrol(Config(PumpProfile::kSensorized), Morphine(500), e, DrugLibrary::Default());
  ASSERT_TRUE(sensorized.ok()) << sensorized.status();
  EXPECT_EQ(StateOf(*sensorized, AlertType::kFlowDriftUnder), DetectorState::kWarmingUp);
  EXPECT_EQ(StateOf(*sensorized, AlertType::kRunsDryBeforeAlarm), DetectorState::kWarmingUp);

  // The first refill after enrolment measures the whole interval since the last refill:
  // 17 mL filled, 5 mL programmed before the interrogation, 10 days at 0.5 mL/day after.
  std::vector<AlertTransition> out;
  Refill r;
  r.withdrawn = Milliliters(7);
  r.added = Milliliters(20);
  r.device_time = e.interrogation_time + absl::Hours(24 * 10);
  auto res = t->RecordRefill(r, &out);
  ASSERT_TRUE(res.ok()) << res.status();
  ASSERT_TRUE(res->observed_ratio.has_value());
  EXPECT_NEAR(*res->observed_ratio, 1.0, 1e-6);
  EXPECT_EQ(res->verdict, RefillVerdict::kOk);
}

TEST(Enrolment, BatteryIsModelledFromImplantWithoutAnIndicator) {
  Enrolment e = FourYearsIn();
  e.battery_indicator_fraction.reset();
  auto t = Twin::Enrol(Config(PumpProfile::kProgrammablePeristaltic), Morphine(500), e,
                       DrugLibrary::Default());
  ASSERT_TRUE(t.ok()) << t.status();
  auto started_then = Twin::Create(Config(PumpProfile::kProgrammablePeristaltic), Morphine(500),
                                   Milliliters(12), e.interrogation_time);
  ASSERT_TRUE(started_then.ok());
  EXPECT_LT(t->battery_charge_fraction(), 0.9);  // four years of use
  EXPECT_DOUBLE_EQ(t->battery_charge_fraction(), started_then->battery_charge_fraction());

  e.battery_eri_shown = true;
  auto eri = Twin::Enrol(Config(PumpProfile::kProgrammablePeristaltic), Morphine(500), e,
                         DrugLibrary::Default());
  ASSERT_TRUE(eri.ok()) << eri.status();
  EXPECT_LE(eri->battery_charge_fraction(), eri->spec().eri_fraction + 1e-9);
}

// The indicator over the years since implant is this pump's own drain: the forecast follows
// it, not the profile's assumed current or its labelled service life.
TEST(Enrolment, TheBatteryForecastFollowsThePumpsOwnDrainSinceImplant) {
  Enrolment e = FourYearsIn();
  e.interrogation_time = T0() + absl::Hours(24 * 365 * 6);
  e.last_refill_time = e.interrogation_time - absl::Hours(24 * 10);
  auto enrol = [&](std::optional<double> indicator) {
    e.battery_indicator_fraction = indicator;
    auto t = Twin::Enrol(Config(PumpProfile::kProgrammablePeristaltic), Morphine(500), e,
                         DrugLibrary::Default());
    EXPECT_TRUE(t.ok()) << t.status();
    return *std::move(t);
  };
  const absl::Duration year = absl::Hours(24 * 365);
  // A frugal pump: a quarter of its charge in six years leaves about as many years again.
  const Twin frugal = enrol(0.75);
  const absl::Time frugal_eri = frugal.ForecastAt(e.interrogation_time).battery_eri;
  EXPECT_GT(frugal_eri - e.interrogation_time, 10 * year);
  // Without an indicator the prior drain and the labelled service life bound it.
  const Twin unknown = enrol(std::nullopt);
  EXPECT_LT(unknown.ForecastAt(e.interrogation_time).battery_eri - e.interrogation_time, 1 * year);
  // A hungry pump: 85 % in six years, 10 % left above ERI at 14 %/year: about 8 months.
  const Twin hungry = enrol(0.15);
  const absl::Duration left =
      hungry.ForecastAt(e.interrogation_time).battery_eri - e.interrogation_time;
  EXPECT_GT(left, 0.5 * year);
  EXPECT_LT(left, 0.8 * year);
}

TEST(Enrolment, EveryFieldIsValidated) {
  const PumpConfig cfg = Config(PumpProfile::kProgrammablePeristaltic);
  auto check = [&](Enrolment e, const std::string& needle, PumpConfig c) {
    auto t = Twin::Enrol(c, Morphine(500), e, DrugLibrary::Default());
    ASSERT_FALSE(t.ok()) << needle;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(t.status().message(), HasSubstr(needle));
  };
  Enrolment e = FourYearsIn();
  e.interrogation_time = T0() - absl::Hours(1);
  e.last_refill_time.reset();
  check(e, "is before pump.implant_time_ms", cfg);
  e = FourYearsIn();
  e.calculated_reservoir = Milliliters(25);
  check(e, "enrolment.calculated_reservoir_ul=25000 outside [0, 20000]", cfg);
  e = FourYearsIn();
  e.last_refill_time = e.interrogation_time + absl::Hours(1);
  check(e, "is after enrolment.interrogation_time_ms", cfg);
  e = FourYearsIn();
  e.last_refill_time = T0() - absl::Hours(1);
  check(e, "enrolment.last_refill_time_ms", cfg);
  e = FourYearsIn();
  e.last_refill_volume = Milliliters(10);
  check(e, "is above enrolment.last_refill_volume_ul", cfg);
  e = FourYearsIn();
  e.battery_indicator_fraction = 1.5;
  check(e, "enrolment.battery_indicator_fraction=1.5 outside [0, 1]", cfg);
  e = FourYearsIn();
  check(e, "no battery", Config(PumpProfile::kConstantFlow));
  e = FourYearsIn();
  e.interrogation_time = absl::UnixEpoch();
  check(e, "interrogation_time_ms is required", cfg);
}

// A constant-flow pump reports nothing: its model runs on server time from registration,
// so low reservoir and "has run dry" come on time, and silence is not observable.
TEST(NeverReports, ConstantFlowRaisesLowReservoirAndRunsDryOnTime) {
  PumpConfig cfg = Config(PumpProfile::kConstantFlow);  // 30 mL
  auto t = Twin::Create(cfg, Morphine(1000), Milliliters(20), T0());
  ASSERT_TRUE(t.ok()) << t.status();
  t->SetRegistered(T0());
  EXPECT_FALSE(t->ReportsTelemetry());
  std::vector<AlertTransition> out;
  // 18 mL to the 2 mL alarm at 1 mL/day: day 18.
  const absl::Time before = T0() + absl::Hours(18 * 24 - 2);
  const absl::Time after = T0() + absl::Hours(18 * 24 + 2);
  t->Tick(before, &out);
  EXPECT_EQ(t->active_alert(AlertType::kLowReservoir), Severity::kUnspecified);
  // A tick that changes no alert is not kept: the model stays at its last input (the
  // registration) and forecasts from there.
  const absl::Time registered = t->device_time();
  EXPECT_LE(registered, T0() + absl::Hours(1));
  EXPECT_EQ(t->ForecastAt(t->device_time()).calculated_low_reservoir, T0() + absl::Hours(18 * 24));
  t->Tick(after, &out);
  EXPECT_EQ(t->device_time(), after);  // a tick that raises is kept
  EXPECT_NEAR(t->calculated_reservoir().value(), 2000 - 1000.0 / 12, 1e-6);
  EXPECT_EQ(t->active_alert(AlertType::kLowReservoir), Severity::kWarning);
  const AlertTransition* low = First(out, AlertType::kLowReservoir);
  ASSERT_NE(low, nullptr);
  EXPECT_EQ(low->device_time, after);
  EXPECT_EQ(t->active_alert(AlertType::kRunsDryBeforeAlarm), Severity::kUnspecified);
  t->Tick(Day(19.9), &out);
  EXPECT_EQ(t->active_alert(AlertType::kRunsDryBeforeAlarm), Severity::kUnspecified);
  t->Tick(Day(20.1), &out);
  EXPECT_EQ(t->active_alert(AlertType::kRunsDryBeforeAlarm), Severity::kCritical);
  EXPECT_EQ(Count(out, AlertType::kSilentPump, TransitionKind::kRaised), 0);
  // It stays raised on later ticks (no flapping) until a refill.
  t->Tick(Day(25), &out);
  EXPECT_EQ(Count(out, AlertType::kRunsDryBeforeAlarm, TransitionKind::kRaised), 1);
  EXPECT_EQ(Count(out, AlertType::kRunsDryBeforeAlarm, TransitionKind::kResolved), 0);
  EXPECT_EQ(StateOf(*t, AlertType::kSilentPump), DetectorState::kNotObservable);
  EXPECT_EQ(StateOf(*t, AlertType::kClockSkew), DetectorState::kNotObservable);
  EXPECT_EQ(StateOf(*t, AlertType::kCatheterBlockage), DetectorState::kNotObservable);
}

TEST(NeverReports, ATelemetryPumpGoesSilentCountedFromRegistration) {
  auto t = Twin::Create(Config(PumpProfile::kProgrammablePeristaltic), Morphine(500),
                        Milliliters(20), T0() - absl::Hours(24 * 7));  // implanted a week ago
  ASSERT_TRUE(t.ok());
  t->SetRegistered(T0());
  std::vector<AlertTransition> out;
  t->Tick(T0() + absl::Hours(2), &out);  // 3 x 1 h interval not yet over
  EXPECT_EQ(t->active_alert(AlertType::kSilentPump), Severity::kUnspecified);
  t->Tick(T0() + absl::Hours(3) + absl::Minutes(5), &out);
  EXPECT_EQ(t->active_alert(AlertType::kSilentPump), Severity::kWarning);
  const AlertTransition* silent = First(out, AlertType::kSilentPump);
  ASSERT_NE(silent, nullptr);
  EXPECT_THAT(silent->summary, HasSubstr("since registration"));
  EXPECT_EQ(StateOf(*t, AlertType::kMotorStall), DetectorState::kUnknown);
}

TEST(RefillVerdict, AModelThatRanDryDoesNotHideItBehindTheFloor) {
  Twin t = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(500), /*initial_ml=*/5);
  std::vector<AlertTransition> out;
  Refill r;
  r.withdrawn = Milliliters(0);
  r.added = Milliliters(20);
  r.device_time = Day(15);  // 7.5 mL programmed into a 5 mL reservoir
  auto res = t.RecordRefill(r, &out);
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_NEAR(res->expected_remaining.value(), -2500, 1e-6);
  EXPECT_NEAR(res->discrepancy.value(), 2500, 1e-6);
  EXPECT_EQ(res->verdict, RefillVerdict::kDiscrepancy);
  const AlertTransition* a = First(out, AlertType::kRefillDiscrepancy);
  ASSERT_NE(a, nullptr);
  EXPECT_THAT(a->summary, HasSubstr("ran the reservoir dry"));
  EXPECT_NE(FindEvidence(*a, "model_ran_dry"), nullptr);
  // An empty withdrawal is censored: no delivery ratio of 5/7.5 is learnt.
  EXPECT_FALSE(res->observed_ratio.has_value());
  EXPECT_DOUBLE_EQ(t.delivery_ratio(), 1.0);
}

absl::StatusOr<absl::TimeZone> LoadForTest(absl::string_view name) {
  absl::TimeZone tz;
  if (!absl::LoadTimeZone(std::string(name), &tz)) return absl::NotFoundError(name);
  return tz;
}

// Programmed volume over [from, from + 10 min) on the pump's calculation.
double TenMinutes(Twin& t, absl::Time from) {
  EXPECT_TRUE(t.Advance(from).ok());
  const double before = t.calculated_reservoir().value();
  EXPECT_TRUE(t.Advance(from + absl::Minutes(10)).ok());
  return before - t.calculated_reservoir().value();
}

TEST(TimeZone, AFlexStepRunsAtLocalTimeOnBothSidesOfADstChange) {
  absl::TimeZone berlin;
  ASSERT_TRUE(absl::LoadTimeZone("Europe/Berlin", &berlin)) << "tzdata missing";
  PumpConfig cfg = Config(PumpProfile::kProgrammablePeristaltic);
  cfg.zone = LocalZone::Intern("Europe/Berlin", berlin);
  cfg.implant_time = absl::FromCivil(absl::CivilSecond(2026, 3, 27, 0, 0, 0), absl::UTCTimeZone());
  Prescription rx = Morphine(0);
  rx.mode = TherapyMode::kFlex;
  rx.flex.steps = {{absl::ZeroDuration(), MicrolitersPerDay(144)},
                   {absl::Hours(7), MicrolitersPerDay(1440)}};
  auto t = Twin::Create(cfg, rx, Milliliters(20), cfg.implant_time);
  ASSERT_TRUE(t.ok()) << t.status();
  auto utc = [](int d, int h, int m) {
    return absl::FromCivil(absl::CivilSecond(2026, 3, d, h, m, 0), absl::UTCTimeZone());
  };
  // Saturday 28 March, CET (UTC+1): 07:00 local is 06:00 UTC.
  EXPECT_NEAR(TenMinutes(*t, utc(28, 5, 50)), 1.0, 1e-6);  // 06:50 local: 144 uL/day
  EXPECT_NEAR(TenMinutes(*t, utc(28, 6, 0)), 10.0, 1e-6);  // 07:00 local: 1440 uL/day
  // Sunday 29 March, CEST (UTC+2) from 01:00 UTC: 07:00 local is 05:00 UTC.
  EXPECT_NEAR(TenMinutes(*t, utc(29, 4, 50)), 1.0, 1e-6);
  EXPECT_NEAR(TenMinutes(*t, utc(29, 5, 0)), 10.0, 1e-6);
  // The 00:00 step too: 22:00 UTC on the 29th is midnight local.
  EXPECT_NEAR(TenMinutes(*t, utc(29, 21, 50)), 10.0, 1e-6);
  EXPECT_NEAR(TenMinutes(*t, utc(29, 22, 0)), 1.0, 1e-6);

  // Saved and restored, the zone comes back by name (the loader is the server's tzdata
  // reader; here the test's) and the bytes are identical.
  LocalZone::SetLoader(&LoadForTest);
  const std::string bytes = t->Serialize();
  auto back = Twin::Deserialize(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->config().zone.name(), "Europe/Berlin");
  EXPECT_EQ(back->Serialize(), bytes);
  EXPECT_NEAR(TenMinutes(*back, utc(30, 5, 0)), 10.0, 1e-6);
}

TEST(TimeZone, UtcIsTheDefault) {
  Twin t = MakeTwin(PumpProfile::kProgrammablePeristaltic, Morphine(500));
  EXPECT_TRUE(t.config().zone.is_utc());
  EXPECT_EQ(t.config().zone.name(), "UTC");
}

}  // namespace
}  // namespace pumptwin::twin::testing
