#include "tools/ctl/ctl_context.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tools/ctl/ctl_format.h"
#include "tools/ctl/units_parse.h"

namespace pumptwin::ctl {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read '", path, "'"));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool IsLoopback(absl::string_view target) {
  absl::ConsumePrefix(&target, "dns:///");
  absl::ConsumePrefix(&target, "ipv4:");
  absl::ConsumePrefix(&target, "ipv6:");
  return absl::StartsWith(target, "127.") || absl::StartsWith(target, "localhost:") ||
         target == "localhost" || absl::StartsWith(target, "[::1]") ||
         absl::StartsWith(target, "unix:");
}

}  // namespace

int ExitCodeForStatus(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kExitUnavailable;
    default:
      return kExitServerError;
  }
}

std::string StatusCodeName(grpc::StatusCode code) {
  // gRPC and absl share the canonical code numbers.
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

Ctl::Ctl(GlobalOptions options, std::ostream& out, std::ostream& err)
    : options_(std::move(options)), out_(out), err_(err) {}

absl::Status Ctl::Init() {
  absl::StatusOr<absl::Duration> timeout = ParseDuration(options_.timeout);
  if (!timeout.ok())
    return absl::InvalidArgumentError(absl::StrCat("--timeout: ", timeout.status().message()));
  if (*timeout <= absl::ZeroDuration())
    return absl::InvalidArgumentError("--timeout must be positive");
  timeout_ = *timeout;
  if (options_.server.empty()) return absl::InvalidArgumentError("--server is empty");

  std::shared_ptr<grpc::ChannelCredentials> creds;
  const bool tls =
      !options_.tls_ca.empty() || !options_.tls_cert.empty() || !options_.tls_key.empty();
  if (tls) {
    if (options_.tls_cert.empty() != options_.tls_key.empty()) {
      return absl::InvalidArgumentError(
          "--tls_cert and --tls_key go together (client certificate and its key)");
    }
    grpc::SslCredentialsOptions ssl;
    if (!options_.tls_ca.empty()) {
      absl::StatusOr<std::string> ca = ReadFile("--tls_ca", options_.tls_ca);
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *ca;
    }
    if (!options_.tls_cert.empty()) {
      absl::StatusOr<std::string> cert = ReadFile("--tls_cert", options_.tls_cert);
      if (!cert.ok()) return cert.status();
      absl::StatusOr<std::string> key = ReadFile("--tls_key", options_.tls_key);
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    creds = grpc::SslCredentials(ssl);
  } else {
    if (!options_.token.empty() && !IsLoopback(options_.server)) {
      return absl::InvalidArgumentError(
          absl::StrCat("refusing to send a bearer token in plaintext to ", options_.server,
                       "; use TLS (--tls_ca) or a loopback address"));
    }
    creds = grpc::InsecureChannelCredentials();
  }
  channel_ = grpc::CreateChannel(options_.server, creds);
  twin_ = pumptwin::v1::TwinService::NewStub(channel_);
  health_ = grpc::health::v1::Health::NewStub(channel_);
  return absl::OkStatus();
}

std::unique_ptr<grpc::ClientContext> Ctl::NewContext(bool streaming) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!options_.token.empty())
    ctx->AddMetadata("authorization", absl::StrCat("Bearer ", options_.token));
  if (!streaming) ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  return ctx;
}

int Ctl::Fail(const grpc::Status& status) {
  err_ << "error: " << StatusCodeName(status.error_code()) << ": " << status.error_message()
       << "\n";
  const int code = ExitCodeForStatus(status);
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    err_ << "hint: is pumptwind running and reachable at " << options_.server
         << "? (--server or PUMPTWIN_SERVER; --tls_ca if it serves TLS)\n";
  } else if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    err_ << "hint: pass a bearer token with --token or PUMPTWIN_TOKEN\n";
  }
  return code;
}

int Ctl::Usage(absl::string_view message) {
  err_ << "error: " << message << "\n";
  return kExitUsage;
}

void Ctl::PrintJson(const google::protobuf::Message& message) {
  out_ << ToJsonLine(message) << "\n";
  out_.flush();
}

absl::StatusOr<std::string> PumpResourceName(absl::string_view text) {
  absl::string_view id = text;
  absl::ConsumePrefix(&id, "pumps/");
  if (id.empty() || absl::StrContains(id, '/')) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a pump: give PUMP_ID or pumps/PUMP_ID"));
  }
  return absl::StrCat("pumps/", id);
}

}  // namespace pumptwin::ctl
