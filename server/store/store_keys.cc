// Key and value byte layouts of docs/storage.md ("Column families").
#include "server/store/store_keys.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace pumptwin::store::keys {
namespace {
constexpr uint64_t kSignBit = uint64_t{1} << 63;
}  // namespace

absl::StatusOr<int64_t> TimeToUnixNanos(absl::Time t) {
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) {
    return absl::InvalidArgumentError("infinite time cannot be stored");
  }
  const int64_t ns = absl::ToUnixNanos(t);
  if (absl::FromUnixNanos(ns) != t) {
    return absl::InvalidArgumentError(
        absl::StrCat("time ", absl::FormatTime(t), " is not a whole int64 nanosecond"));
  }
  return ns;
}

void PutBigEndian64(std::string* dst, uint64_t v) {
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  dst->append(buf, 8);
}

uint64_t GetBigEndian64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

void PutOrderedTime(std::string* dst, int64_t unix_ns) {
  PutBigEndian64(dst, static_cast<uint64_t>(unix_ns) ^ kSignBit);
}

int64_t GetOrderedTime(const char* p) { return static_cast<int64_t>(GetBigEndian64(p) ^ kSignBit); }

std::string TelemetryPrefix(absl::string_view pump_id) {
  std::string k;
  k.reserve(1 + pump_id.size() + 16);
  k.push_back(static_cast<char>(pump_id.size()));
  k.append(pump_id.data(), pump_id.size());
  return k;
}

std::string TelemetryPrefixEnd(absl::string_view pump_id) {
  // Every key of the pump is prefix + 16 bytes; prefix + 16 x 0xff + anything sorts after.
  std::string k = TelemetryPrefix(pump_id);
  k.append(17, '\xff');
  return k;
}

std::string TelemetryKey(absl::string_view pump_id, int64_t first_unix_ns, uint64_t first_seq) {
  std::string k = TelemetryPrefix(pump_id);
  PutOrderedTime(&k, first_unix_ns);
  PutBigEndian64(&k, first_seq);
  return k;
}

absl::StatusOr<TelemetryKeyParts> ParseTelemetryKey(absl::string_view key) {
  if (key.empty()) return absl::DataLossError("empty telemetry key");
  const size_t len = static_cast<uint8_t>(key[0]);
  if (len == 0 || key.size() != 1 + len + 16) {
    return absl::DataLossError(absl::StrCat("malformed telemetry key of ", key.size(), " bytes"));
  }
  TelemetryKeyParts parts;
  parts.pump_id = key.substr(1, len);
  parts.first_unix_ns = GetOrderedTime(key.data() + 1 + len);
  parts.first_seq = GetBigEndian64(key.data() + 1 + len + 8);
  return parts;
}

std::string TelemetryEnvelope(uint64_t last_seq, int64_t last_unix_ns, int64_t server_unix_ns,
                              absl::string_view encoded) {
  std::string v;
  v.reserve(kEnvelopeHeaderBytes + encoded.size());
  v.push_back(static_cast<char>(kEnvelopeVersion));
  PutBigEndian64(&v, last_seq);
  PutOrderedTime(&v, last_unix_ns);
  PutOrderedTime(&v, server_unix_ns);
  v.append(encoded.data(), encoded.size());
  return v;
}

absl::StatusOr<EnvelopeParts> ParseTelemetryEnvelope(absl::string_view value) {
  if (value.size() < kEnvelopeHeaderBytes) {
    return absl::DataLossError(absl::StrCat("telemetry envelope too short: ", value.size()));
  }
  if (static_cast<uint8_t>(value[0]) != kEnvelopeVersion) {
    return absl::DataLossError(absl::StrCat("unknown telemetry envelope version ",
                                            static_cast<int>(static_cast<uint8_t>(value[0]))));
  }
  EnvelopeParts parts;
  parts.last_seq = GetBigEndian64(value.data() + 1);
  parts.last_unix_ns = GetOrderedTime(value.data() + 9);
  parts.server_unix_ns = GetOrderedTime(value.data() + 17);
  parts.encoded = value.substr(kEnvelopeHeaderBytes);
  return parts;
}

absl::StatusOr<TelemetryChunk> ChunkFromKeyValue(absl::string_view key, absl::string_view value) {
  absl::StatusOr<TelemetryKeyParts> k = ParseTelemetryKey(key);
  if (!k.ok()) return k.status();
  absl::StatusOr<EnvelopeParts> v = ParseTelemetryEnvelope(value);
  if (!v.ok()) return v.status();
  TelemetryChunk c;
  c.pump_id = std::string(k->pump_id);
  c.first_seq = k->first_seq;
  c.last_seq = v->last_seq;
  c.first_device_time = absl::FromUnixNanos(k->first_unix_ns);
  c.last_device_time = absl::FromUnixNanos(v->last_unix_ns);
  c.server_time = absl::FromUnixNanos(v->server_unix_ns);
  c.encoded = std::string(v->encoded);
  return c;
}

std::string HeadValue(uint64_t last_seq, int64_t last_unix_ns) {
  std::string v;
  v.push_back(static_cast<char>(kHeadVersion));
  PutBigEndian64(&v, last_seq);
  PutOrderedTime(&v, last_unix_ns);
  return v;
}

absl::StatusOr<PumpHead> ParseHead(absl::string_view pump_id, absl::string_view value) {
  if (value.size() != kHeadBytes || static_cast<uint8_t>(value[0]) != kHeadVersion) {
    return absl::DataLossError(absl::StrCat("malformed head record of pump ", pump_id));
  }
  PumpHead h;
  h.pump_id = std::string(pump_id);
  h.last_seq = GetBigEndian64(value.data() + 1);
  h.last_device_time = absl::FromUnixNanos(GetOrderedTime(value.data() + 9));
  return h;
}

std::string CursorKey(uint64_t cursor) {
  std::string k;
  PutBigEndian64(&k, cursor);
  return k;
}

absl::StatusOr<uint64_t> ParseCursorKey(absl::string_view key) {
  if (key.size() != 8) {
    return absl::DataLossError(absl::StrCat("malformed cursor key of ", key.size(), " bytes"));
  }
  return GetBigEndian64(key.data());
}

std::string GenesisMetaKey(absl::string_view pump_id) { return absl::StrCat("genesis/", pump_id); }

std::string RxHistoryMetaKey(absl::string_view pump_id, uint64_t version) {
  return absl::StrFormat("rx_history/%s/%020d", pump_id, version);
}

std::string PumpMetaPrefix(absl::string_view space, absl::string_view pump_id) {
  std::string k(space);
  k.push_back(static_cast<char>(pump_id.size()));
  k.append(pump_id.data(), pump_id.size());
  return k;
}

std::string InputMetaKey(absl::string_view pump_id, int64_t unix_ns, uint8_t rank, uint64_t tie) {
  std::string k = PumpMetaPrefix(kInputMetaSpace, pump_id);
  PutOrderedTime(&k, unix_ns);
  k.push_back(static_cast<char>(rank));
  PutBigEndian64(&k, tie);
  return k;
}

std::string CheckpointMetaKey(absl::string_view pump_id, int64_t boundary_unix_ns) {
  std::string k = PumpMetaPrefix(kCheckpointMetaSpace, pump_id);
  PutOrderedTime(&k, boundary_unix_ns);
  return k;
}

std::string RefillLogMetaKey(absl::string_view pump_id, int64_t device_unix_ns) {
  std::string k = PumpMetaPrefix(kRefillLogMetaSpace, pump_id);
  PutOrderedTime(&k, device_unix_ns);
  return k;
}

absl::string_view PumpOfMetaKey(absl::string_view key) {
  for (absl::string_view space : {kInputMetaSpace, kCheckpointMetaSpace, kRefillLogMetaSpace}) {
    if (!absl::StartsWith(key, space) || key.size() <= space.size()) continue;
    const size_t len = static_cast<uint8_t>(key[space.size()]);
    return key.substr(space.size() + 1, len);  // clipped when the key is shorter
  }
  if (absl::ConsumePrefix(&key, "genesis/")) return key;
  if (absl::ConsumePrefix(&key, "rx_history/") && key.size() > 21) {
    return key.substr(0, key.size() - 21);  // "/<version, 20 digits>"
  }
  return absl::string_view();
}

void ForEachTelemetryPut(
    const WriteGroup& group, absl::FunctionRef<void(std::string key, std::string value)> chunk,
    absl::FunctionRef<void(absl::string_view pump_id, std::string value)> head) {
  // Merged shard groups often hold several chunks of a pump: walk newest first, so the first
  // chunk seen of a pump gives its head.
  thread_local absl::flat_hash_set<absl::string_view> headed;
  headed.clear();
  for (size_t i = group.telemetry.size(); i-- > 0;) {
    const TelemetryChunk& c = group.telemetry[i];
    const int64_t first_ns = *TimeToUnixNanos(c.first_device_time);  // validated by the caller
    const int64_t last_ns = *TimeToUnixNanos(c.last_device_time);
    const int64_t server_ns = *TimeToUnixNanos(c.server_time);
    chunk(TelemetryKey(c.pump_id, first_ns, c.first_seq),
          TelemetryEnvelope(c.last_seq, last_ns, server_ns, c.encoded));
    if (headed.insert(c.pump_id).second) head(c.pump_id, HeadValue(c.last_seq, last_ns));
  }
  headed.clear();
}

}  // namespace pumptwin::store::keys
