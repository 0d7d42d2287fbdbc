// The server's options outside the running server: the store kind, what a DSN may show in a
// log, and the checks that refuse a configuration before anything starts (server_app.h).
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/process/cluster_mode.h"
#include "server/process/server_app.h"

namespace pumptwin::server {
namespace {

// Key=value connection string: every `password` value becomes "***" (quoted values may hold
// spaces and backslash escapes, libpq's rules).
std::string RedactKeyValueDsn(const std::string& dsn) {
  std::string out;
  size_t i = 0;
  const size_t n = dsn.size();
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (i < n) {
    if (is_space(dsn[i])) {
      out += dsn[i++];
      continue;
    }
    size_t key_begin = i;
    while (i < n && dsn[i] != '=' && !is_space(dsn[i])) ++i;
    std::string key = dsn.substr(key_begin, i - key_begin);
    while (i < n && is_space(dsn[i])) ++i;
    if (i >= n || dsn[i] != '=') {  // malformed: libpq refuses it; log it as it is
      out += dsn.substr(key_begin, i - key_begin);
      continue;
    }
    ++i;  // '='
    while (i < n && is_space(dsn[i])) ++i;
    size_t value_begin = i;
    if (i < n && dsn[i] == '\'') {
      ++i;
      while (i < n && dsn[i] != '\'') i += (dsn[i] == '\\' && i + 1 < n) ? 2 : 1;
      if (i < n) ++i;  // closing quote
    } else {
      while (i < n && !is_space(dsn[i])) i += (dsn[i] == '\\' && i + 1 < n) ? 2 : 1;
    }
    out += key;
    out += '=';
    out += key == "password" ? std::string("***") : dsn.substr(value_begin, i - value_begin);
  }
  return out;
}

// URI connection string: the password of the user info and a `password` query parameter.
std::string RedactUriDsn(const std::string& dsn) {
  const size_t scheme_end = dsn.find("://") + 3;
  const size_t authority_end = std::min(dsn.find('/', scheme_end), dsn.find('?', scheme_end));
  std::string authority =
      dsn.substr(scheme_end, authority_end == std::string::npos ? std::string::npos
                                                                : authority_end - scheme_end);
  if (size_t at = authority.rfind('@'); at != std::string::npos) {
    if (size_t colon = authority.find(':'); colon < at) {
      authority = authority.substr(0, colon + 1) + "***" + authority.substr(at);
    }
  }
  std::string out = dsn.substr(0, scheme_end) + authority;
  if (authority_end == std::string::npos) return out;
  std::string rest = dsn.substr(authority_end);
  size_t q = rest.find('?');
  if (q == std::string::npos) return out + rest;
  out += rest.substr(0, q + 1);
  std::vector<std::string> params = absl::StrSplit(rest.substr(q + 1), '&');
  for (std::string& p : params) {
    if (absl::StartsWith(p, "password=")) p = "password=***";
  }
  return out + absl::StrJoin(params, "&");
}

}  // namespace

absl::StatusOr<ServerOptions::StoreKind> ParseStoreKind(const std::string& value) {
  if (value == "rocksdb") return ServerOptions::StoreKind::kRocksDb;
  if (value == "postgres") {
#ifdef PUMPTWIN_HAVE_POSTGRES
    return ServerOptions::StoreKind::kPostgres;
#else
    return absl::InvalidArgumentError(
        "--store=postgres: this pumptwind was built without libpq (Debian libpq-dev); "
        "rebuild with it or use --store=rocksdb");
#endif
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--store must be \"rocksdb\" or \"postgres\", not \"", value, "\""));
}

std::string RedactDsn(const std::string& dsn) {
  if (absl::StartsWith(dsn, "postgresql://") || absl::StartsWith(dsn, "postgres://")) {
    return RedactUriDsn(dsn);
  }
  return RedactKeyValueDsn(dsn);
}

std::vector<std::string> StoreOptionWarnings(const ServerOptions& o) {
  std::vector<std::string> warnings;
  if (o.store == ServerOptions::StoreKind::kPostgres &&
      o.telemetry_retention != absl::InfiniteDuration()) {
    warnings.push_back(absl::StrCat(
        "--retention=", absl::FormatDuration(o.telemetry_retention),
        " is not applied with --store=postgres: telemetry is kept until deleted in the "
        "database (docs/scaling.md)"));
  }
  return warnings;
}

bool IsLoopbackHost(const std::string& host) {
  std::string h = host;
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h == "localhost" || h == "::1") return true;
  if (!absl::StartsWith(h, "127.")) return false;
  // Must be a dotted quad inside 127.0.0.0/8.
  int parts = 0;
  for (absl::string_view p : absl::StrSplit(h, '.')) {
    int v;
    if (!absl::SimpleAtoi(p, &v) || v < 0 || v > 255) return false;
    ++parts;
  }
  return parts == 4;
}

absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& address) {
  if (absl::StartsWith(address, "unix:")) return std::make_pair(address, 0);
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", address, "' is not host:port (e.g. 127.0.0.1:50051)"));
  }
  int port;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", address, "' has no valid port (0..65535)"));
  }
  return std::make_pair(address.substr(0, colon), port);
}

absl::Status ValidateOptions(const ServerOptions& o) {
  for (const auto& [flag, addr] :
       {std::pair<const char*, const std::string*>{"--listen", &o.listen},
        {"--metrics_listen", &o.metrics_listen}}) {
    auto hp = SplitHostPort(*addr);
    if (!hp.ok())
      return absl::InvalidArgumentError(absl::StrCat(flag, ": ", hp.status().message()));
  }
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert_file and --tls_key_file go together");
  }
  if (!o.tls_client_ca_file.empty() && o.tls_cert_file.empty()) {
    return absl::InvalidArgumentError("--tls_client_ca_file needs --tls_cert_file/--tls_key_file");
  }
  if (o.gateway_window_frames < 1 || o.gateway_window_frames > 4096) {
    return absl::InvalidArgumentError("--gateway_window_frames must be in [1, 4096]");
  }
  if (o.store_memtable_bytes < (size_t{8} << 20)) {
    return absl::InvalidArgumentError("--store_memtable_mb must be at least 8 (MiB)");
  }
  if (o.store == ServerOptions::StoreKind::kPostgres) {
    if (o.postgres_dsn.empty()) {
      return absl::InvalidArgumentError(
          "--store=postgres needs --postgres_dsn, a libpq connection string (e.g. "
          "\"host=db.example port=5432 dbname=pumptwin user=pumptwin\")");
    }
    if (!o.backup_dir.empty()) {
      return absl::InvalidArgumentError(
          "--backup_dir writes RocksDB checkpoints and cannot back up --store=postgres: back "
          "up the database with pg_basebackup (or your PostgreSQL operator's backups) and "
          "leave --backup_dir empty");
    }
  } else if (!o.postgres_dsn.empty()) {
    return absl::InvalidArgumentError(
        "--postgres_dsn is only used with --store=postgres (the store is RocksDB in "
        "--data_dir)");
  }
#ifdef PUMPTWIN_HAVE_POSTGRES
  if (absl::Status s =
          ValidateClusterOptions(o.cluster, o.store == ServerOptions::StoreKind::kPostgres);
      !s.ok()) {
    return s;
  }
#else
  if (!o.cluster.replica.empty()) {
    return absl::InvalidArgumentError("--cluster_replica: this pumptwind was built without libpq");
  }
#endif
  if (!o.backup_dir.empty() && o.backup_interval < absl::Milliseconds(100)) {
    return absl::InvalidArgumentError("--backup_interval must be at least 100ms");
  }
  auto host = SplitHostPort(o.listen)->first;
  bool unix_socket = absl::StartsWith(o.listen, "unix:");
  if (o.tls_cert_file.empty() && !unix_socket && !IsLoopbackHost(host) && !o.insecure) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to serve plaintext gRPC on non-loopback address '", o.listen,
        "': give --tls_cert_file/--tls_key_file, or --insecure if you really mean it"));
  }
  if (o.auth_tokens_file.empty() && !unix_socket && !IsLoopbackHost(host) && !o.insecure) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to serve without authentication on non-loopback address '", o.listen,
        "': give --auth_tokens_file (see docs/security.md), or --insecure if you really "
        "mean everyone to be admin"));
  }
  if (o.tls_client_ca_file.empty() && !unix_socket && !IsLoopbackHost(host) && !o.insecure &&
      !o.gateways_authenticated_externally) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to serve DeviceGateway without gateway authentication on non-loopback "
        "address '",
        o.listen,
        "': any client could claim a gateway id and stream telemetry for its pumps. Give "
        "--tls_client_ca_file (gateway mTLS, docs/security.md), or "
        "--gateways_authenticated_externally if a proxy or the network authenticates them"));
  }
  return absl::OkStatus();
}

std::string GatewayAuthWarning(const ServerOptions& o) {
  if (!o.tls_client_ca_file.empty()) return "";
  return absl::StrCat(
      "no --tls_client_ca_file: DeviceGateway trusts Hello.gateway_id from any client that "
      "can reach ",
      o.listen,
      o.gateways_authenticated_externally ? " (--gateways_authenticated_externally)"
                                          : " (loopback or --insecure only)");
}

int StartFailureExitCode(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kPermissionDenied:
      return 2;
    default:
      return 1;
  }
}

}  // namespace pumptwin::server
