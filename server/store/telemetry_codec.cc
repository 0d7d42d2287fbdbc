// Chunk codec v1 (docs/storage.md, "Chunk encoding"). Hand-written because no library here
// does lossless column-wise delta/XOR coding of mixed optional fields; RocksDB's block
// compression (LZ4/ZSTD) then runs on top of these bytes.
#include "server/store/telemetry_codec.h"

#include <bit>
#include <cmath>
#include <optional>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "server/store/byte_io.h"
#include "server/store/store_keys.h"
#include "zlib.h"

namespace pumptwin::store {
namespace {

using byte_io::PutByte;
using byte_io::PutVarint;
using byte_io::PutZigZag;
using byte_io::Reader;
using twin::Sample;

constexpr double kPow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
constexpr int kMaxDecimalDigits = 9;
constexpr uint8_t kXorMode = 0xFF;
constexpr double kTwoPow53 = 9007199254740992.0;
constexpr int64_t kUnitNs[] = {1, 0, 0, 1000, 0, 0, 1000000, 0, 0, 1000000000};

// ---- Field table: the 10 optional fields, in format order. -----------------------------
inline double AsDouble(double v) { return v; }
template <typename Tag>
inline double AsDouble(twin::Quantity<Tag> q) { return q.value(); }

template <auto Member>
std::optional<double> GetDouble(const Sample& s) {
  const auto& o = s.*Member;
  if (!o.has_value()) return std::nullopt;
  return AsDouble(*o);
}
template <auto Member>
void SetDouble(Sample& s, double v) {
  using T = typename std::remove_reference_t<decltype(s.*Member)>::value_type;
  s.*Member = T(v);
}

struct DoubleField {
  std::optional<double> (*get)(const Sample&);
  void (*set)(Sample&, double);
};
constexpr DoubleField kDoublesBeforeDrive[] = {
    {GetDouble<&Sample::calculated_reservoir>, SetDouble<&Sample::calculated_reservoir>},
    {GetDouble<&Sample::measured_reservoir>, SetDouble<&Sample::measured_reservoir>},
};
constexpr DoubleField kDoublesAfterDrive[] = {
    {GetDouble<&Sample::outlet_pressure>, SetDouble<&Sample::outlet_pressure>},
    {GetDouble<&Sample::stroke_pressure_peak>, SetDouble<&Sample::stroke_pressure_peak>},
    {GetDouble<&Sample::csf_pulsation>, SetDouble<&Sample::csf_pulsation>},
    {GetDouble<&Sample::battery_voltage>, SetDouble<&Sample::battery_voltage>},
    {GetDouble<&Sample::battery_current_ua>, SetDouble<&Sample::battery_current_ua>},
    {GetDouble<&Sample::motor_current_ma>, SetDouble<&Sample::motor_current_ma>},
    {GetDouble<&Sample::temperature_c>, SetDouble<&Sample::temperature_c>},
};

// ---- Encoding -------------------------------------------------------------------------
void PutUintColumn(std::string* out, const std::vector<uint64_t>& values) {
  if (values.empty()) return;
  bool constant = true;
  for (uint64_t v : values) constant = constant && v == values[0];
  PutByte(out, constant ? 0 : 1);
  if (constant) {
    PutVarint(out, values[0]);
  } else {
    for (uint64_t v : values) PutVarint(out, v);
  }
}

// Writes the presence byte (+bitmap); returns the indices of present samples.
template <typename Has>
std::vector<size_t> PutPresence(std::string* out, size_t n, Has has) {
  std::vector<size_t> present;
  for (size_t i = 0; i < n; ++i) {
    if (has(i)) present.push_back(i);
  }
  if (present.empty() || present.size() == n) {
    PutByte(out, present.empty() ? 0 : 1);
    return present;
  }
  PutByte(out, 2);
  std::string bitmap((n + 7) / 8, '\0');
  for (size_t i : present) bitmap[i / 8] = static_cast<char>(bitmap[i / 8] | (1 << (i % 8)));
  out->append(bitmap);
  return present;
}

bool DecimalFits(double v, int k, int64_t* scaled_out) {
  const double scaled = v * kPow10[k];
  if (!(std::fabs(scaled) < kTwoPow53)) return false;  // also rejects NaN
  const int64_t s = std::llround(scaled);
  const double back = static_cast<double>(s) / kPow10[k];
  if (std::bit_cast<uint64_t>(back) != std::bit_cast<uint64_t>(v)) return false;
  *scaled_out = s;
  return true;
}

void PutDoubleValues(std::string* out, const std::vector<double>& values) {
  std::vector<int64_t> scaled(values.size());
  for (int k = 0; k <= kMaxDecimalDigits; ++k) {
    bool fits = true;
    for (size_t i = 0; i < values.size() && fits; ++i) fits = DecimalFits(values[i], k, &scaled[i]);
    if (!fits) continue;
    PutByte(out, static_cast<uint8_t>(k));
    int64_t prev = 0;
    for (int64_t s : scaled) {
      PutZigZag(out, static_cast<int64_t>(static_cast<uint64_t>(s) - static_cast<uint64_t>(prev)));
      prev = s;
    }
    return;
  }
  PutByte(out, kXorMode);
  uint64_t prev = 0;
  for (double v : values) {
    const uint64_t bits = std::bit_cast<uint64_t>(v);
    const uint64_t x = bits ^ prev;
    prev = bits;
    if (x == 0) {
      PutByte(out, 0x80);
      continue;
    }
    const int lead = std::countl_zero(x) / 8;
    const int trail = std::countr_zero(x) / 8;
    PutByte(out, static_cast<uint8_t>((lead << 4) | trail));
    for (int b = 7 - lead; b >= trail; --b) PutByte(out, static_cast<uint8_t>(x >> (8 * b)));
  }
}

}  // namespace

absl::StatusOr<std::string> EncodeSamples(absl::Span<const Sample> samples) {
  const size_t n = samples.size();
  if (n == 0) return absl::InvalidArgumentError("cannot encode an empty chunk");
  if (n > kMaxSamplesPerChunk) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk of ", n, " samples exceeds ", kMaxSamplesPerChunk));
  }
  // Times in ns, and the coarsest unit dividing all of them.
  std::vector<int64_t> ns(n);
  std::vector<int64_t> event_ns;
  for (size_t i = 0; i < n; ++i) {
    const Sample& s = samples[i];
    if (s.seq == 0 || (i > 0 && s.seq <= samples[i - 1].seq)) {
      return absl::InvalidArgumentError(
          absl::StrCat("seq ", s.seq, " at index ", i, " is not strictly increasing from 1"));
    }
    absl::StatusOr<int64_t> t = keys::TimeToUnixNanos(s.device_time);
    if (!t.ok()) return t.status();
    ns[i] = *t;
    for (const twin::DeviceEvent& e : s.events) {
      if (static_cast<int>(e.type) > twin::kMaxDeviceEventType) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown device event type ", static_cast<int>(e.type)));
      }
      absl::StatusOr<int64_t> et = keys::TimeToUnixNanos(e.device_time);
      if (!et.ok()) return et.status();
      event_ns.push_back(*et);
    }
  }
  int exp = 9;
  for (; exp > 0; exp -= 3) {
    bool divides = true;
    for (int64_t t : ns) divides = divides && t % kUnitNs[exp] == 0;
    for (int64_t t : event_ns) divides = divides && t % kUnitNs[exp] == 0;
    if (divides) break;
  }
  const int64_t unit = kUnitNs[exp];

  std::string out;
  out.reserve(32 + n * 24);
  PutByte(&out, kChunkCodecVersion);
  PutVarint(&out, n);
  PutByte(&out, static_cast<uint8_t>(exp));
  PutVarint(&out, samples[0].seq);
  PutZigZag(&out, ns[0] / unit);

  std::vector<uint64_t> column;
  column.reserve(n);
  for (size_t i = 1; i < n; ++i) column.push_back(samples[i].seq - samples[i - 1].seq - 1);
  PutUintColumn(&out, column);

  column.clear();
  uint64_t prev_delta = 0;
  for (size_t i = 1; i < n; ++i) {
    const uint64_t delta = static_cast<uint64_t>(ns[i] / unit) - static_cast<uint64_t>(ns[i - 1] / unit);
    column.push_back(byte_io::ZigZag(static_cast<int64_t>(delta - prev_delta)));
    prev_delta = delta;
  }
  PutUintColumn(&out, column);

  std::vector<double> values;
  auto put_double_field = [&](const DoubleField& f) {
    std::vector<size_t> present =
        PutPresence(&out, n, [&](size_t i) { return f.get(samples[i]).has_value(); });
    if (present.empty()) return;
    values.clear();
    for (size_t i : present) values.push_back(*f.get(samples[i]));
    PutDoubleValues(&out, values);
  };
  for (const DoubleField& f : kDoublesBeforeDrive) put_double_field(f);
  {
    std::vector<size_t> present = PutPresence(
        &out, n, [&](size_t i) { return samples[i].cumulative_drive_units.has_value(); });
    uint64_t prev = 0;
    for (size_t i : present) {
      const uint64_t v = *samples[i].cumulative_drive_units;
      PutZigZag(&out, static_cast<int64_t>(v - prev));
      prev = v;
    }
  }
  for (const DoubleField& f : kDoublesAfterDrive) put_double_field(f);

  column.clear();
  for (const Sample& s : samples) column.push_back(s.alarm_flags);
  PutUintColumn(&out, column);
  column.clear();
  for (const Sample& s : samples) column.push_back(s.events.size());
  PutUintColumn(&out, column);
  for (size_t i = 0; i < n; ++i) {
    for (const twin::DeviceEvent& e : samples[i].events) {
      const uint8_t type = static_cast<uint8_t>(e.type);
      PutByte(&out, static_cast<uint8_t>(type | (e.volume.has_value() ? 0x80 : 0)));
      const int64_t ens = absl::ToUnixNanos(e.device_time);
      PutZigZag(&out, static_cast<int64_t>(static_cast<uint64_t>(ens / unit) -
                                           static_cast<uint64_t>(ns[i] / unit)));
      if (e.volume.has_value()) {
        const uint64_t bits = std::bit_cast<uint64_t>(e.volume->value());
        for (int b = 0; b < 8; ++b) PutByte(&out, static_cast<uint8_t>(bits >> (8 * b)));
      }
    }
  }
  const uint32_t crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(out.data()), static_cast<uInt>(out.size())));
  for (int b = 0; b < 4; ++b) PutByte(&out, static_cast<uint8_t>(crc >> (8 * b)));
  return out;
}

absl::StatusOr<TelemetryChunk> MakeChunk(absl::string_view pump_id,
                                         absl::Span<const Sample> samples) {
  absl::StatusOr<std::string> encoded = EncodeSamples(samples);
  if (!encoded.ok()) return encoded.status();
  TelemetryChunk c;
  c.pump_id = std::string(pump_id);
  c.first_seq = samples.front().seq;
  c.last_seq = samples.back().seq;
  c.first_device_time = samples.front().device_time;
  c.last_device_time = samples.front().device_time;
  for (const Sample& s : samples) c.last_device_time = std::max(c.last_device_time, s.device_time);
  c.encoded = *std::move(encoded);
  return c;
}

}  // namespace pumptwin::store
