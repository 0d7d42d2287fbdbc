#include "server/process/transport_credentials.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace pumptwin::server {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", what, " file '", path, "'"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A malformed PEM file is a configuration error found before binding (gRPC would only
// report a failed bind, not which file is wrong).
absl::Status CheckPem(const std::string& pem, const char* flag, const std::string& path,
                      bool private_key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  bool ok = false;
  if (bio != nullptr && private_key) {
    EVP_PKEY* k = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
    ok = k != nullptr;
    EVP_PKEY_free(k);
  } else if (bio != nullptr) {
    X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    ok = c != nullptr;
    X509_free(c);
  }
  ERR_clear_error();
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(flag, " '", path, "' holds no PEM ",
                                                 private_key ? "private key" : "certificate"));
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerTransportCredentials(
    const std::string& cert_file, const std::string& key_file, const std::string& client_ca_file) {
  if (cert_file.empty()) return grpc::InsecureServerCredentials();
  auto cert = ReadFile(cert_file, "--tls_cert_file");
  if (!cert.ok()) return cert.status();
  auto key = ReadFile(key_file, "--tls_key_file");
  if (!key.ok()) return key.status();
  if (absl::Status s = CheckPem(*cert, "--tls_cert_file", cert_file, false); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckPem(*key, "--tls_key_file", key_file, true); !s.ok()) return s;
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  if (!client_ca_file.empty()) {
    auto ca = ReadFile(client_ca_file, "--tls_client_ca_file");
    if (!ca.ok()) return ca.status();
    if (absl::Status s = CheckPem(*ca, "--tls_client_ca_file", client_ca_file, false); !s.ok()) {
      return s;
    }
    ssl.pem_root_certs = *ca;
    // Gateways present certificates (verified against the CA); dashboards use bearer
    // tokens over plain TLS, so a certificate is requested but not required here: the
    // DeviceGateway service refuses a session without one.
    ssl.client_certificate_request = GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> PeerTransportCredentials(
    const std::string& cert_file) {
  if (cert_file.empty()) return grpc::InsecureChannelCredentials();
  auto cert = ReadFile(cert_file, "--tls_cert_file");
  if (!cert.ok()) return cert.status();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = *cert;
  return grpc::SslCredentials(ssl);
}

}  // namespace pumptwin::server
