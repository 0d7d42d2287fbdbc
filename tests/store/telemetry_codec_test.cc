// Chunk codec: lossless round trip over random samples, compactness, strict rejection.
#include "server/store/telemetry_codec.h"

#include <bit>
#include <cmath>
#include <limits>
#include <random>

#include "gtest/gtest.h"
#include "store_test_util.h"

namespace pumptwin::store {
namespace {

using twin::Sample;

// Doubles of every kind the codec must keep bit-exact.
double RandomDouble(std::mt19937_64& rng) {
  switch (rng() % 8) {
    case 0:
      return static_cast<double>(static_cast<int64_t>(rng() % 100000) - 50000) / 10.0;
    case 1:
      return static_cast<double>(rng() % 1000) / 1000.0;
    case 2:
      return std::bit_cast<double>(rng());  // any bit pattern, NaNs and infinities included
    case 3:
      return -0.0;
    case 4:
      return std::uniform_real_distribution<double>(-1e6, 1e6)(rng);
    case 5:
      return std::numeric_limits<double>::denorm_min();
    case 6:
      return 1e300;
    default:
      return 3.05;
  }
}

// `max_event_type` bounds the event types drawn (the byte-stability test keeps the set its
// golden fingerprint was recorded with).
std::vector<Sample> RandomSamples(std::mt19937_64& rng,
                                  int max_event_type = twin::kMaxDeviceEventType) {
  const size_t n = 1 + rng() % 300;
  const int64_t unit_ns[] = {1, 1000, 1000000, 1000000000};
  const int64_t unit = unit_ns[rng() % 4];
  // Anywhere in the representable range (1677..2262), leaving room for the deltas below.
  const uint64_t max_units = static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / unit / 2);
  int64_t t_ns = static_cast<int64_t>(rng() % max_units) * unit * (rng() % 2 ? 1 : -1);
  uint64_t seq = 1 + rng() % 1000000;
  const int presence_style = static_cast<int>(rng() % 3);  // none / all / random
  std::vector<Sample> out(n);
  for (size_t i = 0; i < n; ++i) {
    Sample& s = out[i];
    s.seq = seq;
    seq += 1 + (rng() % 4 == 0 ? rng() % 1000 : 0);
    s.device_time = absl::FromUnixNanos(t_ns);
    t_ns += (rng() % 3 == 0 ? static_cast<int64_t>(rng() % 100) - 20 : 60) * unit;
    auto present = [&] { return presence_style == 1 || (presence_style == 2 && rng() % 2); };
    if (present()) s.calculated_reservoir = twin::Microliters(RandomDouble(rng));
    if (present()) s.measured_reservoir = twin::Microliters(RandomDouble(rng));
    if (present()) s.cumulative_drive_units = rng() % 3 ? rng() % 1000000 : rng();
    if (present()) s.outlet_pressure = twin::Mmhg(RandomDouble(rng));
    if (present()) s.stroke_pressure_peak = twin::Mmhg(RandomDouble(rng));
    if (present()) s.csf_pulsation = twin::Mmhg(RandomDouble(rng));
    if (present()) s.battery_voltage = twin::Volts(RandomDouble(rng));
    if (present()) s.battery_current_ua = RandomDouble(rng);
    if (present()) s.motor_current_ma = RandomDouble(rng);
    if (present()) s.temperature_c = RandomDouble(rng);
    s.alarm_flags = rng() % 4 == 0 ? static_cast<uint32_t>(rng()) : 0;
    for (int e = 0, ne = rng() % 5 == 0 ? 1 + rng() % 3 : 0; e < ne; ++e) {
      twin::DeviceEvent ev;
      ev.type = static_cast<twin::DeviceEventType>(rng() % (max_event_type + 1));
      ev.device_time =
          s.device_time + absl::Nanoseconds((static_cast<int64_t>(rng() % 100) - 50) * unit);
      if (rng() % 2) ev.volume = twin::Microliters(RandomDouble(rng));
      s.events.push_back(ev);
    }
  }
  return out;
}

// Sample::operator== compares doubles with ==, which NaN fails and -0.0 passes: compare bits.
void ExpectBitIdentical(const std::vector<Sample>& a, const std::vector<Sample>& b) {
  ASSERT_EQ(a.size(), b.size());
  auto bits = [](const auto& o) -> std::optional<uint64_t> {
    if (!o) return std::nullopt;
    if constexpr (std::is_same_v<std::decay_t<decltype(*o)>, double>)
      return std::bit_cast<uint64_t>(*o);
    else
      return std::bit_cast<uint64_t>(o->value());
  };
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(a[i].seq, b[i].seq);
    EXPECT_EQ(a[i].device_time, b[i].device_time);
    EXPECT_EQ(bits(a[i].calculated_reservoir), bits(b[i].calculated_reservoir));
    EXPECT_EQ(bits(a[i].measured_reservoir), bits(b[i].measured_reservoir));
    EXPECT_EQ(a[i].cumulative_drive_units, b[i].cumulative_drive_units);
    EXPECT_EQ(bits(a[i].outlet_pressure), bits(b[i].outlet_pressure));
    EXPECT_EQ(bits(a[i].stroke_pressure_peak), bits(b[i].stroke_pressure_peak));
    EXPECT_EQ(bits(a[i].csf_pulsation), bits(b[i].csf_pulsation));
    EXPECT_EQ(bits(a[i].battery_voltage), bits(b[i].battery_voltage));
    EXPECT_EQ(bits(a[i].battery_current_ua), bits(b[i].battery_current_ua));
    EXPECT_EQ(bits(a[i].motor_current_ma), bits(b[i].motor_current_ma));
    EXPECT_EQ(bits(a[i].temperature_c), bits(b[i].temperature_c));
    EXPECT_EQ(a[i].alarm_flags, b[i].alarm_flags);
    ASSERT_EQ(a[i].events.size(), b[i].events.size());
    for (size_t e = 0; e < a[i].events.size(); ++e) {
      EXPECT_EQ(a[i].events[e].type, b[i].events[e].type);
      EXPECT_EQ(a[i].events[e].device_time, b[i].events[e].device_time);
      EXPECT_EQ(bits(a[i].events[e].volume), bits(b[i].events[e].volume));
    }
  }
}

// Encodes, decodes and compares bit for bit.
void ExpectRoundTrip(const std::vector<Sample>& samples) {
  absl::StatusOr<std::string> bytes = EncodeSamples(samples);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<std::vector<Sample>> back = DecodeSamples(*bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectBitIdentical(samples, *back);
}

TEST(TelemetryCodec, RandomSamplesRoundTripBitExactly) {
  std::mt19937_64 rng(20261122);
  for (int round = 0; round < 400; ++round) {
    SCOPED_TRACE(round);
    const std::vector<Sample> samples = RandomSamples(rng);
    ExpectRoundTrip(samples);
    ASSERT_FALSE(HasFailure());
  }
}

// Steady readings (a value equal to the one before) take the encoder's shortcut; runs that
// end in a value needing more decimal digits, or none, must still round-trip bit-exactly.
TEST(TelemetryCodec, SteadyReadingsRoundTripBitExactly) {
  std::mt19937_64 rng(20261124);
  for (int round = 0; round < 200; ++round) {
    SCOPED_TRACE(round);
    std::vector<Sample> samples = RandomSamples(rng);
    for (size_t i = 1; i < samples.size(); ++i) {
      Sample& s = samples[i];
      const Sample& prev = samples[i - 1];
      auto steady = [&](auto& field, const auto& before) {
        if (before && rng() % 4 != 0) field = before;
      };
      steady(s.calculated_reservoir, prev.calculated_reservoir);
      steady(s.measured_reservoir, prev.measured_reservoir);
      steady(s.outlet_pressure, prev.outlet_pressure);
      steady(s.stroke_pressure_peak, prev.stroke_pressure_peak);
      steady(s.csf_pulsation, prev.csf_pulsation);
      steady(s.battery_voltage, prev.battery_voltage);
      steady(s.battery_current_ua, prev.battery_current_ua);
      steady(s.motor_current_ma, prev.motor_current_ma);
      steady(s.temperature_c, prev.temperature_c);
    }
    ExpectRoundTrip(samples);
    ASSERT_FALSE(HasFailure());
  }
}

// Chunks on disk outlive the code that wrote them: the encoder's output for a fixed set of
// random chunks must not change (the fingerprint was recorded from the first v1 encoder;
// an optimisation that changes it changes the format, which needs a new codec version).
TEST(TelemetryCodec, EncodingIsByteStableAcrossVersions) {
  constexpr int kGoldenMaxEventType = 13;  // event types when the fingerprint was recorded
  std::mt19937_64 rng(20261123);
  uint64_t fingerprint = 1469598103934665603ull;  // FNV-1a over every chunk's bytes
  size_t total = 0;
  for (int round = 0; round < 300; ++round) {
    absl::StatusOr<std::string> bytes = EncodeSamples(RandomSamples(rng, kGoldenMaxEventType));
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    for (unsigned char c : *bytes) {
      fingerprint ^= c;
      fingerprint *= 1099511628211ull;
    }
    total += bytes->size();
  }
  EXPECT_EQ(total, 2167328u);
  EXPECT_EQ(fingerprint, 7509210314564057378u);
}

TEST(TelemetryCodec, RegularTelemetryCostsFewBytesPerSample) {
  const auto samples = testing::RegularSamples(1, 100, absl::FromUnixSeconds(1700000000));
  absl::StatusOr<std::string> bytes = EncodeSamples(samples);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*DecodeSamples(*bytes), samples);
  // 6 numeric signals + events; raw doubles alone would be 48 bytes per sample.
  EXPECT_LT(bytes->size(), 100u * 16) << bytes->size();
}

TEST(TelemetryCodec, EverySingleByteFlipIsDataLoss) {
  const auto samples = testing::RegularSamples(5, 20, absl::FromUnixSeconds(1700000000));
  const std::string bytes = *EncodeSamples(samples);
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      EXPECT_EQ(DecodeSamples(bad).status().code(), absl::StatusCode::kDataLoss) << i;
    }
  }
}

TEST(TelemetryCodec, EveryTruncationAndExtensionIsDataLoss) {
  const std::string bytes = *EncodeSamples(testing::RegularSamples(1, 20, absl::UnixEpoch()));
  for (size_t len = 0; len < bytes.size(); ++len) {
    EXPECT_EQ(DecodeSamples(bytes.substr(0, len)).status().code(), absl::StatusCode::kDataLoss);
  }
  EXPECT_EQ(DecodeSamples(bytes + '\0').status().code(), absl::StatusCode::kDataLoss);
}

TEST(TelemetryCodec, UnknownVersionIsDataLossNamingIt) {
  std::string bytes = *EncodeSamples(testing::RegularSamples(1, 3, absl::UnixEpoch()));
  bytes[0] = 9;
  absl::Status s = DecodeSamples(bytes).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("version 9"), absl::string_view::npos) << s;
}

TEST(TelemetryCodec, RefusesInputItCannotRepresent) {
  EXPECT_EQ(EncodeSamples({}).status().code(), absl::StatusCode::kInvalidArgument);
  auto samples = testing::RegularSamples(1, 3, absl::UnixEpoch());
  samples[2].seq = 2;  // not strictly increasing
  EXPECT_EQ(EncodeSamples(samples).status().code(), absl::StatusCode::kInvalidArgument);
  samples = testing::RegularSamples(0, 1, absl::UnixEpoch());  // seq 0
  EXPECT_EQ(EncodeSamples(samples).status().code(), absl::StatusCode::kInvalidArgument);
  samples = testing::RegularSamples(1, 1, absl::InfiniteFuture());
  EXPECT_EQ(EncodeSamples(samples).status().code(), absl::StatusCode::kInvalidArgument);
  samples = testing::RegularSamples(1, 1, absl::UnixEpoch() + absl::Nanoseconds(0.25));
  EXPECT_EQ(EncodeSamples(samples).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TelemetryCodec, MakeChunkDescribesItsSamples) {
  const auto samples = testing::RegularSamples(41, 10, absl::FromUnixSeconds(1000));
  absl::StatusOr<TelemetryChunk> c = MakeChunk("pump-7", samples);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->pump_id, "pump-7");
  EXPECT_EQ(c->first_seq, 41u);
  EXPECT_EQ(c->last_seq, 50u);
  EXPECT_EQ(c->first_device_time, samples.front().device_time);
  EXPECT_EQ(c->last_device_time, samples.back().device_time);
  EXPECT_EQ(*DecodeSamples(c->encoded), samples);
}

}  // namespace
}  // namespace pumptwin::store
