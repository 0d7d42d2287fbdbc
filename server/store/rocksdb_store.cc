// RocksDbStore: column families, one sync'd WriteBatch per Commit, bounded iterators for reads.
#include "server/store/rocksdb_store.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "rocksdb/cache.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/listener.h"
#include "rocksdb/options.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/write_batch.h"
#include "server/store/gradual_delete_fs.h"
#include "server/store/retention_filter.h"
#include "server/store/store_keys.h"

namespace pumptwin::store {
namespace {

constexpr const char* kCfNames[] = {"pumps",  "state", "heads", "telemetry",
                                    "alerts", "audit", "meta"};

rocksdb::Slice ToSlice(absl::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
absl::string_view ToView(const rocksdb::Slice& s) { return absl::string_view(s.data(), s.size()); }

int64_t SaturatedNanos(absl::Time t) { return absl::ToUnixNanos(t); }

bool Supported(rocksdb::CompressionType type) {
  static const std::vector<rocksdb::CompressionType> supported =
      rocksdb::GetSupportedCompressions();
  return std::find(supported.begin(), supported.end(), type) != supported.end();
}

}  // namespace

absl::Status FromRocksDb(const rocksdb::Status& s, absl::string_view context) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = absl::StrCat(context, ": ", s.ToString());
  if (s.IsNoSpace()) return absl::UnavailableError(absl::StrCat("disk full: ", msg));
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  if (s.IsIOError() || s.IsBusy() || s.IsTimedOut() || s.IsTryAgain() || s.IsAborted() ||
      s.IsIncomplete() || s.IsShutdownInProgress()) {
    return absl::UnavailableError(msg);
  }
  return absl::InternalError(msg);
}

// Recovery from write errors is driven by Commit (Resume or reopen), never by RocksDB's own
// background retries, so that "the next commit after the disk recovered works" is deterministic.
class ManualRecoveryListener final : public rocksdb::EventListener {
 public:
  const char* Name() const override { return "pumptwin.ManualRecovery"; }
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason /*reason*/, rocksdb::Status bg_error,
                            bool* auto_recovery) override {
    bg_error.PermitUncheckedError();
    *auto_recovery = false;
  }
};

struct RocksDbStore::OpenConfig {
  std::unique_ptr<rocksdb::Env> own_env;  // db_options.env when the options gave none
  std::string path;
  rocksdb::DBOptions db_options;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  bool verify_checksums_on_open = false;
  bool flush_on_close = true;
};

struct RocksDbStore::Db {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // [0] = default
  rocksdb::ColumnFamilyHandle* cf(Cf c) const { return handles[c + 1]; }
  bool flush_on_close = true;
  ~Db() {
    if (!db) return;
    // Flush the memtables on a clean close: the WAL is then empty and the next open does
    // not replay it (restart time). Best effort: after a crash the WAL replay does it.
    if (flush_on_close) {
      rocksdb::FlushOptions flush;
      flush.wait = true;
      db->Flush(flush, handles).PermitUncheckedError();
    }
    for (rocksdb::ColumnFamilyHandle* h : handles)
      db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    db->Close().PermitUncheckedError();
  }
};

// Counts the call as active so that a reopen waits for it; fails fast while reopening.
class RocksDbStore::ReadLease {
 public:
  explicit ReadLease(const RocksDbStore* store) : store_(store) {
    absl::MutexLock lock(&store->mu_);
    if (store->reopening_ || !store->db_) return;
    ++store->active_calls_;
    db_ = store->db_.get();
  }
  ~ReadLease() {
    if (db_ == nullptr) return;
    absl::MutexLock lock(&store_->mu_);
    --store_->active_calls_;
  }
  ReadLease(const ReadLease&) = delete;
  ReadLease& operator=(const ReadLease&) = delete;

  absl::Status status() const {
    return db_ != nullptr ? absl::OkStatus()
                          : absl::UnavailableError("store is reopening after a write error");
  }
  rocksdb::DB* db() const { return db_->db.get(); }
  rocksdb::ColumnFamilyHandle* cf(Cf c) const { return db_->cf(c); }

 private:
  const RocksDbStore* const store_;
  Db* db_ = nullptr;
};

namespace {

// The pump-id prefix of a telemetry key ([L][L bytes of pump id][time][seq]).
class PumpIdPrefix final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "pumptwin.TelemetryPumpIdPrefix"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), 1 + static_cast<uint8_t>(key[0]));
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return !key.empty() && key.size() >= 1u + static_cast<uint8_t>(key[0]);
  }
};

}  // namespace

RocksDbStore::RocksDbStore() : config_(std::make_unique<OpenConfig>()) {}

absl::StatusOr<std::unique_ptr<RocksDbStore>> RocksDbStore::Open(RocksDbStoreOptions options) {
  if (options.path.empty()) return absl::InvalidArgumentError("store path is empty");
  if (options.telemetry_retention != absl::InfiniteDuration() && !options.now) {
    return absl::InvalidArgumentError("a finite telemetry retention needs an injected clock");
  }
  auto store = std::unique_ptr<RocksDbStore>(new RocksDbStore());
  OpenConfig& config = *store->config_;
  config.path = options.path;
  config.verify_checksums_on_open = options.verify_checksums_on_open;
  config.flush_on_close = options.flush_on_close;
  rocksdb::DBOptions& db_options = config.db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = options.create_if_missing;
  db_options.paranoid_checks = true;
  // A torn last WAL record (crash mid-write, never acknowledged) is dropped; any other
  // corruption fails Open instead of silently dropping acknowledged groups after it.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  db_options.max_background_jobs = options.max_background_jobs;
  db_options.max_bgerror_resume_count = 0;
  db_options.listeners.push_back(std::make_shared<ManualRecoveryListener>());
  db_options.keep_log_file_num = 5;
  db_options.db_write_buffer_size = options.memtable_budget_bytes;
  if (options.env != nullptr) {
    db_options.env = options.env;
  } else if (options.delete_step_bytes > 0) {
    config.own_env = rocksdb::NewCompositeEnv(std::make_shared<GradualDeleteFileSystem>(
        rocksdb::FileSystem::Default(), options.delete_step_bytes));
    db_options.env = config.own_env.get();
  }

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  const auto table_factory =
      std::shared_ptr<rocksdb::TableFactory>(rocksdb::NewBlockBasedTableFactory(table));
  const bool lz4 = Supported(rocksdb::kLZ4Compression);
  const bool zstd = Supported(rocksdb::kZSTD);
  config.cfs.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  std::vector<std::string> described;
  for (int c = 0; c < kCfCount; ++c) {
    rocksdb::ColumnFamilyOptions cf_options;
    cf_options.table_factory = table_factory;
    cf_options.compression = lz4 ? rocksdb::kLZ4Compression : rocksdb::kNoCompression;
    std::string what = lz4 ? "LZ4" : "none";
    if (c == kTelemetry) {
      // A pump's chunks arrive in key order (time, then seq): the memtable remembers where
      // it last inserted for each pump id and starts there, instead of searching the whole
      // skiplist per chunk (memtable inserts were a third of a commit's CPU). Insert-only:
      // reads keep their total order. Costs ~250 bytes per pump in the current memtable.
      cf_options.memtable_insert_with_hint_prefix_extractor = std::make_shared<PumpIdPrefix>();
      if (zstd) {
        cf_options.bottommost_compression = rocksdb::kZSTD;
        what += "+ZSTD";
      }
      if (options.telemetry_retention != absl::InfiniteDuration()) {
        cf_options.compaction_filter_factory = std::make_shared<TelemetryRetentionFilterFactory>(
            options.now, options.telemetry_retention);
      }
    }
    described.push_back(absl::StrCat(kCfNames[c], "=", what));
    config.cfs.emplace_back(kCfNames[c], cf_options);
  }
  store->compression_description_ = absl::StrJoin(described, " ");

  if (absl::Status s = store->OpenDb(); !s.ok()) return s;
  if (absl::Status s = EnsureFormatVersion(*store, absl::StrCat("store ", options.path)); !s.ok()) {
    return s;
  }
  return store;
}

absl::Status RocksDbStore::OpenDb() {
  auto db = std::make_unique<Db>();
  db->flush_on_close = config_->flush_on_close;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      rocksdb::DB::Open(config_->db_options, config_->path, config_->cfs, &db->handles, &raw);
  if (s.IsCorruption()) {
    return absl::DataLossError(absl::StrCat(
        "opening store ", config_->path, ": ", s.ToString(),
        " (damaged WAL, MANIFEST or table file; refusing to start rather than serve or drop "
        "acknowledged data; see docs/storage.md, Failure behaviour)"));
  }
  if (!s.ok()) return FromRocksDb(s, absl::StrCat("opening store ", config_->path));
  db->db.reset(raw);
  if (config_->verify_checksums_on_open) {
    s = raw->VerifyChecksum();
    if (!s.ok()) return FromRocksDb(s, absl::StrCat("verifying store ", config_->path));
  }
  absl::MutexLock lock(&mu_);
  db_ = std::move(db);
  return absl::OkStatus();
}

RocksDbStore::~RocksDbStore() = default;

// Writes and syncs a small file next to the DB: tells whether the disk takes writes again
// before anything is closed, so that reads keep being served while it still fails.
absl::Status RocksDbStore::ProbeWritable() const {
  rocksdb::Env* env = config_->db_options.env;
  const std::string probe = config_->path + "/pumptwin_write_probe";
  std::unique_ptr<rocksdb::WritableFile> file;
  rocksdb::Status s = env->NewWritableFile(probe, &file, rocksdb::EnvOptions());
  if (s.ok()) s = file->Append(rocksdb::Slice(std::string(4096, 'p')));
  if (s.ok()) s = file->Sync();
  if (file) {
    rocksdb::Status closed = file->Close();
    if (s.ok()) s = closed;
  }
  env->DeleteFile(probe).PermitUncheckedError();
  return FromRocksDb(s, "write probe");
}

absl::Status RocksDbStore::RecoverFromWriteError() {
  if (absl::Status s = ProbeWritable(); !s.ok()) return s;
  {
    ReadLease lease(this);
    if (absl::Status s = lease.status(); !s.ok()) return s;
    // NoSpace and other recoverable errors: flush memtables to a fresh WAL and go on.
    rocksdb::Status resumed = lease.db()->Resume();
    if (resumed.ok()) {
      resumes_.fetch_add(1);
      return absl::OkStatus();
    }
    if (resumed.IsBusy()) return FromRocksDb(resumed, "recovering from a write error");
  }
  // A fatal error (e.g. EIO on the WAL): close and reopen, which replays the WAL.
  std::unique_ptr<Db> old;
  {
    absl::MutexLock lock(&mu_);
    reopening_ = true;
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return active_calls_ == 0; };
    mu_.Await(absl::Condition(&idle));
    old = std::move(db_);
  }
  old.reset();  // closes the failed instance (releases the LOCK file)
  absl::Status reopened = OpenDb();
  if (reopened.ok()) reopens_.fetch_add(1);
  absl::MutexLock lock(&mu_);
  reopening_ = false;
  return reopened;
}

absl::Status RocksDbStore::Commit(const WriteGroup& group) {
  if (group.empty()) return absl::OkStatus();
  if (absl::Status s = ValidateWriteGroup(group); !s.ok()) return s;
  if (needs_recovery_.load()) {
    if (absl::Status s = RecoverFromWriteError(); !s.ok()) {
      return absl::UnavailableError(absl::StrCat("store still failing: ", s.message()));
    }
    needs_recovery_.store(false);
  }
  ReadLease lease(this);
  if (absl::Status s = lease.status(); !s.ok()) return s;
  rocksdb::WriteBatch batch;
  // One put per chunk, and one head put per pump (the head of its last chunk).
  keys::ForEachTelemetryPut(
      group,
      [&](std::string key, std::string value) { batch.Put(lease.cf(kTelemetry), key, value); },
      [&](absl::string_view pump_id, std::string value) {
        batch.Put(lease.cf(kHeads), ToSlice(pump_id), value);
      });
  for (const auto& [k, v] : group.snapshots) batch.Put(lease.cf(kState), k, v);
  for (const auto& [k, v] : group.pumps) batch.Put(lease.cf(kPumps), k, v);
  for (const auto& [k, v] : group.alerts) batch.Put(lease.cf(kAlerts), keys::CursorKey(k), v);
  for (const auto& [k, v] : group.audit) batch.Put(lease.cf(kAudit), keys::CursorKey(k), v);
  for (const auto& [b, e] : group.meta_erase_ranges) {
    if (b < e) batch.DeleteRange(lease.cf(kMeta), b, e);
  }
  for (const auto& [k, v] : group.meta) batch.Put(lease.cf(kMeta), k, v);
  rocksdb::WriteOptions write_options;
  write_options.sync = true;
  rocksdb::Status s = lease.db()->Write(write_options, &batch);
  if (!s.ok()) {
    needs_recovery_.store(true);
    return FromRocksDb(s, "committing write group");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RocksDbStore::Get(Cf c, absl::string_view key,
                                              absl::string_view what) const {
  ReadLease lease(this);
  if (absl::Status s = lease.status(); !s.ok()) return s;
  std::string value;
  rocksdb::Status s = lease.db()->Get(rocksdb::ReadOptions(), lease.cf(c), ToSlice(key), &value);
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("no ", what, " for ", key));
  if (!s.ok()) return FromRocksDb(s, absl::StrCat("reading ", what, " of ", key));
  return value;
}

absl::Status RocksDbStore::ScanAll(Cf c, const KeyValueFn& fn) const {
  ReadLease lease(this);
  if (absl::Status s = lease.status(); !s.ok()) return s;
  // Whole-CF scans (recovery) read every block once: large readahead, and do not evict the
  // hot working set from the block cache.
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  ro.readahead_size = size_t{4} << 20;
  std::unique_ptr<rocksdb::Iterator> it(lease.db()->NewIterator(ro, lease.cf(c)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (!fn(ToView(it->key()), ToView(it->value()))) return absl::OkStatus();
  }
  return FromRocksDb(it->status(), absl::StrCat("scanning ", kCfNames[c]));
}

absl::StatusOr<std::string> RocksDbStore::GetPump(absl::string_view pump_id) const {
  return Get(kPumps, pump_id, "pump");
}
absl::Status RocksDbStore::ScanPumps(const KeyValueFn& fn) const { return ScanAll(kPumps, fn); }
absl::StatusOr<std::string> RocksDbStore::GetSnapshot(absl::string_view pump_id) const {
  return Get(kState, pump_id, "snapshot");
}
absl::Status RocksDbStore::ScanAllSnapshots(const KeyValueFn& fn) const {
  return ScanAll(kState, fn);
}
absl::StatusOr<std::string> RocksDbStore::GetMeta(absl::string_view name) const {
  return Get(kMeta, name, "meta");
}

absl::Status RocksDbStore::ScanMetaRange(absl::string_view begin, absl::string_view end,
                                         const KeyValueFn& fn) const {
  if (!(begin < end)) return absl::OkStatus();
  const rocksdb::Slice lower_slice(begin.data(), begin.size());
  const rocksdb::Slice upper_slice(end.data(), end.size());
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lower_slice;
  ro.iterate_upper_bound = &upper_slice;
  ReadLease lease(this);
  if (absl::Status s = lease.status(); !s.ok()) return s;
  std::unique_ptr<rocksdb::Iterator> it(lease.db()->NewIterator(ro, lease.cf(kMeta)));
  for (it->Seek(lower_slice); it->Valid(); it->Next()) {
    if (!fn(ToView(it->key()), ToView(it->value()))) return absl::OkStatus();
  }
  return FromRocksDb(it->status(), "scanning meta");
}

absl::StatusOr<PumpHead> RocksDbStore::GetPumpHead(absl::string_view pump_id) const {
  absl::StatusOr<std::string> v = Get(kHeads, pump_id, "telemetry head");
  if (!v.ok()) return v.status();
  return keys::ParseHead(pump_id, *v);
}

absl::Status RocksDbStore::ScanPumpHeads(const HeadFn& fn) const {
  return keys::ScanDecoded<PumpHead>([&](const KeyValueFn& kv) { return ScanAll(kHeads, kv); },
                                     keys::ParseHead, fn);
}

absl::Status RocksDbStore::ScanTelemetry(absl::string_view pump_id, absl::Time from, absl::Time to,
                                         const ChunkFn& fn) const {
  if (from >= to) return absl::OkStatus();
  const std::string lower = keys::TelemetryPrefix(pump_id);
  const std::string upper = keys::TelemetryPrefixEnd(pump_id);
  const rocksdb::Slice lower_slice(lower), upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lower_slice;
  ro.iterate_upper_bound = &upper_slice;
  ReadLease lease(this);
  if (absl::Status s = lease.status(); !s.ok()) return s;
  std::unique_ptr<rocksdb::Iterator> it(lease.db()->NewIterator(ro, lease.cf(kTelemetry)));
  // The chunk starting at or before `from` may still cover it: start from there.
  const std::string start = keys::TelemetryKey(pump_id, SaturatedNanos(from), 0);
  it->SeekForPrev(start);
  if (!it->Valid()) it->Seek(start);
  for (; it->Valid(); it->Next()) {
    absl::StatusOr<TelemetryChunk> c =
        keys::ChunkFromKeyValue(ToView(it->key()), ToView(it->value()));
    if (!c.ok()) return c.status();
    if (c->first_device_time >= to) break;
    if (c->last_device_time < from) continue;
    if (!fn(*c)) return absl::OkStatus();
  }
  return FromRocksDb(it->status(), absl::StrCat("scanning telemetry of ", pump_id));
}

absl::Status RocksDbStore::ScanTelemetryAfterSeq(absl::string_view pump_id, uint64_t after_seq,
                                                 const ChunkFn& fn) const {
  const std::string lower = keys::TelemetryPrefix(pump_id);
  const std::string upper = keys::TelemetryPrefixEnd(pump_id);
  const rocksdb::Slice lower_slice(lower), upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lower_slice;
  ro.iterate_upper_bound = &upper_slice;
  ReadLease lease(this);
  if (absl::Status s = lease.status(); !s.ok()) return s;
  std::unique_ptr<rocksdb::Iterator> it(lease.db()->NewIterator(ro, lease.cf(kTelemetry)));
  std::vector<TelemetryChunk> later;  // newest first
  for (it->SeekToLast(); it->Valid(); it->Prev()) {
    absl::StatusOr<TelemetryChunk> c =
        keys::ChunkFromKeyValue(ToView(it->key()), ToView(it->value()));
    if (!c.ok()) return c.status();
    if (c->last_seq <= after_seq) break;
    later.push_back(*std::move(c));
  }
  if (absl::Status s = FromRocksDb(it->status(), absl::StrCat("scanning telemetry of ", pump_id));
      !s.ok()) {
    return s;
  }
  for (auto c = later.rbegin(); c != later.rend(); ++c) {
    if (!fn(*c)) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> RocksDbStore::ScanCursor(
    Cf c, uint64_t after, size_t limit) const {
  std::vector<std::pair<uint64_t, std::string>> out;
  if (after == std::numeric_limits<uint64_t>::max() || limit == 0) return out;
  ReadLease lease(this);
  if (absl::Status s = lease.status(); !s.ok()) return s;
  std::unique_ptr<rocksdb::Iterator> it(
      lease.db()->NewIterator(rocksdb::ReadOptions(), lease.cf(c)));
  for (it->Seek(keys::CursorKey(after + 1)); it->Valid() && out.size() < limit; it->Next()) {
    absl::StatusOr<uint64_t> cursor = keys::ParseCursorKey(ToView(it->key()));
    if (!cursor.ok()) return cursor.status();
    out.emplace_back(*cursor, it->value().ToString());
  }
  if (absl::Status s = FromRocksDb(it->status(), absl::StrCat("scanning ", kCfNames[c])); !s.ok()) {
    return s;
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> RocksDbStore::ScanAlertsAfter(
    uint64_t after_cursor, size_t limit) const {
  return ScanCursor(kAlerts, after_cursor, limit);
}
absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> RocksDbStore::ScanAuditAfter(
    uint64_t after_seq, size_t limit) const {
  return ScanCursor(kAudit, after_seq, limit);
}

absl::StatusOr<uint64_t> RocksDbStore::LastCursor(Cf c) const {
  ReadLease lease(this);
  if (absl::Status s = lease.status(); !s.ok()) return s;
  std::unique_ptr<rocksdb::Iterator> it(
      lease.db()->NewIterator(rocksdb::ReadOptions(), lease.cf(c)));
  it->SeekToLast();
  if (!it->Valid()) {
    if (absl::Status s = FromRocksDb(it->status(), kCfNames[c]); !s.ok()) return s;
    return 0;
  }
  return keys::ParseCursorKey(ToView(it->key()));
}
absl::StatusOr<uint64_t> RocksDbStore::LastAlertCursor() const { return LastCursor(kAlerts); }
absl::StatusOr<uint64_t> RocksDbStore::LastAuditSeq() const { return LastCursor(kAudit); }

absl::Status RocksDbStore::CompactAll() {
  ReadLease lease(this);
  if (absl::Status s = lease.status(); !s.ok()) return s;
  rocksdb::FlushOptions flush;
  flush.wait = true;
  std::vector<rocksdb::ColumnFamilyHandle*> all;
  for (int c = 0; c < kCfCount; ++c) all.push_back(lease.cf(static_cast<Cf>(c)));
  if (absl::Status s = FromRocksDb(lease.db()->Flush(flush, all), "flushing"); !s.ok()) return s;
  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (int c = 0; c < kCfCount; ++c) {
    absl::Status s = FromRocksDb(
        lease.db()->CompactRange(compact, lease.cf(static_cast<Cf>(c)), nullptr, nullptr),
        absl::StrCat("compacting ", kCfNames[c]));
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<Store::Sizes> RocksDbStore::ApproximateSizes() const {
  ReadLease lease(this);
  if (absl::Status s = lease.status(); !s.ok()) return s;
  Sizes out;
  for (int c = 0; c < kCfCount; ++c) {
    uint64_t v = 0;
    if (lease.db()->GetIntProperty(lease.cf(static_cast<Cf>(c)), "rocksdb.estimate-live-data-size",
                                   &v)) {
      out.live_data_bytes += v;
    }
    if (lease.db()->GetIntProperty(lease.cf(static_cast<Cf>(c)),
                                   "rocksdb.estimate-pending-compaction-bytes", &v)) {
      out.pending_compaction_bytes += v;
    }
    if (lease.db()->GetIntProperty(lease.cf(static_cast<Cf>(c)), "rocksdb.size-all-mem-tables",
                                   &v)) {
      out.memtable_bytes += v;
    }
  }
  return out;
}

absl::StatusOr<uint64_t> RocksDbStore::MemtableEntries() const {
  ReadLease lease(this);
  if (absl::Status s = lease.status(); !s.ok()) return s;
  uint64_t total = 0;
  for (int c = 0; c < kCfCount; ++c) {
    for (const char* property :
         {"rocksdb.num-entries-active-mem-table", "rocksdb.num-entries-imm-mem-tables"}) {
      uint64_t v = 0;
      if (!lease.db()->GetIntProperty(lease.cf(static_cast<Cf>(c)), property, &v)) {
        return absl::InternalError(absl::StrCat("RocksDB has no property ", property));
      }
      total += v;
    }
  }
  return total;
}

absl::Status RocksDbStore::FlushMemtables() {
  ReadLease lease(this);
  if (absl::Status s = lease.status(); !s.ok()) return s;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  for (int c = 0; c < kCfCount; ++c) cfs.push_back(lease.cf(static_cast<Cf>(c)));
  rocksdb::FlushOptions options;
  options.wait = true;
  return FromRocksDb(lease.db()->Flush(options, cfs), "flushing memtables");
}

absl::Status RocksDbStore::Checkpoint(const std::string& dir) {
  ReadLease lease(this);
  if (absl::Status s = lease.status(); !s.ok()) return s;
  rocksdb::Checkpoint* raw = nullptr;
  if (absl::Status s = FromRocksDb(rocksdb::Checkpoint::Create(lease.db(), &raw),
                                   "creating a checkpoint object");
      !s.ok()) {
    return s;
  }
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // log_size_for_flush = 0: flush the memtables first, so the copy needs no WAL replay
  // beyond what was written during the checkpoint itself.
  return FromRocksDb(checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0),
                     absl::StrCat("checkpoint to ", dir));
}

}  // namespace pumptwin::store
