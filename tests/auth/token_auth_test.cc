// Unit tests of the token file format and TokenAuthorizer (no gRPC server): parsing
// errors name the line, checks map tokens to principals, roles are ordered, Reload
// swaps the table atomically and a bad file keeps the previous one, concurrent checks
// during reloads stay consistent.
#include "server/api/token_auth.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pumptwin::server {
namespace {

using ::testing::HasSubstr;

std::string Line(const std::string& name, const std::string& role, const std::string& token) {
  return absl::StrCat(name, " ", role, " ", DigestHex(HashToken(token)), "\n");
}

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/token_auth_test_", getpid(), "_", name);
}

void Write(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::trunc) << content;
}

TEST(TokenFile, HashIsSha256Hex) {
  // printf '%s' abc | openssl dgst -sha256
  EXPECT_EQ(DigestHex(HashToken("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(TokenFile, ParsesCommentsBlankLinesAndUppercaseHex) {
  std::string upper = DigestHex(HashToken("t2"));
  for (char& c : upper) c = static_cast<char>(toupper(c));
  auto e = ParseTokenFile(
      absl::StrCat("# header\n\n", Line("a.b", "viewer", "t1"), "  dr.smith\tclinician  ", upper,
                   "  # note\n", Line("ops@clinic", "admin", "t3")),
      "f");
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->size(), 3u);
  EXPECT_EQ((*e)[1].name, "dr.smith");
  EXPECT_EQ((*e)[1].role, Role::kClinician);
  EXPECT_EQ((*e)[1].digest, HashToken("t2"));
}

TEST(TokenFile, RejectsBadLinesNamingTheLine) {
  struct Case {
    std::string content;
    std::string error;
  } cases[] = {
      {"a viewer\n",
       "f:1: expected '<name> <role> <sha256hex> [clinic=<clinic>] "
       "[expires=<time>]', got 2 fields"},
      {absl::StrCat("\n", Line("a", "root", "x")), "f:2: unknown role 'root'"},
      {"a viewer deadbeef\n", "is not a SHA-256 hex digest"},
      {absl::StrCat("a viewer ", std::string(64, 'g'), "\n"), "is not a SHA-256 hex digest"},
      {Line("a b", "viewer", "x"), "unknown role 'b'"},
      {absl::StrCat("a viewer ", DigestHex(HashToken("x")), " clinic=n x=1 y=2\n"), "got 6 fields"},
      {absl::StrCat("a admin ", DigestHex(HashToken("x")), " clinic=north\n"),
       "f:1: admin 'a' has clinic=: admins see every clinic"},
      {absl::StrCat("a viewer ", DigestHex(HashToken("x")), " clinic=\n"), "clinic= needs"},
      {absl::StrCat("a viewer ", DigestHex(HashToken("x")), " clinic=n clinic=s\n"),
       "clinic= given twice"},
      {absl::StrCat("a viewer ", DigestHex(HashToken("x")), " expires=tomorrow\n"),
       "expires='tomorrow' is not an RFC 3339 time"},
      {absl::StrCat("a viewer ", DigestHex(HashToken("x")), " site=n\n"),
       "unknown field 'site=n' (clinic=<clinic> or expires=<time>)"},
      {Line("a/b", "viewer", "x"), "name 'a/b'"},
      {absl::StrCat(Line("a", "viewer", "x"), Line("a", "admin", "y")), "f:2: duplicate name 'a'"},
      {absl::StrCat(Line("a", "viewer", "x"), Line("b", "admin", "x")), "f:2: duplicate digest"},
  };
  for (const Case& c : cases) {
    auto e = ParseTokenFile(c.content, "f");
    ASSERT_FALSE(e.ok()) << c.content;
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(e.status().message(), HasSubstr(c.error)) << c.content;
  }
}

TEST(TokenAuthorizer, ChecksTokensAndRoles) {
  std::string path = TempPath("roles");
  Write(path, absl::StrCat(Line("v", "viewer", "tv"), Line("c", "clinician", "tc"),
                           Line("a", "admin", "ta")));
  auto auth = TokenAuthorizer::Load(path);
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ((*auth)->size(), 3u);

  auto missing = (*auth)->CheckAuthorization(std::nullopt, Role::kViewer);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(missing.status().message(), HasSubstr("missing bearer token"));
  for (absl::string_view bad : {"Bearer nope", "Basic tv", "tv", "Bearer ", "Bearer"}) {
    EXPECT_EQ((*auth)->CheckAuthorization(bad, Role::kViewer).status().code(),
              absl::StatusCode::kUnauthenticated)
        << bad;
  }
  auto denied = (*auth)->CheckAuthorization("Bearer tv", Role::kClinician);
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(denied.status().message(), HasSubstr("requires role clinician"));
  EXPECT_EQ((*auth)->CheckAuthorization("Bearer tc", Role::kAdmin).status().code(),
            absl::StatusCode::kPermissionDenied);

  auto ok = (*auth)->CheckAuthorization("bearer  tc ", Role::kViewer);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->actor, "c");
  EXPECT_EQ(ok->role, Role::kClinician);
  auto admin = (*auth)->CheckAuthorization("Bearer ta", Role::kAdmin);
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(admin->actor, "a");
  std::remove(path.c_str());
}

TEST(TokenFile, ParsesClinicAndExpiry) {
  auto e = ParseTokenFile(absl::StrCat("n.c clinician ", DigestHex(HashToken("t1")),
                                       " expires=2027-03-31T00:00:00Z clinic=north  # scoped\n",
                                       Line("fleet", "viewer", "t2")),
                          "f");
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->size(), 2u);
  EXPECT_EQ((*e)[0].clinic, "north");
  EXPECT_EQ((*e)[0].expires, absl::FromCivil(absl::CivilSecond(2027, 3, 31), absl::UTCTimeZone()));
  EXPECT_EQ((*e)[1].clinic, "");
  EXPECT_EQ((*e)[1].expires, absl::InfiniteFuture());
}

TEST(TokenAuthorizer, ScopedPrincipalCarriesItsClinicAndExpires) {
  std::string path = TempPath("scoped");
  Write(path,
        absl::StrCat("n viewer ", DigestHex(HashToken("tn")),
                     " clinic=north expires=2027-01-01T00:00:00Z\n", Line("a", "admin", "ta")));
  absl::Time now =
      absl::FromCivil(absl::CivilSecond(2026, 12, 31, 23, 59, 59), absl::UTCTimeZone());
  auto auth = TokenAuthorizer::Load(path, [&now] { return now; });
  ASSERT_TRUE(auth.ok()) << auth.status();
  auto p = (*auth)->CheckAuthorization("Bearer tn", Role::kViewer);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->clinic, "north");
  EXPECT_TRUE(p->SeesClinic("north"));
  EXPECT_FALSE(p->SeesClinic("south"));
  auto admin = (*auth)->CheckAuthorization("Bearer ta", Role::kAdmin);
  ASSERT_TRUE(admin.ok());
  EXPECT_TRUE(admin->SeesClinic("south"));

  now += absl::Seconds(1);  // the expiry instant itself is refused
  auto expired = (*auth)->CheckAuthorization("Bearer tn", Role::kViewer);
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(expired.status().message(),
              HasSubstr("the token of 'n' expired at 2027-01-01T00:00:00+00:00"));
  EXPECT_TRUE((*auth)->CheckAuthorization("Bearer ta", Role::kAdmin).ok());
  std::remove(path.c_str());
}

TEST(TokenAuthorizer, LoadFailsOnMissingOrMalformedFile) {
  auto missing = TokenAuthorizer::Load(TempPath("does-not-exist"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), HasSubstr("cannot read --auth_tokens_file"));
}

TEST(TokenAuthorizer, ReloadSwapsAndABadFileKeepsThePreviousTable) {
  std::string path = TempPath("reload");
  Write(path, Line("old", "viewer", "t-old"));
  auto auth = TokenAuthorizer::Load(path);
  ASSERT_TRUE(auth.ok());
  Write(path, Line("new", "admin", "t-new"));
  ASSERT_TRUE((*auth)->Reload().ok());
  EXPECT_EQ((*auth)->CheckAuthorization("Bearer t-old", Role::kViewer).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE((*auth)->CheckAuthorization("Bearer t-new", Role::kAdmin).ok());

  Write(path, "garbage\n");
  EXPECT_FALSE((*auth)->Reload().ok());
  EXPECT_TRUE((*auth)->CheckAuthorization("Bearer t-new", Role::kAdmin).ok());
  std::remove(path.c_str());
  EXPECT_FALSE((*auth)->Reload().ok());
  EXPECT_TRUE((*auth)->CheckAuthorization("Bearer t-new", Role::kAdmin).ok());
}

TEST(TokenAuthorizer, ConcurrentChecksDuringReloadsSeeOneTableOrTheOther) {
  std::string path = TempPath("concurrent");
  // Both files authorize "stable"; "a"/"b" alternate.
  std::string file_a = absl::StrCat(Line("stable", "viewer", "ts"), Line("a", "admin", "ta"));
  std::string file_b = absl::StrCat(Line("stable", "viewer", "ts"), Line("b", "admin", "tb"));
  Write(path, file_a);
  auto auth = TokenAuthorizer::Load(path);
  ASSERT_TRUE(auth.ok());
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        if (!(*auth)->CheckAuthorization("Bearer ts", Role::kViewer).ok()) failures++;
      }
    });
  }
  std::string tmp = path + ".tmp";
  for (int i = 0; i < 200; ++i) {
    Write(tmp, i % 2 ? file_a : file_b);
    std::rename(tmp.c_str(), path.c_str());  // atomic replace, as docs/security.md says
    EXPECT_TRUE((*auth)->Reload().ok());
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(failures.load(), 0);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace pumptwin::server
