// IdleFlushPolicy: a flush is due only after the memtables went unchanged (no writes) for
// the idle period, never while they keep changing, never for tiny memtables, never when
// disabled, and not again right after a flush that did not shrink them.
#include "server/core/idle_flush.h"

#include "gtest/gtest.h"

namespace pumptwin::server {
namespace {

constexpr uint64_t kMiB = 1 << 20;
const absl::Time kT0 = absl::FromUnixSeconds(1800000000);

TEST(IdleFlushPolicy, FlushesOnceWritesStoppedForTheIdlePeriod) {
  IdleFlushPolicy p(absl::Seconds(30), kMiB);
  EXPECT_FALSE(p.Observe(kT0, 64 * kMiB));  // first sight
  EXPECT_FALSE(p.Observe(kT0 + absl::Seconds(29), 64 * kMiB));
  EXPECT_TRUE(p.Observe(kT0 + absl::Seconds(30), 64 * kMiB));
  // After the flush the size drops: a change, so the clock starts again.
  EXPECT_FALSE(p.Observe(kT0 + absl::Seconds(35), 0));
  EXPECT_FALSE(p.Observe(kT0 + absl::Seconds(100), 0));  // below min_bytes: nothing to do
}

TEST(IdleFlushPolicy, NeverFlushesWhileWritesKeepComing) {
  IdleFlushPolicy p(absl::Seconds(30), kMiB);
  for (int tick = 0; tick < 100; ++tick) {
    EXPECT_FALSE(p.Observe(kT0 + absl::Seconds(5 * tick), (2 + tick) * kMiB)) << tick;
  }
}

TEST(IdleFlushPolicy, AFlushThatLeftTheSizeUnchangedIsNotRetriedAtOnce) {
  IdleFlushPolicy p(absl::Seconds(30), kMiB);
  EXPECT_FALSE(p.Observe(kT0, 8 * kMiB));
  EXPECT_TRUE(p.Observe(kT0 + absl::Seconds(30), 8 * kMiB));
  EXPECT_FALSE(p.Observe(kT0 + absl::Seconds(35), 8 * kMiB));  // e.g. the flush failed
  EXPECT_TRUE(p.Observe(kT0 + absl::Seconds(60), 8 * kMiB));   // one idle period later
}

TEST(IdleFlushPolicy, DisabledOrTinyMemtablesNeverFlush) {
  IdleFlushPolicy off(absl::ZeroDuration(), kMiB);
  IdleFlushPolicy tiny(absl::Seconds(30), kMiB);
  EXPECT_FALSE(off.Observe(kT0, 64 * kMiB));
  EXPECT_FALSE(tiny.Observe(kT0, kMiB - 1));
  EXPECT_FALSE(off.Observe(kT0 + absl::Hours(1), 64 * kMiB));
  EXPECT_FALSE(tiny.Observe(kT0 + absl::Hours(1), kMiB - 1));
}

}  // namespace
}  // namespace pumptwin::server
