#include "server/store/postgres_internal.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace pumptwin::store::postgres_internal {

std::string ConnectionMessage(PGconn* c) {
  return std::string(absl::StripTrailingAsciiWhitespace(PQerrorMessage(c)));
}

absl::Status PgError(PGconn* c, const PGresult* r, absl::string_view context) {
  const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string message =
      r != nullptr ? std::string(absl::StripTrailingAsciiWhitespace(PQresultErrorMessage(r))) : "";
  if (message.empty()) message = ConnectionMessage(c);
  if (message.empty()) message = "no result from the server";
  const std::string text = absl::StrCat(context, ": ", message);
  if (state == nullptr || PQstatus(c) == CONNECTION_BAD) {
    return absl::UnavailableError(absl::StrCat(text, " (connection to PostgreSQL lost)"));
  }
  const absl::string_view code(state);
  const absl::string_view cls = code.substr(0, 2);
  if (code == kLeaseLostSqlState) {
    const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    return absl::FailedPreconditionError(absl::StrCat(
        context, ": ", primary != nullptr ? primary : "lease lost", "; nothing of it was written"));
  }
  if (code == kLogMovedSqlState) {
    const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    return absl::AbortedError(absl::StrCat(
        context, ": ", primary != nullptr ? primary : "log moved", "; nothing of it was written"));
  }
  if (code == "25006") {
    return absl::UnavailableError(absl::StrCat(text, " (read-only server: a standby?)"));
  }
  if (cls == "08" || cls == "53" || cls == "57" || cls == "58" || code == "40001" ||
      code == "40P01") {
    return absl::UnavailableError(text);
  }
  if (code == "XX001" || code == "XX002") return absl::DataLossError(text);
  return absl::InternalError(absl::StrCat(text, " (SQLSTATE ", code, ")"));
}

}  // namespace pumptwin::store::postgres_internal
