// Browser sessions of the web app (docs/web.md, docs/security.md "Browser sessions"): a
// person logs in once with a bearer token; the server keeps the token in memory and hands
// the browser an opaque session id in an HttpOnly, SameSite=Strict cookie, plus a CSRF token
// the page sends in `X-CSRF-Token` on every change. Requests with the cookie are made with
// the session's token, so roles, clinic scope, expiry and revocation are the token's own.
//
// A session ends at the first of: logout, `idle` without a request, `lifetime` after the
// login, the token's own expiry, a call the gRPC server refuses UNAUTHENTICATED (a revoked
// or expired token). Sessions live in this process only (a restart logs everyone out); at
// most `max_sessions` at once, the least recently used is dropped beyond.
//
// Thread-safe; the clock is injected (`now`).
#ifndef PUMPTWIN_SERVER_HTTP_WEB_SESSION_H_
#define PUMPTWIN_SERVER_HTTP_WEB_SESSION_H_

#include <cstddef>
#include <functional>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace pumptwin::server::http {

// Who a token is: what the login answers and the session keeps.
struct SessionIdentity {
  std::string actor;
  std::string role;    // "viewer" | "clinician" | "admin"
  std::string clinic;  // empty: every clinic
  absl::Time token_expires = absl::InfiniteFuture();
};

// The identity of a bearer token, or UNAUTHENTICATED (unknown or expired token).
using IdentifyFn = std::function<absl::StatusOr<SessionIdentity>(absl::string_view token)>;

struct SessionOptions {
  absl::Duration idle = absl::Hours(1);
  absl::Duration lifetime = absl::Hours(12);
  size_t max_sessions = 10000;
};

struct Session {
  std::string token;  // the bearer token the session's calls are made with
  SessionIdentity who;
  std::string csrf;  // sent back by the page in X-CSRF-Token
  absl::Time created;
  absl::Time last_used;
  absl::Time expires;  // min(created + lifetime, the token's expiry)
};

// 32 random bytes (OpenSSL RAND_bytes), base64url without padding (43 characters).
std::string RandomId();

class SessionStore {
 public:
  explicit SessionStore(
      SessionOptions options, std::function<absl::Time()> now = [] { return absl::Now(); });

  // A new session for `token`; returns its id (the cookie's value).
  std::string Create(std::string token, SessionIdentity who);
  // The live session of `id` (and marks it used), or nullopt: unknown, ended, idle too long
  // or past its expiry (such a session is dropped).
  std::optional<Session> Use(absl::string_view id);
  void End(absl::string_view id);
  size_t size() const;
  // Seconds until the session ends at the latest (the cookie's Max-Age).
  int64_t MaxAgeSeconds(const Session& s) const;

 private:
  const SessionOptions options_;
  const std::function<absl::Time()> now_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Session> sessions_ ABSL_GUARDED_BY(mu_);
};

// The value of cookie `name` in a Cookie header ("a=1; b=2"), or nullopt.
std::optional<std::string> CookieValue(absl::string_view header, absl::string_view name);
// Equal strings, compared in constant time for equal lengths (CRYPTO_memcmp).
bool SecretEquals(absl::string_view a, absl::string_view b);

}  // namespace pumptwin::server::http

#endif  // PUMPTWIN_SERVER_HTTP_WEB_SESSION_H_
