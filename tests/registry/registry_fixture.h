// RegistryTest: a TwinRegistry of 2 shards over a MemStore with one registered pump
// ("deg-1", bound to gateway "gw"), and helpers to register more pumps, ingest and read.
#ifndef PUMPTWIN_TESTS_REGISTRY_REGISTRY_FIXTURE_H_
#define PUMPTWIN_TESTS_REGISTRY_REGISTRY_FIXTURE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/core/commit_gate.h"
#include "server/core/convert.h"
#include "server/core/twin_registry.h"
#include "server/core/verify.h"
#include "server/store/group_committer.h"
#include "server/store/mem_store.h"

namespace pumptwin::server {

inline constexpr int64_t kStartMs = 1767225600000;  // 2026-01-01

inline v1::Pump TestPump(const std::string& id = "deg-1", const std::string& gateway = "gw") {
  v1::Pump p;
  p.set_pump_id(id);
  p.set_profile(v1::PUMP_PROFILE_SENSORIZED);
  p.set_reservoir_capacity_ul(40000);
  p.set_catheter_length_cm(50);
  p.set_catheter_inner_diameter_mm(0.5);
  p.set_implant_time_ms(kStartMs);
  p.add_gateway_ids(gateway);
  return p;
}

inline twin::Sample SampleAt(uint64_t seq) {
  twin::Sample s;
  s.seq = seq;
  s.device_time = absl::FromUnixMillis(kStartMs + static_cast<int64_t>(seq) * 60000);
  double delivered = 500.0 * seq * 60000 / 86400000.0;
  s.calculated_reservoir = twin::Microliters(40000 - delivered);
  return s;
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    committer_ = std::make_unique<store::GroupCommitter>(&store_, store::GroupCommitterOptions());
    gate_ = std::make_unique<CommitGate>(&store_, committer_.get());
    registry_ = std::make_unique<TwinRegistry>(&store_, gate_.get(), MakeOptions());
    ASSERT_TRUE(registry_->Recover().ok());
    absl::Status st = Register(TestPump());
    ASSERT_TRUE(st.ok()) << st;
  }

  static RegistryOptions Options() {
    RegistryOptions o;
    o.shards = 2;
    o.shard.now = [] { return absl::FromUnixMillis(kStartMs + 86400000LL * 30); };
    return o;
  }

  // The options SetUp and Restart use (a fixture may change them).
  virtual RegistryOptions MakeOptions() const { return Options(); }

  // A clean restart over the same store: a new registry recovers every twin.
  absl::StatusOr<RecoveryStats> Restart() {
    registry_->Stop();
    registry_ = std::make_unique<TwinRegistry>(&store_, gate_.get(), MakeOptions());
    return registry_->Recover();
  }

  // Registers `pump` with a morphine twin (500 µL/day, 40 mL filled, at kStartMs); the
  // registry's answer. `registered`: the twin's registration server time (silence counts
  // from it until the first sample).
  absl::Status Register(const v1::Pump& pump, double rate_ul_per_day = 500, double fill_ul = 40000,
                        std::optional<absl::Time> registered = std::nullopt) {
    auto cfg = ToPumpConfig(pump);
    if (!cfg.ok()) return cfg.status();
    twin::Prescription rx;
    rx.drug = "morphine";
    rx.concentration = twin::MicrogramsPerMilliliter(10000);
    rx.mode = twin::TherapyMode::kSimpleContinuous;
    rx.rate = twin::MicrolitersPerDay(rate_ul_per_day);
    rx.version = 1;
    auto twin =
        twin::Twin::Create(*cfg, rx, twin::Microliters(fill_ul), absl::FromUnixMillis(kStartMs));
    if (!twin.ok()) return twin.status();
    if (registered.has_value()) twin->SetRegistered(*registered);
    absl::Notification done;
    absl::Status st;
    registry_->Register(pump, *std::move(twin), {}, [&](absl::Status s) {
      st = s;
      done.Notify();
    });
    done.WaitForNotification();
    return st;
  }
  void TearDown() override {
    registry_->Stop();
    committer_->Shutdown();
  }

  // Submits samples from..to of the test pump; `done` gets the result.
  // A batch from gateway "gw": the given samples for each pump in `pumps`.
  static device_link::IngestBatch Batch(const std::vector<std::string>& pumps,
                                        const std::vector<twin::Sample>& samples) {
    device_link::IngestBatch batch;
    batch.gateway_id = "gw";
    for (const std::string& id : pumps) {
      device_link::PumpSamples part;
      part.pump_id = id;
      part.samples = samples;
      batch.pumps.push_back(std::move(part));
    }
    return batch;
  }
  static std::vector<twin::Sample> Range(uint64_t from, uint64_t to) {
    std::vector<twin::Sample> out;
    for (uint64_t s = from; s <= to; ++s) out.push_back(SampleAt(s));
    return out;
  }

  // Submits samples from..to of each of `pumps` in one batch; `done` gets the result.
  void IngestAsync(uint64_t from, uint64_t to, std::function<void(device_link::IngestResult)> done,
                   const std::vector<std::string>& pumps = {"deg-1"}) {
    registry_->Submit(Batch(pumps, Range(from, to)), std::move(done));
  }

  // Submits `batch` and waits for its result.
  device_link::IngestResult SubmitAndWait(device_link::IngestBatch batch) {
    absl::Notification done;
    device_link::IngestResult result;
    registry_->Submit(std::move(batch), [&](device_link::IngestResult r) {
      result = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  }

  device_link::IngestResult Ingest(uint64_t from, uint64_t to,
                                   const std::vector<std::string>& pumps = {"deg-1"}) {
    return SubmitAndWait(Batch(pumps, Range(from, to)));
  }

  // The store's fold of every pump from its registration agrees with its twin exactly.
  void ExpectVerifyExact() {
    auto report = VerifyStore(store_);
    ASSERT_TRUE(report.ok()) << report.status();
    for (const std::string& m : report->mismatches) ADD_FAILURE() << m;
    EXPECT_EQ(report->exact, report->pumps);
  }

  uint64_t LastSeq(const std::string& pump_id = "deg-1") {
    absl::Notification done;
    uint64_t seq = 0;
    registry_->Read(pump_id, [&](const twin::Twin* t, absl::Status) {
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

}  // namespace pumptwin::server

#endif  // PUMPTWIN_TESTS_REGISTRY_REGISTRY_FIXTURE_H_
