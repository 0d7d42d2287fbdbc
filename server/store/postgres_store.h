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
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/virtual_shard.h"
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

// Cluster mode (docs/scaling.md "Leases and fencing"): pumps hash into a fixed number of
// virtual shards; a replica writes a shard's pumps only under that shard's lease, a row
// (shard, owner, epoch, expires_at) timed by the database's clock. A replica takes expired
// leases with epoch + 1 and renews its own; every fenced commit checks, inside its
// transaction, that each shard it writes is still leased to it at the epoch it holds, and
// keeps that lease row share-locked until COMMIT, so a takeover waits for the commit in
// progress and a replica that lost a lease (paused, partitioned) never writes after it.
struct ShardLease {
  uint32_t shard = 0;
  std::string owner;                          // "" while no replica ever took it
  int64_t epoch = 0;                          // + 1 at every takeover
  absl::Time expires = absl::InfinitePast();  // by the database's clock
};

// What a fenced commit writes under: the replica and, per shard, the epoch of its lease.
struct ReplicaInfo {
  std::string name;
  std::string address;  // its gRPC address as it announced it ("" when none)
  bool alive = false;   // heartbeat not expired
};

// A fenced commit that appends alert events or audit records also checks that they follow
// the last ones stored (check_log): the cluster keeps one alert log and one audit chain, and
// a commit continuing a stale view of them fails ABORTED with nothing written.
struct LeaseFence {
  std::string owner;
  std::vector<std::pair<uint32_t, int64_t>> shards;  // shard -> epoch
};

// The virtual shard of a pump (common/virtual_shard.h).
using ::pumptwin::VirtualShardOf;

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

  // Cluster mode: the lease rows of shards 0..shard_count-1, created when missing.
  // FAILED_PRECONDITION when the database already has leases for another shard count (every
  // replica must use the same).
  absl::Status EnsureShardLeases(uint32_t shard_count);
  // Takes up to `max_shards` leases that have expired (or were never taken or were released):
  // owner, epoch + 1, expiry now + ttl by the database's clock. Leases another replica is
  // taking or committing under at that moment are skipped (taken at a later call).
  absl::StatusOr<std::vector<ShardLease>> TakeExpiredLeases(absl::string_view owner,
                                                            absl::Duration ttl, size_t max_shards);
  // Extends the leases of `held` still this owner's at their epoch and not yet expired;
  // returns those (with the new expiry). A lease of `held` missing from the answer is lost.
  absl::StatusOr<std::vector<ShardLease>> RenewLeases(absl::string_view owner,
                                                      absl::Span<const ShardLease> held,
                                                      absl::Duration ttl);
  // Gives up the leases of `held` still this owner's (at their epoch): they expire now, so
  // another replica takes them at its next call. Returns how many were released.
  absl::StatusOr<size_t> ReleaseLeases(absl::string_view owner, absl::Span<const ShardLease> held);
  // Cluster membership: marks `owner` alive until now + ttl (database clock) and returns the
  // replicas alive now, `owner` included, sorted: what a fair share of the shards is
  // computed from.
  // `address`: the replica's gRPC address, for routing (ListReplicas).
  absl::StatusOr<std::vector<std::string>> HeartbeatReplica(absl::string_view owner,
                                                            absl::Duration ttl,
                                                            absl::string_view address = "");
  // Every replica that ever beat, by name, with its address and whether it is alive.
  absl::StatusOr<std::vector<ReplicaInfo>> ListReplicas() const;
  // Every lease row, by shard (routing, status).
  absl::StatusOr<std::vector<ShardLease>> ListLeases() const;
  // Commit under `fence`: FAILED_PRECONDITION, with nothing of the group written, when one
  // of its shards is no longer leased to fence.owner at that epoch (taken over, released,
  // expired); ABORTED when it appends pre-numbered alert events or audit records that do not
  // follow the last stored ones (another replica appended first). The group's log_appends
  // are numbered inside the transaction, under the log's lock, so they always follow.
  // Other failures as Commit.
  absl::Status CommitFenced(const WriteGroup& group, const LeaseFence& fence);

  // Connections opened so far, the first one included (tests: reconnects).
  int64_t connections_opened() const { return connections_opened_.load(); }

 private:
  enum Table { kPumps, kState, kHeads, kTelemetry, kAlerts, kAudit, kMeta, kTableCount };
  class Params;
  // One pooled connection, held for one call: back to the pool when destroyed.
  class PooledConnection {
   public:
    PooledConnection(const PostgresStore* store, PGconn* conn) : store_(store), conn_(conn) {}
    PooledConnection(PooledConnection&& other) noexcept
        : store_(other.store_), conn_(std::exchange(other.conn_, nullptr)) {}
    PooledConnection& operator=(PooledConnection&&) = delete;
    ~PooledConnection();
    PGconn* conn() const { return conn_; }
    // Closes the connection instead of returning it to the pool.
    void Discard();

   private:
    const PostgresStore* store_;
    PGconn* conn_;
  };

  explicit PostgresStore(PostgresStoreOptions options);
  absl::StatusOr<PooledConnection> Acquire() const;
  void Release(PGconn* conn) const;
  absl::Status PrepareSchema();
  absl::Status CommitGroup(const WriteGroup& group, const LeaseFence* fence);
  // Sends `statements` as one pipeline and reads every result: `commits` when the last one is
  // COMMIT (checked, with the standbys' confirmation), `tail` filled from the last one's row
  // when set (lock_log()). The connection must then be discarded on error.
  absl::Status RunPipeline(PGconn* c, const std::vector<std::pair<std::string, Params>>& statements,
                           bool commits, LogTail* tail) const;
  // Runs one lease statement (text parameters) returning rows (shard, owner, epoch,
  // expires in Unix ms).
  absl::StatusOr<std::vector<ShardLease>> LeaseQuery(const std::string& sql,
                                                     const std::vector<std::string>& params,
                                                     absl::string_view what) const;
  std::string leases_table() const;
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
