// DecommissionPump with a successor on another shard, racing a change of the successor's
// registration (a catheter revision) on the successor's shard: both changes must reach the
// store. The interleaving is forced by holding the successor's shard thread at two points
// (tasks posted through TwinRegistry::Read), so the revision is applied but its group not
// yet committed when the decommission runs. TwinService runs in-process on 127.0.0.1 over
// the registry fixture (MemStore, 2 shards).
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "server/api/auth.h"
#include "server/api/twin_service.h"
#include "tests/registry/registry_fixture.h"

namespace pumptwin::server {
namespace {

class DecommissionTest : public RegistryTest {
 protected:
  void SetUp() override {
    RegistryTest::SetUp();
    // gw-2 is new: its pump gets the other shard.
    ASSERT_TRUE(Register(TestPump("succ-1", "gw-2")).ok());
    ASSERT_NE(registry_->directory().ShardOf("deg-1"), registry_->directory().ShardOf("succ-1"));
    TwinServiceDeps deps;
    deps.registry = registry_.get();
    deps.gate = gate_.get();
    deps.store = &store_;
    deps.auth = &auth_;
    service_ = std::make_unique<TwinServiceImpl>(std::move(deps));
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::TwinService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    server_->Shutdown();
    RegistryTest::TearDown();
  }

  // Holds the shard thread of `pump_id` inside a task until `release` is notified;
  // `running` is notified once the thread is held.
  void Hold(const std::string& pump_id, absl::Notification* running, absl::Notification* release) {
    registry_->Read(pump_id, [running, release](const twin::Twin*, absl::Status) {
      running->Notify();
      release->WaitForNotification();
    });
  }

  // Waits (bounded) until `cond` holds; false on timeout.
  static bool Await(const std::function<bool()>& cond) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (!cond()) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(1));  // polling a condition, bounded
    }
    return true;
  }

  v1::Pump Stored(const std::string& id) {
    v1::Pump p;
    auto bytes = store_.GetPump(id);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    if (bytes.ok()) {
      EXPECT_TRUE(p.ParseFromString(*bytes));
    }
    return p;
  }

  OpenAuthorizer auth_;
  std::unique_ptr<TwinServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::TwinService::Stub> stub_;
};

TEST_F(DecommissionTest, ASuccessorChangedOnItsOwnShardMeanwhileKeepsBothChanges) {
  const int succ_shard = registry_->directory().ShardOf("succ-1");
  auto queued = [&] { return registry_->shard_queue_depth(succ_shard) > 0; };

  // 1. Hold the successor's shard; queue a catheter revision of the successor behind it.
  absl::Notification held1, release1, held2, release2;
  Hold("succ-1", &held1, &release1);
  held1.WaitForNotification();
  v1::RecordEventRequest revision;
  revision.set_name("pumps/succ-1");
  revision.set_type(v1::CLINICAL_EVENT_CATHETER_REVISION);
  revision.set_device_time_ms(kStartMs + 3600000);
  revision.set_catheter_length_cm(40);
  revision.set_catheter_inner_diameter_mm(0.6);
  v1::RecordEventResponse revision_resp;
  grpc::ClientContext revision_ctx;
  absl::Notification revision_done;
  grpc::Status revision_status;
  stub_->async()->RecordEvent(&revision_ctx, &revision, &revision_resp, [&](grpc::Status s) {
    revision_status = std::move(s);
    revision_done.Notify();
  });
  ASSERT_TRUE(Await(queued));
  // 2. A second hold right behind it: the revision is applied (and staged) but its group
  //    is not committed until the second hold ends.
  Hold("succ-1", &held2, &release2);
  release1.Notify();
  held2.WaitForNotification();

  // 3. Decommission the old pump (other shard), naming the successor.
  v1::DecommissionPumpRequest decommission;
  decommission.set_name("pumps/deg-1");
  decommission.set_replaced_by_pump_id("succ-1");
  v1::Pump decommission_resp;
  grpc::ClientContext decommission_ctx;
  absl::Notification decommission_done;
  grpc::Status decommission_status;
  stub_->async()->DecommissionPump(&decommission_ctx, &decommission, &decommission_resp,
                                   [&](grpc::Status s) {
                                     decommission_status = std::move(s);
                                     decommission_done.Notify();
                                   });
  // It either finishes now or waits for the successor's shard.
  ASSERT_TRUE(Await([&] { return decommission_done.HasBeenNotified() || queued(); }));
  release2.Notify();
  revision_done.WaitForNotification();
  decommission_done.WaitForNotification();
  ASSERT_TRUE(revision_status.ok()) << revision_status.error_message();
  ASSERT_TRUE(decommission_status.ok()) << decommission_status.error_message();

  const v1::Pump succ = Stored("succ-1");
  EXPECT_EQ(succ.replaces_pump_id(), "deg-1");
  EXPECT_EQ(succ.catheter_length_cm(), 40);
  const v1::Pump old = Stored("deg-1");
  EXPECT_EQ(old.lifecycle(), v1::PUMP_LIFECYCLE_DECOMMISSIONED);
  EXPECT_EQ(old.replaced_by_pump_id(), "succ-1");
}

TEST_F(DecommissionTest, ARefusedSuccessorLeavesTheOldPumpUnchangedAndFree) {
  // succ-1 already replaces another pump: the second step refuses, and the old pump's
  // claimed registration is released (a later change of it goes through).
  ASSERT_TRUE(Register(TestPump("deg-3", "gw")).ok());
  auto decommission = [&](const std::string& old, const std::string& successor) {
    v1::DecommissionPumpRequest req;
    req.set_name("pumps/" + old);
    req.set_replaced_by_pump_id(successor);
    v1::Pump resp;
    grpc::ClientContext ctx;
    return stub_->DecommissionPump(&ctx, req, &resp);
  };
  ASSERT_TRUE(decommission("deg-3", "succ-1").ok());
  grpc::Status s = decommission("deg-1", "succ-1");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_EQ(Stored("deg-1").lifecycle(), TestPump().lifecycle());
  EXPECT_TRUE(registry_->directory().Get("deg-1").has_value());
  EXPECT_NE(registry_->directory().Get("deg-1")->lifecycle, v1::PUMP_LIFECYCLE_DECOMMISSIONED);
  EXPECT_TRUE(decommission("deg-1", "").ok());
  EXPECT_EQ(Stored("deg-1").lifecycle(), v1::PUMP_LIFECYCLE_DECOMMISSIONED);
}

}  // namespace
}  // namespace pumptwin::server
