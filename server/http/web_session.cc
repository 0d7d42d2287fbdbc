#include "server/http/web_session.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"

namespace pumptwin::server::http {

std::string RandomId() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    // No entropy: refuse to make a guessable id.
    std::abort();
  }
  return absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

bool SecretEquals(absl::string_view a, absl::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<std::string> CookieValue(absl::string_view header, absl::string_view name) {
  for (absl::string_view part : absl::StrSplit(header, ';')) {
    part = absl::StripAsciiWhitespace(part);
    size_t eq = part.find('=');
    if (eq == absl::string_view::npos) continue;
    if (part.substr(0, eq) == name) return std::string(part.substr(eq + 1));
  }
  return std::nullopt;
}

SessionStore::SessionStore(SessionOptions options, std::function<absl::Time()> now)
    : options_(options), now_(std::move(now)) {}

std::string SessionStore::Create(std::string token, SessionIdentity who) {
  const absl::Time now = now_();
  Session s;
  s.token = std::move(token);
  s.csrf = RandomId();
  s.created = now;
  s.last_used = now;
  s.expires = std::min(now + options_.lifetime, who.token_expires);
  s.who = std::move(who);
  std::string id = RandomId();
  absl::MutexLock lock(&mu_);
  if (sessions_.size() >= options_.max_sessions) {
    // Drop what has ended, then the least recently used.
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      auto cur = it++;
      if (now >= cur->second.expires || now - cur->second.last_used >= options_.idle) {
        sessions_.erase(cur);
      }
    }
    while (sessions_.size() >= options_.max_sessions && !sessions_.empty()) {
      auto oldest = sessions_.begin();
      for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
        if (it->second.last_used < oldest->second.last_used) oldest = it;
      }
      sessions_.erase(oldest);
    }
  }
  sessions_.emplace(id, std::move(s));
  return id;
}

std::optional<Session> SessionStore::Use(absl::string_view id) {
  const absl::Time now = now_();
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt;
  if (now >= it->second.expires || now - it->second.last_used >= options_.idle) {
    sessions_.erase(it);
    return std::nullopt;
  }
  it->second.last_used = now;
  return it->second;
}

void SessionStore::End(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  sessions_.erase(id);
}

size_t SessionStore::size() const {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

int64_t SessionStore::MaxAgeSeconds(const Session& s) const {
  return std::max<int64_t>(0, absl::ToInt64Seconds(s.expires - now_()));
}

}  // namespace pumptwin::server::http
