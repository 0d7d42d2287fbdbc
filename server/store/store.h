// Store: the durable store behind ingest, the registry and the API (format: docs/storage.md).
// Engine-neutral on purpose: no RocksDB (or PostgreSQL) type appears here, and every payload
// except telemetry chunk metadata is opaque bytes owned by its producer.
// Thread-safety: every method may be called concurrently from any thread; one read call sees
// one consistent point in time. Commit is meant for one caller (the GroupCommitter).
#ifndef PUMPTWIN_SERVER_STORE_STORE_H_
#define PUMPTWIN_SERVER_STORE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pumptwin::store {

inline constexpr size_t kMaxPumpIdBytes = 255;

// One encoded run of samples of one pump (see telemetry_codec.h). first/last describe the
// samples inside `encoded`; the store indexes and filters on them without decoding.
struct TelemetryChunk {
  std::string pump_id;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  absl::Time first_device_time = absl::UnixEpoch();
  absl::Time last_device_time = absl::UnixEpoch();
  // Server time the samples were applied to the twin with (one per committed group):
  // recovery replays with it, so the replayed twin is byte-identical.
  absl::Time server_time = absl::UnixEpoch();
  std::string encoded;

  bool operator==(const TelemetryChunk&) const = default;
};

// Highest stored telemetry of a pump: the gateway resume point and the replay boundary.
struct PumpHead {
  std::string pump_id;
  uint64_t last_seq = 0;
  absl::Time last_device_time = absl::UnixEpoch();

  bool operator==(const PumpHead&) const = default;
};

struct WriteGroup;

// The tail of the alert log and the audit chain as the committing transaction sees it.
struct LogTail {
  uint64_t last_cursor = 0;       // 0: no alert event yet
  uint64_t last_audit_seq = 0;    // 0: no audit record yet
  std::string last_audit_record;  // its stored bytes ("" when none)
};
// Appends alert events and audit records to `out`, numbered right after `tail`, and moves
// `tail` past them. Runs on the committing thread, in submission order, once the store holds
// the log's lock (several writers append to one log: cluster mode). An error (the tail cannot
// be read: a damaged store) fails the commit, nothing of it written.
using LogAppendFn = std::function<absl::Status(LogTail& tail, WriteGroup& out)>;

// Everything that must become durable together. Applied in order: a later put of the same key
// wins. Telemetry chunks of one pump must be in seq order (also across groups).
struct WriteGroup {
  std::vector<TelemetryChunk> telemetry;
  std::vector<std::pair<std::string, std::string>> snapshots;  // pump_id -> twin snapshot
  std::vector<std::pair<std::string, std::string>> pumps;      // pump_id -> registration
  std::vector<std::pair<uint64_t, std::string>> alerts;        // global cursor (>0) -> event
  std::vector<std::pair<uint64_t, std::string>> audit;         // global seq (>0) -> record
  std::vector<std::pair<std::string, std::string>> meta;       // name -> bytes
  // Meta key ranges [begin, end) erased before this group's meta puts (pruning of old
  // twin checkpoints; docs/storage.md "Event-time inputs and checkpoints").
  std::vector<std::pair<std::string, std::string>> meta_erase_ranges;
  // Log entries numbered at commit time (see LogAppendFn), written after `alerts`/`audit`.
  std::vector<LogAppendFn> log_appends;

  bool empty() const;
  // Payload bytes (keys + values), for queue bounds and metrics.
  size_t ByteSize() const;
  // Moves every entry of `other` after this group's entries (order preserved).
  void Append(WriteGroup&& other);
};

// Structural checks every backend applies before writing anything: pump ids 1..255 bytes,
// first <= last (seq and time), non-empty chunk bytes, cursors > 0, finite times.
absl::Status ValidateWriteGroup(const WriteGroup& group);

// Scan callbacks return true to continue, false to stop early (the scan then returns OK).
using KeyValueFn = std::function<bool(absl::string_view key, absl::string_view value)>;
using ChunkFn = std::function<bool(const TelemetryChunk& chunk)>;
using HeadFn = std::function<bool(const PumpHead& head)>;

class Store {
 public:
  virtual ~Store() = default;

  // One atomic write of the whole group, on stable storage (fsync) before OK is returned.
  // On error nothing of the group is visible; after a restart it is all-or-nothing.
  // UNAVAILABLE: disk full / I/O error (retry later); INVALID_ARGUMENT: malformed group.
  virtual absl::Status Commit(const WriteGroup& group) = 0;

  // Registrations. NOT_FOUND when absent.
  virtual absl::StatusOr<std::string> GetPump(absl::string_view pump_id) const = 0;
  virtual absl::Status ScanPumps(const KeyValueFn& fn) const = 0;

  // Latest twin snapshot. NOT_FOUND when absent. ScanAllSnapshots is the recovery scan.
  virtual absl::StatusOr<std::string> GetSnapshot(absl::string_view pump_id) const = 0;
  virtual absl::Status ScanAllSnapshots(const KeyValueFn& fn) const = 0;

  // Highest stored seq per pump (kept even when retention drops the chunks).
  virtual absl::StatusOr<PumpHead> GetPumpHead(absl::string_view pump_id) const = 0;
  virtual absl::Status ScanPumpHeads(const HeadFn& fn) const = 0;

  // Chunks of `pump_id` overlapping [from, to), in key (time, seq) order.
  virtual absl::Status ScanTelemetry(absl::string_view pump_id, absl::Time from, absl::Time to,
                                     const ChunkFn& fn) const = 0;
  // Chunks of `pump_id` with last_seq > after_seq, in seq order (recovery replay). Cheap when
  // they are few: it walks backwards from the pump's newest chunk.
  virtual absl::Status ScanTelemetryAfterSeq(absl::string_view pump_id, uint64_t after_seq,
                                             const ChunkFn& fn) const = 0;

  // Up to `limit` entries with cursor/seq strictly greater than `after`, ascending.
  virtual absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> ScanAlertsAfter(
      uint64_t after_cursor, size_t limit) const = 0;
  virtual absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> ScanAuditAfter(
      uint64_t after_seq, size_t limit) const = 0;
  // 0 when there is none yet.
  virtual absl::StatusOr<uint64_t> LastAlertCursor() const = 0;
  virtual absl::StatusOr<uint64_t> LastAuditSeq() const = 0;

  // NOT_FOUND when absent.
  virtual absl::StatusOr<std::string> GetMeta(absl::string_view name) const = 0;
  // Meta entries with begin <= name < end, in bytewise name order.
  virtual absl::Status ScanMetaRange(absl::string_view begin, absl::string_view end,
                                     const KeyValueFn& fn) const = 0;

  // Engine estimates for the metrics (docs/metrics.md). Default: UNIMPLEMENTED.
  struct Sizes {
    uint64_t live_data_bytes = 0;           // estimated live data
    uint64_t pending_compaction_bytes = 0;  // estimated bytes compaction still has to rewrite
    uint64_t memtable_bytes = 0;            // memory held by memtables (not yet flushed)
  };
  virtual absl::StatusOr<Sizes> ApproximateSizes() const {
    return absl::UnimplementedError("this store has no size estimates");
  }
  // Writes every memtable out to the engine's files and waits (the memory they held is
  // freed; a restart replays no WAL for it). Default: UNIMPLEMENTED.
  virtual absl::Status FlushMemtables() {
    return absl::UnimplementedError("this store has no memtables to flush");
  }
  // Online backup: writes a consistent, openable copy of the store (every commit that
  // returned before the call started, possibly later ones) into `dir`, which must not exist.
  // Default: UNIMPLEMENTED.
  virtual absl::Status Checkpoint(const std::string& dir) {
    return absl::UnimplementedError(absl::StrCat("this store cannot checkpoint to ", dir));
  }
};

// Runs the group's log_appends against the store's current tail (read here, outside any
// transaction: right only while this is the store's one writer) and moves their entries into
// `alerts`/`audit`. The backends without a log lock of their own commit through this.
absl::Status ResolveLogAppends(const Store& store, WriteGroup& group);

// Writes the store format version (store_keys.h) into a new store, or checks the one of an
// existing store: FAILED_PRECONDITION when it is another. `where` names the store in messages.
absl::Status EnsureFormatVersion(Store& store, absl::string_view where);

}  // namespace pumptwin::store

#endif  // PUMPTWIN_SERVER_STORE_STORE_H_
