// Chunk codec v1, decoding side, plus the Store read helpers of telemetry_codec.h.
// Every malformed input is DATA_LOSS; nothing is trusted before the CRC matched.
#include <bit>
#include <optional>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "server/store/byte_io.h"
#include "server/store/telemetry_codec.h"
#include "server/store/telemetry_codec_format.h"
#include "zlib.h"

namespace pumptwin::store {
namespace {

using byte_io::Reader;
using twin::Sample;

using codec_format::kPow10;
using codec_format::kScaledLimit;
using codec_format::kXorMode;
constexpr size_t kMaxEventsPerSample = 4096;

absl::Status Corrupt(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("corrupt telemetry chunk: ", what));
}

template <auto Member>
void SetDouble(Sample& s, double v) {
  using T = typename std::remove_reference_t<decltype(s.*Member)>::value_type;
  s.*Member = T(v);
}
using Setter = void (*)(Sample&, double);
constexpr Setter kDoublesBeforeDrive[] = {SetDouble<&Sample::calculated_reservoir>,
                                          SetDouble<&Sample::measured_reservoir>};
constexpr Setter kDoublesAfterDrive[] = {
    SetDouble<&Sample::outlet_pressure>,    SetDouble<&Sample::stroke_pressure_peak>,
    SetDouble<&Sample::csf_pulsation>,      SetDouble<&Sample::battery_voltage>,
    SetDouble<&Sample::battery_current_ua>, SetDouble<&Sample::motor_current_ma>,
    SetDouble<&Sample::temperature_c>};

// Reads `count` values of a uint column into `out`.
bool ReadUintColumn(Reader& r, size_t count, std::vector<uint64_t>* out) {
  out->clear();
  if (count == 0) return true;
  uint8_t mode;
  if (!r.Byte(&mode) || mode > 1) return false;
  if (mode == 0) {
    uint64_t v;
    if (!r.Varint(&v)) return false;
    out->assign(count, v);
    return true;
  }
  if (r.remaining() < count) return false;  // at least one byte per varint
  out->resize(count);
  for (size_t i = 0; i < count; ++i) {
    if (!r.Varint(&(*out)[i])) return false;
  }
  return true;
}

bool ReadPresence(Reader& r, size_t n, std::vector<size_t>* present) {
  present->clear();
  uint8_t mode;
  if (!r.Byte(&mode) || mode > 2) return false;
  if (mode == 1) {
    for (size_t i = 0; i < n; ++i) present->push_back(i);
  } else if (mode == 2) {
    const uint8_t* bitmap;
    if (!r.Bytes((n + 7) / 8, &bitmap)) return false;
    for (size_t i = 0; i < n; ++i) {
      if (bitmap[i / 8] & (1 << (i % 8))) present->push_back(i);
    }
    if (present->empty() || present->size() == n) return false;  // encoder never does this
  }
  return true;
}

bool ReadDoubleField(Reader& r, std::vector<Sample>& out, Setter set,
                     std::vector<size_t>& present) {
  if (!ReadPresence(r, out.size(), &present)) return false;
  if (present.empty()) return true;
  uint8_t mode;
  if (!r.Byte(&mode)) return false;
  if (mode == kXorMode) {
    uint64_t prev = 0;
    for (size_t i : present) {
      uint8_t control;
      if (!r.Byte(&control)) return false;
      const int lead = control >> 4, trail = control & 0x0f;
      if (lead > 8 || trail > 7 || lead + trail > 8 || (lead == 8 && trail != 0)) return false;
      const uint8_t* bytes;
      if (!r.Bytes(8 - lead - trail, &bytes)) return false;
      uint64_t x = 0;
      for (int b = 0; b < 8 - lead - trail; ++b) x = (x << 8) | bytes[b];
      x = trail == 0 ? x : x << (8 * trail);
      prev ^= x;
      set(out[i], std::bit_cast<double>(prev));
    }
    return true;
  }
  if (mode >= std::size(kPow10)) return false;
  int64_t scaled = 0;
  for (size_t i : present) {
    int64_t delta;
    if (!r.ZigZag(&delta)) return false;
    scaled = static_cast<int64_t>(static_cast<uint64_t>(scaled) + static_cast<uint64_t>(delta));
    if (scaled <= -kScaledLimit || scaled >= kScaledLimit) return false;
    set(out[i], static_cast<double>(scaled) / kPow10[mode]);
  }
  return true;
}

bool UnitsToTime(int64_t units, int64_t unit_ns, absl::Time* out) {
  int64_t ns;
  if (__builtin_mul_overflow(units, unit_ns, &ns)) return false;
  *out = absl::FromUnixNanos(ns);
  return true;
}

}  // namespace

absl::Status DecodeSamples(absl::string_view bytes, std::vector<Sample>* out) {
  out->clear();
  if (bytes.size() < 5) return Corrupt(absl::StrCat("only ", bytes.size(), " bytes"));
  if (static_cast<uint8_t>(bytes[0]) != kChunkCodecVersion) {
    return Corrupt(
        absl::StrCat("unknown version ", static_cast<int>(static_cast<uint8_t>(bytes[0]))));
  }
  const absl::string_view body = bytes.substr(0, bytes.size() - 4);
  uint32_t stored_crc = 0;
  for (int b = 3; b >= 0; --b) {
    stored_crc = (stored_crc << 8) | static_cast<uint8_t>(bytes[body.size() + b]);
  }
  const uint32_t crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
  if (crc != stored_crc) return Corrupt("CRC mismatch");

  Reader r(body.substr(1));
  uint64_t n, first_seq;
  uint8_t exp;
  int64_t first_units;
  if (!r.Varint(&n) || n == 0 || n > kMaxSamplesPerChunk) return Corrupt("sample count");
  if (!r.Byte(&exp) || (exp != 0 && exp != 3 && exp != 6 && exp != 9)) return Corrupt("time unit");
  if (!r.Varint(&first_seq) || first_seq == 0) return Corrupt("first seq");
  if (!r.ZigZag(&first_units)) return Corrupt("first time");
  const int64_t unit_ns = exp == 0 ? 1 : exp == 3 ? 1000 : exp == 6 ? 1000000 : 1000000000;

  out->resize(n);
  std::vector<uint64_t> column;
  if (!ReadUintColumn(r, n - 1, &column)) return Corrupt("seq column");
  (*out)[0].seq = first_seq;
  for (size_t i = 1; i < n; ++i) {
    uint64_t next;
    if (column[i - 1] == UINT64_MAX ||
        __builtin_add_overflow((*out)[i - 1].seq, column[i - 1] + 1, &next)) {
      return Corrupt("seq overflow");
    }
    (*out)[i].seq = next;
  }

  if (!ReadUintColumn(r, n - 1, &column)) return Corrupt("time column");
  std::vector<int64_t> units(n);
  units[0] = first_units;
  uint64_t delta = 0;
  for (size_t i = 1; i < n; ++i) {
    delta += static_cast<uint64_t>(byte_io::UnZigZag(column[i - 1]));
    units[i] = static_cast<int64_t>(static_cast<uint64_t>(units[i - 1]) + delta);
  }
  for (size_t i = 0; i < n; ++i) {
    if (!UnitsToTime(units[i], unit_ns, &(*out)[i].device_time)) return Corrupt("time range");
  }

  std::vector<size_t> present;
  for (Setter set : kDoublesBeforeDrive) {
    if (!ReadDoubleField(r, *out, set, present)) return Corrupt("double column");
  }
  if (!ReadPresence(r, n, &present)) return Corrupt("drive units presence");
  uint64_t drive = 0;
  for (size_t i : present) {
    int64_t d;
    if (!r.ZigZag(&d)) return Corrupt("drive units column");
    drive += static_cast<uint64_t>(d);
    (*out)[i].cumulative_drive_units = drive;
  }
  for (Setter set : kDoublesAfterDrive) {
    if (!ReadDoubleField(r, *out, set, present)) return Corrupt("double column");
  }

  if (!ReadUintColumn(r, n, &column)) return Corrupt("alarm column");
  for (size_t i = 0; i < n; ++i) {
    if (column[i] > UINT32_MAX) return Corrupt("alarm flags");
    (*out)[i].alarm_flags = static_cast<uint32_t>(column[i]);
  }
  if (!ReadUintColumn(r, n, &column)) return Corrupt("event count column");
  for (size_t i = 0; i < n; ++i) {
    if (column[i] > kMaxEventsPerSample || column[i] > r.remaining()) return Corrupt("event count");
    std::vector<twin::DeviceEvent>& events = (*out)[i].events;
    events.resize(column[i]);
    for (twin::DeviceEvent& e : events) {
      uint8_t type;
      int64_t offset;
      if (!r.Byte(&type) || (type & 0x7f) > twin::kMaxDeviceEventType) return Corrupt("event type");
      e.type = static_cast<twin::DeviceEventType>(type & 0x7f);
      if (!r.ZigZag(&offset)) return Corrupt("event time");
      const int64_t ev_units =
          static_cast<int64_t>(static_cast<uint64_t>(units[i]) + static_cast<uint64_t>(offset));
      if (!UnitsToTime(ev_units, unit_ns, &e.device_time)) return Corrupt("event time range");
      if (type & 0x80) {
        const uint8_t* raw;
        if (!r.Bytes(8, &raw)) return Corrupt("event volume");
        uint64_t bits = 0;
        for (int b = 7; b >= 0; --b) bits = (bits << 8) | raw[b];
        e.volume = twin::Microliters(std::bit_cast<double>(bits));
      }
    }
  }
  if (r.remaining() != 0) return Corrupt(absl::StrCat(r.remaining(), " trailing bytes"));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Sample>> DecodeSamples(absl::string_view bytes) {
  std::vector<Sample> out;
  if (absl::Status s = DecodeSamples(bytes, &out); !s.ok()) return s;
  return out;
}

absl::Status ScanSamples(const Store& store, absl::string_view pump_id, absl::Time from,
                         absl::Time to, const SampleFn& fn) {
  std::vector<Sample> samples;
  absl::Status decode_status;
  absl::Status scan = store.ScanTelemetry(pump_id, from, to, [&](const TelemetryChunk& c) {
    decode_status = DecodeSamples(c.encoded, &samples);
    if (!decode_status.ok()) return false;
    for (const Sample& s : samples) {
      if (s.device_time >= from && s.device_time < to && !fn(s)) return false;
    }
    return true;
  });
  return scan.ok() ? decode_status : scan;
}

absl::Status ScanSamplesAfterSeq(const Store& store, absl::string_view pump_id, uint64_t after_seq,
                                 const SampleFn& fn) {
  std::vector<Sample> samples;
  absl::Status decode_status;
  absl::Status scan = store.ScanTelemetryAfterSeq(pump_id, after_seq, [&](const TelemetryChunk& c) {
    decode_status = DecodeSamples(c.encoded, &samples);
    if (!decode_status.ok()) return false;
    for (const Sample& s : samples) {
      if (s.seq > after_seq && !fn(s)) return false;
    }
    return true;
  });
  return scan.ok() ? decode_status : scan;
}

}  // namespace pumptwin::store
