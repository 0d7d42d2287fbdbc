// The audit hash chain: a sealed chain verifies; altering any field of any record, dropping or
// reordering records, or re-linking is detected at the right index.
#include "proto/audit_hash.h"

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pumptwin::audit {
namespace {

using pumptwin::v1::AuditRecord;
using ::testing::HasSubstr;

std::vector<AuditRecord> MakeChain(int n) {
  std::vector<AuditRecord> chain;
  std::string prev = kGenesisPreviousHashHex;
  for (int i = 1; i <= n; ++i) {
    AuditRecord r;
    r.set_sequence(i);
    r.set_server_time_ms(1795334400000 + i * 1000);
    r.set_actor(i % 2 ? "dr.house" : "admin");
    r.set_role(i % 2 ? "clinician" : "admin");
    r.set_method("TwinService.SetPrescription");
    r.set_resource(absl::StrCat("pumps/P", i));
    r.set_before_json(absl::StrCat("{\"version\":", i - 1, "}"));
    r.set_after_json(absl::StrCat("{\"version\":", i, "}"));
    r.set_reason("titration");
    SealAuditRecord(prev, &r);
    prev = r.hash_hex();
    chain.push_back(r);
  }
  return chain;
}

TEST(AuditHashTest, HashIsLowerHexSha256AndIgnoresItsOwnField) {
  AuditRecord r = MakeChain(1)[0];
  EXPECT_EQ(r.hash_hex().size(), 64u);
  EXPECT_EQ(r.hash_hex().find_first_not_of("0123456789abcdef"), std::string::npos);
  AuditRecord copy = r;
  copy.set_hash_hex("whatever");
  EXPECT_EQ(AuditRecordHashHex(copy), r.hash_hex());
}

TEST(AuditHashTest, CanonicalBytesFollowTheDocumentedLayout) {
  AuditRecord r;
  r.set_sequence(1);
  r.set_server_time_ms(-1);
  r.set_actor("a");
  const std::string b = CanonicalAuditBytes(r);
  const std::string tag = "pumptwin.audit.v1\n";
  ASSERT_EQ(b.size(), tag.size() + 8 + 8 + 8 * 4 + 1);
  EXPECT_EQ(b.substr(0, tag.size()), tag);
  EXPECT_EQ(b.substr(tag.size(), 8), std::string("\0\0\0\0\0\0\0\1", 8));
  EXPECT_EQ(b.substr(tag.size() + 8, 8), std::string(8, '\xff'));
  EXPECT_EQ(b.substr(tag.size() + 16, 5), std::string("\0\0\0\1a", 5));
}

// Known answer, computed independently (Python hashlib + struct, as in docs/api.md): pins the
// layout so the server, pumptwinctl and any other verifier hash the same bytes.
TEST(AuditHashTest, KnownAnswer) {
  AuditRecord r;
  r.set_sequence(1);
  r.set_server_time_ms(1795334400000);
  r.set_actor("dr.house");
  r.set_role("clinician");
  r.set_method("TwinService.SetPrescription");
  r.set_resource("pumps/P1");
  r.set_before_json("{}");
  r.set_after_json("{\"version\":1}");
  r.set_reason("start");
  SealAuditRecord(kGenesisPreviousHashHex, &r);
  EXPECT_EQ(r.hash_hex(), "4d7beefd675c012a9e4f2d1a93098a6fddebca2742288ec8fa38922c87f77a00");
}

TEST(AuditHashTest, FieldBoundariesMatter) {
  AuditRecord a, b;
  a.set_actor("ab");
  a.set_role("c");
  b.set_actor("a");
  b.set_role("bc");
  EXPECT_NE(AuditRecordHashHex(a), AuditRecordHashHex(b));
}

TEST(VerifyAuditChainTest, IntactChainVerifies) {
  auto chain = MakeChain(10);
  ChainVerdict v = VerifyAuditChain(chain);
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.checked, 10u);
  EXPECT_EQ(v.head_hash_hex, chain.back().hash_hex());
  EXPECT_TRUE(VerifyAuditChain({}).ok);
}

TEST(VerifyAuditChainTest, ChainFetchedFromTheMiddleVerifiesFromThere) {
  auto chain = MakeChain(10);
  std::vector<AuditRecord> tail(chain.begin() + 4, chain.end());
  EXPECT_TRUE(VerifyAuditChain(tail).ok);
}

// Every field that is hashed: tampering with it in record 6 is reported at index 6.
TEST(VerifyAuditChainTest, TamperingAnyFieldIsDetectedAtItsIndex) {
  const std::vector<std::pair<std::string, std::function<void(AuditRecord*)>>> tampers = {
      {"server_time_ms", [](AuditRecord* r) { r->set_server_time_ms(r->server_time_ms() + 1); }},
      {"actor", [](AuditRecord* r) { r->set_actor("mallory"); }},
      {"role", [](AuditRecord* r) { r->set_role("admin"); }},
      {"method", [](AuditRecord* r) { r->set_method("TwinService.RecordRefill"); }},
      {"resource", [](AuditRecord* r) { r->set_resource("pumps/P99"); }},
      {"before_json", [](AuditRecord* r) { r->set_before_json("{}"); }},
      {"after_json", [](AuditRecord* r) { r->set_after_json("{\"rate_ul_per_day\":30000}"); }},
      {"reason", [](AuditRecord* r) { r->set_reason(""); }},
      {"hash_hex", [](AuditRecord* r) { r->set_hash_hex(std::string(64, 'a')); }},
  };
  for (const auto& [field, tamper] : tampers) {
    auto chain = MakeChain(10);
    tamper(&chain[6]);
    ChainVerdict v = VerifyAuditChain(chain);
    EXPECT_FALSE(v.ok) << field;
    EXPECT_EQ(v.first_bad_index, 6u) << field;
    EXPECT_EQ(v.first_bad_sequence, 7u) << field;
    EXPECT_EQ(v.checked, 7u) << field;
  }
}

TEST(VerifyAuditChainTest, ResealedRecordBreaksTheNextLink) {
  auto chain = MakeChain(10);
  chain[3].set_after_json("{\"forged\":true}");
  SealAuditRecord(chain[3].previous_hash_hex(), &chain[3]);  // forger recomputes its hash
  ChainVerdict v = VerifyAuditChain(chain);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_index, 4u);
  EXPECT_THAT(v.problem, HasSubstr("does not match the hash of sequence 4"));
}

TEST(VerifyAuditChainTest, RemovedOrReorderedRecordsAreDetected) {
  auto chain = MakeChain(10);
  auto removed = chain;
  removed.erase(removed.begin() + 5);
  ChainVerdict v = VerifyAuditChain(removed);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_index, 5u);
  EXPECT_THAT(v.problem, HasSubstr("missing or reordered"));

  auto swapped = chain;
  std::swap(swapped[2], swapped[3]);
  v = VerifyAuditChain(swapped);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_index, 2u);
}

TEST(VerifyAuditChainTest, FirstRecordMustStartFromGenesis) {
  auto chain = MakeChain(3);
  SealAuditRecord(std::string(64, '1'), &chain[0]);
  ChainVerdict v = VerifyAuditChain(chain);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_index, 0u);
  EXPECT_THAT(v.problem, HasSubstr("genesis"));
}

}  // namespace
}  // namespace pumptwin::audit
