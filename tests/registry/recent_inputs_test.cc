// RecentInputs (server/core/recent_inputs.h): the bounds Maintain keeps whatever the rewinds
// did, and which inputs a rewind folds.
#include "server/core/recent_inputs.h"

#include "gtest/gtest.h"
#include "server/core/convert.h"
#include "tests/registry/registry_fixture.h"

namespace pumptwin::server {
namespace {

twin::Twin TestTwin() {
  auto cfg = ToPumpConfig(TestPump());
  EXPECT_TRUE(cfg.ok());
  twin::Prescription rx;
  rx.drug = "morphine";
  rx.concentration = twin::MicrogramsPerMilliliter(10000);
  rx.mode = twin::TherapyMode::kSimpleContinuous;
  rx.rate = twin::MicrolitersPerDay(500);
  rx.version = 1;
  auto t = twin::Twin::Create(*cfg, rx, twin::Microliters(40000), absl::FromUnixMillis(kStartMs));
  EXPECT_TRUE(t.ok());
  return *std::move(t);
}

twin::InputKey KeyOf(uint64_t seq) {
  return {SampleAt(seq).device_time, twin::InputRank::kSample, seq};
}

// Every other sample arrives late by one: each is a rewind that keeps the twin before it as
// a new generation. Generations and inputs stay within their bounds, and a rewind folds
// from the newest base before its late input.
TEST(RecentInputsTest, RewindsNeverGrowItBeyondItsBounds) {
  constexpr size_t kMaxInputs = 64;
  const twin::Twin twin = TestTwin();
  RecentInputs recent(twin, KeyOf(0), SampleAt(0).device_time);
  const std::shared_ptr<const twin::DrugLibrary> library(std::shared_ptr<void>(),
                                                         &twin::DrugLibrary::Default());
  size_t max_generations = 0, max_inputs = 0;
  for (uint64_t seq = 1; seq < 1000; seq += 2) {
    recent.AddSample(SampleAt(seq + 1), absl::UnixEpoch());  // in order, then seq is late
    ASSERT_TRUE(recent.Covers(KeyOf(seq)));
    RecentInputs::Start start = recent.From(KeyOf(seq), library);
    // Only what follows the late input (and at most one generation before it) is folded.
    EXPECT_LE(start.inputs.size(), 1 + kMaxInputs / RecentInputs::kGenerationsPerBound);
    recent.Rebase(KeyOf(seq), &twin, KeyOf(seq - 1));
    recent.AddSample(SampleAt(seq), absl::UnixEpoch());
    recent.Maintain(twin, kMaxInputs);
    max_generations = std::max(max_generations, recent.generations());
    max_inputs = std::max(max_inputs, recent.size());
  }
  EXPECT_EQ(max_generations, RecentInputs::kMaxGenerations);
  EXPECT_LE(max_inputs, kMaxInputs);
  EXPECT_EQ(recent.last_sample_time(), SampleAt(1000).device_time);
}

}  // namespace
}  // namespace pumptwin::server
