// TLS against the real server with a CA and server certificate made by the openssl CLI
// at test time: a client trusting the CA gets through (and auth still applies), a
// plaintext client and a client that does not trust the CA fail. Start-up refusals: no
// --auth_tokens_file on a non-loopback address is a configuration error (exit 2) with a
// clear message (even with TLS), unless --insecure (checked without binding); a malformed
// token file refuses to start.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "server/process/server_app.h"
#include "tests/auth/auth_test_util.h"
#include "tests/support/server_process.h"

namespace pumptwin {
namespace {

using ::testing::HasSubstr;

grpc::Status GetPump(const std::shared_ptr<grpc::Channel>& channel, const std::string& token,
                     absl::Duration deadline = absl::Seconds(10)) {
  grpc::ClientContext ctx;
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  auto stub = v1::TwinService::NewStub(channel);
  v1::GetPumpRequest req;
  req.set_name("pumps/p1");
  v1::Pump pump;
  return stub->GetPump(&ctx, req, &pump);
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::MakeTestCertificates(dir_.path()).ok());
    auto viewer = testing::IssueToken("tls.viewer", "viewer");
    ASSERT_TRUE(viewer.ok()) << viewer.status();
    viewer_ = *viewer;
    ASSERT_TRUE(testing::WriteTextFile(dir_.path() + "/tokens", viewer_.line + "\n").ok());
  }
  std::vector<std::string> TlsArgs() const {
    return {"--tls_cert_file=" + dir_.path() + "/server.pem",
            "--tls_key_file=" + dir_.path() + "/server.key"};
  }

  testing::TempDir dir_;
  testing::IssuedToken viewer_;
};

TEST_F(TlsTest, ClientTrustingTheCaConnectsPlaintextAndUntrustingClientsFail) {
  std::vector<std::string> args = TlsArgs();
  args.push_back("--auth_tokens_file=" + dir_.path() + "/tokens");
  args.push_back("--shutdown_grace=1s");
  testing::ServerProcess server({.data_dir = dir_.path() + "/data", .extra_args = args});
  ASSERT_TRUE(server.Start().ok()) << server.ReadLog();
  EXPECT_THAT(server.ReadLog(), HasSubstr("tls=on"));
  std::string target = absl::StrCat("localhost:", server.grpc_port());

  auto ca = testing::ReadTextFile(dir_.path() + "/ca.pem");
  ASSERT_TRUE(ca.ok());
  grpc::SslCredentialsOptions trusted;
  trusted.pem_root_certs = *ca;
  auto tls = grpc::CreateChannel(target, grpc::SslCredentials(trusted));
  grpc::Status ok = GetPump(tls, viewer_.token);
  EXPECT_EQ(ok.error_code(), grpc::StatusCode::NOT_FOUND) << ok.error_message();
  // TLS does not replace the token.
  EXPECT_EQ(GetPump(tls, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);

  auto plain = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  grpc::Status p = GetPump(plain, viewer_.token, absl::Seconds(3));
  EXPECT_FALSE(p.ok());
  EXPECT_NE(p.error_code(), grpc::StatusCode::NOT_FOUND) << "plaintext reached the service";

  // A client with another CA (a self-signed server cert is not in it) fails the handshake.
  testing::TempDir other;
  ASSERT_TRUE(testing::MakeTestCertificates(other.path()).ok());
  grpc::SslCredentialsOptions untrusted;
  untrusted.pem_root_certs = *testing::ReadTextFile(other.path() + "/ca.pem");
  auto wrong = grpc::CreateChannel(target, grpc::SslCredentials(untrusted));
  grpc::Status w = GetPump(wrong, viewer_.token, absl::Seconds(3));
  EXPECT_FALSE(w.ok());
  EXPECT_NE(w.error_code(), grpc::StatusCode::NOT_FOUND) << "untrusted CA reached the service";
}

// Start-up refusals on a public address are configuration checks: nothing binds (tests
// listen on 127.0.0.1 only). The options are what the flags of a TLS server give.
server::ServerOptions PublicTlsOptions(const std::string& dir) {
  server::ServerOptions o;
  o.listen = "0.0.0.0:0";
  o.tls_cert_file = dir + "/server.pem";
  o.tls_key_file = dir + "/server.key";
  return o;
}

TEST_F(TlsTest, RefusesToStartWithoutTokensOnNonLoopbackAddress) {
  absl::Status s = server::ValidateOptions(PublicTlsOptions(dir_.path()));
  ASSERT_FALSE(s.ok());
  // pumptwind exits 2 (a configuration error; systemd does not restart it).
  EXPECT_EQ(server::StartFailureExitCode(s), 2) << s;
  EXPECT_THAT(s.message(), HasSubstr("refusing to serve without authentication"));
  EXPECT_THAT(s.message(), HasSubstr("--auth_tokens_file"));
}

// Gateways need authentication too on a public address (no --tls_client_ca_file here, so
// the flag that says a proxy or the network provides it).
TEST_F(TlsTest, NonLoopbackStartsWithTokensOrWithInsecure) {
  server::ServerOptions tokens = PublicTlsOptions(dir_.path());
  tokens.auth_tokens_file = dir_.path() + "/tokens";
  tokens.gateways_authenticated_externally = true;
  EXPECT_TRUE(server::ValidateOptions(tokens).ok()) << server::ValidateOptions(tokens);
  server::ServerOptions insecure = PublicTlsOptions(dir_.path());
  insecure.insecure = true;
  EXPECT_TRUE(server::ValidateOptions(insecure).ok()) << server::ValidateOptions(insecure);
  // Each of the two is needed: tokens alone still lack gateway authentication.
  tokens.gateways_authenticated_externally = false;
  EXPECT_EQ(server::ValidateOptions(tokens).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TlsTest, MalformedTokenFileRefusesToStart) {
  ASSERT_TRUE(testing::WriteTextFile(dir_.path() + "/bad", "dr.who wizard abc\n").ok());
  testing::ServerProcess server({.data_dir = dir_.path() + "/data",
                                 .extra_args = {"--auth_tokens_file=" + dir_.path() + "/bad"},
                                 .start_timeout = absl::Seconds(10)});
  ASSERT_FALSE(server.Start().ok());
  EXPECT_THAT(server.ReadLog(), HasSubstr("unknown role 'wizard'"));
}

}  // namespace
}  // namespace pumptwin
