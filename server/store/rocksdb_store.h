// RocksDbStore: the embedded Store backend (one RocksDB in `path`; layout in docs/storage.md).
// Owns the DB; `env` (tests: fault injection) and the clock are injected, never owned, and no
// clock is read inside. RocksDB types stay out of this header (forward declarations only).
// Thread-safety: all methods are thread-safe; Commit is meant for the GroupCommitter thread.
// After a write error Commit recovers in place (Resume, or close + reopen for fatal errors);
// reads issued while it reopens get UNAVAILABLE rather than blocking.
#ifndef PUMPTWIN_SERVER_STORE_ROCKSDB_STORE_H_
#define PUMPTWIN_SERVER_STORE_ROCKSDB_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/store.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class Env;
class Status;
}  // namespace rocksdb

namespace pumptwin::store {

struct RocksDbStoreOptions {
  std::string path;             // the data directory (--data_dir)
  rocksdb::Env* env = nullptr;  // not owned; nullptr = rocksdb::Env::Default()
  // Server clock for retention; must be set (and thread-safe) when retention is finite.
  std::function<absl::Time()> now;
  absl::Duration telemetry_retention = absl::InfiniteDuration();
  bool create_if_missing = true;
  // Flush the memtables when the store closes, so the next open replays no WAL (restart
  // time). Tests that model a crash (data only in the WAL) turn it off.
  bool flush_on_close = true;
  bool verify_checksums_on_open = false;  // read every SST block once at open (slow, thorough)
  size_t block_cache_bytes = size_t{64} << 20;
  // All column families' memtables together (RocksDB db_write_buffer_size): when they
  // hold more, the largest is flushed. Bounds the store's memory whatever the fleet size.
  size_t memtable_budget_bytes = size_t{64} << 20;
  int max_background_jobs = 2;
  // Obsolete WAL and SST files are truncated this many bytes at a time before they are
  // unlinked, so that no journal commit (each group commit's fsync waits for one) frees a
  // whole file at once (GradualDeleteFileSystem). 0: unlinked at once. Only with `env` unset.
  uint64_t delete_step_bytes = uint64_t{4} << 20;
};

class RocksDbStore final : public Store {
 public:
  // DATA_LOSS: corrupt WAL/MANIFEST/SST (message names the file); FAILED_PRECONDITION: an
  // unknown store format version; UNAVAILABLE: I/O error; INVALID_ARGUMENT: bad options.
  static absl::StatusOr<std::unique_ptr<RocksDbStore>> Open(RocksDbStoreOptions options);
  ~RocksDbStore() override;
  RocksDbStore(const RocksDbStore&) = delete;
  RocksDbStore& operator=(const RocksDbStore&) = delete;

  absl::Status Commit(const WriteGroup& group) override;
  absl::StatusOr<std::string> GetPump(absl::string_view pump_id) const override;
  absl::Status ScanPumps(const KeyValueFn& fn) const override;
  absl::StatusOr<std::string> GetSnapshot(absl::string_view pump_id) const override;
  absl::Status ScanAllSnapshots(const KeyValueFn& fn) const override;
  absl::StatusOr<PumpHead> GetPumpHead(absl::string_view pump_id) const override;
  absl::Status ScanPumpHeads(const HeadFn& fn) const override;
  absl::Status ScanTelemetry(absl::string_view pump_id, absl::Time from, absl::Time to,
                             const ChunkFn& fn) const override;
  absl::Status ScanTelemetryAfterSeq(absl::string_view pump_id, uint64_t after_seq,
                                     const ChunkFn& fn) const override;
  absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> ScanAlertsAfter(
      uint64_t after_cursor, size_t limit) const override;
  absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> ScanAuditAfter(
      uint64_t after_seq, size_t limit) const override;
  absl::StatusOr<uint64_t> LastAlertCursor() const override;
  absl::StatusOr<uint64_t> LastAuditSeq() const override;
  absl::StatusOr<std::string> GetMeta(absl::string_view name) const override;
  absl::Status ScanMetaRange(absl::string_view begin, absl::string_view end,
                             const KeyValueFn& fn) const override;
  // Sums "rocksdb.estimate-live-data-size" / "estimate-pending-compaction-bytes" over the
  // column families.
  absl::StatusOr<Sizes> ApproximateSizes() const override;
  absl::Status FlushMemtables() override;
  // Entries (puts) in the memtables, over all column families: what a commit really wrote
  // ("rocksdb.num-entries-active-mem-table" + "num-entries-imm-mem-tables"). Tests.
  absl::StatusOr<uint64_t> MemtableEntries() const;
  // rocksdb::Checkpoint (hard links to the SSTs when `dir` is on the same file system, the
  // WAL copied): opens as a complete store, e.g. with `pumptwind --data_dir=dir`.
  absl::Status Checkpoint(const std::string& dir) override;

  // Flushes memtables and compacts every column family down to the bottom level, which runs
  // the retention filter over all telemetry (operators, tests).
  absl::Status CompactAll();
  // Recoveries from write errors so far: in place (DB::Resume) and by close + reopen.
  int64_t resume_count() const { return resumes_.load(); }
  int64_t reopen_count() const { return reopens_.load(); }
  // Human-readable compression in use per column family, e.g. "telemetry=LZ4+ZSTD".
  const std::string& compression_description() const { return compression_description_; }

 private:
  enum Cf { kPumps, kState, kHeads, kTelemetry, kAlerts, kAudit, kMeta, kCfCount };
  struct OpenConfig;  // everything DB::Open needs, kept for reopening
  struct Db;          // an open DB and its column family handles
  class ReadLease;    // keeps the Db alive and unchanged while a call uses it

  RocksDbStore();
  absl::Status OpenDb() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RecoverFromWriteError() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ProbeWritable() const;
  absl::StatusOr<std::string> Get(Cf c, absl::string_view key, absl::string_view what) const;
  absl::Status ScanAll(Cf c, const KeyValueFn& fn) const;
  absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> ScanCursor(Cf c, uint64_t after,
                                                                           size_t limit) const;
  absl::StatusOr<uint64_t> LastCursor(Cf c) const;

  std::unique_ptr<OpenConfig> config_;
  std::string compression_description_;
  mutable absl::Mutex mu_;
  std::unique_ptr<Db> db_ ABSL_GUARDED_BY(mu_);
  mutable int active_calls_ ABSL_GUARDED_BY(mu_) = 0;
  bool reopening_ ABSL_GUARDED_BY(mu_) = false;
  // Set after a failed write: the next Commit first recovers (Resume or reopen).
  std::atomic<bool> needs_recovery_{false};
  std::atomic<int64_t> resumes_{0};
  std::atomic<int64_t> reopens_{0};
};

// RocksDB status -> absl::Status with `context` prefixed (mapping table in docs/storage.md).
absl::Status FromRocksDb(const rocksdb::Status& status, absl::string_view context);

}  // namespace pumptwin::store

#endif  // PUMPTWIN_SERVER_STORE_ROCKSDB_STORE_H_
