#include "proto/audit_hash.h"

#include "absl/strings/str_cat.h"
#include "common/sha256.h"

namespace pumptwin::audit {

const char kGenesisPreviousHashHex[] =
    "0000000000000000000000000000000000000000000000000000000000000000";

namespace {

constexpr absl::string_view kDomainTag = "pumptwin.audit.v1\n";

void PutU64(uint64_t v, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 0xff));
}

void PutU32(uint32_t v, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 0xff));
}

void PutString(absl::string_view s, std::string* out) {
  PutU32(static_cast<uint32_t>(s.size()), out);
  out->append(s.data(), s.size());
}

}  // namespace

std::string CanonicalAuditBytes(const pumptwin::v1::AuditRecord& r) {
  std::string out(kDomainTag);
  PutU64(r.sequence(), &out);
  PutU64(static_cast<uint64_t>(r.server_time_ms()), &out);
  for (const std::string* s : {&r.actor(), &r.role(), &r.method(), &r.resource(), &r.before_json(),
                               &r.after_json(), &r.reason(), &r.previous_hash_hex()}) {
    PutString(*s, &out);
  }
  return out;
}

std::string AuditRecordHashHex(const pumptwin::v1::AuditRecord& record) {
  return common::Sha256Hex(CanonicalAuditBytes(record));
}

void SealAuditRecord(absl::string_view previous_hash_hex, pumptwin::v1::AuditRecord* record) {
  record->set_previous_hash_hex(std::string(previous_hash_hex));
  record->clear_hash_hex();
  record->set_hash_hex(AuditRecordHashHex(*record));
}

ChainVerdict VerifyAuditChain(absl::Span<const pumptwin::v1::AuditRecord> records) {
  ChainVerdict v;
  auto fail = [&v](size_t i, uint64_t seq, std::string problem) {
    v.ok = false;
    v.first_bad_index = i;
    v.first_bad_sequence = seq;
    v.problem = std::move(problem);
    v.head_hash_hex.clear();
    return v;
  };
  for (size_t i = 0; i < records.size(); ++i) {
    const pumptwin::v1::AuditRecord& r = records[i];
    v.checked = i + 1;
    if (i == 0 && r.sequence() == 1 && r.previous_hash_hex() != kGenesisPreviousHashHex) {
      return fail(i, r.sequence(),
                  absl::StrCat("first record (sequence 1) has previous_hash_hex ",
                               r.previous_hash_hex(), ", expected the genesis value (64 zeros)"));
    }
    if (i > 0) {
      const pumptwin::v1::AuditRecord& prev = records[i - 1];
      if (r.sequence() != prev.sequence() + 1) {
        return fail(i, r.sequence(),
                    absl::StrCat("sequence ", r.sequence(), " follows ", prev.sequence(),
                                 ": records are missing or reordered"));
      }
      if (r.previous_hash_hex() != prev.hash_hex()) {
        return fail(i, r.sequence(),
                    absl::StrCat("previous_hash_hex ", r.previous_hash_hex(),
                                 " does not match the hash of sequence ", prev.sequence(), " (",
                                 prev.hash_hex(), ")"));
      }
    }
    const std::string recomputed = AuditRecordHashHex(r);
    if (r.hash_hex() != recomputed) {
      return fail(i, r.sequence(),
                  absl::StrCat("stored hash_hex ", r.hash_hex(), " differs from the recomputed ",
                               recomputed, ": the record was altered after it was sealed"));
    }
  }
  if (!records.empty()) v.head_hash_hex = records.back().hash_hex();
  return v;
}

}  // namespace pumptwin::audit
