// Rewinds from a pump's recent inputs in memory (ShardOptions::rewind_memory_pumps /
// rewind_memory_inputs, server/core/recent_inputs.h): late telemetry behind a clinical
// record stated ahead of it is applied without reading the store once the pump keeps its
// recent inputs, the twins end byte-identical to in-order delivery and to rewinds from the
// store only, the store verifies exact and recovers the same bytes, and the memory stays
// within its bounds.
#include <algorithm>
#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/core/event_inputs.h"
#include "server/core/verify.h"
#include "tests/registry/registry_fixture.h"

namespace pumptwin::server {
namespace {

constexpr uint64_t kSamples = 1800;  // 30 h of 1-minute samples: crosses a checkpoint
constexpr uint64_t kFrame = 20;
constexpr uint64_t kRecordEvery = 80;  // a record stated 30 s after every 80th sample

class RewindMemoryTest : public RegistryTest {
 protected:
  RegistryOptions MakeOptions() const override {
    RegistryOptions o = Options();
    o.shard.rewind_memory_pumps = memory_pumps_;
    o.shard.rewind_memory_inputs = memory_inputs_;
    o.shard.on_rewind = [this](bool from_memory) {
      (from_memory ? from_memory_ : from_store_).fetch_add(1);
    };
    o.shard.on_rewind_replayed = [this](size_t replayed) {
      if (replayed == 1) only_record_replayed_.fetch_add(1);
    };
    o.shard.on_recent_inputs = [this](size_t inputs, size_t twins, size_t pumps) {
      auto raise = [](std::atomic<size_t>& max, size_t v) {
        size_t seen = max.load();
        while (v > seen && !max.compare_exchange_weak(seen, v)) {
        }
      };
      raise(max_inputs_, inputs);
      raise(max_twins_, twins);
      raise(max_pumps_, pumps);
    };
    return o;
  }

  // A fresh store and registry with the current memory options, and `pumps` registered.
  void Fresh(const std::vector<std::string>& pumps) {
    registry_->Stop();
    committer_->Shutdown();
    store_.~MemStore();
    new (&store_) store::MemStore();
    from_memory_ = 0;
    from_store_ = 0;
    only_record_replayed_ = 0;
    max_inputs_ = 0;
    max_twins_ = 0;
    max_pumps_ = 0;
    SetUp();
    for (const std::string& id : pumps) {
      if (id == "deg-1") continue;  // registered by SetUp
      absl::Status st = Register(TestPump(id));
      ASSERT_TRUE(st.ok()) << st;
    }
  }

  absl::Status Record(const std::string& pump_id, uint64_t after_seq) {
    const absl::Time at = SampleAt(after_seq).device_time + absl::Seconds(30);
    v1::RecordEventRequest req;
    req.set_type(v1::CLINICAL_EVENT_CLINICIAN_BOLUS);
    req.set_volume_ul(20);
    req.set_duration_ms(600000);
    req.set_device_time_ms(absl::ToUnixMillis(at));
    absl::Notification done;
    absl::Status result;
    registry_->Mutate(
        pump_id,
        [&](twin::Twin&, MutationContext& ctx) {
          return ctx.apply_input(
              MakeClinicalInput(InputKind::kEvent, at, ctx.server_time, req.SerializeAsString()),
              nullptr);
        },
        [&](absl::Status s) {
          result = s;
          done.Notify();
        });
    done.WaitForNotification();
    return result;
  }

  // Frames of kFrame samples for every pump; the records of each pump either right after
  // the frame holding their sample (in order) or `early` frames before it (the frames in
  // between arrive late for the twin).
  void Deliver(const std::vector<std::string>& pumps, size_t early) {
    const size_t frames = (kSamples + kFrame - 1) / kFrame;
    std::map<size_t, std::vector<uint64_t>> records_before;  // frame index -> record seqs
    for (uint64_t r = kRecordEvery; r < kSamples; r += kRecordEvery) {
      const size_t in_order = (r - 1) / kFrame + 1;  // after the frame holding r
      records_before[in_order > early ? in_order - early : 0].push_back(r);
    }
    for (size_t f = 0; f <= frames; ++f) {
      for (uint64_t r : records_before[f]) {
        for (const std::string& id : pumps) {
          absl::Status s = Record(id, r);
          ASSERT_TRUE(s.ok()) << id << " record after seq " << r << ": " << s;
        }
      }
      if (f == frames) break;
      const uint64_t from = f * kFrame + 1, to = std::min(kSamples, (f + 1) * kFrame);
      auto result = Ingest(from, to, pumps);
      ASSERT_TRUE(result.status.ok()) << result.status;
      ASSERT_TRUE(result.nacks.empty())
          << result.nacks.front().pump_id << " seq " << result.nacks.front().seq << ": "
          << result.nacks.front().message;
    }
  }

  std::map<std::string, std::string> TwinBytes(const std::vector<std::string>& pumps) {
    std::map<std::string, std::string> out;
    for (const std::string& id : pumps) {
      absl::Notification done;
      registry_->Read(id, [&](const twin::Twin* t, absl::Status) {
        if (t != nullptr) out[id] = t->Serialize();
        done.Notify();
      });
      done.WaitForNotification();
    }
    return out;
  }

  size_t memory_pumps_ = ShardOptions().rewind_memory_pumps;
  size_t memory_inputs_ = ShardOptions().rewind_memory_inputs;
  mutable std::atomic<int> from_memory_{0}, from_store_{0};
  // Rewinds that folded again only one input (the record the late frame arrived behind).
  mutable std::atomic<int> only_record_replayed_{0};
  mutable std::atomic<size_t> max_inputs_{0}, max_twins_{0}, max_pumps_{0};
};

// Records stated two frames ahead of the telemetry: the first rewind of the pump reads the
// store, the following ones are served from memory, and the twin ends as in order.
TEST_F(RewindMemoryTest, LateTelemetryBehindRecordsRewindsFromMemoryAsInOrder) {
  const std::vector<std::string> pumps = {"deg-1"};
  ASSERT_NO_FATAL_FAILURE(Deliver(pumps, 0));
  EXPECT_EQ(from_memory_.load() + from_store_.load(), 0);  // in order: no rewind
  const auto reference = TwinBytes(pumps);
  ASSERT_FALSE(reference.at("deg-1").empty());

  ASSERT_NO_FATAL_FAILURE(Fresh(pumps));
  ASSERT_NO_FATAL_FAILURE(Deliver(pumps, 2));
  EXPECT_TRUE(TwinBytes(pumps) == reference);
  EXPECT_GT(from_memory_.load(), 0);
  EXPECT_EQ(from_store_.load(), 1) << "only the first rewind needs the store";
  ExpectVerifyExact();
  auto stats = Restart();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(TwinBytes(pumps) == reference);

  // The same arrivals rewound from the store only end in the same bytes.
  memory_pumps_ = 0;
  ASSERT_NO_FATAL_FAILURE(Fresh(pumps));
  ASSERT_NO_FATAL_FAILURE(Deliver(pumps, 2));
  EXPECT_TRUE(TwinBytes(pumps) == reference);
  EXPECT_EQ(from_memory_.load(), 0);
  EXPECT_GT(from_store_.load(), 1);
  ExpectVerifyExact();
}

// Records stated three frames ahead: three frames of each pump arrive behind its record.
// The pump keeps its twin from just before a record and, after a rewind, from just after
// its late frame, so every late frame behind the same record folds again only that record
// (not the samples before it, nor the frames rewound before it); the twin ends as in order.
TEST_F(RewindMemoryTest, LateFramesBehindOneRecordReplayOnlyTheRecord) {
  const std::vector<std::string> pumps = {"deg-1"};
  ASSERT_NO_FATAL_FAILURE(Deliver(pumps, 0));
  const auto reference = TwinBytes(pumps);

  ASSERT_NO_FATAL_FAILURE(Fresh(pumps));
  ASSERT_NO_FATAL_FAILURE(Deliver(pumps, 3));
  EXPECT_TRUE(TwinBytes(pumps) == reference);
  const int records = static_cast<int>((kSamples - 1) / kRecordEvery);
  EXPECT_EQ(from_memory_.load() + from_store_.load(), 3 * records);
  // Every rewind but the first two (the first read the store, which keeps no twin before
  // the record or after the frame): the pump keeps its twin from before each record and
  // after each late frame.
  EXPECT_GE(only_record_replayed_.load(), 3 * records - 2);
  ExpectVerifyExact();
  auto stats = Restart();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(TwinBytes(pumps) == reference);
}

// Tight bounds (2 pumps per shard, 100 inputs per pump) with 6 late pumps on one shard: the
// others and generations dropped send rewinds to the store, the memory (inputs, twin copies,
// pumps) never exceeds the bounds, and every twin ends as in order.
TEST_F(RewindMemoryTest, MemoryStaysWithinItsBoundsAndTwinsStayExact) {
  const std::vector<std::string> pumps = {"deg-1", "p-2", "p-3", "p-4", "p-5", "p-6"};
  ASSERT_NO_FATAL_FAILURE(Fresh(pumps));
  ASSERT_NO_FATAL_FAILURE(Deliver(pumps, 0));
  const auto reference = TwinBytes(pumps);

  memory_pumps_ = 2;
  memory_inputs_ = 100;
  ASSERT_NO_FATAL_FAILURE(Fresh(pumps));
  ASSERT_NO_FATAL_FAILURE(Deliver(pumps, 2));
  EXPECT_TRUE(TwinBytes(pumps) == reference);
  EXPECT_GT(max_inputs_.load(), 0u);
  EXPECT_LE(max_inputs_.load(), 100u);
  EXPECT_GT(max_twins_.load(), 1u);
  EXPECT_LE(max_twins_.load(), RecentInputs::kMaxGenerations);
  EXPECT_GT(max_pumps_.load(), 0u);
  EXPECT_LE(max_pumps_.load(), 2u);
  EXPECT_GT(from_memory_.load(), 0);
  EXPECT_GT(from_store_.load(), static_cast<int>(pumps.size()));
  ExpectVerifyExact();
}

}  // namespace
}  // namespace pumptwin::server
