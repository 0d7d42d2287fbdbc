// pumptwin-token: creates a random bearer token and the line that authorizes it in the
// server's --auth_tokens_file ("<name> <role> <sha256hex> [clinic=...] [expires=...]"), or hashes
// an existing token read from stdin. The token is printed once and never stored by the server: the
// file holds only its SHA-256. Format and rotation: docs/security.md. Single-threaded.
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "server/api/token_name.h"

namespace {

constexpr char kUsage[] =
    R"(pumptwin-token: bearer tokens for pumptwind (--auth_tokens_file).

Usage:
  pumptwin-token new  --name NAME --role ROLE [--clinic CLINIC] [--expires TIME] [--quiet]
      Prints a new random token (256 bits) and its token-file line. Give the token to
      the client once; append the line to the server's token file; send SIGHUP to
      pumptwind (or restart it) to load it.
  pumptwin-token hash --name NAME --role ROLE [--clinic CLINIC] [--expires TIME] < token
      Reads an existing token from stdin (one line) and prints its token-file line.
  pumptwin-token --help

  ROLE is viewer (read), clinician (read, prescribe, refill, events, acknowledge)
  or admin (everything, incl. register, decommission, drug library, audit).
  NAME: 1-128 of letters, digits, '.', '_', '-', '@' (the actor in audit records).
  --clinic   viewer and clinician only: the token sees and changes the pumps, alerts
             and twins of this clinic only (the Pump's clinic field). Without it the
             token sees every clinic (fleet-wide systems). Admins are always global.
  --expires  RFC 3339 time after which the server refuses the token
             (e.g. 2027-03-31T00:00:00Z). Default: no expiry.
  --quiet  with `new`: print only two lines, the token then the file line.

Output of `new` (comment lines start with '#'):
  # token for NAME (ROLE): shown once, store it in the client's secret store
  ptw_...
  # line for --auth_tokens_file:
  NAME ROLE <sha256hex> [clinic=CLINIC] [expires=TIME]

Equivalent by hand:  printf '%s' "$TOKEN" | openssl dgst -sha256 -r | cut -d' ' -f1
Exit codes: 0 ok, 2 usage error, 1 failure (no randomness).
)";

bool ValidRole(absl::string_view role) {
  return role == "viewer" || role == "clinician" || role == "admin";
}

std::string Sha256Hex(absl::string_view token) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), d);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(d), sizeof d));
}

int Usage(const std::string& error) {
  std::cerr << "pumptwin-token: " << error << "\n(see pumptwin-token --help)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string command, name, role, clinic, expires;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](absl::string_view flag, std::string* out) -> std::optional<bool> {
      std::string eq = std::string(flag) + "=";
      if (absl::StartsWith(a, eq)) {
        *out = a.substr(eq.size());
        return true;
      }
      if (a != flag) return std::nullopt;
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    if (a == "--help" || a == "-h" || a == "help") {
      std::cout << kUsage;
      return 0;
    }
    if (a == "--quiet") {
      quiet = true;
      continue;
    }
    std::optional<bool> got = value("--name", &name);
    if (!got) got = value("--role", &role);
    if (!got) got = value("--clinic", &clinic);
    if (!got) got = value("--expires", &expires);
    if (got.has_value()) {
      if (!*got) return Usage(a + " needs a value");
      continue;
    }
    if (absl::StartsWith(a, "-")) return Usage("unknown flag " + a);
    if (!command.empty()) return Usage("unexpected argument '" + a + "'");
    command = a;
  }
  if (command != "new" && command != "hash") {
    return Usage(command.empty() ? "missing command (new or hash)"
                                 : "unknown command '" + command + "' (new or hash)");
  }
  if (!pumptwin::server::IsValidTokenName(name)) {
    return Usage("--name='" + name + "' must be 1-128 of letters, digits, '.', '_', '-', '@'");
  }
  if (!ValidRole(role)) return Usage("--role='" + role + "' must be viewer, clinician or admin");
  if (!clinic.empty() && role == "admin") {
    return Usage("--clinic with --role=admin: admins see every clinic; scope a clinician instead");
  }
  if (clinic.size() > 128 || absl::StrContains(clinic, ' ') || absl::StrContains(clinic, '\t') ||
      absl::StrContains(clinic, '#')) {
    return Usage("--clinic='" + clinic + "' must be 1-128 characters without spaces or '#'");
  }
  if (!expires.empty()) {
    absl::Time t;
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, expires, &t, &err)) {
      return Usage("--expires='" + expires +
                   "' is not an RFC 3339 time (e.g. 2027-03-31T00:00:00Z)");
    }
  }

  std::string token;
  if (command == "new") {
    unsigned char bytes[32];
    if (RAND_bytes(bytes, sizeof bytes) != 1) {
      std::cerr << "pumptwin-token: OpenSSL RAND_bytes failed\n";
      return 1;
    }
    std::string b64;
    absl::WebSafeBase64Escape(absl::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes),
                              &b64);
    token = "ptw_" + b64;
  } else {
    std::getline(std::cin, token);
    token = std::string(absl::StripAsciiWhitespace(token));
    if (token.empty()) return Usage("hash: no token on stdin");
  }
  std::string line = name + " " + role + " " + Sha256Hex(token);
  if (!clinic.empty()) line += " clinic=" + clinic;
  if (!expires.empty()) line += " expires=" + expires;
  if (command == "hash") {
    std::cout << line << "\n";
  } else if (quiet) {
    std::cout << token << "\n" << line << "\n";
  } else {
    std::cout << "# token for " << name << " (" << role
              << "): shown once, store it in the client's secret store\n"
              << token << "\n# line for --auth_tokens_file:\n"
              << line << "\n";
  }
  return 0;
}
