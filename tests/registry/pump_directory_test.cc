// PumpDirectory::StripeOf: deterministic, and spread over the shards even for ids that differ
// only in the high bits of one character (plain FNV-1a modulo 2 is the parity of the bytes'
// low bits, so such ids all landed on one shard).
#include "server/pump_directory.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace pumptwin::server {
namespace {

TEST(PumpDirectory, StripeIsTheSameForTheSameIdInEveryInstance) {
  PumpDirectory a(4), b(4);
  for (int i = 0; i < 100; ++i) {
    const std::string id = absl::StrCat("SYN-", i);
    EXPECT_EQ(a.StripeOf(id), b.StripeOf(id)) << id;
    EXPECT_GE(a.StripeOf(id), 0);
    EXPECT_LT(a.StripeOf(id), 4);
  }
}

TEST(PumpDirectory, IdsDifferingOnlyInHighCharacterBitsSpreadOverStripes) {
  // 'A', 'E', 'I', 'M', ... share their two low bits: FNV-1a alone put all of them on the
  // same stripe of 2 and of 4.
  for (int stripes : {2, 4}) {
    PumpDirectory dir(stripes);
    std::vector<int> count(static_cast<size_t>(stripes), 0);
    for (char c = 'A'; c <= 'Z'; c = static_cast<char>(c + 4)) {
      for (char d = 'A'; d <= 'Z'; d = static_cast<char>(d + 4)) {
        ++count[static_cast<size_t>(dir.StripeOf(std::string("pump-") + c + d))];
      }
    }
    for (int s = 0; s < stripes; ++s) {
      EXPECT_GE(count[static_cast<size_t>(s)], 49 / stripes / 3)
          << "stripe " << s << " of " << stripes << " is nearly empty";
    }
  }
}

}  // namespace
}  // namespace pumptwin::server
