// TLS against the real server with a CA and server certificate made by the openssl CLI
// at test time: a client trusting the CA gets through (and auth still applies), a
// plaintext client and a client that does not trust the CA fail. Start-up refusals: no
// --auth_tokens_file on a non-loopback address is a configuration error (exit 2) with a
// clear message (even with TLS), unless --insecure (checked without binding); a malformed
// token file refuses to start.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/match.h"
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

// One HTTP/1.1 request over TLS to 127.0.0.1:`port`, verifying the server certificate
// against `ca_file` for the name "localhost"; the whole response ("" when the connection or
// the handshake failed).
std::string HttpsCall(int port, const std::string& ca_file, const std::string& request) {
  std::string response;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr || SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    SSL_CTX_free(ctx);
    return response;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};  // every read and write bounded
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  SSL* ssl = nullptr;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    SSL_set1_host(ssl, "localhost");
    if (SSL_connect(ssl) == 1 &&
        SSL_write(ssl, request.data(), static_cast<int>(request.size())) > 0) {
      char buf[4096];
      int n;
      while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) response.append(buf, n);
    }
  }
  if (ssl != nullptr) SSL_free(ssl);
  ::close(fd);
  SSL_CTX_free(ctx);
  return response;
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

// The server's peak resident memory (VmHWM), in KiB; -1 when unreadable.
long PeakResidentKib(pid_t pid) {
  auto status = testing::ReadTextFile(absl::StrCat("/proc/", pid, "/status"));
  if (!status.ok()) return -1;
  const size_t at = status->find("VmHWM:");
  if (at == std::string::npos) return -1;
  return std::strtol(status->c_str() + at + 6, nullptr, 10);
}

// A TwinService call without a valid token is refused when its headers arrive: its message,
// however large, is never received (gRPC would buffer it whole before its size check). A
// token holder's oversized message is still refused by the receive limit.
TEST_F(TlsTest, AStrangersLargeMessageIsRefusedBeforeItIsReceived) {
  std::vector<std::string> args = TlsArgs();
  args.push_back("--auth_tokens_file=" + dir_.path() + "/tokens");
  args.push_back("--shutdown_grace=1s");
  testing::ServerProcess server({.data_dir = dir_.path() + "/data", .extra_args = args});
  ASSERT_TRUE(server.Start().ok()) << server.ReadLog();
  grpc::SslCredentialsOptions trusted;
  trusted.pem_root_certs = *testing::ReadTextFile(dir_.path() + "/ca.pem");
  grpc::ChannelArguments unlimited;
  unlimited.SetMaxSendMessageSize(-1);
  auto channel = grpc::CreateCustomChannel(absl::StrCat("localhost:", server.grpc_port()),
                                           grpc::SslCredentials(trusted), unlimited);
  auto call = [&](const std::string& token, size_t padding) {
    v1::GetPumpRequest req;
    req.set_name("pumps/p1");
    req.GetReflection()->MutableUnknownFields(&req)->AddLengthDelimited(1000,
                                                                        std::string(padding, 'x'));
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    v1::Pump pump;
    return v1::TwinService::NewStub(channel)->GetPump(&ctx, req, &pump);
  };
  ASSERT_EQ(call(viewer_.token, 0).error_code(), grpc::StatusCode::NOT_FOUND);  // warmed up
  const long before = PeakResidentKib(server.pid());
  ASSERT_GT(before, 0);
  constexpr size_t kLarge = size_t{64} << 20;
  grpc::Status stranger = call("", kLarge);
  EXPECT_EQ(stranger.error_code(), grpc::StatusCode::UNAUTHENTICATED) << stranger.error_message();
  grpc::Status forged = call("not-a-token", kLarge);
  EXPECT_EQ(forged.error_code(), grpc::StatusCode::UNAUTHENTICATED) << forged.error_message();
  const long after = PeakResidentKib(server.pid());
  // Received whole, one such message costs more than its 64 MiB.
  EXPECT_LT(after - before, 16 * 1024) << "peak RSS " << before << " -> " << after << " KiB";
  grpc::Status too_big = call(viewer_.token, size_t{3} << 20);
  EXPECT_EQ(too_big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << too_big.error_message();
}

// Over HTTPS a browser session's cookie is __Host- prefixed and Secure (besides HttpOnly,
// SameSite=Strict, Path=/) and authorises the session's requests; plaintext HTTP on the
// same listener gets no HTTP answer.
TEST_F(TlsTest, BrowserSessionsOverHttpsUseSecureHostCookies) {
  std::vector<std::string> args = TlsArgs();
  args.push_back("--auth_tokens_file=" + dir_.path() + "/tokens");
  args.push_back("--shutdown_grace=1s");
  testing::ServerProcess server({.data_dir = dir_.path() + "/data", .extra_args = args});
  ASSERT_TRUE(server.Start().ok()) << server.ReadLog();
  const int port = server.http_port();
  ASSERT_GT(port, 0);
  const std::string ca = dir_.path() + "/ca.pem";
  const std::string body = absl::StrCat(R"({"token": ")", viewer_.token, R"("})");
  const std::string login =
      HttpsCall(port, ca,
                absl::StrCat("POST /session HTTP/1.1\r\nHost: localhost:", port,
                             "\r\nOrigin: https://localhost:", port,
                             "\r\nContent-Type: application/json\r\nContent-Length: ", body.size(),
                             "\r\nConnection: close\r\n\r\n", body));
  ASSERT_THAT(login, HasSubstr("HTTP/1.1 200"));
  const size_t at = login.find("Set-Cookie: __Host-pt_session=");
  ASSERT_NE(at, std::string::npos) << login;
  const std::string cookie = login.substr(at, login.find("\r\n", at) - at);
  EXPECT_THAT(cookie, HasSubstr("; Secure"));
  EXPECT_THAT(cookie, HasSubstr("; HttpOnly"));
  EXPECT_THAT(cookie, HasSubstr("; SameSite=Strict"));
  EXPECT_THAT(cookie, HasSubstr("; Path=/"));
  EXPECT_THAT(cookie, ::testing::Not(HasSubstr("Domain=")));
  const std::string value = cookie.substr(12, cookie.find(';') - 12);  // after "Set-Cookie: "

  // The session reads as its token: a pump that does not exist is NOT_FOUND (404), not 401.
  const std::string read =
      HttpsCall(port, ca,
                absl::StrCat("GET /v1/pumps/p1 HTTP/1.1\r\nHost: localhost:", port,
                             "\r\nCookie: ", value, "\r\nConnection: close\r\n\r\n"));
  EXPECT_THAT(read, HasSubstr("HTTP/1.1 404")) << read;
  const std::string anonymous =
      HttpsCall(port, ca,
                absl::StrCat("GET /v1/pumps/p1 HTTP/1.1\r\nHost: localhost:", port,
                             "\r\nConnection: close\r\n\r\n"));
  EXPECT_THAT(anonymous, HasSubstr("HTTP/1.1 401")) << anonymous;

  // Plaintext on the HTTPS listener: no HTTP answer.
  auto plain = testing::HttpGet(port, "/v1/pumps/p1");
  EXPECT_TRUE(!plain.ok() || !absl::StrContains(*plain, "UNAUTHENTICATED"))
      << "plaintext HTTP was answered: " << *plain;
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
