// Gateway identity under mutual TLS: certificates (CA, server, two gateways, and a rogue one
// from another CA) are generated with the openssl CLI in a temp dir at test time.
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "device_link/fake_sink.h"
#include "device_link/gateway_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/device_link/test_util.h"

namespace pumptwin::device_link {
namespace {

using ::testing::HasSubstr;
using testing::MakeSamples;
using testing::TestServer;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool RunQuiet(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
}

struct Pki {
  std::string dir;
  bool ok = false;

  // A CA, then leaf certificates signed by it (CN = name).
  bool MakeCa(const std::string& ca) {
    return RunQuiet(absl::StrCat("cd ", dir,
                                 " && openssl req -x509 -newkey ec -pkeyopt "
                                 "ec_paramgen_curve:prime256v1 -nodes -keyout ",
                                 ca, ".key -out ", ca, ".pem -subj /CN=", ca, " -days 2"));
  }
  bool MakeLeaf(const std::string& ca, const std::string& name, const std::string& ext) {
    std::ofstream(absl::StrCat(dir, "/", name, ".ext")) << ext;
    return RunQuiet(absl::StrCat("cd ", dir,
                                 " && openssl req -newkey ec -pkeyopt "
                                 "ec_paramgen_curve:prime256v1 -nodes -keyout ",
                                 name, ".key -out ", name, ".csr -subj /CN=", name)) &&
           RunQuiet(absl::StrCat("cd ", dir, " && openssl x509 -req -in ", name, ".csr -CA ", ca,
                                 ".pem -CAkey ", ca, ".key -CAcreateserial -days 2 -out ", name,
                                 ".pem -extfile ", name, ".ext"));
  }
  std::string Pem(const std::string& name, const std::string& ext) const {
    return ReadFile(absl::StrCat(dir, "/", name, ".", ext));
  }
};

class MtlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new Pki;
    char tmpl[] = "/tmp/pumptwin_mtls_XXXXXX";
    const char* d = mkdtemp(tmpl);
    if (d == nullptr) return;
    pki_->dir = d;
    const std::string client_ext =
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n";
    pki_->ok = pki_->MakeCa("ca") && pki_->MakeCa("rogue-ca") &&
               pki_->MakeLeaf("ca", "server",
                              "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                              "extendedKeyUsage=serverAuth\n"
                              "subjectAltName=IP:127.0.0.1,DNS:localhost\n") &&
               pki_->MakeLeaf("ca", "gw-a", client_ext) &&
               pki_->MakeLeaf("ca", "gw-b", client_ext) &&
               pki_->MakeLeaf("rogue-ca", "gw-rogue", client_ext);
  }
  static void TearDownTestSuite() {
    if (!pki_->dir.empty()) RunQuiet("rm -rf " + pki_->dir);
    delete pki_;
  }

  void SetUp() override {
    ASSERT_TRUE(pki_->ok) << "openssl certificate generation failed in " << pki_->dir;
    sink_.RegisterPump("pump-a", {"gw-a"});
    sink_.RegisterPump("pump-b", {"gw-b"});
    grpc::SslServerCredentialsOptions so(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    so.pem_root_certs = pki_->Pem("ca", "pem");
    so.pem_key_cert_pairs.push_back({pki_->Pem("server", "key"), pki_->Pem("server", "pem")});
    GatewayServiceOptions o;
    o.require_peer_identity = true;
    server_ = TestServer::Start(&sink_, o, 0, grpc::SslServerCredentials(so));
    ASSERT_NE(server_, nullptr);
  }

  GatewayClientOptions Client(const std::string& cert, const std::string& hello_id) {
    grpc::SslCredentialsOptions co;
    co.pem_root_certs = pki_->Pem("ca", "pem");
    co.pem_private_key = pki_->Pem(cert, "key");
    co.pem_cert_chain = pki_->Pem(cert, "pem");
    GatewayClientOptions o;
    o.target = server_->target();
    o.credentials = grpc::SslCredentials(co);
    o.gateway_id = hello_id;
    o.sleeper = sleeper_;
    return o;
  }

  static Pki* pki_;
  FakeSink sink_;
  std::shared_ptr<testing::FakeSleeper> sleeper_ = std::make_shared<testing::FakeSleeper>();
  std::unique_ptr<TestServer> server_;
};
Pki* MtlsTest::pki_ = nullptr;

TEST_F(MtlsTest, GatewayWithItsOwnCertificateReportsForItsPumpsOnly) {
  std::vector<v1::Nack> nacks;
  absl::Mutex mu;
  GatewayClientOptions o = Client("gw-a", "gw-a");
  o.on_nack = [&](const v1::Nack& n) {
    absl::MutexLock l(&mu);
    nacks.push_back(n);
  };
  GatewayClient client(o);
  client.Start();
  ASSERT_TRUE(client.Send(MakeSamples("pump-a", 1, 3)).ok());
  ASSERT_TRUE(client.Send(MakeSamples("pump-b", 1, 2)).ok());  // gateway B's pump
  ASSERT_TRUE(client.WaitUntilAllDone(absl::Seconds(10)));
  client.Stop();
  EXPECT_EQ(sink_.AppliedSeqs("pump-a").size(), 3u);
  EXPECT_TRUE(sink_.AppliedSeqs("pump-b").empty());
  absl::MutexLock l(&mu);
  ASSERT_EQ(nacks.size(), 2u);
  EXPECT_EQ(nacks[0].reason(), v1::NACK_REASON_NOT_BOUND);
  EXPECT_THAT(nacks[0].message(), HasSubstr("not bound to gateway gw-a"));
}

TEST_F(MtlsTest, HelloIdMustMatchTheCertificate) {
  GatewayClient client(Client("gw-a", "gw-b"));  // A's certificate claiming to be B
  client.Start();
  // A first attempt may fail to connect on a slow machine (UNAVAILABLE, e.g. under the
  // sanitizers): the fake sleeper lets the client retry at once; take the stats of the
  // first attempt the server answered (bounded).
  GatewayClientStats st;
  for (size_t n = 1; n <= 20; ++n) {
    ASSERT_TRUE(sleeper_->AwaitCount(n, absl::Seconds(10)));
    st = client.stats();
    if (st.last_stream_status.code() != absl::StatusCode::kUnavailable) break;
  }
  client.Stop();
  EXPECT_EQ(st.sessions_welcomed, 0u);
  EXPECT_EQ(st.last_stream_status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(st.last_stream_status.message(),
              HasSubstr("hello.gateway_id=gw-b does not match the client certificate's common "
                        "name gw-a"));
}

TEST_F(MtlsTest, UnknownCertificateIsRefused) {
  GatewayClient client(Client("gw-rogue", "gw-rogue"));  // signed by another CA
  client.Start();
  ASSERT_TRUE(client.Send(MakeSamples("pump-a", 1, 1)).ok());
  ASSERT_TRUE(sleeper_->AwaitCount(1, absl::Seconds(10)));
  client.Stop();
  GatewayClientStats st = client.stats();
  EXPECT_EQ(st.sessions_welcomed, 0u);
  EXPECT_EQ(st.last_stream_status.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(sink_.AppliedSeqs("pump-a").empty());
  EXPECT_EQ(sink_.submits(), 0u);
}

TEST_F(MtlsTest, ClientWithoutCertificateIsRefused) {
  grpc::SslCredentialsOptions co;
  co.pem_root_certs = pki_->Pem("ca", "pem");
  GatewayClientOptions o = Client("gw-a", "gw-a");
  o.credentials = grpc::SslCredentials(co);
  GatewayClient client(o);
  client.Start();
  ASSERT_TRUE(sleeper_->AwaitCount(1, absl::Seconds(10)));
  client.Stop();
  EXPECT_EQ(client.stats().sessions_welcomed, 0u);
  EXPECT_EQ(client.stats().last_stream_status.code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace pumptwin::device_link
