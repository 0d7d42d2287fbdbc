// A constant-flow pump reports nothing by design: through the registry's periodic Tick
// (injected server times) its model runs on server time from registration and raises low
// reservoir and "has run dry" on time, and the alerts are stored like any other.
#include <string>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "tests/registry/registry_fixture.h"

namespace pumptwin::server {
namespace {

class NeverReportsTest : public RegistryTest {
 protected:
  absl::Status RegisterConstantFlow(const std::string& id) {
    v1::Pump p = TestPump(id);
    p.set_profile(v1::PUMP_PROFILE_CONSTANT_FLOW);
    p.set_reservoir_capacity_ul(30000);
    return Register(p, /*rate_ul_per_day=*/1000, /*fill_ul=*/20000, Start());
  }
  static absl::Time Start() { return absl::FromUnixMillis(kStartMs); }

  twin::Severity Active(const std::string& id, twin::AlertType type) {
    absl::Notification done;
    twin::Severity sev = twin::Severity::kUnspecified;
    registry_->Read(id, [&](const twin::Twin* t, absl::Status) {
      if (t != nullptr) sev = t->active_alert(type);
      done.Notify();
    });
    done.WaitForNotification();
    return sev;
  }
};

TEST_F(NeverReportsTest, LowReservoirAndRunsDryComeOnTimeThroughTick) {
  ASSERT_TRUE(RegisterConstantFlow("cf-1").ok());
  // 18 mL to the 2 mL alarm at 1 mL/day: day 18; empty at day 20.
  registry_->Tick(Start() + absl::Hours(18 * 24 - 2));
  EXPECT_EQ(Active("cf-1", twin::AlertType::kLowReservoir), twin::Severity::kUnspecified);
  registry_->Tick(Start() + absl::Hours(18 * 24 + 2));
  EXPECT_EQ(Active("cf-1", twin::AlertType::kLowReservoir), twin::Severity::kWarning);
  EXPECT_EQ(Active("cf-1", twin::AlertType::kRunsDryBeforeAlarm), twin::Severity::kUnspecified);
  registry_->Tick(Start() + absl::Hours(20 * 24 + 2));
  EXPECT_EQ(Active("cf-1", twin::AlertType::kRunsDryBeforeAlarm), twin::Severity::kCritical);
  EXPECT_EQ(Active("cf-1", twin::AlertType::kSilentPump), twin::Severity::kUnspecified);
  // The raised alerts were committed with the twin's snapshot: a restart keeps them.
  ASSERT_TRUE(Restart().ok());
  EXPECT_EQ(Active("cf-1", twin::AlertType::kRunsDryBeforeAlarm), twin::Severity::kCritical);
}

}  // namespace
}  // namespace pumptwin::server
