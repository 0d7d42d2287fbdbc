// Chunk codec v1 (docs/storage.md, "Chunk encoding"). Hand-written because no library here
// does lossless column-wise delta/XOR coding of mixed optional fields; RocksDB's block
// compression (LZ4/ZSTD) then runs on top of these bytes.
#include "server/store/telemetry_codec.h"

#include <array>
#include <bit>
#include <cmath>
#include <optional>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "server/store/byte_io.h"
#include "server/store/store_keys.h"
#include "server/store/telemetry_codec_format.h"
#include "zlib.h"

namespace pumptwin::store {
namespace {

using byte_io::Writer;
using twin::Sample;

using codec_format::kMaxDecimalDigits;
using codec_format::kPow10;
using codec_format::kScaledLimit;
using codec_format::kXorMode;

// ---- The 9 optional doubles, in format order (drive units go between #1 and #2). ---------
constexpr int kDoubleFields = 9;
constexpr int kDoublesBeforeDrive = 2;
inline double ValueOf(double v) { return v; }
template <typename Tag>
inline double ValueOf(const twin::Quantity<Tag>& q) {
  return q.value();
}
// Calls f(field index, value) for each double field `s` has, in format order. Present
// values only, as plain doubles: passing std::optional<double> temporaries by value made
// the compiler store the flag byte and reload it as a word (a store-forwarding stall per
// field, 40 % of the encoder's time).
template <typename F>
inline void VisitPresentDoubles(const Sample& s, F&& f) {
  if (s.calculated_reservoir) f(0, ValueOf(*s.calculated_reservoir));
  if (s.measured_reservoir) f(1, ValueOf(*s.measured_reservoir));
  if (s.outlet_pressure) f(2, ValueOf(*s.outlet_pressure));
  if (s.stroke_pressure_peak) f(3, ValueOf(*s.stroke_pressure_peak));
  if (s.csf_pulsation) f(4, ValueOf(*s.csf_pulsation));
  if (s.battery_voltage) f(5, ValueOf(*s.battery_voltage));
  if (s.battery_current_ua) f(6, ValueOf(*s.battery_current_ua));
  if (s.motor_current_ma) f(7, ValueOf(*s.motor_current_ma));
  if (s.temperature_c) f(8, ValueOf(*s.temperature_c));
}

// One optional column gathered in a single pass: which samples have it (a bitmap, bit i =
// sample i) and their values.
template <typename T>
struct Column {
  std::vector<uint64_t> present;
  std::vector<T> values;
  void Reset(size_t n) {
    present.assign((n + 63) / 64, 0);
    values.clear();
  }
  void Add(uint32_t i, T v) {
    present[i / 64] |= uint64_t{1} << (i % 64);
    values.push_back(v);
  }
};

// ---- Encoding -------------------------------------------------------------------------
void PutUintColumn(Writer& out, const std::vector<uint64_t>& values) {
  if (values.empty()) return;
  bool constant = true;
  for (uint64_t v : values) constant = constant && v == values[0];
  out.Byte(constant ? 0 : 1);
  if (constant) {
    out.Varint(values[0]);
  } else {
    for (uint64_t v : values) out.Varint(v);
  }
}

// Writes the presence byte (+bitmap: bit i of byte i/8 = sample i) of a column.
template <typename T>
void PutPresence(Writer& out, size_t n, const Column<T>& col) {
  if (col.values.empty() || col.values.size() == n) {
    out.Byte(col.values.empty() ? 0 : 1);
    return;
  }
  out.Byte(2);
  for (size_t b = 0; b < (n + 7) / 8; ++b) {
    out.Byte(static_cast<uint8_t>(col.present[b / 8] >> (8 * (b % 8))));
  }
}

inline bool DecimalFits(double v, int k, int64_t* scaled_out) {
  const double scaled = v * kPow10[k];
  if (!(std::fabs(scaled) < static_cast<double>(kScaledLimit))) return false;  // and NaN
  // Inline rounding (llround is a libm call); exactness is checked right below anyway.
  const int64_t s = static_cast<int64_t>(scaled + (scaled >= 0 ? 0.5 : -0.5));
  const double back = static_cast<double>(s) / kPow10[k];
  if (std::bit_cast<uint64_t>(back) != std::bit_cast<uint64_t>(v)) return false;
  *scaled_out = s;
  return true;
}

// The fewest decimal digits k (0..9) at which every value is exact, or -1 (the same k as
// trying 0..9 in turn on all values). Each value's own fewest digits is a lower bound of k:
// one pass raises k until every value fits; the values before the last raise were checked
// at a smaller k only and are checked again (a value exact at k digits is almost always
// exact at more; the search goes on upwards when one is not).
int FewestDecimalDigits(const std::vector<double>& values, std::vector<int64_t>& scaled) {
  int k = 0;
  size_t unchecked_end = 0;  // values [0, unchecked_end) were checked at a smaller k
  for (size_t i = 0; i < values.size(); ++i) {
    // A value equal to the one before (steady readings) fits wherever that one did.
    if (i > 0 && std::bit_cast<uint64_t>(values[i]) == std::bit_cast<uint64_t>(values[i - 1])) {
      scaled[i] = scaled[i - 1];
      continue;
    }
    if (DecimalFits(values[i], k, &scaled[i])) continue;
    do {
      if (++k > kMaxDecimalDigits) return -1;
    } while (!DecimalFits(values[i], k, &scaled[i]));
    unchecked_end = i;
  }
  for (; k <= kMaxDecimalDigits; ++k) {
    bool fits = true;
    for (size_t i = 0; i < unchecked_end && fits; ++i) {
      if (i > 0 && std::bit_cast<uint64_t>(values[i]) == std::bit_cast<uint64_t>(values[i - 1])) {
        scaled[i] = scaled[i - 1];  // values[i - 1] fit at this k in this pass
        continue;
      }
      fits = DecimalFits(values[i], k, &scaled[i]);
    }
    if (fits) return k;
    unchecked_end = values.size();  // a higher k: every value again
  }
  return -1;
}

void PutDoubleValues(Writer& out, const std::vector<double>& values, std::vector<int64_t>& scaled) {
  scaled.resize(values.size());
  if (const int k = FewestDecimalDigits(values, scaled); k >= 0) {
    out.Byte(static_cast<uint8_t>(k));
    int64_t prev = 0;
    for (int64_t s : scaled) {
      out.ZigZag(static_cast<int64_t>(static_cast<uint64_t>(s) - static_cast<uint64_t>(prev)));
      prev = s;
    }
    return;
  }
  out.Byte(kXorMode);
  uint64_t prev = 0;
  for (double v : values) {
    const uint64_t bits = std::bit_cast<uint64_t>(v);
    const uint64_t x = bits ^ prev;
    prev = bits;
    if (x == 0) {
      out.Byte(0x80);
      continue;
    }
    const int lead = std::countl_zero(x) / 8;
    const int trail = std::countr_zero(x) / 8;
    out.Byte(static_cast<uint8_t>((lead << 4) | trail));
    for (int b = 7 - lead; b >= trail; --b) out.Byte(static_cast<uint8_t>(x >> (8 * b)));
  }
}

// The largest of 9, 6, 3 (s, ms, us) such that 10^exp ns divides every time, else 0.
template <int64_t kUnit>
bool AllDivisible(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  bool divides = true;
  for (int64_t t : a) divides &= t % kUnit == 0;
  for (int64_t t : b) divides &= t % kUnit == 0;
  return divides;
}
int CoarsestTimeExponent(const std::vector<int64_t>& ns, const std::vector<int64_t>& event_ns) {
  if (AllDivisible<1'000'000'000>(ns, event_ns)) return 9;
  if (AllDivisible<1'000'000>(ns, event_ns)) return 6;
  if (AllDivisible<1'000>(ns, event_ns)) return 3;
  return 0;
}
template <int64_t kUnit>
void DivideAll(std::vector<int64_t>& a, std::vector<int64_t>& b) {
  for (int64_t& t : a) t /= kUnit;
  for (int64_t& t : b) t /= kUnit;
}

// Worst-case encoded size of n samples with `events` device events: every varint at its
// 10-byte maximum, every optional column present with a bitmap.
size_t EncodedBound(size_t n, size_t events) {
  constexpr size_t kV = byte_io::kMaxVarintBytes;
  const size_t header = 1 + kV + 1 + kV + kV;
  const size_t uint_columns = 4 * (1 + kV * n);  // seq, time, alarms, counts
  const size_t optional_columns = (kDoubleFields + 1) * (2 + (n + 7) / 8 + kV * n);
  const size_t event_bytes = events * (1 + kV + 8);
  return header + uint_columns + optional_columns + event_bytes + 4;
}

// Per-thread working buffers of the encoder: a chunk is encoded without allocating anything
// but its output once the buffers have grown (the ingest path encodes a chunk per pump and
// commit group).
struct EncodeScratch {
  std::vector<uint8_t> bytes;  // sized to EncodedBound; the output is copied out exactly
  std::vector<int64_t> ns;
  std::vector<int64_t> event_ns;
  std::vector<uint64_t> column;
  std::vector<int64_t> scaled;
  std::array<Column<double>, kDoubleFields> doubles;
  Column<uint64_t> drive;
  void Clear(size_t n) {
    ns.clear();
    event_ns.clear();
    column.clear();
    for (Column<double>& c : doubles) c.Reset(n);
    drive.Reset(n);
  }
};

}  // namespace

absl::StatusOr<std::string> EncodeSamples(absl::Span<const Sample> samples) {
  const size_t n = samples.size();
  if (n == 0) return absl::InvalidArgumentError("cannot encode an empty chunk");
  if (n > kMaxSamplesPerChunk) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk of ", n, " samples exceeds ", kMaxSamplesPerChunk));
  }
  thread_local EncodeScratch scratch;
  scratch.Clear(n);
  // Times in ns, and the coarsest unit dividing all of them.
  std::vector<int64_t>& ns = scratch.ns;
  std::vector<int64_t>& event_ns = scratch.event_ns;
  ns.resize(n);
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
  // The coarsest unit dividing every time, then every time in that unit: divisions by
  // constants (a multiply each), not an idiv per time and use.
  const int exp = CoarsestTimeExponent(ns, event_ns);
  switch (exp) {
    case 9:
      DivideAll<1'000'000'000>(ns, event_ns);
      break;
    case 6:
      DivideAll<1'000'000>(ns, event_ns);
      break;
    case 3:
      DivideAll<1'000>(ns, event_ns);
      break;
    default:
      break;
  }
  const std::vector<int64_t>& units = ns;  // from here on: times in the chunk's unit

  const size_t bound = EncodedBound(n, event_ns.size());
  if (scratch.bytes.size() < bound) scratch.bytes.resize(bound);
  Writer out(scratch.bytes.data());
  out.Byte(kChunkCodecVersion);
  out.Varint(n);
  out.Byte(static_cast<uint8_t>(exp));
  out.Varint(samples[0].seq);
  out.ZigZag(units[0]);

  std::vector<uint64_t>& column = scratch.column;
  for (size_t i = 1; i < n; ++i) column.push_back(samples[i].seq - samples[i - 1].seq - 1);
  PutUintColumn(out, column);

  column.clear();
  uint64_t prev_delta = 0;
  for (size_t i = 1; i < n; ++i) {
    const uint64_t delta = static_cast<uint64_t>(units[i]) - static_cast<uint64_t>(units[i - 1]);
    column.push_back(byte_io::ZigZag(static_cast<int64_t>(delta - prev_delta)));
    prev_delta = delta;
  }
  PutUintColumn(out, column);

  // Gather every optional field in one pass over the samples.
  std::array<Column<double>, kDoubleFields>& doubles = scratch.doubles;
  Column<uint64_t>& drive = scratch.drive;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t index = static_cast<uint32_t>(i);
    VisitPresentDoubles(samples[i], [&](int f, double v) { doubles[f].Add(index, v); });
    if (samples[i].cumulative_drive_units) drive.Add(index, *samples[i].cumulative_drive_units);
  }
  auto put_double_field = [&](const Column<double>& col) {
    PutPresence(out, n, col);
    if (!col.values.empty()) PutDoubleValues(out, col.values, scratch.scaled);
  };
  for (int f = 0; f < kDoublesBeforeDrive; ++f) put_double_field(doubles[f]);
  PutPresence(out, n, drive);
  uint64_t prev_drive = 0;
  for (uint64_t v : drive.values) {
    out.ZigZag(static_cast<int64_t>(v - prev_drive));
    prev_drive = v;
  }
  for (int f = kDoublesBeforeDrive; f < kDoubleFields; ++f) put_double_field(doubles[f]);

  column.clear();
  for (const Sample& s : samples) column.push_back(s.alarm_flags);
  PutUintColumn(out, column);
  column.clear();
  for (const Sample& s : samples) column.push_back(s.events.size());
  PutUintColumn(out, column);
  size_t event_index = 0;  // event_ns holds the events in this same order
  for (size_t i = 0; i < n; ++i) {
    for (const twin::DeviceEvent& e : samples[i].events) {
      const uint8_t type = static_cast<uint8_t>(e.type);
      out.Byte(static_cast<uint8_t>(type | (e.volume.has_value() ? 0x80 : 0)));
      out.ZigZag(static_cast<int64_t>(static_cast<uint64_t>(event_ns[event_index++]) -
                                      static_cast<uint64_t>(units[i])));
      if (e.volume.has_value()) {
        const uint64_t bits = std::bit_cast<uint64_t>(e.volume->value());
        for (int b = 0; b < 8; ++b) out.Byte(static_cast<uint8_t>(bits >> (8 * b)));
      }
    }
  }
  const uint32_t crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(out.data()), static_cast<uInt>(out.size())));
  for (int b = 0; b < 4; ++b) out.Byte(static_cast<uint8_t>(crc >> (8 * b)));
  return std::string(reinterpret_cast<const char*>(out.data()), out.size());
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
