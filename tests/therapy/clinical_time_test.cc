// Clinical times against the real pumptwind: a refill or event stated more than the
// telemetry bound (24 h) after the server clock, or a prescription taking effect more than
// 366 days ahead, is refused with the limit in the message, and the pump's telemetry keeps being
// applied (a mistyped date must not move the model ahead and make later samples unusable).
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/therapy/therapy_fixture.h"

namespace pumptwin::therapy_test {
namespace {

using ::testing::HasSubstr;

class ClinicalTimeTest : public ServerSuite {};

constexpr int64_t kDayMs = 24 * 3600 * 1000;

TEST_F(ClinicalTimeTest, FutureClinicalTimesAreRefusedAndTelemetryKeepsFlowing) {
  ASSERT_TRUE(RegisterPump(twin(), "ct-1", "north").ok());
  const int64_t now = NowMs();
  {
    v1::RecordRefillRequest req;
    req.set_name("pumps/ct-1");
    req.set_withdrawn_volume_ul(1000);
    req.set_added_volume_ul(20000);
    req.set_device_time_ms(now + 2 * kDayMs);
    v1::RecordRefillResponse resp;
    auto ctx = Ctx();
    grpc::Status s = twin().RecordRefill(ctx.get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("device_time_ms"));
    EXPECT_THAT(s.error_message(), HasSubstr("24h"));
  }
  {
    v1::RecordEventRequest req;
    req.set_name("pumps/ct-1");
    req.set_type(v1::CLINICAL_EVENT_CLINICIAN_BOLUS);
    req.set_volume_ul(50);
    req.set_device_time_ms(now + 50LL * 365 * kDayMs);
    v1::RecordEventResponse resp;
    auto ctx = Ctx();
    grpc::Status s = twin().RecordEvent(ctx.get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("24h"));
  }
  {
    v1::SetPrescriptionRequest req;
    req.set_name("pumps/ct-1");
    req.set_expected_version(1);
    *req.mutable_prescription() = Morphine(400);
    req.mutable_prescription()->set_effective_time_ms(now + 400 * kDayMs);
    v1::SetPrescriptionResponse resp;
    auto ctx = Ctx();
    grpc::Status s = twin().SetPrescription(ctx.get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("effective_time_ms"));
  }
  // The model did not move ahead: a sample from now is applied, not refused.
  std::vector<v1::Nack> nacks;
  ASSERT_TRUE(Ingest(*server_->gateway, {MakeSample("ct-1", 1, now)}, &nacks));
  EXPECT_TRUE(nacks.empty()) << nacks.front().message();
  v1::GetTwinRequest get;
  get.set_name("pumps/ct-1");
  v1::TwinState state;
  auto ctx = Ctx();
  ASSERT_TRUE(twin().GetTwin(ctx.get(), get, &state).ok());
  EXPECT_EQ(state.last_seq(), 1u);
  // A time within the bound (a pump clock a few hours ahead) is still accepted.
  v1::RecordEventRequest ok;
  ok.set_name("pumps/ct-1");
  ok.set_type(v1::CLINICAL_EVENT_CLINICIAN_BOLUS);
  ok.set_volume_ul(50);
  ok.set_device_time_ms(now + 3600 * 1000);
  v1::RecordEventResponse resp;
  auto ctx2 = Ctx();
  grpc::Status s = twin().RecordEvent(ctx2.get(), ok, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

}  // namespace
}  // namespace pumptwin::therapy_test
