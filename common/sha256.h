// SHA-256 (FIPS 180-4) of in-memory bytes, for the layers that must not link OpenSSL
// (server/core seals the audit chain and versions the drug library with it; proto/audit_hash
// is shared with pumptwinctl). Integrity hashing only: no keys, no secrets, so constant time
// is not a requirement. Pure functions: thread-safe.
#ifndef PUMPTWIN_COMMON_SHA256_H_
#define PUMPTWIN_COMMON_SHA256_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace pumptwin::common {

inline constexpr size_t kSha256DigestBytes = 32;
using Sha256Digest = std::array<uint8_t, kSha256DigestBytes>;

// The SHA-256 digest of `bytes`.
Sha256Digest Sha256(absl::string_view bytes);

// Lower-case hex of Sha256(bytes), 64 characters.
std::string Sha256Hex(absl::string_view bytes);

}  // namespace pumptwin::common

#endif  // PUMPTWIN_COMMON_SHA256_H_
