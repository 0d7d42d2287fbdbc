#include "server/api/token_auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "server/api/token_name.h"

namespace pumptwin::server {
namespace {

constexpr absl::string_view kHeader = "authorization";
constexpr absl::string_view kScheme = "bearer ";
// Longer values are refused before hashing (cheap DoS guard; real tokens are ~70 bytes).
constexpr size_t kMaxTokenBytes = 4096;

std::optional<TokenDigest> ParseDigest(absl::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  std::string bytes = absl::HexStringToBytes(hex);
  TokenDigest d;
  std::copy(bytes.begin(), bytes.end(), d.begin());
  return d;
}

absl::Status Unauthenticated(absl::string_view why) {
  return absl::UnauthenticatedError(
      absl::StrCat(why,
                   ": send metadata 'authorization: Bearer <token>' with a token from "
                   "the server's --auth_tokens_file (see docs/security.md)"));
}

// The optional key=value fields after the digest: clinic= and expires=.
absl::Status ParseOptions(const std::vector<absl::string_view>& fields, const std::string& where,
                          TokenEntry* entry) {
  bool seen_clinic = false, seen_expires = false;
  for (size_t i = 3; i < fields.size(); ++i) {
    absl::string_view f = fields[i];
    if (absl::ConsumePrefix(&f, "clinic=")) {
      if (seen_clinic)
        return absl::InvalidArgumentError(absl::StrCat(where, "clinic= given twice"));
      seen_clinic = true;
      if (f.empty() || f.size() > 128) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "clinic= needs the clinic's name (1-128 characters)"));
      }
      if (entry->role == Role::kAdmin) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, "admin '", entry->name,
            "' has clinic=: admins see every clinic; give the person a clinician token instead"));
      }
      entry->clinic = std::string(f);
    } else if (absl::ConsumePrefix(&f, "expires=")) {
      if (seen_expires) {
        return absl::InvalidArgumentError(absl::StrCat(where, "expires= given twice"));
      }
      seen_expires = true;
      std::string err;
      if (!absl::ParseTime(absl::RFC3339_full, f, &entry->expires, &err)) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, "expires='", f, "' is not an RFC 3339 time (e.g. 2027-03-31T00:00:00Z)"));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(where, "unknown field '", f.substr(0, 32),
                                                     "' (clinic=<clinic> or expires=<time>)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

TokenDigest HashToken(absl::string_view token) {
  TokenDigest d;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), d.data());
  return d;
}

std::string DigestHex(const TokenDigest& digest) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  if (name == "viewer") return Role::kViewer;
  if (name == "clinician") return Role::kClinician;
  if (name == "admin") return Role::kAdmin;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role '", name, "' (viewer, clinician, admin)"));
}

absl::StatusOr<std::vector<TokenEntry>> ParseTokenFile(absl::string_view content,
                                                       absl::string_view source) {
  std::vector<TokenEntry> out;
  absl::flat_hash_set<std::string> names;
  absl::flat_hash_set<std::string> digests;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    ++line_no;
    if (auto hash = line.find('#'); hash != absl::string_view::npos) line = line.substr(0, hash);
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    auto where = [&] { return absl::StrCat(source, ":", line_no, ": "); };
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.size() < 3 || f.size() > 5) {
      return absl::InvalidArgumentError(absl::StrCat(
          where(), "expected '<name> <role> <sha256hex> [clinic=<clinic>] [expires=<time>]', got ",
          f.size(), " fields"));
    }
    if (!IsValidTokenName(f[0])) {
      return absl::InvalidArgumentError(absl::StrCat(
          where(), "name '", f[0], "' must be 1-128 of letters, digits, '.', '_', '-', '@'"));
    }
    auto role = ParseRole(f[1]);
    if (!role.ok())
      return absl::InvalidArgumentError(absl::StrCat(where(), role.status().message()));
    auto digest = ParseDigest(f[2]);
    if (!digest) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "'", f[2].substr(0, 16),
                       "...' is not a SHA-256 hex digest (64 hex digits); "
                       "the file holds digests, never tokens: see pumptwin-token"));
    }
    if (!names.insert(std::string(f[0])).second) {
      return absl::InvalidArgumentError(absl::StrCat(where(), "duplicate name '", f[0], "'"));
    }
    if (!digests.insert(DigestHex(*digest)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "duplicate digest (the same token for two names)"));
    }
    TokenEntry entry{std::string(f[0]), *role, *digest};
    if (absl::Status s = ParseOptions(f, where(), &entry); !s.ok()) return s;
    out.push_back(std::move(entry));
  }
  return out;
}

namespace {

absl::StatusOr<std::vector<TokenEntry>> ReadTokenFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read --auth_tokens_file '", path, "'"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat("error reading --auth_tokens_file '", path, "'"));
  }
  return ParseTokenFile(ss.str(), path);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TokenAuthorizer>> TokenAuthorizer::Load(
    std::string path, std::function<absl::Time()> now) {
  auto entries = ReadTokenFile(path);
  if (!entries.ok()) return entries.status();
  auto table = std::make_shared<const Table>(*std::move(entries));
  return std::unique_ptr<TokenAuthorizer>(
      new TokenAuthorizer(std::move(path), std::move(now), std::move(table)));
}

absl::Status TokenAuthorizer::Reload() {
  auto entries = ReadTokenFile(path_);
  if (!entries.ok()) return entries.status();
  auto table = std::make_shared<const Table>(*std::move(entries));
  std::shared_ptr<const Table> old;
  {
    absl::MutexLock lock(&mu_);
    old = std::exchange(table_, std::move(table));
  }
  return absl::OkStatus();  // `old` is released outside the lock
}

std::shared_ptr<const TokenAuthorizer::Table> TokenAuthorizer::table() const {
  absl::MutexLock lock(&mu_);
  return table_;
}

size_t TokenAuthorizer::size() const { return table()->size(); }

absl::StatusOr<Principal> TokenAuthorizer::Check(const grpc::CallbackServerContext& ctx,
                                                 Role required) const {
  const auto& md = ctx.client_metadata();
  auto it = md.find(grpc::string_ref(kHeader.data(), kHeader.size()));
  if (it == md.end()) return CheckAuthorization(std::nullopt, required);
  if (md.count(grpc::string_ref(kHeader.data(), kHeader.size())) > 1) {
    return Unauthenticated("more than one authorization header");
  }
  return CheckAuthorization(absl::string_view(it->second.data(), it->second.size()), required);
}

absl::StatusOr<Principal> TokenAuthorizer::CheckAuthorization(
    std::optional<absl::string_view> authorization, Role required) const {
  if (!authorization.has_value()) return Unauthenticated("missing bearer token");
  absl::string_view value = *authorization;
  if (value.size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return Unauthenticated("authorization header is not of the form 'Bearer <token>'");
  }
  absl::string_view token = absl::StripAsciiWhitespace(value.substr(kScheme.size()));
  if (token.empty()) return Unauthenticated("empty bearer token");
  if (token.size() > kMaxTokenBytes) return Unauthenticated("bearer token too long");

  TokenDigest digest = HashToken(token);
  std::shared_ptr<const Table> table = this->table();
  // Constant time over the table: every entry is compared, no early exit.
  const TokenEntry* match = nullptr;
  for (const TokenEntry& e : *table) {
    bool equal = CRYPTO_memcmp(e.digest.data(), digest.data(), digest.size()) == 0;
    if (equal) match = &e;
  }
  if (match == nullptr) return Unauthenticated("unknown bearer token");
  if (now_() >= match->expires) {
    return Unauthenticated(
        absl::StrCat("the token of '", match->name, "' expired at ",
                     absl::FormatTime(absl::RFC3339_sec, match->expires, absl::UTCTimeZone()),
                     "; ask an admin for a new one"));
  }
  if (static_cast<int>(match->role) < static_cast<int>(required)) {
    return absl::PermissionDeniedError(
        absl::StrCat("'", match->name, "' has role ", RoleName(match->role),
                     "; this method requires role ", RoleName(required), " or higher"));
  }
  return Principal{match->name, match->role, match->clinic};
}

absl::StatusOr<TokenEntry> TokenAuthorizer::Identify(absl::string_view token) const {
  absl::StatusOr<Principal> p = CheckAuthorization(absl::StrCat("Bearer ", token), Role::kViewer);
  if (!p.ok()) return p.status();
  std::shared_ptr<const Table> table = this->table();
  for (const TokenEntry& e : *table) {
    if (e.name == p->actor) return e;
  }
  return Unauthenticated("unknown bearer token");  // removed by a reload in between
}

}  // namespace pumptwin::server
