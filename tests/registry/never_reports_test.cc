// A constant-flow pump reports nothing by design: through the registry's periodic Tick
// (injected server times) its model runs on server time from registration and raises low
// reservoir and "has run dry" on time, and the alerts are stored like any other.
#include <string>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/core/event_inputs.h"
#include "server/core/verify.h"
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

  absl::Time ModelTime(const std::string& id) {
    absl::Notification done;
    absl::Time t = absl::InfinitePast();
    registry_->Read(id, [&](const twin::Twin* tw, absl::Status) {
      if (tw != nullptr) t = tw->device_time();
      done.Notify();
    });
    done.WaitForNotification();
    return t;
  }

  absl::Status Refill(const std::string& id, absl::Time at, double withdrawn_ul) {
    v1::RecordRefillRequest req;
    req.set_withdrawn_volume_ul(withdrawn_ul);
    req.set_added_volume_ul(28000 - withdrawn_ul);
    req.set_device_time_ms(absl::ToUnixMillis(at));
    absl::Notification done;
    absl::Status result;
    registry_->Mutate(
        id,
        [&](twin::Twin&, MutationContext& ctx) {
          return ctx.apply_input(
              MakeClinicalInput(InputKind::kRefill, at, ctx.server_time, req.SerializeAsString()),
              nullptr);
        },
        [&](absl::Status st) {
          result = st;
          done.Notify();
        });
    done.WaitForNotification();
    return result;
  }

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

// A tick that changes no alert is not kept: the model stays at its last input, so a refill
// recorded later with a time between that input and the tick's server time is applied in
// order (a replay or simulation that reaches the server ahead of its records' times), and
// the fold of the stored inputs equals the live twin.
TEST_F(NeverReportsTest, ATickThatChangesNothingLeavesTheModelAtItsLastInput) {
  ASSERT_TRUE(RegisterConstantFlow("cf-2").ok());
  const absl::Time registered = ModelTime("cf-2");
  registry_->Tick(Start() + absl::Hours(10 * 24));  // 10 mL left: nothing to raise
  EXPECT_EQ(ModelTime("cf-2"), registered);
  // Stated 9 days after registration: after the model time, before the last tick.
  absl::Status refilled = Refill("cf-2", Start() + absl::Hours(9 * 24), 11000);
  ASSERT_TRUE(refilled.ok()) << refilled;
  EXPECT_EQ(ModelTime("cf-2"), Start() + absl::Hours(9 * 24));
  // A tick that raises is kept, stored as an input, and replayed in its place.
  registry_->Tick(Start() + absl::Hours(9 * 24 + 26 * 24 + 2));  // 26 mL at 1 mL/day: low
  EXPECT_EQ(Active("cf-2", twin::AlertType::kLowReservoir), twin::Severity::kWarning);
  EXPECT_EQ(ModelTime("cf-2"), Start() + absl::Hours(9 * 24 + 26 * 24 + 2));
  ASSERT_TRUE(Restart().ok());  // stops the registry after its last commit
  EXPECT_EQ(ModelTime("cf-2"), Start() + absl::Hours(9 * 24 + 26 * 24 + 2));
  auto report = VerifyStore(store_);
  ASSERT_TRUE(report.ok()) << report.status();
  for (const std::string& m : report->mismatches) ADD_FAILURE() << m;
  EXPECT_EQ(report->exact, report->pumps);
}

// The data clock reads the newest model time any twin reached.
TEST_F(NeverReportsTest, NewestModelTimeFollowsTheTwins) {
  ASSERT_TRUE(RegisterConstantFlow("cf-3").ok());
  ASSERT_TRUE(registry_->NewestModelTime().has_value());
  EXPECT_EQ(*registry_->NewestModelTime(), ModelTime("cf-3"));
  ASSERT_TRUE(Refill("cf-3", Start() + absl::Hours(48), 17000).ok());
  EXPECT_EQ(*registry_->NewestModelTime(), Start() + absl::Hours(48));
}

// On the data clock (a replay of the past, samples stamped on receipt by today's clock), a
// pump is silent when the data clock has passed 3 reporting intervals since its last sample
// and nothing arrived for it on the wall clock meanwhile; the raising tick replays exactly.
TEST_F(NeverReportsTest, OnTheDataClockAPumpStillReceivingIsNotSilent) {
  v1::Pump p = TestPump("dc-1");
  p.set_reporting_interval_ms(60000);
  ASSERT_TRUE(Register(p).ok());
  auto ingested = Ingest(1, 10, {"dc-1"});
  ASSERT_TRUE(ingested.status.ok()) << ingested.status;
  ASSERT_TRUE(ingested.nacks.empty());
  const absl::Time received = Options().shard.now();  // the receipt stamp of those samples
  const absl::Time data = SampleAt(10).device_time + absl::Minutes(4);
  registry_->Tick(data, /*received_before=*/received);  // still receiving: not checked
  EXPECT_EQ(Active("dc-1", twin::AlertType::kSilentPump), twin::Severity::kUnspecified);
  registry_->Tick(data, /*received_before=*/received + absl::Seconds(1));
  EXPECT_EQ(Active("dc-1", twin::AlertType::kSilentPump), twin::Severity::kWarning);
  ASSERT_TRUE(Restart().ok());
  EXPECT_EQ(Active("dc-1", twin::AlertType::kSilentPump), twin::Severity::kWarning);
  auto report = VerifyStore(store_);
  ASSERT_TRUE(report.ok()) << report.status();
  for (const std::string& m : report->mismatches) ADD_FAILURE() << m;
  EXPECT_EQ(report->exact, report->pumps);
}

}  // namespace
}  // namespace pumptwin::server
