// Unit tests of the web app's session store (injected clock): a session ends when idle too
// long, at its lifetime, at its token's expiry, on logout; the store is bounded; ids and
// CSRF tokens are random and long; cookie parsing.
#include "server/http/web_session.h"

#include <set>

#include "gtest/gtest.h"

namespace pumptwin::server::http {
namespace {

class SessionStoreTest : public ::testing::Test {
 protected:
  absl::Time now_ = absl::FromUnixSeconds(1'800'000'000);
  SessionOptions options_{.idle = absl::Minutes(30), .lifetime = absl::Hours(8), .max_sessions = 3};
  SessionStore store_{options_, [this] { return now_; }};
  SessionIdentity Who(absl::Time expires = absl::InfiniteFuture()) {
    return {"dr.smith", "clinician", "north", expires};
  }
};

TEST_F(SessionStoreTest, UseReturnsTheTokenIdentityAndCsrf) {
  std::string id = store_.Create("tok", Who());
  auto s = store_.Use(id);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->token, "tok");
  EXPECT_EQ(s->who.actor, "dr.smith");
  EXPECT_EQ(s->who.clinic, "north");
  EXPECT_EQ(s->csrf.size(), 43u);
  EXPECT_EQ(id.size(), 43u);
  EXPECT_NE(s->csrf, id);
  EXPECT_EQ(store_.MaxAgeSeconds(*s), 8 * 3600);
  EXPECT_FALSE(store_.Use("not-a-session").has_value());
}

TEST_F(SessionStoreTest, IdleSessionEnds) {
  std::string id = store_.Create("tok", Who());
  now_ += absl::Minutes(29);
  ASSERT_TRUE(store_.Use(id).has_value());  // used: the idle clock restarts
  now_ += absl::Minutes(29);
  ASSERT_TRUE(store_.Use(id).has_value());
  now_ += absl::Minutes(30);
  EXPECT_FALSE(store_.Use(id).has_value());
  EXPECT_EQ(store_.size(), 0u);
}

TEST_F(SessionStoreTest, SessionEndsAtItsLifetimeEvenWhenUsed) {
  std::string id = store_.Create("tok", Who());
  for (int i = 0; i < 16; ++i) {  // used every 29 min: 7 h 44 min
    now_ += absl::Minutes(29);
    ASSERT_TRUE(store_.Use(id).has_value()) << i;
  }
  now_ += absl::Minutes(20);  // 8 h 04 min, idle 20 min
  EXPECT_FALSE(store_.Use(id).has_value());
}

TEST_F(SessionStoreTest, SessionNeverOutlivesItsToken) {
  std::string id = store_.Create("tok", Who(now_ + absl::Minutes(10)));
  auto s = store_.Use(id);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->expires, now_ + absl::Minutes(10));
  EXPECT_EQ(store_.MaxAgeSeconds(*s), 600);
  now_ += absl::Minutes(10);
  EXPECT_FALSE(store_.Use(id).has_value());
}

TEST_F(SessionStoreTest, LogoutEnds) {
  std::string id = store_.Create("tok", Who());
  store_.End(id);
  EXPECT_FALSE(store_.Use(id).has_value());
}

TEST_F(SessionStoreTest, BoundedDropsTheLeastRecentlyUsed) {
  std::string a = store_.Create("a", Who());
  now_ += absl::Seconds(1);
  std::string b = store_.Create("b", Who());
  now_ += absl::Seconds(1);
  std::string c = store_.Create("c", Who());
  now_ += absl::Seconds(1);
  ASSERT_TRUE(store_.Use(a).has_value());  // b is now the least recently used
  std::string d = store_.Create("d", Who());
  EXPECT_EQ(store_.size(), 3u);
  EXPECT_FALSE(store_.Use(b).has_value());
  EXPECT_TRUE(store_.Use(a).has_value());
  EXPECT_TRUE(store_.Use(c).has_value());
  EXPECT_TRUE(store_.Use(d).has_value());
}

TEST(RandomId, IsUrlSafeAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = RandomId();
    ASSERT_EQ(id.size(), 43u);
    ASSERT_EQ(
        id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
        std::string::npos)
        << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(CookieValue, FindsTheNamedCookieOnly) {
  EXPECT_EQ(CookieValue("a=1; pt_session=xyz; b=2", "pt_session"), "xyz");
  EXPECT_EQ(CookieValue("pt_session=xyz", "pt_session"), "xyz");
  EXPECT_EQ(CookieValue("xpt_session=1; pt_session_x=2", "pt_session"), std::nullopt);
  EXPECT_EQ(CookieValue("", "pt_session"), std::nullopt);
  EXPECT_EQ(CookieValue("__Host-pt_session=q", "__Host-pt_session"), "q");
}

TEST(SecretEquals, ComparesWholeStrings) {
  EXPECT_TRUE(SecretEquals("abc", "abc"));
  EXPECT_FALSE(SecretEquals("abc", "abd"));
  EXPECT_FALSE(SecretEquals("abc", "ab"));
  EXPECT_FALSE(SecretEquals("", "a"));
}

}  // namespace
}  // namespace pumptwin::server::http
