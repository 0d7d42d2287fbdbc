// WatchTwin against the real pumptwind: the current state at once, then coalesced states
// as telemetry arrives, up to the last sample; validation (no names, unknown pump).
#include <signal.h>

#include "gmock/gmock.h"
#include "tests/alerts/alerts_test_util.h"

namespace pumptwin::alerts_test {
namespace {

TEST(WatchTwinTest, StreamsCoalescedStatesUpToTheLastSample) {
  testing::TempDir dir;
  testing::ServerProcess server(
      {.data_dir = dir.path() + "/data", .extra_args = {"--shutdown_grace=2s", "--shards=2"}});
  ASSERT_TRUE(server.Start().ok()) << server.ReadLog();
  auto stub = v1::TwinService::NewStub(
      grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials()));
  ASSERT_TRUE(RegisterMotorPump(*stub, "PT", "north").ok());

  grpc::ClientContext ctx;
  ctx.set_deadline(In(60));
  v1::WatchTwinRequest req;
  req.add_names("pumps/PT");
  req.set_min_interval_ms(50);
  auto reader = stub->WatchTwin(&ctx, req);
  v1::TwinState st;
  ASSERT_TRUE(reader->Read(&st));  // the state at subscription
  EXPECT_EQ(st.pump_id(), "PT");
  EXPECT_EQ(st.last_seq(), 0u);

  constexpr uint64_t kSamples = 2000;
  ASSERT_NO_FATAL_FAILURE(Feed(server.grpc_target(), "PT", 1, kSamples));
  size_t states = 1;
  uint64_t last_seq = 0;
  while (last_seq < kSamples && states < 10 * kSamples) {
    ASSERT_TRUE(reader->Read(&st)) << reader->Finish().error_message();
    ++states;
    EXPECT_GE(st.last_seq(), last_seq);  // never goes back
    last_seq = st.last_seq();
  }
  EXPECT_EQ(last_seq, kSamples);
  EXPECT_LE(states, kSamples + 1);  // at most one per change, coalesced under load
  ctx.TryCancel();
  while (reader->Read(&st)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);

  for (const char* bad : {"", "pumps/NOPE"}) {
    grpc::ClientContext c2;
    c2.set_deadline(In(30));
    v1::WatchTwinRequest r2;
    if (*bad != '\0') r2.add_names(bad);
    auto rd = stub->WatchTwin(&c2, r2);
    EXPECT_FALSE(rd->Read(&st));
    grpc::Status s = rd->Finish();
    EXPECT_EQ(s.error_code(),
              *bad == '\0' ? grpc::StatusCode::INVALID_ARGUMENT : grpc::StatusCode::NOT_FOUND)
        << s.error_message();
  }
  auto code = server.Stop(SIGTERM);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace pumptwin::alerts_test
