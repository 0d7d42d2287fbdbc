// Key layouts: bytewise order equals (pump, time, seq) order; pumps never interleave.
#include "server/store/store_keys.h"

#include <algorithm>
#include <random>
#include <tuple>

#include "gtest/gtest.h"

namespace pumptwin::store::keys {
namespace {

TEST(StoreKeys, TelemetryKeyBytewiseOrderIsPumpThenTimeThenSeq) {
  std::mt19937_64 rng(7);
  const std::vector<std::string> pumps = {
      "a", "ab", "abc", "b", std::string("a\0b", 3), std::string(255, 'z')};
  struct Parts {
    std::string pump;
    int64_t t;
    uint64_t seq;
    std::string key;
  };
  std::vector<Parts> all;
  for (int i = 0; i < 3000; ++i) {
    Parts p{pumps[rng() % pumps.size()], static_cast<int64_t>(rng()), rng() % 5, ""};
    if (i % 10 == 0) p.t = -p.t;
    if (i % 17 == 0)
      p.t = i % 2 ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int64_t>::max();
    p.key = TelemetryKey(p.pump, p.t, p.seq);
    all.push_back(p);
  }
  // Pumps are grouped by (length, bytes): the length prefix decides first.
  auto logical = [](const Parts& a, const Parts& b) {
    return std::make_tuple(a.pump.size(), a.pump, a.t, a.seq) <
           std::make_tuple(b.pump.size(), b.pump, b.t, b.seq);
  };
  std::vector<Parts> by_key = all, by_logic = all;
  std::sort(by_key.begin(), by_key.end(),
            [](const Parts& a, const Parts& b) { return a.key < b.key; });
  std::stable_sort(by_logic.begin(), by_logic.end(), logical);
  std::sort(by_logic.begin(), by_logic.end(), logical);
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_EQ(by_key[i].pump, by_logic[i].pump) << i;
    ASSERT_EQ(by_key[i].t, by_logic[i].t) << i;
    ASSERT_EQ(by_key[i].seq, by_logic[i].seq) << i;
  }
}

TEST(StoreKeys, EveryKeyOfAPumpLiesInsideItsPrefixRange) {
  for (const std::string pump : {"ab", "abc", "b"}) {
    const std::string lo = TelemetryPrefix(pump), hi = TelemetryPrefixEnd(pump);
    for (int64_t t :
         {std::numeric_limits<int64_t>::min(), int64_t{0}, std::numeric_limits<int64_t>::max()}) {
      for (uint64_t seq : {uint64_t{0}, std::numeric_limits<uint64_t>::max()}) {
        const std::string k = TelemetryKey(pump, t, seq);
        EXPECT_LE(lo, k);
        EXPECT_LT(k, hi);
        EXPECT_EQ(k.size(), 1 + pump.size() + 16);
      }
    }
  }
  // "ab"'s range and "abc"'s range do not overlap.
  EXPECT_LT(TelemetryPrefixEnd("ab"), TelemetryPrefix("abc"));
}

TEST(StoreKeys, TelemetryKeyParsesBack) {
  const std::string k = TelemetryKey("pump-1", -123456789, 42);
  absl::StatusOr<TelemetryKeyParts> p = ParseTelemetryKey(k);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->pump_id, "pump-1");
  EXPECT_EQ(p->first_unix_ns, -123456789);
  EXPECT_EQ(p->first_seq, 42u);
  EXPECT_EQ(ParseTelemetryKey(k.substr(1)).status().code(), absl::StatusCode::kDataLoss);
}

TEST(StoreKeys, EnvelopeCarriesLastSeqAndTimesAtFixedOffsets) {
  const std::string v = TelemetryEnvelope(99, 1700000000000000000, 1700000000123000000, "chunk");
  ASSERT_EQ(v.size(), kEnvelopeHeaderBytes + 5);
  EXPECT_EQ(GetOrderedTime(v.data() + 9), 1700000000000000000);
  EXPECT_EQ(GetOrderedTime(v.data() + 17), 1700000000123000000);
  absl::StatusOr<EnvelopeParts> p = ParseTelemetryEnvelope(v);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->last_seq, 99u);
  EXPECT_EQ(p->server_unix_ns, 1700000000123000000);
  EXPECT_EQ(p->encoded, "chunk");
  std::string future = v;
  future[0] = '\x02';  // an envelope version this build does not know
  EXPECT_EQ(ParseTelemetryEnvelope(future).status().code(), absl::StatusCode::kDataLoss);
}

TEST(StoreKeys, CursorKeysSortNumerically) {
  EXPECT_LT(CursorKey(1), CursorKey(2));
  EXPECT_LT(CursorKey(255), CursorKey(256));
  EXPECT_LT(CursorKey(1ull << 40), CursorKey(std::numeric_limits<uint64_t>::max()));
  EXPECT_EQ(*ParseCursorKey(CursorKey(123456789)), 123456789u);
}

TEST(StoreKeys, TimesMustBeWholeNanoseconds) {
  EXPECT_EQ(*TimeToUnixNanos(absl::FromUnixNanos(-5)), -5);
  EXPECT_FALSE(TimeToUnixNanos(absl::InfinitePast()).ok());
  EXPECT_FALSE(TimeToUnixNanos(absl::UnixEpoch() + absl::Nanoseconds(0.5)).ok());
  EXPECT_FALSE(TimeToUnixNanos(absl::FromUnixSeconds(int64_t{1} << 40)).ok());
}

}  // namespace
}  // namespace pumptwin::store::keys
