// pumptwind's configuration checks, without binding anything: the gateway-authentication
// rule for public addresses, the exit code of a failed start, and durations in days.
#include "common/duration_flag.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/process/server_app.h"

namespace pumptwin::server {
namespace {

using ::testing::HasSubstr;
using tools::DurationFlag;
using tools::ParseDurationWithDays;

// TLS and bearer tokens on a public address: everything but gateway mTLS.
ServerOptions PublicWithTlsAndTokens() {
  ServerOptions o;
  o.listen = "0.0.0.0:50051";
  o.tls_cert_file = "server.crt";
  o.tls_key_file = "server.key";
  o.auth_tokens_file = "tokens";
  return o;
}

TEST(GatewayAuthConfigTest, PublicAddressWithoutClientCaIsRefused) {
  absl::Status s = ValidateOptions(PublicWithTlsAndTokens());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("without gateway authentication"));
  EXPECT_THAT(s.message(), HasSubstr("--tls_client_ca_file"));
  EXPECT_THAT(s.message(), HasSubstr("--gateways_authenticated_externally"));
  EXPECT_EQ(StartFailureExitCode(s), 2);
}

TEST(GatewayAuthConfigTest, ClientCaOrAnExplicitFlagAllowsAPublicAddress) {
  ServerOptions with_ca = PublicWithTlsAndTokens();
  with_ca.tls_client_ca_file = "gateway-ca.crt";
  EXPECT_TRUE(ValidateOptions(with_ca).ok());
  EXPECT_EQ(GatewayAuthWarning(with_ca), "");

  ServerOptions external = PublicWithTlsAndTokens();
  external.gateways_authenticated_externally = true;
  EXPECT_TRUE(ValidateOptions(external).ok());
  EXPECT_THAT(GatewayAuthWarning(external), HasSubstr("trusts Hello.gateway_id"));
}

TEST(GatewayAuthConfigTest, LoopbackStartsWithAWarning) {
  ServerOptions o = PublicWithTlsAndTokens();
  o.listen = "127.0.0.1:50051";
  EXPECT_TRUE(ValidateOptions(o).ok());
  EXPECT_THAT(GatewayAuthWarning(o), HasSubstr("no --tls_client_ca_file"));
  o.listen = "[::1]:50051";
  EXPECT_TRUE(ValidateOptions(o).ok());
}

TEST(StartFailureExitCodeTest, ConfigurationErrorsAreTwo) {
  EXPECT_EQ(StartFailureExitCode(absl::InvalidArgumentError("bad file")), 2);
  EXPECT_EQ(StartFailureExitCode(absl::FailedPreconditionError("plaintext")), 2);
  EXPECT_EQ(StartFailureExitCode(absl::NotFoundError("no such file")), 2);
  EXPECT_EQ(StartFailureExitCode(absl::UnavailableError("port in use")), 1);
}

TEST(DurationFlagTest, AcceptsDaysAndEverythingAbslAccepts) {
  absl::Duration d;
  ASSERT_TRUE(ParseDurationWithDays("400d", &d));
  EXPECT_EQ(d, absl::Hours(24 * 400));
  ASSERT_TRUE(ParseDurationWithDays("1.5d", &d));
  EXPECT_EQ(d, absl::Hours(36));
  ASSERT_TRUE(ParseDurationWithDays("2d12h", &d));
  EXPECT_EQ(d, absl::Hours(60));
  ASSERT_TRUE(ParseDurationWithDays("90s", &d));
  EXPECT_EQ(d, absl::Seconds(90));
  ASSERT_TRUE(ParseDurationWithDays("inf", &d));
  EXPECT_EQ(d, absl::InfiniteDuration());
  ASSERT_TRUE(ParseDurationWithDays("0", &d));
  EXPECT_EQ(d, absl::ZeroDuration());
  for (const char* bad : {"d", "400", "400x", "-1d", "1d-2h", "1dd", "abc", ""}) {
    EXPECT_FALSE(ParseDurationWithDays(bad, &d)) << bad;
  }
}

TEST(DurationFlagTest, UnparsesToWhatItParses) {
  for (absl::Duration v : {absl::Hours(24 * 400), absl::Seconds(10), absl::Hours(1),
                           absl::InfiniteDuration(), absl::ZeroDuration(), absl::Hours(36)}) {
    DurationFlag flag(v);
    DurationFlag back;
    std::string error;
    ASSERT_TRUE(AbslParseFlag(AbslUnparseFlag(flag), &back, &error)) << error;
    EXPECT_EQ(back.value, v);
  }
  EXPECT_EQ(AbslUnparseFlag(DurationFlag(absl::Hours(24 * 400))), "400d");
  std::string error;
  DurationFlag out;
  EXPECT_FALSE(AbslParseFlag("400days", &out, &error));
  EXPECT_THAT(error, HasSubstr("e.g. 400d"));
}

}  // namespace
}  // namespace pumptwin::server
