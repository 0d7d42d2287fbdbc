// PostgresStore: libpq, binary parameters and results, one pipelined transaction per Commit,
// cursors for scans (one snapshot per scan), a small connection pool.
#include "server/store/postgres_store.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "server/store/postgres_internal.h"
#include "server/store/store_keys.h"

namespace pumptwin::store {
namespace {

using postgres_internal::ConnectionMessage;
using postgres_internal::LeaseDdl;
using postgres_internal::PgError;
using postgres_internal::Result;

constexpr const char* kTableNames[] = {"pumps",  "state", "heads", "telemetry",
                                       "alerts", "audit", "meta"};
// PostgreSQL type oids (pg_type.dat): bytea, int8, text, bytea[].
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kTextOid = 25;
constexpr Oid kByteaArrayOid = 1001;
constexpr int kBinary = 1;
constexpr size_t kMaxFetchRows = 1024;

void PutBigEndian32(std::string* dst, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) dst->push_back(static_cast<char>(v >> shift));
}

bool ValidSchemaName(absl::string_view name) {
  if (name.empty() || name.size() > 63 || absl::ascii_isdigit(name[0])) return false;
  return std::all_of(name.begin(), name.end(), [](char ch) {
    return absl::ascii_islower(ch) || absl::ascii_isdigit(ch) || ch == '_';
  });
}

// Keeps the last put of every key (a later put in one group wins), in any order: one
// upsert statement may not touch a row twice.
void KeepLastPutPerKey(std::vector<std::pair<std::string, std::string>>& puts) {
  absl::flat_hash_set<absl::string_view> seen;
  std::vector<bool> keep(puts.size());
  for (size_t i = puts.size(); i-- > 0;) keep[i] = seen.insert(puts[i].first).second;
  if (seen.size() == puts.size()) return;
  std::vector<std::pair<std::string, std::string>> kept;
  kept.reserve(seen.size());
  seen.clear();  // its views point into `puts`, about to be moved from
  for (size_t i = 0; i < puts.size(); ++i) {
    if (keep[i]) kept.push_back(std::move(puts[i]));
  }
  puts = std::move(kept);
}

// Server notices (NOTICE "already exists, skipping", ...) are not printed. One matters: when
// the wait for synchronous standbys is cancelled, COMMIT still answers COMMIT with only a
// WARNING saying the transaction is committed locally but perhaps not replicated. The
// receiver runs in the thread that reads the result, so it records that in a thread_local.
thread_local std::string replication_warning;

void ReceiveNotice(void* /*arg*/, const PGresult* notice) {
  const char* severity = PQresultErrorField(notice, PG_DIAG_SEVERITY_NONLOCALIZED);
  const char* message = PQresultErrorField(notice, PG_DIAG_MESSAGE_PRIMARY);
  if (severity != nullptr && absl::string_view(severity) == "WARNING" && message != nullptr &&
      absl::StrContains(message, "synchronous replication")) {
    replication_warning = message;
  }
}

}  // namespace

// Statement parameters, all sent in binary format.
class PostgresStore::Params {
 public:
  void Bytea(absl::string_view bytes) { Add(std::string(bytes), kByteaOid); }
  void Text(absl::string_view text) { Add(std::string(text), kTextOid); }
  void Int8(int64_t v) {
    std::string b;
    keys::PutBigEndian64(&b, static_cast<uint64_t>(v));
    Add(std::move(b), kInt8Oid);
  }
  // A one-dimensional bytea[] (array_send format: ndim, has-nulls, element type, length,
  // lower bound, then length-prefixed elements).
  template <typename Range, typename Proj>
  void ByteaArray(const Range& range, Proj proj) {
    size_t bytes = 20;
    for (const auto& e : range) bytes += 4 + proj(e).size();
    std::string b;
    b.reserve(bytes);
    PutBigEndian32(&b, 1);
    PutBigEndian32(&b, 0);
    PutBigEndian32(&b, kByteaOid);
    PutBigEndian32(&b, static_cast<uint32_t>(std::size(range)));
    PutBigEndian32(&b, 1);
    for (const auto& e : range) {
      absl::string_view v = proj(e);
      PutBigEndian32(&b, static_cast<uint32_t>(v.size()));
      b.append(v.data(), v.size());
    }
    Add(std::move(b), kByteaArrayOid);
  }

  int Send(PGconn* c, const std::string& sql) const {
    Views v = MakeViews();
    return PQsendQueryParams(c, sql.c_str(), static_cast<int>(types_.size()), types_.data(),
                             v.values.data(), v.lengths.data(), v.formats.data(), kBinary);
  }
  Result Exec(PGconn* c, const std::string& sql) const {
    Views v = MakeViews();
    return Result(PQexecParams(c, sql.c_str(), static_cast<int>(types_.size()), types_.data(),
                               v.values.data(), v.lengths.data(), v.formats.data(), kBinary));
  }

 private:
  struct Views {
    std::vector<const char*> values;
    std::vector<int> lengths;
    std::vector<int> formats;
  };
  void Add(std::string bytes, Oid type) {
    bytes_.push_back(std::move(bytes));
    types_.push_back(type);
  }
  Views MakeViews() const {
    Views v;
    for (const std::string& b : bytes_) {
      v.values.push_back(b.data());
      v.lengths.push_back(static_cast<int>(b.size()));
      v.formats.push_back(kBinary);
    }
    return v;
  }
  std::vector<std::string> bytes_;
  std::vector<Oid> types_;
};

PostgresStore::PooledConnection::~PooledConnection() {
  if (conn_ != nullptr) store_->Release(conn_);
}

void PostgresStore::PooledConnection::Discard() {
  PQfinish(conn_);
  conn_ = nullptr;
}

PostgresStore::PostgresStore(PostgresStoreOptions options) : options_(std::move(options)) {
  for (const char* name : kTableNames) {
    tables_.push_back(absl::StrCat("\"", options_.schema, "\".\"", name, "\""));
  }
}

PostgresStore::~PostgresStore() {
  absl::MutexLock lock(&mu_);
  for (PGconn* c : idle_) PQfinish(c);
  idle_.clear();
}

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(PostgresStoreOptions options) {
  if (options.dsn.empty()) {
    return absl::InvalidArgumentError("the PostgreSQL connection string is empty");
  }
  char* parse_error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(options.dsn.c_str(), &parse_error);
  if (parsed == nullptr) {
    std::string why = parse_error != nullptr
                          ? std::string(absl::StripTrailingAsciiWhitespace(parse_error))
                          : "out of memory";
    PQfreemem(parse_error);
    return absl::InvalidArgumentError(absl::StrCat("bad PostgreSQL connection string: ", why));
  }
  PQconninfoFree(parsed);
  if (!ValidSchemaName(options.schema)) {
    return absl::InvalidArgumentError(
        absl::StrCat("PostgreSQL schema name \"", options.schema,
                     "\" is not 1..63 lower-case letters, digits or '_' (no leading digit)"));
  }
  auto store = std::unique_ptr<PostgresStore>(new PostgresStore(std::move(options)));
  if (absl::Status s = store->PrepareSchema(); !s.ok()) return s;
  const std::string where = absl::StrCat("PostgreSQL schema ", store->options_.schema);
  if (absl::Status s = EnsureFormatVersion(*store, where); !s.ok()) return s;
  return store;
}

absl::Status PostgresStore::PrepareSchema() {
  absl::StatusOr<PooledConnection> lease = Acquire();
  if (!lease.ok()) return lease.status();
  PGconn* c = lease->conn();
  // Durability: an acknowledged commit must be on disk (and on the synchronous standbys).
  Result settings(
      PQexecParams(c, "SELECT current_setting('fsync'), current_setting('synchronous_commit')", 0,
                   nullptr, nullptr, nullptr, nullptr, 0));
  if (PQresultStatus(settings.get()) != PGRES_TUPLES_OK || PQntuples(settings.get()) != 1) {
    return PgError(c, settings.get(), "reading the server's durability settings");
  }
  const std::string fsync = PQgetvalue(settings.get(), 0, 0);
  const std::string sync_commit = PQgetvalue(settings.get(), 0, 1);
  if (fsync != "on" || sync_commit == "off") {
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgreSQL runs with fsync=", fsync, " synchronous_commit=", sync_commit,
        ": a commit could be acknowledged and then lost; set fsync=on and synchronous_commit "
        "to on, remote_write, remote_apply or local"));
  }
  // One transaction, serialised between replicas opening the same schema at once.
  std::string ddl =
      absl::StrCat("BEGIN; SELECT pg_advisory_xact_lock(hashtext('pumptwin.schema.",
                   options_.schema, "')); CREATE SCHEMA IF NOT EXISTS \"", options_.schema, "\";");
  for (const std::string& t : tables_) {
    absl::StrAppend(&ddl, " CREATE TABLE IF NOT EXISTS ", t,
                    " (k bytea PRIMARY KEY, v bytea NOT NULL);");
  }
  absl::StrAppend(&ddl, LeaseDdl(options_.schema), " COMMIT;");
  Result r(PQexec(c, ddl.c_str()));
  if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
    absl::Status s = PgError(c, r.get(), absl::StrCat("creating schema ", options_.schema));
    Result(PQexec(c, "ROLLBACK"));
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<PostgresStore::PooledConnection> PostgresStore::Acquire() const {
  while (true) {
    PGconn* c = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (idle_.empty()) break;
      c = idle_.back();
      idle_.pop_back();
    }
    // An idle connection has nothing to read unless the server hung up (restart, crash,
    // idle timeout) or sent a notice: a readable socket at rest means "replace it".
    pollfd pfd{PQsocket(c), POLLIN, 0};
    if (PQstatus(c) == CONNECTION_OK && ::poll(&pfd, 1, 0) == 0) return PooledConnection(this, c);
    PQfinish(c);
  }
  const char* keywords[] = {"dbname", "fallback_application_name", nullptr};
  const char* values[] = {options_.dsn.c_str(), "pumptwind", nullptr};
  PGconn* c = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
  if (c == nullptr) return absl::UnavailableError("connecting to PostgreSQL: out of memory");
  if (PQstatus(c) != CONNECTION_OK) {
    std::string why = ConnectionMessage(c);
    PQfinish(c);
    return absl::UnavailableError(absl::StrCat("connecting to PostgreSQL: ", why));
  }
  PQsetNoticeReceiver(c, &ReceiveNotice, nullptr);
  connections_opened_.fetch_add(1);
  return PooledConnection(this, c);
}

void PostgresStore::Release(PGconn* c) const {
  const bool reusable = PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE &&
                        PQpipelineStatus(c) == PQ_PIPELINE_OFF;
  if (reusable) {
    absl::MutexLock lock(&mu_);
    if (idle_.size() < options_.max_idle_connections) {
      idle_.push_back(c);
      return;
    }
  }
  PQfinish(c);
}

absl::Status PostgresStore::Commit(const WriteGroup& group) { return CommitGroup(group, nullptr); }

absl::Status PostgresStore::CommitFenced(const WriteGroup& group, const LeaseFence& fence) {
  return CommitGroup(group, &fence);
}

namespace {

// The row of lock_log(): the key of the last alert event, the key and bytes of the last audit
// record (NULL when there is none).
absl::Status ReadLogTail(const PGresult* r, LogTail* tail) {
  if (PQntuples(r) != 1 || PQnfields(r) != 3) {
    return absl::InternalError("locking the log: lock_log() did not answer one row");
  }
  auto cursor_of = [&](int column, uint64_t* out) -> absl::Status {
    if (PQgetisnull(r, 0, column)) {
      *out = 0;
      return absl::OkStatus();
    }
    absl::StatusOr<uint64_t> c = keys::ParseCursorKey(
        absl::string_view(PQgetvalue(r, 0, column), PQgetlength(r, 0, column)));
    if (!c.ok())
      return absl::DataLossError(absl::StrCat("the log's last key: ", c.status().message()));
    *out = *c;
    return absl::OkStatus();
  };
  if (absl::Status s = cursor_of(0, &tail->last_cursor); !s.ok()) return s;
  if (absl::Status s = cursor_of(1, &tail->last_audit_seq); !s.ok()) return s;
  tail->last_audit_record.assign(PQgetvalue(r, 0, 2), PQgetlength(r, 0, 2));
  return absl::OkStatus();
}

}  // namespace

absl::Status PostgresStore::CommitGroup(const WriteGroup& group, const LeaseFence* fence) {
  if (group.empty()) return absl::OkStatus();
  if (absl::Status s = ValidateWriteGroup(group); !s.ok()) return s;
  std::vector<std::pair<std::string, std::string>> puts[kTableCount];
  keys::ForEachTelemetryPut(
      group,
      [&](std::string key, std::string value) {
        puts[kTelemetry].emplace_back(std::move(key), std::move(value));
      },
      [&](absl::string_view pump_id, std::string value) {
        puts[kHeads].emplace_back(std::string(pump_id), std::move(value));
      });
  std::reverse(puts[kTelemetry].begin(), puts[kTelemetry].end());  // back to group order
  for (const auto& [k, v] : group.snapshots) puts[kState].emplace_back(k, v);
  for (const auto& [k, v] : group.pumps) puts[kPumps].emplace_back(k, v);
  for (const auto& [k, v] : group.alerts) puts[kAlerts].emplace_back(keys::CursorKey(k), v);
  for (const auto& [k, v] : group.audit) puts[kAudit].emplace_back(keys::CursorKey(k), v);
  for (const auto& [k, v] : group.meta) puts[kMeta].emplace_back(k, v);

  // BEGIN, the checks, the meta range erases, one upsert per table, COMMIT: one pipeline, one
  // round trip. A group with log_appends takes two: the first ends by locking the log and
  // reading its tail, the appends number their entries after it, the second writes them and
  // commits (the lock is held for that round trip and the commit only).
  const bool appends = !group.log_appends.empty();
  std::vector<std::pair<std::string, Params>> statements;
  statements.emplace_back(appends ? "BEGIN ISOLATION LEVEL READ COMMITTED" : "BEGIN", Params());
  if (fence != nullptr) {
    if (fence->owner.empty()) return absl::InvalidArgumentError("a fenced commit needs an owner");
    // Pump data is written only under the lease of its shard (the replica fences every shard
    // its group touches); a group with none is one of the shared log alone.
    const std::string* pump = !group.telemetry.empty()   ? &group.telemetry.front().pump_id
                              : !group.snapshots.empty() ? &group.snapshots.front().first
                              : !group.pumps.empty()     ? &group.pumps.front().first
                                                         : nullptr;
    if (fence->shards.empty() && pump != nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("a fenced commit writing pump ", *pump,
                                                     " needs the lease of its virtual shard"));
    }
  }
  if (fence != nullptr && !fence->shards.empty()) {
    std::vector<std::string> shards, epochs;
    for (const auto& [shard, epoch] : fence->shards) {
      shards.push_back(absl::StrCat(shard));
      epochs.push_back(absl::StrCat(epoch));
    }
    Params p;
    p.Text(fence->owner);
    p.Text(absl::StrCat("{", absl::StrJoin(shards, ","), "}"));
    p.Text(absl::StrCat("{", absl::StrJoin(epochs, ","), "}"));
    statements.emplace_back(absl::StrCat("SELECT \"", options_.schema,
                                         "\".check_fence($1, $2::integer[], $3::bigint[])"),
                            std::move(p));
  }
  if (fence != nullptr && (!group.alerts.empty() || !group.audit.empty())) {
    // The key of the entry before the first one appended ("" = the log is empty).
    auto after = [](const std::vector<std::pair<uint64_t, std::string>>& log) {
      return log.front().first > 1 ? keys::CursorKey(log.front().first - 1) : std::string();
    };
    Params log;
    log.Int8(group.alerts.empty() ? 0 : 1);
    log.Bytea(group.alerts.empty() ? std::string() : after(group.alerts));
    log.Int8(group.audit.empty() ? 0 : 1);
    log.Bytea(group.audit.empty() ? std::string() : after(group.audit));
    statements.emplace_back(
        absl::StrCat("SELECT \"", options_.schema,
                     "\".check_log($1::bigint, $2::bytea, $3::bigint, $4::bytea)"),
        std::move(log));
  }
  auto add_erases_and_upserts = [&](std::vector<std::pair<std::string, std::string>>* tables) {
    for (const auto& [b, e] : group.meta_erase_ranges) {
      if (!(b < e) || tables != puts) continue;
      Params p;
      p.Bytea(b);
      p.Bytea(e);
      statements.emplace_back(
          absl::StrCat("DELETE FROM ", table(kMeta), " WHERE k >= $1 AND k < $2"), std::move(p));
    }
    for (int t = 0; t < kTableCount; ++t) {
      if (tables[t].empty()) continue;
      KeepLastPutPerKey(tables[t]);
      Params p;
      p.ByteaArray(tables[t], [](const auto& kv) { return absl::string_view(kv.first); });
      p.ByteaArray(tables[t], [](const auto& kv) { return absl::string_view(kv.second); });
      statements.emplace_back(absl::StrCat("INSERT INTO ", table(static_cast<Table>(t)),
                                           " (k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[]) "
                                           "ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"),
                              std::move(p));
    }
  };
  add_erases_and_upserts(puts);
  if (appends) {
    statements.emplace_back(absl::StrCat("SELECT alert_key, audit_key, audit_value FROM \"",
                                         options_.schema, "\".lock_log()"),
                            Params());
  } else {
    statements.emplace_back("COMMIT", Params());
  }

  absl::StatusOr<PooledConnection> lease = Acquire();
  if (!lease.ok()) return lease.status();
  PGconn* c = lease->conn();
  replication_warning.clear();
  if (PQenterPipelineMode(c) != 1) return PgError(c, nullptr, "entering pipeline mode");
  LogTail tail;
  absl::Status status = RunPipeline(c, statements, /*commits=*/!appends, appends ? &tail : nullptr);
  if (status.ok() && appends) {
    WriteGroup log;
    for (const LogAppendFn& append : group.log_appends) {
      if (status = append(tail, log); !status.ok()) break;
    }
    std::vector<std::pair<std::string, std::string>> log_puts[kTableCount];
    for (const auto& [k, v] : log.alerts) log_puts[kAlerts].emplace_back(keys::CursorKey(k), v);
    for (const auto& [k, v] : log.audit) log_puts[kAudit].emplace_back(keys::CursorKey(k), v);
    if (status.ok()) {
      statements.clear();
      add_erases_and_upserts(log_puts);
      statements.emplace_back("COMMIT", Params());
      status = RunPipeline(c, statements, /*commits=*/true, nullptr);
    }
  }
  if (!status.ok()) {
    // Drop the connection: its pipeline may still hold results, and the server rolls back
    // a transaction whose connection closes. Nothing of the group is visible then, unless
    // COMMIT had already been applied (status says the connection was lost).
    lease->Discard();
    return status;
  }
  PQexitPipelineMode(c);
  return absl::OkStatus();
}

absl::Status PostgresStore::RunPipeline(
    PGconn* c, const std::vector<std::pair<std::string, Params>>& statements, bool commits,
    LogTail* tail) const {
  size_t sent = 0;
  for (const auto& [sql, params] : statements) {
    if (params.Send(c, sql) != 1) break;
    ++sent;
  }
  if (sent < statements.size() || PQpipelineSync(c) != 1) {
    return PgError(c, nullptr, "sending the write group");
  }
  absl::Status status;
  for (size_t i = 0; i < sent && status.ok(); ++i) {
    Result r(PQgetResult(c));
    if (r == nullptr) {
      status = PgError(c, nullptr, "committing write group");
      break;
    }
    const ExecStatusType st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {  // the checks are SELECTs
      status = PgError(c, r.get(), "committing write group");
      break;
    }
    const bool last = i + 1 == sent;
    // COMMIT of a transaction that failed answers "ROLLBACK": never acknowledge that.
    if (last && commits && absl::string_view(PQcmdStatus(r.get())) != "COMMIT") {
      status = absl::InternalError(absl::StrCat("committing write group: the server answered ",
                                                PQcmdStatus(r.get()), " to COMMIT"));
    }
    if (last && tail != nullptr && status.ok()) status = ReadLogTail(r.get(), tail);
    Result end(PQgetResult(c));  // each statement's results end with a null result
  }
  if (status.ok() && commits && !replication_warning.empty()) {
    status = absl::UnavailableError(
        absl::StrCat("committing write group: committed on the primary but not confirmed by its "
                     "synchronous standbys (",
                     replication_warning, ")"));
  }
  if (status.ok()) {
    Result sync(PQgetResult(c));
    if (PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) {
      status = PgError(c, sync.get(), "committing write group");
    }
  }
  return status;
}

absl::Status PostgresStore::ScanRows(
    const std::string& select, const Params& params, size_t first_fetch,
    absl::FunctionRef<bool(absl::string_view, absl::string_view)> row,
    absl::string_view what) const {
  absl::StatusOr<PooledConnection> lease = Acquire();
  if (!lease.ok()) return lease.status();
  PGconn* c = lease->conn();
  const std::string context = absl::StrCat("scanning ", what);
  Result begin(PQexec(c, "BEGIN READ ONLY"));
  if (PQresultStatus(begin.get()) != PGRES_COMMAND_OK) return PgError(c, begin.get(), context);
  absl::Status status;
  Result declare =
      params.Exec(c, absl::StrCat("DECLARE pumptwin_scan NO SCROLL CURSOR FOR ", select));
  if (PQresultStatus(declare.get()) != PGRES_COMMAND_OK) {
    status = PgError(c, declare.get(), context);
  }
  size_t fetch = std::max<size_t>(first_fetch, 1);
  bool more = status.ok();
  while (more) {
    const std::string sql = absl::StrCat("FETCH FORWARD ", fetch, " FROM pumptwin_scan");
    // Binary results: in the extended protocol, FETCH's own result format applies.
    Result r(PQexecParams(c, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, kBinary));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
      status = PgError(c, r.get(), context);
      break;
    }
    const int n = PQntuples(r.get());
    for (int i = 0; i < n && more; ++i) {
      more = row(absl::string_view(PQgetvalue(r.get(), i, 0), PQgetlength(r.get(), i, 0)),
                 absl::string_view(PQgetvalue(r.get(), i, 1), PQgetlength(r.get(), i, 1)));
    }
    if (static_cast<size_t>(n) < fetch) more = false;
    fetch = std::min(fetch * 4, kMaxFetchRows);
  }
  Result end(PQexec(c, status.ok() ? "COMMIT" : "ROLLBACK"));
  if (status.ok() && PQresultStatus(end.get()) != PGRES_COMMAND_OK) {
    status = PgError(c, end.get(), context);
  }
  return status;
}

absl::StatusOr<std::string> PostgresStore::Get(Table t, absl::string_view key,
                                               absl::string_view what) const {
  absl::StatusOr<PooledConnection> lease = Acquire();
  if (!lease.ok()) return lease.status();
  Params p;
  p.Bytea(key);
  Result r = p.Exec(lease->conn(), absl::StrCat("SELECT v FROM ", table(t), " WHERE k = $1"));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    return PgError(lease->conn(), r.get(), absl::StrCat("reading ", what, " of ", key));
  }
  if (PQntuples(r.get()) == 0) return absl::NotFoundError(absl::StrCat("no ", what, " for ", key));
  return std::string(PQgetvalue(r.get(), 0, 0), PQgetlength(r.get(), 0, 0));
}

absl::Status PostgresStore::ScanAll(Table t, const KeyValueFn& fn) const {
  return ScanRows(absl::StrCat("SELECT k, v FROM ", table(t), " ORDER BY k"), Params(),
                  kMaxFetchRows, fn, kTableNames[t]);
}

absl::StatusOr<std::string> PostgresStore::GetPump(absl::string_view pump_id) const {
  return Get(kPumps, pump_id, "pump");
}
absl::Status PostgresStore::ScanPumps(const KeyValueFn& fn) const { return ScanAll(kPumps, fn); }
absl::StatusOr<std::string> PostgresStore::GetSnapshot(absl::string_view pump_id) const {
  return Get(kState, pump_id, "snapshot");
}
absl::Status PostgresStore::ScanAllSnapshots(const KeyValueFn& fn) const {
  return ScanAll(kState, fn);
}
absl::StatusOr<std::string> PostgresStore::GetMeta(absl::string_view name) const {
  return Get(kMeta, name, "meta");
}

absl::Status PostgresStore::ScanMetaRange(absl::string_view begin, absl::string_view end,
                                          const KeyValueFn& fn) const {
  if (!(begin < end)) return absl::OkStatus();
  Params p;
  p.Bytea(begin);
  p.Bytea(end);
  return ScanRows(
      absl::StrCat("SELECT k, v FROM ", table(kMeta), " WHERE k >= $1 AND k < $2 ORDER BY k"), p,
      64, fn, "meta");
}

absl::StatusOr<PumpHead> PostgresStore::GetPumpHead(absl::string_view pump_id) const {
  absl::StatusOr<std::string> v = Get(kHeads, pump_id, "telemetry head");
  if (!v.ok()) return v.status();
  return keys::ParseHead(pump_id, *v);
}

absl::Status PostgresStore::ScanPumpHeads(const HeadFn& fn) const {
  return keys::ScanDecoded<PumpHead>([&](const KeyValueFn& kv) { return ScanAll(kHeads, kv); },
                                     keys::ParseHead, fn);
}

absl::Status PostgresStore::ScanTelemetry(absl::string_view pump_id, absl::Time from, absl::Time to,
                                          const ChunkFn& fn) const {
  if (from >= to) return absl::OkStatus();
  // The chunk starting at or before `from` may still cover it: the last key <= start, then
  // every key after it below the first key at `to` (or the pump's end).
  const std::string start = keys::TelemetryKey(pump_id, absl::ToUnixNanos(from), 0);
  absl::StatusOr<int64_t> to_ns = keys::TimeToUnixNanos(to);
  Params p;
  p.Bytea(keys::TelemetryPrefix(pump_id));
  p.Bytea(start);
  p.Bytea(to_ns.ok() ? keys::TelemetryKey(pump_id, *to_ns, 0) : keys::TelemetryPrefixEnd(pump_id));
  const std::string& t = table(kTelemetry);
  const std::string select = absl::StrCat("SELECT k, v FROM ((SELECT k, v FROM ", t,
                                          " WHERE k >= $1 AND k <= $2 ORDER BY k DESC "
                                          "LIMIT 1) UNION ALL (SELECT k, v FROM ",
                                          t, " WHERE k > $2 AND k < $3)) AS s ORDER BY k");
  const std::string what = absl::StrCat("telemetry of ", pump_id);
  return keys::ScanDecoded<TelemetryChunk>(
      [&](const KeyValueFn& kv) { return ScanRows(select, p, 64, kv, what); },
      keys::ChunkFromKeyValue,
      [&](const TelemetryChunk& c) {
        if (c.first_device_time >= to) return false;
        return c.last_device_time < from || fn(c);
      });
}

absl::Status PostgresStore::ScanTelemetryAfterSeq(absl::string_view pump_id, uint64_t after_seq,
                                                  const ChunkFn& fn) const {
  Params p;
  p.Bytea(keys::TelemetryPrefix(pump_id));
  p.Bytea(keys::TelemetryPrefixEnd(pump_id));
  const std::string select = absl::StrCat("SELECT k, v FROM ", table(kTelemetry),
                                          " WHERE k >= $1 AND k < $2 ORDER BY k DESC");
  const std::string what = absl::StrCat("telemetry of ", pump_id);
  std::vector<TelemetryChunk> later;  // newest first
  absl::Status scan = keys::ScanDecoded<TelemetryChunk>(
      [&](const KeyValueFn& kv) { return ScanRows(select, p, 4, kv, what); },
      keys::ChunkFromKeyValue,
      [&](TelemetryChunk c) {
        if (c.last_seq <= after_seq) return false;
        later.push_back(std::move(c));
        return true;
      });
  if (!scan.ok()) return scan;
  for (auto c = later.rbegin(); c != later.rend(); ++c) {
    if (!fn(*c)) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> PostgresStore::ScanCursor(
    Table t, uint64_t after, size_t limit) const {
  std::vector<std::pair<uint64_t, std::string>> out;
  if (after == std::numeric_limits<uint64_t>::max() || limit == 0) return out;
  absl::StatusOr<PooledConnection> lease = Acquire();
  if (!lease.ok()) return lease.status();
  Params p;
  p.Bytea(keys::CursorKey(after + 1));
  p.Int8(static_cast<int64_t>(
      std::min<uint64_t>(limit, static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))));
  Result r = p.Exec(lease->conn(), absl::StrCat("SELECT k, v FROM ", table(t),
                                                " WHERE k >= $1 ORDER BY k LIMIT $2"));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    return PgError(lease->conn(), r.get(), absl::StrCat("scanning ", kTableNames[t]));
  }
  const int n = PQntuples(r.get());
  out.reserve(n);
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<uint64_t> cursor = keys::ParseCursorKey(
        absl::string_view(PQgetvalue(r.get(), i, 0), PQgetlength(r.get(), i, 0)));
    if (!cursor.ok()) return cursor.status();
    out.emplace_back(*cursor, std::string(PQgetvalue(r.get(), i, 1), PQgetlength(r.get(), i, 1)));
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> PostgresStore::ScanAlertsAfter(
    uint64_t after_cursor, size_t limit) const {
  return ScanCursor(kAlerts, after_cursor, limit);
}
absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> PostgresStore::ScanAuditAfter(
    uint64_t after_seq, size_t limit) const {
  return ScanCursor(kAudit, after_seq, limit);
}

absl::StatusOr<uint64_t> PostgresStore::LastCursor(Table t) const {
  absl::StatusOr<PooledConnection> lease = Acquire();
  if (!lease.ok()) return lease.status();
  Result r(PQexecParams(
      lease->conn(), absl::StrCat("SELECT k FROM ", table(t), " ORDER BY k DESC LIMIT 1").c_str(),
      0, nullptr, nullptr, nullptr, nullptr, kBinary));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    return PgError(lease->conn(), r.get(), absl::StrCat("reading the last ", kTableNames[t]));
  }
  if (PQntuples(r.get()) == 0) return 0;
  return keys::ParseCursorKey(
      absl::string_view(PQgetvalue(r.get(), 0, 0), PQgetlength(r.get(), 0, 0)));
}
absl::StatusOr<uint64_t> PostgresStore::LastAlertCursor() const { return LastCursor(kAlerts); }
absl::StatusOr<uint64_t> PostgresStore::LastAuditSeq() const { return LastCursor(kAudit); }

absl::StatusOr<Store::Sizes> PostgresStore::ApproximateSizes() const {
  absl::StatusOr<PooledConnection> lease = Acquire();
  if (!lease.ok()) return lease.status();
  const char* values[] = {options_.schema.c_str()};
  Result r(PQexecParams(lease->conn(),
                        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::text FROM "
                        "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = $1 AND c.relkind = 'r'",
                        1, nullptr, values, nullptr, nullptr, 0));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    return PgError(lease->conn(), r.get(), "reading table sizes");
  }
  uint64_t bytes = 0;
  if (PQntuples(r.get()) != 1 || !absl::SimpleAtoi(PQgetvalue(r.get(), 0, 0), &bytes)) {
    return absl::InternalError("reading table sizes: unexpected answer");
  }
  Sizes sizes;
  sizes.live_data_bytes = bytes;
  return sizes;
}

}  // namespace pumptwin::store
