// The differential diagnosis of a twin alert reaches the Alert message (diagnosis,
// alternatives), and a transition without one leaves the alert's diagnosis as it was.
#include "gtest/gtest.h"
#include "server/core/convert.h"

namespace pumptwin::server {
namespace {

TEST(DiagnosisConvertTest, CauseAndAlternativesReachTheAlert) {
  twin::AlertTransition t;
  t.type = twin::AlertType::kRunsDryBeforeAlarm;
  t.diagnosis = {"empty reservoir",
                 {{"catheter occlusion", "the reservoir reads 0.02 mL", true},
                  {"sensor stuck", "stroke pressure normal", false}}};
  v1::Alert a;
  FillDiagnosis(t, &a);
  EXPECT_EQ(a.diagnosis(), "empty reservoir");
  ASSERT_EQ(a.alternatives_size(), 2);
  EXPECT_EQ(a.alternatives(0).cause(), "catheter occlusion");
  EXPECT_EQ(a.alternatives(0).evidence(), "the reservoir reads 0.02 mL");
  EXPECT_TRUE(a.alternatives(0).ruled_out());
  EXPECT_FALSE(a.alternatives(1).ruled_out());

  twin::AlertTransition resolve;  // carries no diagnosis: the raised one stays
  FillDiagnosis(resolve, &a);
  EXPECT_EQ(a.diagnosis(), "empty reservoir");
  EXPECT_EQ(a.alternatives_size(), 2);
}

}  // namespace
}  // namespace pumptwin::server
