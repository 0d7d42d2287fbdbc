// TwinService therapy and clinical-event methods against the real pumptwind:
// SetPrescription (versioning, hard/soft limits, acknowledgement, the two-clinician race),
// GetPrescriptionHistory (newest first, paging), ReplayTwin (what-if changes nothing),
// RecordRefill (verdict, bad input), RecordEvent (every type; catheter revision updates
// the registration; bad input).
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "tests/therapy/therapy_fixture.h"

namespace pumptwin::therapy_test {
namespace {

using ::testing::HasSubstr;

class RxTest : public ServerSuite {
 protected:
  grpc::Status Set(const std::string& id, const v1::Prescription& rx, uint64_t expected,
                   v1::SetPrescriptionResponse* resp, std::vector<std::string> acks = {}) {
    v1::SetPrescriptionRequest req;
    req.set_name("pumps/" + id);
    *req.mutable_prescription() = rx;
    req.set_expected_version(expected);
    for (auto& a : acks) req.add_acknowledged_warnings(a);
    auto ctx = Ctx();
    return twin().SetPrescription(ctx.get(), req, resp);
  }
  v1::TwinState Twin(const std::string& id) {
    v1::GetTwinRequest req;
    req.set_name("pumps/" + id);
    v1::TwinState st;
    auto ctx = Ctx();
    EXPECT_TRUE(twin().GetTwin(ctx.get(), req, &st).ok());
    return st;
  }
};

TEST_F(RxTest, SetPrescriptionVersionsAndValidates) {
  ASSERT_TRUE(RegisterPump(twin(), "rx-1", "c").ok());
  v1::SetPrescriptionResponse resp;
  v1::Prescription rx = Morphine(600);
  rx.set_reason("more pain");
  grpc::Status s = Set("rx-1", rx, 1, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.prescription().version(), 2u);
  EXPECT_EQ(resp.prescription().set_by(), "anonymous");
  EXPECT_EQ(resp.prescription().rate_ul_per_day(), 600);
  EXPECT_EQ(Twin("rx-1").prescription_version(), 2u);

  // Stale version.
  s = Set("rx-1", Morphine(650), 1, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(s.error_message(), HasSubstr("expected_version=1"));
  EXPECT_THAT(s.error_message(), HasSubstr("version 2"));
  // Missing version / prescription.
  s = Set("rx-1", Morphine(650), 0, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("expected_version=0"));
  {
    v1::SetPrescriptionRequest req;
    req.set_name("pumps/rx-1");
    req.set_expected_version(2);
    auto ctx = Ctx();
    s = twin().SetPrescription(ctx.get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("prescription is required"));
  }
  // Hard limits: daily dose 1600 uL x 10 mg/mL = 16 mg > 15 mg; concentration; unknown drug.
  s = Set("rx-1", Morphine(1600), 2, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("HARD_DAILY_DOSE: prescription.daily_dose_ug=16000"));
  EXPECT_THAT(s.error_message(), HasSubstr("limit 15000"));
  s = Set("rx-1", Morphine(100, 25000), 2, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("HARD_CONCENTRATION: prescription.concentration_ug_per_ml=25000"));
  v1::Prescription unknown = Morphine(100);
  unknown.set_drug("unobtainium");
  s = Set("rx-1", unknown, 2, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("UNKNOWN_DRUG"));
  v1::Prescription neg = Morphine(100, -1);
  s = Set("rx-1", neg, 2, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("concentration_ug_per_ml=-1"));

  // Soft limits: 1300 uL/day = 13 mg > 12 mg soft, and > 30 % titration.
  s = Set("rx-1", Morphine(1300), 2, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("SOFT_DAILY_DOSE"));
  EXPECT_THAT(s.error_message(), HasSubstr("SOFT_TITRATION"));
  s = Set("rx-1", Morphine(1300), 2, &resp, {"SOFT_DAILY_DOSE"});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), ::testing::Not(HasSubstr("SOFT_DAILY_DOSE")));
  s = Set("rx-1", Morphine(1300), 2, &resp, {"SOFT_DAILY_DOSE", "SOFT_TITRATION"});
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.prescription().version(), 3u);
  EXPECT_EQ(resp.warnings_size(), 2);
  EXPECT_EQ(Twin("rx-1").prescription_version(), 3u);

  s = Set("ghost", Morphine(600), 1, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(RxTest, TwoCliniciansRaceExactlyOneWins) {
  ASSERT_TRUE(RegisterPump(twin(), "race-1", "c").ok());
  for (int round = 0; round < 5; ++round) {
    const uint64_t version = Twin("race-1").prescription_version();
    grpc::Status a, b;
    v1::SetPrescriptionResponse ra, rb;
    std::thread ta([&] { a = Set("race-1", Morphine(500 + round), version, &ra); });
    std::thread tb([&] { b = Set("race-1", Morphine(520 + round), version, &rb); });
    ta.join();
    tb.join();
    ASSERT_NE(a.ok(), b.ok()) << a.error_message() << " / " << b.error_message();
    const grpc::Status& loser = a.ok() ? b : a;
    EXPECT_EQ(loser.error_code(), grpc::StatusCode::ABORTED) << loser.error_message();
    EXPECT_EQ(Twin("race-1").prescription_version(), version + 1);
  }
}

TEST_F(RxTest, HistoryNewestFirstWithPaging) {
  ASSERT_TRUE(RegisterPump(twin(), "hist-1", "c").ok());
  v1::SetPrescriptionResponse resp;
  for (uint64_t v = 1; v <= 4; ++v) {
    ASSERT_TRUE(Set("hist-1", Morphine(500 + 10 * v), v, &resp).ok());
  }
  v1::GetPrescriptionHistoryRequest req;
  req.set_name("pumps/hist-1");
  req.set_page_size(2);
  std::vector<uint64_t> versions;
  std::vector<double> rates;
  int pages = 0;
  for (; pages < 10; ++pages) {
    v1::GetPrescriptionHistoryResponse h;
    auto ctx = Ctx();
    grpc::Status s = twin().GetPrescriptionHistory(ctx.get(), req, &h);
    ASSERT_TRUE(s.ok()) << s.error_message();
    for (const auto& p : h.prescriptions()) {
      versions.push_back(p.version());
      rates.push_back(p.rate_ul_per_day());
    }
    if (h.next_page_token().empty()) break;
    req.set_page_token(h.next_page_token());
  }
  EXPECT_THAT(versions, ::testing::ElementsAre(5, 4, 3, 2, 1));
  EXPECT_THAT(rates, ::testing::ElementsAre(540, 530, 520, 510, 500));
  EXPECT_EQ(pages, 2);

  // A pump never re-prescribed has its version 1.
  ASSERT_TRUE(RegisterPump(twin(), "hist-2", "c").ok());
  req.set_name("pumps/hist-2");
  req.clear_page_token();
  v1::GetPrescriptionHistoryResponse h;
  auto ctx = Ctx();
  ASSERT_TRUE(twin().GetPrescriptionHistory(ctx.get(), req, &h).ok());
  ASSERT_EQ(h.prescriptions_size(), 1);
  EXPECT_EQ(h.prescriptions(0).version(), 1u);

  req.set_page_token("nonsense");
  ctx = Ctx();
  EXPECT_EQ(twin().GetPrescriptionHistory(ctx.get(), req, &h).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(RxTest, ReplayIsAWhatIfThatChangesNothing) {
  ASSERT_TRUE(RegisterPump(twin(), "rep-1", "c").ok());
  const v1::TwinState before = Twin("rep-1");
  v1::ReplayTwinRequest req;
  req.set_name("pumps/rep-1");
  req.set_horizon_ms(10LL * 24 * 3600 * 1000);
  req.set_step_ms(24LL * 3600 * 1000);
  v1::ReplayTwinResponse current;
  auto ctx = Ctx();
  ASSERT_TRUE(twin().ReplayTwin(ctx.get(), req, &current).ok());
  ASSERT_GE(current.trajectory_size(), 10);
  EXPECT_EQ(current.violations_size(), 0);

  *req.mutable_proposed_prescription() = Morphine(1300);  // doubles+ the rate: soft limits
  v1::ReplayTwinResponse proposed;
  ctx = Ctx();
  ASSERT_TRUE(twin().ReplayTwin(ctx.get(), req, &proposed).ok());
  ASSERT_EQ(proposed.trajectory_size(), current.trajectory_size());
  const int last = proposed.trajectory_size() - 1;
  EXPECT_LT(proposed.trajectory(last).calculated_reservoir_ul(),
            current.trajectory(last).calculated_reservoir_ul());
  EXPECT_GE(proposed.violations_size(), 1);
  EXPECT_GT(current.forecast().calculated_empty_time_ms(),
            proposed.forecast().calculated_empty_time_ms());

  const v1::TwinState after = Twin("rep-1");
  EXPECT_EQ(after.prescription_version(), before.prescription_version());
  EXPECT_EQ(after.estimated_reservoir_ul(), before.estimated_reservoir_ul());
  EXPECT_EQ(after.device_time_ms(), before.device_time_ms());

  *req.mutable_proposed_prescription() = Morphine(1600);
  ctx = Ctx();
  grpc::Status s = twin().ReplayTwin(ctx.get(), req, &proposed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("HARD_DAILY_DOSE"));
  req.clear_proposed_prescription();
  req.set_horizon_ms(-1);
  ctx = Ctx();
  s = twin().ReplayTwin(ctx.get(), req, &proposed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("horizon_ms=-1"));
  req.set_horizon_ms(365LL * 24 * 3600 * 1000);
  req.set_step_ms(1000);
  ctx = Ctx();
  s = twin().ReplayTwin(ctx.get(), req, &proposed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("exceeds the limit of 100000"));
}

TEST_F(RxTest, RefillVerdictsAndBadInput) {
  ASSERT_TRUE(RegisterPump(twin(), "fill-1", "c").ok());
  const double expected = Twin("fill-1").estimated_reservoir_ul();
  v1::RecordRefillRequest req;
  req.set_name("pumps/fill-1");
  req.set_withdrawn_volume_ul(expected);
  req.set_added_volume_ul(19000);
  req.set_reason("routine");
  v1::RecordRefillResponse resp;
  auto ctx = Ctx();
  grpc::Status s = twin().RecordRefill(ctx.get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.verdict(), v1::REFILL_VERDICT_OK);
  EXPECT_GT(resp.threshold_ul(), 0);
  EXPECT_NEAR(resp.twin().estimated_reservoir_ul(), 19000, 1);

  req.set_withdrawn_volume_ul(1000);  // 18 mL missing: discrepancy
  ctx = Ctx();
  ASSERT_TRUE(twin().RecordRefill(ctx.get(), req, &resp).ok());
  EXPECT_EQ(resp.verdict(), v1::REFILL_VERDICT_DISCREPANCY);
  EXPECT_LT(resp.discrepancy_ul(), -resp.threshold_ul());

  auto bad = [&](auto mutate, const char* needle) {
    v1::RecordRefillRequest r = req;
    mutate(r);
    auto c = Ctx();
    grpc::Status st = twin().RecordRefill(c.get(), r, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << needle;
    EXPECT_THAT(st.error_message(), HasSubstr(needle));
  };
  bad([](auto& r) { r.set_withdrawn_volume_ul(-1); }, "withdrawn_volume_ul=-1");
  bad([](auto& r) { r.set_added_volume_ul(-2); }, "added_volume_ul=-2");
  bad([](auto& r) { r.set_added_volume_ul(50000); }, "50000");  // above the 20 mL capacity
  bad([](auto& r) { r.set_drug("unobtainium"); }, "drug='unobtainium'");
  bad([](auto& r) { r.set_concentration_ug_per_ml(-3); }, "concentration_ug_per_ml=-3");
}

TEST_F(RxTest, EveryEventTypeAndCatheterRevisionUpdatesRegistration) {
  ASSERT_TRUE(RegisterPump(twin(), "ev-1", "c").ok());
  auto record = [&](v1::RecordEventRequest r) {
    r.set_name("pumps/ev-1");
    v1::RecordEventResponse resp;
    auto ctx = Ctx();
    return twin().RecordEvent(ctx.get(), r, &resp);
  };
  v1::RecordEventRequest e;
  e.set_type(v1::CLINICAL_EVENT_CLINICIAN_BOLUS);
  e.set_volume_ul(50);
  e.set_duration_ms(600000);
  EXPECT_TRUE(record(e).ok());
  e = {};
  e.set_type(v1::CLINICAL_EVENT_PRIMING_BOLUS);
  EXPECT_TRUE(record(e).ok());
  e.set_type(v1::CLINICAL_EVENT_BRIDGE_BOLUS);
  EXPECT_TRUE(record(e).ok());
  e.set_type(v1::CLINICAL_EVENT_MRI);
  EXPECT_TRUE(record(e).ok());
  e.set_type(v1::CLINICAL_EVENT_ACCESS_PORT_ASPIRATION);
  e.set_outcome("CSF aspirated freely");
  EXPECT_TRUE(record(e).ok());
  e.set_type(v1::CLINICAL_EVENT_TRIAL_START);
  EXPECT_TRUE(record(e).ok());
  e.set_type(v1::CLINICAL_EVENT_TRIAL_END);
  e.set_outcome("success: 60% relief");
  EXPECT_TRUE(record(e).ok());
  e.set_type(v1::CLINICAL_EVENT_PUMP_REPLACEMENT);
  EXPECT_TRUE(record(e).ok());
  e = {};
  e.set_type(v1::CLINICAL_EVENT_CATHETER_REVISION);
  e.set_catheter_length_cm(40);
  e.set_catheter_inner_diameter_mm(0.6);
  grpc::Status s = record(e);
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::GetPumpRequest get;
  get.set_name("pumps/ev-1");
  v1::Pump pump;
  auto ctx = Ctx();
  ASSERT_TRUE(twin().GetPump(ctx.get(), get, &pump).ok());
  EXPECT_EQ(pump.catheter_length_cm(), 40);
  EXPECT_EQ(pump.catheter_inner_diameter_mm(), 0.6);

  auto bad = [&](v1::RecordEventRequest r, const char* needle) {
    grpc::Status st = record(r);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << needle;
    EXPECT_THAT(st.error_message(), HasSubstr(needle));
  };
  e = {};
  bad(e, "type=0");
  e.set_type(v1::CLINICAL_EVENT_CLINICIAN_BOLUS);
  bad(e, "CLINICIAN_BOLUS needs volume_ul > 0 or dose_ug > 0");
  e.set_volume_ul(-1);
  bad(e, "volume_ul=-1");
  e.set_volume_ul(10);
  e.set_dose_ug(10);
  bad(e, "not both");
  e = {};
  e.set_type(v1::CLINICAL_EVENT_CATHETER_REVISION);
  e.set_catheter_length_cm(40);
  bad(e, "catheter_inner_diameter_mm=0");
  e = {};
  e.set_type(v1::CLINICAL_EVENT_TRIAL_END);
  bad(e, "outcome is required for CLINICAL_EVENT_TRIAL_END");
  e = {};
  e.set_type(v1::CLINICAL_EVENT_MRI);
  e.set_duration_ms(-5);
  bad(e, "duration_ms=-5");
}

}  // namespace
}  // namespace pumptwin::therapy_test
