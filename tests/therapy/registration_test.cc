// RegisterPump beyond a fresh implant, against the real pumptwind: enrolment of a pump
// implanted years ago (and its validation), times beyond max_device_time_in_future, the
// patient time zone, the drug library the server loaded, and the trial lifecycle
// (RecordTrialOutcome, ImplantAfterTrial, EndTrial).
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/therapy/therapy_fixture.h"

namespace pumptwin::therapy_test {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kDayMs = 24LL * 3600 * 1000;

v1::RegisterPumpRequest Request(const std::string& id) {
  v1::RegisterPumpRequest req;
  v1::Pump* p = req.mutable_pump();
  p->set_pump_id(id);
  p->set_profile(v1::PUMP_PROFILE_PROGRAMMABLE_PERISTALTIC);
  p->set_reservoir_capacity_ul(20000);
  p->set_catheter_length_cm(50);
  p->set_catheter_inner_diameter_mm(0.5);
  p->set_implant_time_ms(NowMs() - kDayMs);
  p->add_gateway_ids("gw-therapy");
  *req.mutable_initial_prescription() = Morphine(500);
  req.set_initial_reservoir_ul(18000);
  return req;
}

// An enrolment four years after implant, interrogated an hour ago.
v1::RegisterPumpRequest Enrolment(const std::string& id) {
  v1::RegisterPumpRequest req = Request(id);
  req.mutable_pump()->set_implant_time_ms(NowMs() - 4 * 365 * kDayMs);
  v1::Enrolment* e = req.mutable_enrolment();
  e->set_interrogation_time_ms(NowMs() - 3600 * 1000);
  e->set_calculated_reservoir_ul(9000);
  e->set_last_refill_time_ms(NowMs() - 20 * kDayMs);
  e->set_last_refill_volume_ul(19000);
  e->set_battery_indicator_fraction(0.35);
  return req;
}

grpc::Status Register(v1::TwinService::Stub& twin, const v1::RegisterPumpRequest& req,
                      v1::Pump* out = nullptr) {
  v1::Pump resp;
  auto ctx = Ctx();
  grpc::Status s = twin.RegisterPump(ctx.get(), req, &resp);
  if (out != nullptr) *out = resp;
  return s;
}

v1::TwinState GetTwin(v1::TwinService::Stub& twin, const std::string& id) {
  v1::GetTwinRequest req;
  req.set_name("pumps/" + id);
  v1::TwinState st;
  auto ctx = Ctx();
  EXPECT_TRUE(twin.GetTwin(ctx.get(), req, &st).ok());
  return st;
}

class RegistrationTest : public ServerSuite {};

TEST_F(RegistrationTest, EnrolsAPumpImplantedFourYearsAgo) {
  const v1::RegisterPumpRequest req = Enrolment("enrol-1");
  ASSERT_TRUE(Register(twin(), req).ok());
  const v1::TwinState st = GetTwin(twin(), "enrol-1");
  EXPECT_TRUE(st.enrolled());
  EXPECT_GE(st.device_time_ms(), req.enrolment().interrogation_time_ms());
  EXPECT_NEAR(st.calculated_reservoir_ul(), 9000, 5);
  EXPECT_NEAR(st.battery_charge_fraction(), 0.35, 0.01);
  EXPECT_EQ(st.last_refill_time_ms(), req.enrolment().last_refill_time_ms());
  EXPECT_GT(st.delivery_ratio_stddev(), 0.1);  // wide prior: nothing learnt yet
  EXPECT_TRUE(st.reports_telemetry());
}

TEST_F(RegistrationTest, EnrolmentFieldsAreValidated) {
  auto expect_invalid = [&](const v1::RegisterPumpRequest& req, const std::string& needle) {
    grpc::Status s = Register(twin(), req);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << needle;
    EXPECT_THAT(s.error_message(), HasSubstr(needle));
  };
  v1::RegisterPumpRequest req = Enrolment("enrol-bad");
  req.mutable_enrolment()->set_interrogation_time_ms(req.pump().implant_time_ms() - kDayMs);
  req.mutable_enrolment()->set_last_refill_time_ms(0);
  expect_invalid(req, "is before pump.implant_time_ms");
  req = Enrolment("enrol-bad");
  req.mutable_enrolment()->set_calculated_reservoir_ul(25000);
  expect_invalid(req, "enrolment.calculated_reservoir_ul=25000 outside [0, 20000]");
  req = Enrolment("enrol-bad");
  req.mutable_enrolment()->set_last_refill_time_ms(req.enrolment().interrogation_time_ms() + 1000);
  expect_invalid(req, "is after enrolment.interrogation_time_ms");
  req = Enrolment("enrol-bad");
  req.mutable_enrolment()->set_interrogation_time_ms(0);
  expect_invalid(req, "enrolment.interrogation_time_ms=0 is required");
  req = Enrolment("enrol-bad");
  req.mutable_pump()->set_implant_time_ms(0);
  expect_invalid(req, "pump.implant_time_ms is required with an enrolment");
  // Times beyond the telemetry bound (24 h ahead) are refused with the limit.
  req = Enrolment("enrol-bad");
  req.mutable_enrolment()->set_interrogation_time_ms(NowMs() + 3 * kDayMs);
  expect_invalid(req, "max_device_time_in_future");
  req = Request("enrol-bad");
  req.mutable_pump()->set_implant_time_ms(NowMs() + 50LL * 365 * kDayMs);
  expect_invalid(req, "pump.implant_time_ms=");
  req = Request("enrol-bad");
  req.mutable_pump()->set_lifecycle(v1::PUMP_LIFECYCLE_DECOMMISSIONED);
  expect_invalid(req, "cannot be registered");
  // Nothing was registered by any of these.
  v1::GetPumpRequest get;
  get.set_name("pumps/enrol-bad");
  v1::Pump out;
  auto ctx = Ctx();
  EXPECT_EQ(twin().GetPump(ctx.get(), get, &out).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(RegistrationTest, TimeZoneIsValidatedAndShown) {
  v1::RegisterPumpRequest req = Request("tz-1");
  req.mutable_pump()->set_time_zone("Mars/Olympus_Mons");
  grpc::Status s = Register(twin(), req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("pump.time_zone='Mars/Olympus_Mons' is not a known"));
  req.mutable_pump()->set_time_zone("../../etc/passwd");
  s = Register(twin(), req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("is not an IANA time zone name"));
  req.mutable_pump()->set_time_zone("Europe/Berlin");
  v1::Pump out;
  ASSERT_TRUE(Register(twin(), req, &out).ok());
  EXPECT_EQ(out.time_zone(), "Europe/Berlin");
  EXPECT_EQ(GetTwin(twin(), "tz-1").time_zone(), "Europe/Berlin");
  EXPECT_TRUE(Register(twin(), Request("tz-utc")).ok());
  EXPECT_EQ(GetTwin(twin(), "tz-utc").time_zone(), "UTC");
}

v1::Pump TrialCall(v1::TwinService::Stub& twin, const char* what,
                   const google::protobuf::Message& req, grpc::Status* status) {
  v1::Pump out;
  auto ctx = Ctx();
  const std::string w = what;
  if (w == "outcome") {
    *status = twin.RecordTrialOutcome(ctx.get(),
                                      static_cast<const v1::RecordTrialOutcomeRequest&>(req), &out);
  } else if (w == "implant") {
    *status = twin.ImplantAfterTrial(ctx.get(),
                                     static_cast<const v1::ImplantAfterTrialRequest&>(req), &out);
  } else {
    *status = twin.EndTrial(ctx.get(), static_cast<const v1::EndTrialRequest&>(req), &out);
  }
  return out;
}

TEST_F(RegistrationTest, TrialIsRecordedThenImplantedOrEnded) {
  v1::RegisterPumpRequest req = Request("trial-1");
  req.mutable_pump()->set_lifecycle(v1::PUMP_LIFECYCLE_TRIAL);
  req.mutable_pump()->set_implant_time_ms(NowMs() - 3600 * 1000);  // trial start
  v1::Pump reg;
  ASSERT_TRUE(Register(twin(), req, &reg).ok());
  EXPECT_EQ(reg.lifecycle(), v1::PUMP_LIFECYCLE_TRIAL);
  EXPECT_EQ(reg.trial().start_time_ms(), req.pump().implant_time_ms());

  v1::ImplantAfterTrialRequest implant;
  implant.set_name("pumps/trial-1");
  *implant.mutable_pump() = Request("trial-1").pump();
  implant.mutable_pump()->set_pump_id("");
  implant.mutable_pump()->set_reservoir_capacity_ul(40000);
  implant.mutable_pump()->set_implant_time_ms(NowMs() - 60 * 1000);
  *implant.mutable_initial_prescription() = Morphine(300);
  implant.set_initial_reservoir_ul(39000);
  grpc::Status s;
  TrialCall(twin(), "implant", implant, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("no trial outcome is recorded"));

  v1::RecordTrialOutcomeRequest outcome;
  outcome.set_name("pumps/trial-1");
  outcome.set_pain_relief_percent(30);
  v1::Pump after = TrialCall(twin(), "outcome", outcome, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(after.trial().result(), v1::TRIAL_RESULT_INSUFFICIENT);
  TrialCall(twin(), "implant", implant, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("below the 50 % threshold"));
  outcome.set_pain_relief_percent(140);
  TrialCall(twin(), "outcome", outcome, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  outcome.set_pain_relief_percent(70);
  after = TrialCall(twin(), "outcome", outcome, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(after.trial().result(), v1::TRIAL_RESULT_SUCCESS);
  after = TrialCall(twin(), "implant", implant, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(after.lifecycle(), v1::PUMP_LIFECYCLE_IMPLANTED);
  EXPECT_EQ(after.reservoir_capacity_ul(), 40000);
  EXPECT_EQ(after.trial().end_time_ms(), implant.pump().implant_time_ms());
  EXPECT_DOUBLE_EQ(after.trial().pain_relief_percent(), 70);
  const v1::TwinState st = GetTwin(twin(), "trial-1");
  EXPECT_NEAR(st.calculated_reservoir_ul(), 39000, 5);  // the implanted pump's twin
  // Trial calls apply to trials only.
  TrialCall(twin(), "outcome", outcome, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  req = Request("trial-2");
  req.mutable_pump()->set_lifecycle(v1::PUMP_LIFECYCLE_TRIAL);
  ASSERT_TRUE(Register(twin(), req).ok());
  v1::EndTrialRequest end;
  end.set_name("pumps/trial-2");
  end.set_end_time_ms(NowMs() + 5 * kDayMs);
  TrialCall(twin(), "end", end, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("max_device_time_in_future"));
  end.set_end_time_ms(0);
  after = TrialCall(twin(), "end", end, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(after.lifecycle(), v1::PUMP_LIFECYCLE_DECOMMISSIONED);
  EXPECT_GT(after.trial().end_time_ms(), 0);
}

// Registration checks the prescription against the library the server loaded, not the
// built-in one: a drug only in the file is accepted, a dose the file forbids is refused.
TEST(RegistrationLibraryTest, UsesTheLoadedDrugLibrary) {
  testing::TempDir lib_dir;
  const std::string path = lib_dir.path() + "/drugs.txt";
  {
    std::ofstream out(path);
    out << "morphine|Morphine|20000|2000|1600|0.3|90|300|test: low daily maximum\n"
           "testamorph|Testamorph|5000|3000|2400|0.3|30|0|test only\n";
  }
  Server server({"--drug_library=" + path});
  ASSERT_TRUE(server.Start().ok()) << server.process->ReadLog();
  v1::RegisterPumpRequest req = Request("lib-1");
  v1::Prescription rx = Morphine(500, 2000);
  rx.set_drug("testamorph");
  *req.mutable_initial_prescription() = rx;
  EXPECT_TRUE(Register(*server.twin, req).ok());
  // 500 uL/day x 10 mg/mL = 5 mg/day: within the built-in 15 mg, above the file's 2 mg.
  req = Request("lib-2");
  grpc::Status s = Register(*server.twin, req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("prescription rejected"));
}

}  // namespace
}  // namespace pumptwin::therapy_test
