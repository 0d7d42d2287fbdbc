// The audit hash chain of pumptwin.v1.AuditRecord: the canonical bytes that are hashed, the
// SHA-256 of a record, sealing a new record onto a chain, and verifying a fetched chain.
// One definition shared by the server (which seals) and pumptwinctl (which verifies); the
// byte layout is documented in docs/api.md, "Audit chain". Lives next to the contract
// (target pumptwin_audit_hash: the messages and common/sha256.h only). Pure functions: thread-safe.
#ifndef PUMPTWIN_PROTO_AUDIT_HASH_H_
#define PUMPTWIN_PROTO_AUDIT_HASH_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "pumptwin/v1/resources.pb.h"

namespace pumptwin::audit {

// previous_hash_hex of the first record of the chain (sequence 1): 64 ASCII '0'.
extern const char kGenesisPreviousHashHex[];

// The exact bytes hashed for `record` (hash_hex is never part of them):
//   "pumptwin.audit.v1\n"                      domain tag, 18 bytes
//   sequence        8 bytes, unsigned big-endian
//   server_time_ms  8 bytes, two's complement big-endian
//   then for actor, role, method, resource, before_json, after_json, reason,
//   previous_hash_hex, in this order: 4-byte unsigned big-endian length + the UTF-8 bytes.
std::string CanonicalAuditBytes(const pumptwin::v1::AuditRecord& record);

// Lower-case hex SHA-256 of CanonicalAuditBytes(record), 64 characters.
std::string AuditRecordHashHex(const pumptwin::v1::AuditRecord& record);

// Links `record` after a record whose hash is `previous_hash_hex` (kGenesisPreviousHashHex for
// the first) and fills its hash_hex. The caller sets every other field first.
void SealAuditRecord(absl::string_view previous_hash_hex, pumptwin::v1::AuditRecord* record);

// Outcome of VerifyAuditChain. When !ok, first_bad_index is the index (in the span) of the
// first record that fails, and problem says why.
struct ChainVerdict {
  bool ok = true;
  size_t checked = 0;  // records examined
  size_t first_bad_index = 0;
  uint64_t first_bad_sequence = 0;
  std::string problem;
  std::string head_hash_hex;  // hash of the last record when ok
};

// Checks `records` (ascending sequence, as ListAuditRecords returns them): each record's
// hash_hex equals its recomputed hash, each previous_hash_hex equals the preceding record's
// hash_hex, sequences are consecutive, and a chain starting at sequence 1 starts from the
// genesis hash. A chain that starts later (earlier records not fetched) is verified from its
// first record on; that record's previous_hash_hex is taken on trust.
ChainVerdict VerifyAuditChain(absl::Span<const pumptwin::v1::AuditRecord> records);

}  // namespace pumptwin::audit

#endif  // PUMPTWIN_PROTO_AUDIT_HASH_H_
