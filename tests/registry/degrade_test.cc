// TwinRegistry under store failure: a failed commit acks nothing, the registry degrades
// (ingest and changes answer UNAVAILABLE, reads keep working), and once writes succeed
// again it reloads every twin from the store and serves as if the failed batch never
// arrived. In-process, over the MemStore with injected commit failures.
#include <atomic>
#include <functional>
#include <memory>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/commit_gate.h"
#include "server/convert.h"
#include "server/store/group_committer.h"
#include "server/store/mem_store.h"
#include "server/twin_registry.h"

namespace pumptwin::server {
namespace {

constexpr int64_t kStartMs = 1767225600000;  // 2026-01-01

v1::Pump TestPump() {
  v1::Pump p;
  p.set_pump_id("deg-1");
  p.set_profile(v1::PUMP_PROFILE_SENSORIZED);
  p.set_reservoir_capacity_ul(40000);
  p.set_catheter_length_cm(50);
  p.set_catheter_inner_diameter_mm(0.5);
  p.set_implant_time_ms(kStartMs);
  p.add_gateway_ids("gw");
  return p;
}

twin::Sample SampleAt(uint64_t seq) {
  twin::Sample s;
  s.seq = seq;
  s.device_time = absl::FromUnixMillis(kStartMs + static_cast<int64_t>(seq) * 60000);
  double delivered = 500.0 * seq * 60000 / 86400000.0;
  s.calculated_reservoir = twin::Microliters(40000 - delivered);
  return s;
}

class DegradeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    committer_ = std::make_unique<store::GroupCommitter>(&store_, store::GroupCommitterOptions());
    gate_ = std::make_unique<CommitGate>(&store_, committer_.get());
    RegistryOptions o;
    o.shards = 2;
    o.shard.now = [] { return absl::FromUnixMillis(kStartMs + 86400000LL * 30); };
    registry_ = std::make_unique<TwinRegistry>(&store_, gate_.get(), o);
    ASSERT_TRUE(registry_->Recover().ok());
    v1::Pump pump = TestPump();
    auto cfg = ToPumpConfig(pump);
    ASSERT_TRUE(cfg.ok()) << cfg.status();
    twin::Prescription rx;
    rx.drug = "morphine";
    rx.concentration = twin::MicrogramsPerMilliliter(10000);
    rx.mode = twin::TherapyMode::kSimpleContinuous;
    rx.rate = twin::MicrolitersPerDay(500);
    rx.version = 1;
    auto twin = twin::Twin::Create(*cfg, rx, twin::Microliters(40000),
                                   absl::FromUnixMillis(kStartMs));
    ASSERT_TRUE(twin.ok()) << twin.status();
    absl::Notification done;
    absl::Status st;
    registry_->Register(pump, *std::move(twin), {}, [&](absl::Status s) {
      st = s;
      done.Notify();
    });
    done.WaitForNotification();
    ASSERT_TRUE(st.ok()) << st;
  }
  void TearDown() override {
    registry_->Stop();
    committer_->Shutdown();
  }

  // Submits samples from..to of the test pump; `done` gets the result.
  void IngestAsync(uint64_t from, uint64_t to, std::function<void(device_link::IngestResult)> done) {
    device_link::IngestBatch batch;
    batch.gateway_id = "gw";
    device_link::PumpSamples part;
    part.pump_id = "deg-1";
    for (uint64_t s = from; s <= to; ++s) part.samples.push_back(SampleAt(s));
    batch.pumps.push_back(std::move(part));
    registry_->Submit(std::move(batch), std::move(done));
  }

  device_link::IngestResult Ingest(uint64_t from, uint64_t to) {
    absl::Notification done;
    device_link::IngestResult result;
    IngestAsync(from, to, [&](device_link::IngestResult r) {
      result = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  }

  uint64_t LastSeq() {
    absl::Notification done;
    uint64_t seq = 0;
    registry_->Read("deg-1", [&](const twin::Twin* t, absl::Status) {
      if (t != nullptr) seq = t->last_seq();
      done.Notify();
    });
    done.WaitForNotification();
    return seq;
  }

  store::MemStore store_;
  std::unique_ptr<store::GroupCommitter> committer_;
  std::unique_ptr<CommitGate> gate_;
  std::unique_ptr<TwinRegistry> registry_;
};

TEST_F(DegradeTest, FailedCommitAcksNothingDegradesAndRecoversFromTheStore) {
  auto ok = Ingest(1, 10);
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  ASSERT_EQ(ok.durable.size(), 1u);
  EXPECT_EQ(ok.durable[0].highest_durable_seq, 10u);

  store_.FailCommits(absl::UnavailableError("disk full"));
  auto failed = Ingest(11, 20);
  EXPECT_EQ(failed.status.code(), absl::StatusCode::kUnavailable) << failed.status;
  EXPECT_TRUE(failed.durable.empty()) << "nothing may be acked that is not stored";
  EXPECT_TRUE(registry_->degraded());
  // While degraded: ingest is refused at once, reads still answer.
  auto refused = Ingest(11, 20);
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_GE(LastSeq(), 10u);
  // Writes still fail: revival does not pretend.
  EXPECT_FALSE(registry_->TryRevive().ok());
  EXPECT_TRUE(registry_->degraded());

  store_.ClearFailure();
  ASSERT_TRUE(registry_->TryRevive().ok());
  EXPECT_FALSE(registry_->degraded());
  // The twin came back from the store: exactly what was acknowledged.
  EXPECT_EQ(LastSeq(), 10u);
  auto resent = Ingest(11, 20);
  ASSERT_TRUE(resent.status.ok()) << resent.status;
  EXPECT_EQ(resent.durable[0].highest_durable_seq, 20u);
  EXPECT_EQ(LastSeq(), 20u);
  auto head = store_.GetPumpHead("deg-1");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->last_seq, 20u);
}

// A group formed after a failing one (same pump, next samples) must not be stored even when
// the store takes writes again by the time it is committed: the store would have a gap that
// no resume point shows, and the gateway would never resend the lost samples.
TEST_F(DegradeTest, AGroupFormedAfterAFailedOneIsNeverStored) {
  ASSERT_TRUE(Ingest(1, 10).status.ok());
  absl::Notification entered, release;
  std::atomic<bool> block{true};
  store_.SetCommitHook([&] {
    if (block.exchange(false)) {
      entered.Notify();
      release.WaitForNotification();
    }
  });
  store_.FailCommits(absl::UnavailableError("I/O error (injected)"));
  absl::Notification first_done, second_done;
  device_link::IngestResult first, second;
  IngestAsync(11, 20, [&](device_link::IngestResult r) {
    first = std::move(r);
    first_done.Notify();
  });
  entered.WaitForNotification();  // 11..20 is inside the failing commit
  IngestAsync(21, 30, [&](device_link::IngestResult r) {
    second = std::move(r);
    second_done.Notify();
  });
  // 21..30 continues the failing group; let the shard submit it behind the blocked commit.
  EXPECT_GE(LastSeq(), 30u);
  store_.ClearFailure();  // the store would take 21..30 now
  release.Notify();
  first_done.WaitForNotification();
  second_done.WaitForNotification();
  store_.SetCommitHook(nullptr);  // it refers to this test's locals
  EXPECT_EQ(first.status.code(), absl::StatusCode::kUnavailable) << first.status;
  EXPECT_EQ(second.status.code(), absl::StatusCode::kUnavailable) << second.status;
  EXPECT_TRUE(second.durable.empty());
  auto head = store_.GetPumpHead("deg-1");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->last_seq, 10u) << "a later group was stored after a lost one";
  ASSERT_TRUE(registry_->TryRevive().ok());
  EXPECT_EQ(LastSeq(), 10u);
  auto resent = Ingest(11, 30);
  ASSERT_TRUE(resent.status.ok()) << resent.status;
  EXPECT_EQ(resent.durable[0].highest_durable_seq, 30u);
}

}  // namespace
}  // namespace pumptwin::server
