// PostgresStore's virtual-shard leases (postgres_store.h, ShardLease): every time is the
// database's clock (clock_timestamp()), never a replica's, so replicas with skewed clocks
// agree on who holds what. Also the DDL of cluster mode (LeaseDdl: leases, fence, log lock).
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/store/postgres_internal.h"
#include "server/store/postgres_store.h"

namespace pumptwin::store {
namespace {

using postgres_internal::PgError;
using postgres_internal::Result;

constexpr size_t kMaxOwnerBytes = 255;
constexpr absl::Duration kMaxTtl = absl::Hours(1);
constexpr uint32_t kMaxShards = 65536;

absl::Status CheckOwner(absl::string_view owner) {
  if (owner.empty() || owner.size() > kMaxOwnerBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a lease owner (replica name) is 1..", kMaxOwnerBytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status CheckTtl(absl::Duration ttl) {
  if (ttl <= absl::ZeroDuration() || ttl > kMaxTtl) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease time-to-live ", absl::FormatDuration(ttl), " is not within (0, 1h]"));
  }
  return absl::OkStatus();
}

std::string Seconds(absl::Duration d) { return absl::StrCat(absl::ToDoubleSeconds(d)); }

// "{1,2,3}" and "{4,5,6}": the shards and epochs of `held`, as PostgreSQL array literals.
std::pair<std::string, std::string> ShardsAndEpochs(absl::Span<const ShardLease> held) {
  std::vector<std::string> shards, epochs;
  for (const ShardLease& l : held) {
    shards.push_back(absl::StrCat(l.shard));
    epochs.push_back(absl::StrCat(l.epoch));
  }
  return {absl::StrCat("{", absl::StrJoin(shards, ","), "}"),
          absl::StrCat("{", absl::StrJoin(epochs, ","), "}")};
}

// The columns every lease query returns.
constexpr absl::string_view kReturning =
    " RETURNING l.shard, l.owner, l.epoch, "
    "CASE WHEN l.expires_at = '-infinity' THEN 0 "
    "ELSE (extract(epoch FROM l.expires_at) * 1000)::bigint END";

}  // namespace

std::string PostgresStore::leases_table() const {
  return absl::StrCat("\"", options_.schema, "\".shard_leases");
}

absl::StatusOr<std::vector<ShardLease>> PostgresStore::LeaseQuery(
    const std::string& sql, const std::vector<std::string>& params, absl::string_view what) const {
  absl::StatusOr<PooledConnection> lease = Acquire();
  if (!lease.ok()) return lease.status();
  PGconn* c = lease->conn();
  std::vector<const char*> values;
  for (const std::string& p : params) values.push_back(p.c_str());
  Result r(PQexecParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                        nullptr, nullptr, /*resultFormat=*/0));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) return PgError(c, r.get(), what);
  std::vector<ShardLease> out;
  for (int row = 0; row < PQntuples(r.get()); ++row) {
    ShardLease l;
    int64_t expires_ms = 0;
    if (!absl::SimpleAtoi(PQgetvalue(r.get(), row, 0), &l.shard) ||
        !absl::SimpleAtoi(PQgetvalue(r.get(), row, 2), &l.epoch) ||
        !absl::SimpleAtoi(PQgetvalue(r.get(), row, 3), &expires_ms)) {
      return absl::InternalError(absl::StrCat(what, ": unexpected lease row from the server"));
    }
    l.owner = PQgetvalue(r.get(), row, 1);
    l.expires = expires_ms == 0 ? absl::InfinitePast() : absl::FromUnixMillis(expires_ms);
    out.push_back(std::move(l));
  }
  std::sort(out.begin(), out.end(),
            [](const ShardLease& a, const ShardLease& b) { return a.shard < b.shard; });
  return out;
}

absl::Status PostgresStore::EnsureShardLeases(uint32_t shard_count) {
  if (shard_count == 0 || shard_count > kMaxShards) {
    return absl::InvalidArgumentError(
        absl::StrCat("virtual shard count ", shard_count, " is not within 1..", kMaxShards));
  }
  absl::StatusOr<PooledConnection> lease = Acquire();
  if (!lease.ok()) return lease.status();
  PGconn* c = lease->conn();
  // The rows there, then the missing ones inserted, then counted again: a replica with
  // another count is refused before it adds rows, and of two replicas starting at once on an
  // empty table with different counts, at least one sees the other's rows afterwards.
  auto counted = [&]() -> absl::StatusOr<uint32_t> {
    Result rows(
        PQexec(c, absl::StrCat("SELECT count(*), coalesce(max(shard) + 1, 0) FROM ", leases_table())
                      .c_str()));
    uint32_t have = 0, span = 0;
    if (PQresultStatus(rows.get()) != PGRES_TUPLES_OK || PQntuples(rows.get()) != 1 ||
        !absl::SimpleAtoi(PQgetvalue(rows.get(), 0, 0), &have) ||
        !absl::SimpleAtoi(PQgetvalue(rows.get(), 0, 1), &span)) {
      return PgError(c, rows.get(), "counting the shard leases");
    }
    if (have != 0 && (have != shard_count || span != shard_count)) {
      return absl::FailedPreconditionError(
          absl::StrCat("the database holds leases of ", span,
                       " virtual shards, this replica was configured "
                       "with ",
                       shard_count, ": every replica of a cluster must use the same count"));
    }
    return have;
  };
  absl::StatusOr<uint32_t> before = counted();
  if (!before.ok() || *before == shard_count) return before.status();
  const std::string count = absl::StrCat(shard_count);
  const char* values[] = {count.c_str()};
  Result added(PQexecParams(
      c,
      absl::StrCat("INSERT INTO ", leases_table(),
                   " (shard) SELECT generate_series(0, $1::integer - 1) ON CONFLICT DO NOTHING")
          .c_str(),
      1, nullptr, values, nullptr, nullptr, 0));
  if (PQresultStatus(added.get()) != PGRES_COMMAND_OK) {
    return PgError(c, added.get(), "creating the shard leases");
  }
  return counted().status();
}

absl::StatusOr<std::vector<ShardLease>> PostgresStore::TakeExpiredLeases(absl::string_view owner,
                                                                         absl::Duration ttl,
                                                                         size_t max_shards) {
  if (absl::Status s = CheckOwner(owner); !s.ok()) return s;
  if (absl::Status s = CheckTtl(ttl); !s.ok()) return s;
  if (max_shards == 0) return std::vector<ShardLease>();
  return LeaseQuery(
      absl::StrCat(
          "UPDATE ", leases_table(),
          " l SET owner = $1, epoch = l.epoch + 1, expires_at = clock_timestamp() + "
          "make_interval(secs => $2::double precision) WHERE l.shard IN (SELECT shard FROM ",
          leases_table(),
          " WHERE expires_at <= clock_timestamp() ORDER BY shard LIMIT $3::integer "
          "FOR UPDATE SKIP LOCKED)",
          kReturning),
      {std::string(owner), Seconds(ttl), absl::StrCat(std::min<size_t>(max_shards, kMaxShards))},
      "taking expired shard leases");
}

absl::StatusOr<std::vector<ShardLease>> PostgresStore::RenewLeases(
    absl::string_view owner, absl::Span<const ShardLease> held, absl::Duration ttl) {
  if (absl::Status s = CheckOwner(owner); !s.ok()) return s;
  if (absl::Status s = CheckTtl(ttl); !s.ok()) return s;
  if (held.empty()) return std::vector<ShardLease>();
  auto [shards, epochs] = ShardsAndEpochs(held);
  return LeaseQuery(
      absl::StrCat("UPDATE ", leases_table(),
                   " l SET expires_at = clock_timestamp() + make_interval(secs => "
                   "$2::double precision) FROM unnest($3::integer[], $4::bigint[]) AS f(shard, "
                   "epoch) WHERE l.shard = f.shard AND l.epoch = f.epoch AND l.owner = $1 AND "
                   "l.expires_at > clock_timestamp()",
                   kReturning),
      {std::string(owner), Seconds(ttl), shards, epochs}, "renewing shard leases");
}

absl::StatusOr<size_t> PostgresStore::ReleaseLeases(absl::string_view owner,
                                                    absl::Span<const ShardLease> held) {
  if (absl::Status s = CheckOwner(owner); !s.ok()) return s;
  if (held.empty()) return 0;
  auto [shards, epochs] = ShardsAndEpochs(held);
  auto released = LeaseQuery(
      absl::StrCat("UPDATE ", leases_table(),
                   " l SET expires_at = '-infinity' FROM unnest($2::integer[], $3::bigint[]) AS "
                   "f(shard, epoch) WHERE l.shard = f.shard AND l.epoch = f.epoch AND "
                   "l.owner = $1",
                   kReturning),
      {std::string(owner), shards, epochs}, "releasing shard leases");
  if (!released.ok()) return released.status();
  return released->size();
}

absl::StatusOr<std::vector<std::string>> PostgresStore::HeartbeatReplica(
    absl::string_view owner, absl::Duration ttl, absl::string_view address) {
  if (absl::Status s = CheckOwner(owner); !s.ok()) return s;
  if (absl::Status s = CheckTtl(ttl); !s.ok()) return s;
  absl::StatusOr<PooledConnection> lease = Acquire();
  if (!lease.ok()) return lease.status();
  PGconn* c = lease->conn();
  const std::string table = absl::StrCat("\"", options_.schema, "\".replicas");
  const std::string sql = absl::StrCat(
      "WITH beat AS (INSERT INTO ", table,
      " (owner, expires_at, address) VALUES ($1, clock_timestamp() + make_interval(secs => "
      "$2::double precision), $3) ON CONFLICT (owner) DO UPDATE SET expires_at = "
      "EXCLUDED.expires_at, address = EXCLUDED.address RETURNING owner) SELECT owner FROM ",
      table, " WHERE expires_at > clock_timestamp() UNION SELECT owner FROM beat ORDER BY 1");
  const std::string name(owner), seconds = Seconds(ttl), where(address);
  const char* values[] = {name.c_str(), seconds.c_str(), where.c_str()};
  Result r(PQexecParams(c, sql.c_str(), 3, nullptr, values, nullptr, nullptr, 0));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    return PgError(c, r.get(), "marking this replica alive");
  }
  std::vector<std::string> live;
  for (int row = 0; row < PQntuples(r.get()); ++row) live.emplace_back(PQgetvalue(r.get(), row, 0));
  return live;
}

absl::StatusOr<std::vector<ReplicaInfo>> PostgresStore::ListReplicas() const {
  absl::StatusOr<PooledConnection> lease = Acquire();
  if (!lease.ok()) return lease.status();
  PGconn* c = lease->conn();
  Result r(PQexec(c, absl::StrCat("SELECT owner, address, expires_at > clock_timestamp() FROM \"",
                                  options_.schema, "\".replicas ORDER BY owner")
                         .c_str()));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) return PgError(c, r.get(), "listing replicas");
  std::vector<ReplicaInfo> out;
  for (int row = 0; row < PQntuples(r.get()); ++row) {
    out.push_back({PQgetvalue(r.get(), row, 0), PQgetvalue(r.get(), row, 1),
                   absl::string_view(PQgetvalue(r.get(), row, 2)) == "t"});
  }
  return out;
}

absl::StatusOr<std::vector<ShardLease>> PostgresStore::ListLeases() const {
  return LeaseQuery(
      absl::StrCat("SELECT shard, owner, epoch, CASE WHEN expires_at = '-infinity' THEN 0 "
                   "ELSE (extract(epoch FROM expires_at) * 1000)::bigint END FROM ",
                   leases_table(), " ORDER BY shard"),
      {}, "listing shard leases");
}

namespace postgres_internal {

// The lease table and the fence check of cluster mode (postgres_store.h, ShardLease). The
// check share-locks the rows of the shards written, so a takeover (an UPDATE of the row)
// waits until the commit that checked them ends.
std::string LeaseDdl(absl::string_view schema) {
  const std::string s = absl::StrCat("\"", schema, "\"");
  return absl::StrCat(
      " CREATE TABLE IF NOT EXISTS ", s,
      ".shard_leases (shard integer PRIMARY KEY, owner text NOT NULL DEFAULT '', "
      "epoch bigint NOT NULL DEFAULT 0, expires_at timestamptz NOT NULL DEFAULT '-infinity');"
      " CREATE TABLE IF NOT EXISTS ",
      s,
      ".replicas (owner text PRIMARY KEY, expires_at timestamptz NOT NULL);"
      " ALTER TABLE ",
      s,
      ".replicas ADD COLUMN IF NOT EXISTS address text NOT NULL DEFAULT '';"
      " CREATE OR REPLACE FUNCTION ",
      s,
      ".check_fence(who text, shards integer[], epochs bigint[]) RETURNS void "
      "LANGUAGE plpgsql AS $fence$ DECLARE bad record; BEGIN "
      "PERFORM 1 FROM ",
      s,
      ".shard_leases l WHERE l.shard = ANY(shards) ORDER BY l.shard FOR SHARE; "
      "SELECT f.shard, f.epoch, l.owner AS held_by, l.epoch AS held_epoch INTO bad "
      "FROM unnest(shards, epochs) AS f(shard, epoch) LEFT JOIN ",
      s,
      ".shard_leases l ON l.shard = f.shard WHERE l.shard IS NULL OR l.owner <> who OR "
      "l.epoch <> f.epoch OR l.expires_at <= clock_timestamp() LIMIT 1; "
      "IF FOUND THEN RAISE EXCEPTION USING ERRCODE = '",
      postgres_internal::kLeaseLostSqlState,
      "', MESSAGE = format('lease of virtual shard %s lost: replica \"%s\" wrote under epoch "
      "%s, the lease is at epoch %s held by \"%s\" (taken over, released or expired)', "
      "bad.shard, who, bad.epoch, coalesce(bad.held_epoch, 0), coalesce(bad.held_by, '')); "
      "END IF; END $fence$;"
      // The alert and audit logs are one per cluster: a fenced commit that appends to them
      // row-locks log_lock (replicas append one after the other, so cursor order is commit
      // order) and checks it appends right after the last entry stored.
      " CREATE TABLE IF NOT EXISTS ",
      s, ".log_lock (id integer PRIMARY KEY); INSERT INTO ", s,
      ".log_lock VALUES (1) ON CONFLICT DO NOTHING;"
      " CREATE OR REPLACE FUNCTION ",
      s,
      ".check_log(check_alerts bigint, alerts_after bytea, check_audit bigint, audit_after bytea) "
      "RETURNS void "
      "LANGUAGE plpgsql AS $log$ DECLARE a bytea; b bytea; BEGIN "
      "PERFORM 1 FROM ",
      s,
      ".log_lock WHERE id = 1 FOR UPDATE; "
      "IF check_alerts <> 0 THEN a := coalesce((SELECT k FROM ",
      s,
      ".\"alerts\" ORDER BY k DESC LIMIT 1), ''::bytea); IF a <> alerts_after THEN RAISE EXCEPTION "
      "USING ERRCODE = '",
      postgres_internal::kLogMovedSqlState,
      "', MESSAGE = 'the alert log moved on (another replica appended)'; END IF; END IF; "
      "IF check_audit <> 0 THEN b := coalesce((SELECT k FROM ",
      s,
      ".\"audit\" ORDER BY k DESC LIMIT 1), ''::bytea); IF b <> audit_after THEN RAISE EXCEPTION "
      "USING ERRCODE = '",
      postgres_internal::kLogMovedSqlState,
      "', MESSAGE = 'the audit chain moved on (another replica appended)'; END IF; END IF; "
      "END $log$;"
      // Entries numbered at commit time: lock, then read the tail (each statement of a
      // volatile function sees what the lock's previous holder committed).
      " CREATE OR REPLACE FUNCTION ",
      s,
      ".lock_log(OUT alert_key bytea, OUT audit_key bytea, OUT audit_value bytea) "
      "LANGUAGE plpgsql AS $lock$ BEGIN PERFORM 1 FROM ",
      s, ".log_lock WHERE id = 1 FOR UPDATE; SELECT k INTO alert_key FROM ", s,
      ".\"alerts\" ORDER BY k DESC LIMIT 1; SELECT k, v INTO audit_key, audit_value FROM ", s,
      ".\"audit\" ORDER BY k DESC LIMIT 1; END $lock$;");
}

}  // namespace postgres_internal

}  // namespace pumptwin::store
