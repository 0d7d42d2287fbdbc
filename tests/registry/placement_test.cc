// Gateway-affine placement through the TwinRegistry: the directory entry is the one atomic
// "one twin per id" check (a second registration of an id in flight, through another
// gateway whose shard differs, is refused instead of creating a second twin on another
// shard), a frame spanning pumps on both shards is acked for all of them, and a restart
// places and recovers every twin.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/registry/registry_fixture.h"

namespace pumptwin::server {
namespace {

using PlacementTest = RegistryTest;

TEST_F(PlacementTest, ASecondRegistrationOfAnIdThroughAnotherGatewayIsRefused) {
  // gw-2 is new: it gets the other (least loaded) shard.
  ASSERT_TRUE(Register(TestPump("deg-2", "gw-2")).ok());
  const int first = registry_->directory().ShardOf("deg-1");
  ASSERT_NE(registry_->directory().ShardOf("deg-2"), first);

  const absl::Status again = Register(TestPump("deg-1", "gw-2"));
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  EXPECT_NE(again.message().find("deg-1"), std::string::npos) << again;
  // The refused registration changed nothing: same shard, same binding, one twin.
  EXPECT_EQ(registry_->directory().ShardOf("deg-1"), first);
  EXPECT_TRUE(registry_->directory().Authorize("gw", "deg-1").ok());
  EXPECT_EQ(registry_->directory().ShardLoads(), (std::vector<size_t>{1, 1}));
}

TEST_F(PlacementTest, AFrameSpanningBothShardsIsAckedForEveryPumpAndSurvivesARestart) {
  ASSERT_TRUE(Register(TestPump("deg-2", "gw-2")).ok());
  device_link::IngestResult r = Ingest(1, 10, {"deg-1", "deg-2"});
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.durable.size(), 2u);
  for (const auto& p : r.durable) EXPECT_EQ(p.highest_durable_seq, 10u) << p.pump_id;

  auto stats = Restart();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->twins, 2u);
  EXPECT_EQ(LastSeq("deg-1"), 10u);
  EXPECT_EQ(LastSeq("deg-2"), 10u);
  // Recovery placed both gateways again, one per shard.
  EXPECT_NE(registry_->directory().ShardOf("deg-1"), registry_->directory().ShardOf("deg-2"));
  r = Ingest(11, 12, {"deg-2", "deg-1"});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(LastSeq("deg-1"), 12u);
  EXPECT_EQ(LastSeq("deg-2"), 12u);
}

}  // namespace
}  // namespace pumptwin::server
