// TokenAuthorizer: bearer tokens from a token file mapped to roles (docs/security.md).
//
// The file (--auth_tokens_file) holds one principal per line:
//     <name> <role> <sha256hex> [clinic=<clinic>] [expires=<RFC 3339 time>]
// where <role> is viewer|clinician|admin and <sha256hex> is the lowercase or uppercase
// hex SHA-256 of the token bytes exactly as the client sends them after "Bearer ".
// clinic= scopes a viewer or clinician to the pumps, alerts and twins of that clinic (the
// Pump's `clinic` field); without it the token sees every clinic. Admins are global: an
// admin line with clinic= is refused. expires= (e.g. 2027-03-31T00:00:00Z) ends the
// token's validity: later calls are UNAUTHENTICATED with the time in the message.
// '#' starts a comment; blank lines are ignored. Names and digests are unique. Tokens
// themselves are never stored: `pumptwin-token new` prints a fresh token and its line.
//
// A call carries `authorization: Bearer <token>`; the token is hashed (OpenSSL SHA-256)
// and compared in constant time against every digest (no early exit).
//
// Ownership: the authorizer owns an immutable table behind a shared_ptr; Reload() parses
// the file into a new table and swaps it in. A failed reload keeps the previous table.
// Thread-safety: Check/Reload/size may be called from any thread concurrently; a Check
// in progress keeps using the table it started with.
#ifndef PUMPTWIN_SERVER_TOKEN_AUTH_H_
#define PUMPTWIN_SERVER_TOKEN_AUTH_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/api/auth.h"

namespace pumptwin::server {

using TokenDigest = std::array<uint8_t, 32>;

struct TokenEntry {
  std::string name;
  Role role = Role::kViewer;
  TokenDigest digest{};
  std::string clinic;                           // empty: every clinic
  absl::Time expires = absl::InfiniteFuture();  // after it the token is refused
};

// SHA-256 of `token` (OpenSSL).
TokenDigest HashToken(absl::string_view token);
// Lowercase hex of a digest (64 characters).
std::string DigestHex(const TokenDigest& digest);
// "viewer" | "clinician" | "admin" -> Role; INVALID_ARGUMENT otherwise.
absl::StatusOr<Role> ParseRole(absl::string_view name);

// Parses a token file's content. `source` names the file in error messages
// ("tokens.txt:3: ..."). Rejects malformed lines, unknown roles, bad digests and
// duplicate names or digests.
absl::StatusOr<std::vector<TokenEntry>> ParseTokenFile(absl::string_view content,
                                                       absl::string_view source);

class TokenAuthorizer final : public Authorizer {
 public:
  // Reads and parses `path`; fails (and returns no authorizer) if it is unreadable or
  // malformed. `now` is the clock expiry is checked against (tests inject one).
  static absl::StatusOr<std::unique_ptr<TokenAuthorizer>> Load(
      std::string path, std::function<absl::Time()> now = [] { return absl::Now(); });

  // Re-reads the file. On success the new table is used by every later Check; on
  // failure the previous table stays in force and the error is returned.
  absl::Status Reload();

  absl::StatusOr<Principal> Check(const grpc::CallbackServerContext& ctx,
                                  Role required) const override;

  // The transport-independent part of Check: `authorization` is the value of the
  // "authorization" metadata, absent when the call carried none.
  absl::StatusOr<Principal> CheckAuthorization(std::optional<absl::string_view> authorization,
                                               Role required) const;

  // The table's entry of `token` (a browser login), refused as CheckAuthorization refuses:
  // UNAUTHENTICATED for an empty, unknown or expired token.
  absl::StatusOr<TokenEntry> Identify(absl::string_view token) const;

  size_t size() const;  // principals in the current table
  const std::string& path() const { return path_; }

 private:
  using Table = std::vector<TokenEntry>;
  TokenAuthorizer(std::string path, std::function<absl::Time()> now,
                  std::shared_ptr<const Table> table)
      : path_(std::move(path)), now_(std::move(now)), table_(std::move(table)) {}
  std::shared_ptr<const Table> table() const;

  const std::string path_;
  const std::function<absl::Time()> now_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const Table> table_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_TOKEN_AUTH_H_
