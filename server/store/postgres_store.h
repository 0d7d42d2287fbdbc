// PostgresStore: the Store on a PostgreSQL server (libpq), for replicas that share one
// replicated database (docs/scaling.md). Same byte layouts as RocksDbStore (store_keys.h):
// one table per key space, `(k bytea PRIMARY KEY, v bytea NOT NULL)`, in one schema, so
// bytewise key order is PostgreSQL's bytea order and every scan keeps the RocksDB order.
// A Commit is one transaction sent as one libpq pipeline (BEGIN, one multi-row upsert per
// table, COMMIT): acknowledged only after COMMIT returned, i.e. after the server's WAL flush
// (and its synchronous standbys, when configured).
// Thread-safety: all methods are thread-safe. Every call takes a connection of its own from
// a small pool (scan callbacks may call the store again); connections broken by a server
// restart or a lost server are noticed when taken from the pool, dropped and replaced.
#ifndef PUMPTWIN_SERVER_STORE_POSTGRES_STORE_H_
#define PUMPTWIN_SERVER_STORE_POSTGRES_STORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/store/store.h"

typedef struct pg_conn PGconn;  // libpq stays out of this header

namespace pumptwin::store {

struct PostgresStoreOptions {
  // libpq connection string, key=value or URI form ("host=10.0.0.5 port=5432 dbname=pumptwin
  // user=pumptwin", "postgresql://..."). Timeouts and TLS go here too (connect_timeout,
  // sslmode, options='-c statement_timeout=5s').
  std::string dsn;
  // PostgreSQL schema holding the tables; created with them when missing. Lower-case
  // letters, digits and '_', 1..63 characters, not starting with a digit.
  std::string schema = "pumptwin";
  // Connections kept open between calls; more are opened when calls overlap.
  size_t max_idle_connections = 4;
};

class PostgresStore final : public Store {
 public:
  // INVALID_ARGUMENT: malformed connection string or schema name; UNAVAILABLE: the server
  // cannot be reached; FAILED_PRECONDITION: the server runs with fsync or synchronous_commit
  // off (an acknowledged commit could be lost), or the schema holds another store format.
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(PostgresStoreOptions options);
  ~PostgresStore() override;
  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;

  // UNAVAILABLE when the server is unreachable, shutting down, read-only (a standby), out of
  // disk, or the connection broke before COMMIT's answer arrived (the group may or may not
  // be stored then). Puts are upserts, so committing the same group again is safe.
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
  // live_data_bytes: pg_total_relation_size of the tables (indexes and TOAST included).
  absl::StatusOr<Sizes> ApproximateSizes() const override;

  // Connections opened so far, the first one included (tests: reconnects).
  int64_t connections_opened() const { return connections_opened_.load(); }

 private:
  enum Table { kPumps, kState, kHeads, kTelemetry, kAlerts, kAudit, kMeta, kTableCount };
  class Params;
  class Lease;  // one pooled connection, held for one call

  explicit PostgresStore(PostgresStoreOptions options);
  absl::StatusOr<Lease> Acquire() const;
  void Release(PGconn* conn) const;
  absl::Status PrepareSchema();
  // Runs `select` (columns k, v) as a cursor in one read-only transaction (one snapshot)
  // and calls `row` per row, fetching in growing batches from `first_fetch` rows.
  absl::Status ScanRows(const std::string& select, const Params& params, size_t first_fetch,
                        absl::FunctionRef<bool(absl::string_view, absl::string_view)> row,
                        absl::string_view what) const;
  absl::StatusOr<std::string> Get(Table t, absl::string_view key, absl::string_view what) const;
  absl::Status ScanAll(Table t, const KeyValueFn& fn) const;
  absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> ScanCursor(Table t, uint64_t after,
                                                                           size_t limit) const;
  absl::StatusOr<uint64_t> LastCursor(Table t) const;
  const std::string& table(Table t) const { return tables_[t]; }

  const PostgresStoreOptions options_;
  std::vector<std::string> tables_;  // schema-qualified, quoted names
  mutable absl::Mutex mu_;
  mutable std::vector<PGconn*> idle_ ABSL_GUARDED_BY(mu_);
  mutable std::atomic<int64_t> connections_opened_{0};
};

}  // namespace pumptwin::store

#endif  // PUMPTWIN_SERVER_STORE_POSTGRES_STORE_H_
