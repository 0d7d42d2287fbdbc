// PostgresStore's virtual-shard leases (postgres_store.h, ShardLease): every time is the
// database's clock (clock_timestamp()), never a replica's, so replicas with skewed clocks
// agree on who holds what.
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

}  // namespace pumptwin::store
