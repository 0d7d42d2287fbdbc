// Byte-level key and value layouts shared by the store backends (docs/storage.md is the spec).
// Pure functions on bytes; thread-safe. Times are int64 nanoseconds since the Unix epoch,
// stored sign-flipped big-endian so that bytewise order equals numeric order.
#ifndef PUMPTWIN_SERVER_STORE_STORE_KEYS_H_
#define PUMPTWIN_SERVER_STORE_STORE_KEYS_H_

#include <cstdint>
#include <string>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/store/store.h"

namespace pumptwin::store::keys {

inline constexpr uint8_t kEnvelopeVersion = 1;
inline constexpr uint8_t kHeadVersion = 1;
inline constexpr size_t kEnvelopeHeaderBytes = 25;
inline constexpr size_t kHeadBytes = 17;
inline constexpr char kFormatVersionKey[] = "pumptwin.store.format_version";
inline constexpr char kFormatVersion[] = "1";

// absl::Time <-> ns; INVALID_ARGUMENT when not representable exactly as int64 ns.
absl::StatusOr<int64_t> TimeToUnixNanos(absl::Time t);

void PutBigEndian64(std::string* dst, uint64_t v);
uint64_t GetBigEndian64(const char* p);
void PutOrderedTime(std::string* dst, int64_t unix_ns);  // sign-flipped big-endian
int64_t GetOrderedTime(const char* p);

// Telemetry key: u8 len | pump id | ordered first time | BE first seq.
std::string TelemetryKey(absl::string_view pump_id, int64_t first_unix_ns, uint64_t first_seq);
// u8 len | pump id: every key of the pump starts with it.
std::string TelemetryPrefix(absl::string_view pump_id);
// The smallest key greater than every key of the pump (for upper bounds / SeekForPrev).
std::string TelemetryPrefixEnd(absl::string_view pump_id);

struct TelemetryKeyParts {
  absl::string_view pump_id;
  int64_t first_unix_ns = 0;
  uint64_t first_seq = 0;
};
absl::StatusOr<TelemetryKeyParts> ParseTelemetryKey(absl::string_view key);

// Envelope: u8 version | BE last seq | ordered last time | ordered server time | chunk.
std::string TelemetryEnvelope(uint64_t last_seq, int64_t last_unix_ns, int64_t server_unix_ns,
                              absl::string_view encoded);
struct EnvelopeParts {
  uint64_t last_seq = 0;
  int64_t last_unix_ns = 0;
  int64_t server_unix_ns = 0;
  absl::string_view encoded;
};
absl::StatusOr<EnvelopeParts> ParseTelemetryEnvelope(absl::string_view value);

// Rebuilds the chunk from a stored key + envelope (DATA_LOSS when malformed).
absl::StatusOr<TelemetryChunk> ChunkFromKeyValue(absl::string_view key, absl::string_view value);

// The puts a group's telemetry makes, for backends storing these layouts: `chunk(key,
// envelope)` per chunk, newest first, and `head(pump id, head value)` once per pump, the head
// of its last chunk in the group (chunks come in seq order). The group must be validated.
void ForEachTelemetryPut(
    const WriteGroup& group, absl::FunctionRef<void(std::string key, std::string value)> chunk,
    absl::FunctionRef<void(absl::string_view pump_id, std::string value)> head);

// Runs `scan` (which feeds stored key/value pairs to its callback) and hands each entry,
// decoded by `parse`, to `fn`; stops at the first entry that does not decode and returns its
// status, else the scan's.
template <typename T, typename Scan, typename Parse, typename Fn>
absl::Status ScanDecoded(Scan&& scan, Parse&& parse, Fn&& fn) {
  absl::Status parse_status;
  absl::Status scanned = scan([&](absl::string_view k, absl::string_view v) {
    absl::StatusOr<T> item = parse(k, v);
    if (!item.ok()) {
      parse_status = item.status();
      return false;
    }
    return fn(*std::move(item));
  });
  return scanned.ok() ? parse_status : scanned;
}

// Head: u8 version | BE last seq | ordered last time.
std::string HeadValue(uint64_t last_seq, int64_t last_unix_ns);
absl::StatusOr<PumpHead> ParseHead(absl::string_view pump_id, absl::string_view value);

// 8-byte big-endian cursor keys (alerts, audit).
std::string CursorKey(uint64_t cursor);
absl::StatusOr<uint64_t> ParseCursorKey(absl::string_view key);

// Meta keys (docs/storage.md, "Meta"): every one is spelled here. The event-time inputs,
// checkpoints and refill-log entries get their values and time types from
// server/core/event_inputs.h, which builds their keys with these.
// "genesis/<pump id>": the pump's twin as registered, before any telemetry.
std::string GenesisMetaKey(absl::string_view pump_id);
// "rx_history/<pump id>/<version, 20 digits>": one stored prescription version.
std::string RxHistoryMetaKey(absl::string_view pump_id, uint64_t version);
// The registry's probe write after a failed commit (value: the time of the probe).
inline constexpr char kProbeMetaKey[] = "probe";

// Per-pump meta key spaces: "<space>" u8 len | pump id | ordered time ns [| ...]; within a
// pump, bytewise order == time order.
inline constexpr char kInputMetaSpace[] = "input/";
inline constexpr char kCheckpointMetaSpace[] = "ckpt/";
inline constexpr char kRefillLogMetaSpace[] = "rlog/";
// "<space>" u8 len | pump id: every key of the pump in that space starts with it.
std::string PumpMetaPrefix(absl::string_view space, absl::string_view pump_id);
// "input/" u8 len | pump id | ordered time ns | u8 rank | BE tie: one event-time input.
std::string InputMetaKey(absl::string_view pump_id, int64_t unix_ns, uint8_t rank, uint64_t tie);
// "ckpt/" u8 len | pump id | ordered boundary ns: one fold checkpoint.
std::string CheckpointMetaKey(absl::string_view pump_id, int64_t boundary_unix_ns);
// "rlog/" u8 len | pump id | ordered device time ns: one unmatched refill-log entry.
std::string RefillLogMetaKey(absl::string_view pump_id, int64_t device_unix_ns);
// The pump a meta key (or a per-pump key prefix) belongs to; "" for the store-wide keys
// (format version, probe).
absl::string_view PumpOfMetaKey(absl::string_view key);

}  // namespace pumptwin::store::keys

#endif  // PUMPTWIN_SERVER_STORE_STORE_KEYS_H_
