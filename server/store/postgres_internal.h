// Helpers shared by the PostgresStore's files (postgres_store.cc, postgres_leases.cc): the
// result holder and the mapping of libpq failures onto statuses. Not part of the store's API.
#ifndef PUMPTWIN_SERVER_STORE_POSTGRES_INTERNAL_H_
#define PUMPTWIN_SERVER_STORE_POSTGRES_INTERNAL_H_

#include <libpq-fe.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace pumptwin::store::postgres_internal {

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

// SQLSTATE raised by the fence check (check_fence) when a shard's lease is no longer this
// replica's at the epoch it wrote under.
inline constexpr absl::string_view kLeaseLostSqlState = "PTF01";
// SQLSTATE raised by check_log when another replica appended to the alert or audit log
// after the entry this commit continues.
inline constexpr absl::string_view kLogMovedSqlState = "PTL01";

// The DDL of cluster mode in `schema` (quoted): the lease and replica tables, the fence
// check, the log lock and its functions (check_log, lock_log). Idempotent.
std::string LeaseDdl(absl::string_view schema);

// The connection's last error message, without the trailing newline.
std::string ConnectionMessage(PGconn* c);

// The status of a failed statement: connection-level and server-side transient failures are
// UNAVAILABLE (retry later), a lost lease FAILED_PRECONDITION, a moved log ABORTED
// (renumber and retry), corruption DATA_LOSS, the
// rest INTERNAL.
absl::Status PgError(PGconn* c, const PGresult* r, absl::string_view context);

}  // namespace pumptwin::store::postgres_internal

#endif  // PUMPTWIN_SERVER_STORE_POSTGRES_INTERNAL_H_
