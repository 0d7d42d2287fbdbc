// Cluster mode through the TwinRegistry: an API call about a pump this replica does not
// serve (its shard moved after the call was routed, or the call was forwarded here on a
// stale route) is refused UNAVAILABLE, which callers retry, naming the owner when one is
// known; nothing is changed. Gateways keep their own answer (MOVED, from Authorize).
#include <atomic>
#include <string>

#include "absl/synchronization/notification.h"
#include "device_link/ingest_sink.h"
#include "gtest/gtest.h"
#include "tests/registry/registry_fixture.h"

namespace pumptwin::server {
namespace {

constexpr char kOwner[] = "127.0.0.1:50999";

class NotServedTest : public RegistryTest {
 protected:
  RegistryOptions MakeOptions() const override {
    RegistryOptions o = Options();
    o.cluster.holds = [](absl::string_view) { return true; };
    o.cluster.serves = [this](absl::string_view) { return serving_.load(); };
    o.cluster.not_served = [this](absl::string_view pump) {
      return owner_known_.load() ? device_link::MovedError(pump, "r1", kOwner)
                                 : device_link::MovedError(pump, "", "");
    };
    return o;
  }

  absl::Status Mutate() {
    absl::Notification done;
    absl::Status out;
    bool ran = false;
    registry_->Mutate(
        "deg-1",
        [&ran](twin::Twin&, MutationContext&) {
          ran = true;
          return absl::OkStatus();
        },
        [&](absl::Status s) {
          out = s;
          done.Notify();
        });
    done.WaitForNotification();
    EXPECT_FALSE(ran) << "a refused call changed the twin";
    return out;
  }

  absl::Status Read() {
    absl::Notification done;
    absl::Status out;
    registry_->Read("deg-1", [&](const twin::Twin* t, absl::Status s) {
      EXPECT_EQ(t != nullptr, s.ok());
      out = s;
      done.Notify();
    });
    done.WaitForNotification();
    return out;
  }

  std::atomic<bool> serving_{true};
  std::atomic<bool> owner_known_{true};
};

TEST_F(NotServedTest, CallsAboutAPumpServedElsewhereAreRetryableAndNameTheOwner) {
  serving_ = false;
  for (const absl::Status& s : {Mutate(), Read(), Register(TestPump("deg-2", "gw"))}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_NE(s.message().find(kOwner), std::string::npos) << s;
    EXPECT_EQ(s.message().find("telemetry"), std::string::npos) << "gateway wording: " << s;
  }
  // A gateway is still told MOVED with the owner's address.
  const absl::Status gw = registry_->Authorize("gw", "deg-1");
  EXPECT_EQ(device_link::AuthorizeStatusToNackReason(gw), v1::NACK_REASON_MOVED) << gw;
  // Nothing was registered, and once served again the pump answers as before.
  serving_ = true;
  EXPECT_TRUE(Read().ok());
  EXPECT_FALSE(registry_->directory().Authorize("gw", "deg-2").ok());
}

TEST_F(NotServedTest, WhileNoReplicaServesTheShardCallsAreToldToRetry) {
  serving_ = false;
  owner_known_ = false;
  const absl::Status s = Read();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("taken over"), std::string::npos) << s;
}

}  // namespace
}  // namespace pumptwin::server
