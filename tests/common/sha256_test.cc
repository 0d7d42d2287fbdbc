#include "common/sha256.h"

#include <openssl/sha.h>

#include <random>
#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace pumptwin::common {
namespace {

TEST(Sha256Test, FipsExamples) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Every length across the one- and two-block padding boundaries (55, 56, 63, 64, 119, 120...)
// against OpenSSL.
TEST(Sha256Test, MatchesOpenSslForEveryLengthUpTo300Bytes) {
  std::mt19937 rng(20261205);
  std::uniform_int_distribution<int> byte(0, 255);
  for (size_t length = 0; length <= 300; ++length) {
    std::string input(length, '\0');
    for (char& c : input) c = static_cast<char>(byte(rng));
    unsigned char expected[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), expected);
    const Sha256Digest got = Sha256(input);
    ASSERT_EQ(std::string(got.begin(), got.end()),
              std::string(std::begin(expected), std::end(expected)))
        << "length " << length;
    EXPECT_EQ(Sha256Hex(input),
              absl::BytesToHexString(std::string(std::begin(expected), std::end(expected))));
  }
}

}  // namespace
}  // namespace pumptwin::common
