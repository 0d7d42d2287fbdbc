// pumptwind: the pumptwin server. See `pumptwind --help` and docs/operations.md.
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/duration_flag.h"
#include "common/help_flags.h"
#include "common/logging.h"
#include "device_link/process_tuning.h"
#include "server/core/verify_main.h"
#include "server/http/http_gateway.h"
#include "server/process/server_app.h"

#ifndef PUMPTWIN_VERSION
#define PUMPTWIN_VERSION "dev"
#endif

using pumptwin::tools::DurationFlag;

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC listen address host:port (port 0 = ephemeral). Plaintext is refused on a "
          "non-loopback address unless TLS is configured or --insecure is given.");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "Prometheus /metrics HTTP listen address host:port (port 0 = ephemeral).");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:8480",
          "HTTP/JSON API listen address host:port (port 0 = ephemeral; empty = off): every "
          "TwinService method as JSON, Server-Sent Events for the streams, the OpenAPI "
          "document at /v1/openapi.json (docs/http_api.md). HTTPS with --tls_cert_file; "
          "plaintext is refused off loopback unless --insecure.");
ABSL_FLAG(int, http_max_streams, 1000,
          "Open HTTP event streams (alerts, twins) at most; more are refused 429.");
ABSL_FLAG(bool, print_openapi, false,
          "Print the OpenAPI document of the HTTP/JSON API (generated from the protos) and "
          "exit.");
ABSL_FLAG(std::string, data_dir, "./data", "Directory of the embedded store (created if missing).");
ABSL_FLAG(std::string, store, "rocksdb",
          "Where twins, telemetry, alerts and audit are kept: \"rocksdb\" (embedded, in "
          "--data_dir) or \"postgres\" (a PostgreSQL database, --postgres_dsn; "
          "docs/scaling.md). PostgreSQL takes no --backup_dir and applies no --retention.");
ABSL_FLAG(std::string, postgres_dsn, "",
          "libpq connection string of the database for --store=postgres (key=value or "
          "postgresql:// URI; connect_timeout, sslmode... go here). Logged with the password "
          "hidden; prefer a ~/.pgpass file or PGPASSWORD to a password in it.");
ABSL_FLAG(std::string, postgres_schema, "pumptwin",
          "PostgreSQL schema of the tables for --store=postgres (created when missing).");
ABSL_FLAG(std::string, cluster_replica, "",
          "Cluster mode (docs/scaling.md): this replica's name, unique in the cluster and "
          "stable across restarts (e.g. the pod name). Needs --store=postgres and "
          "--cluster_advertise. Empty: a single server.");
ABSL_FLAG(std::string, cluster_advertise, "",
          "Cluster mode: host:port of this replica's gRPC listener as gateways and the other "
          "replicas reach it (Welcome.moved, NACK_REASON_MOVED).");
ABSL_FLAG(uint32_t, cluster_shards, 256,
          "Cluster mode: virtual shards the pumps hash into; the same on every replica.");
ABSL_FLAG(DurationFlag, cluster_lease_ttl, absl::Seconds(15),
          "Cluster mode: lease time of a virtual shard, renewed every third of it; a replica "
          "that stops renewing loses its shards to the others after this long.");
ABSL_FLAG(std::string, config, "",
          "Optional config file: one --flag=value per line (absl flagfile format); "
          "flags on the command line override it.");
ABSL_FLAG(std::string, tls_cert_file, "", "PEM server certificate chain (enables TLS).");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file.");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA bundle that signs gateway client certificates (enables gateway mTLS).");
ABSL_FLAG(bool, insecure, false,
          "Allow plaintext gRPC, serving without --auth_tokens_file, or gateways without "
          "--tls_client_ca_file, on a non-loopback address.");
ABSL_FLAG(bool, gateways_authenticated_externally, false,
          "Gateways are authenticated before they reach pumptwind (an mTLS-terminating proxy, "
          "a network only gateways can reach): allows a non-loopback --listen without "
          "--tls_client_ca_file. Without either, any client could claim a gateway id.");
ABSL_FLAG(std::string, auth_tokens_file, "",
          "Bearer-token file: one '<name> <role> <sha256hex>' per line (docs/security.md; "
          "pumptwin-token makes lines). Reloaded on SIGHUP. Empty: every caller is admin, "
          "allowed on loopback only (unless --insecure).");
ABSL_FLAG(DurationFlag, shutdown_grace, absl::Seconds(10),
          "On SIGTERM/SIGINT: how long in-flight calls may take to finish.");
ABSL_FLAG(int, shards, 0, "Shard worker threads (0 = one per core).");
ABSL_FLAG(uint32_t, snapshot_every_samples, 256,
          "Twin snapshot cadence per pump (samples); recovery replays at most this many.");
ABSL_FLAG(DurationFlag, snapshot_interval, absl::Hours(1),
          "A twin with samples newer than its snapshot gets a new one this long after the last "
          "(0 = by --snapshot_every_samples only); bounds recovery replay for slow reporters.");
ABSL_FLAG(DurationFlag, history_window, absl::Hours(24 * 7),
          "How far behind a twin's model time late data and back-dated clinical records are "
          "applied in their place from a checkpoint (the longest backfill a gateway may hold); "
          "older telemetry is replayed from the registration, older records are refused.");
ABSL_FLAG(DurationFlag, retention, absl::InfiniteDuration(),
          "Keep telemetry this long (e.g. 400d); older chunks are dropped by compaction.");
ABSL_FLAG(uint32_t, store_memtable_mb, 64,
          "Memory for the store's write buffers, all column families together (MiB); "
          "a fixed cost, whatever the fleet size (docs/storage.md).");
ABSL_FLAG(uint32_t, store_block_cache_mb, 32, "Store read cache (MiB), a fixed cost.");
ABSL_FLAG(DurationFlag, store_idle_flush, absl::Seconds(30),
          "Flush the store's memtables once no write came for this long, handing their memory "
          "back (0 = never).");
ABSL_FLAG(DurationFlag, tick_interval, absl::Seconds(5),
          "Period of server-time checks (silent pumps), store revival and fleet gauges.");
ABSL_FLAG(std::string, clock, "wall",
          "What the server-time checks run on: \"wall\" (the wall clock) or \"data\" (the "
          "newest model time any twin reached, never past the wall clock: for replays and "
          "simulations faster than real time; silence is then measured from each pump's model "
          "time).");
ABSL_FLAG(double, gateway_max_samples_per_second, 0,
          "Per-gateway ingest rate limit in samples/s (0 = unlimited).");
ABSL_FLAG(uint32_t, gateway_window_frames, 32,
          "Frames one gateway stream may have in flight (received, not yet durably acked); "
          "announced to the gateway. Cover the durable-ack latency: window x frame size / "
          "latency is one stream's ceiling (docs/gateway_protocol.md).");
ABSL_FLAG(uint32_t, reorder_window, 64,
          "Per-pump reorder window in seqs; a gap beyond it is refused (OUT_OF_ORDER).");
ABSL_FLAG(bool, verify, false,
          "Check the store (--data_dir, or --store=postgres) offline and exit: every twin recovery "
          "would build must equal the "
          "twin rebuilt from its registration and all stored telemetry. Exit 0 if all match, "
          "3 on a mismatch, 1 if the store cannot be read. The server must not be running.");
ABSL_FLAG(std::string, drug_library, "",
          "Drug library file (format of deploy/drug_library.txt); empty: built-in defaults. "
          "Reloaded on SIGHUP; a bad file keeps the previous library.");
ABSL_FLAG(std::string, backup_dir, "",
          "Online backups: every --backup_interval a consistent store checkpoint is written "
          "to DIR/checkpoint-<unix_ms> (openable with --data_dir); empty: no backups.");
ABSL_FLAG(DurationFlag, backup_interval, absl::Hours(6), "Period of --backup_dir checkpoints.");
ABSL_FLAG(int, backup_keep, 3, "Newest checkpoints kept in --backup_dir (at least 1).");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound ports are written here (grpc_port=N, metrics_port=M) once serving.");

namespace {

// --config=FILE is an alias of absl's --flagfile=FILE, inserted before the other
// arguments so that flags given on the command line win.
std::vector<char*> ExpandConfig(int argc, char** argv, std::vector<std::string>* storage) {
  std::vector<char*> args(argv, argv + argc);
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string path;
    if (absl::StartsWith(a, "--config="))
      path = a.substr(9);
    else if (a == "--config" && i + 1 < argc)
      path = argv[i + 1];
    if (!path.empty()) {
      storage->push_back("--flagfile=" + path);
      args.insert(args.begin() + 1, storage->back().data());
      break;
    }
  }
  return args;
}

// Every gateway holds a TCP connection (a file descriptor): raise the soft limit on open
// files to the hard limit, which the operator controls (ulimit -Hn, systemd LimitNOFILE).
// Shells and container runtimes often start with a soft limit of 1024.
void RaiseOpenFileLimit() {
  using pumptwin::server::Log;
  using pumptwin::server::LogLevel;
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    Log(LogLevel::kWarning, "fd_limit_unknown", {{"error", "getrlimit(RLIMIT_NOFILE) failed"}});
    return;
  }
  const rlim_t before = rl.rlim_cur;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) rl.rlim_cur = before;
  }
  Log(rl.rlim_cur < 65536 ? LogLevel::kWarning : LogLevel::kInfo, "fd_limit",
      {{"soft_before", static_cast<uint64_t>(before)},
       {"soft", static_cast<uint64_t>(rl.rlim_cur)},
       {"hard", static_cast<uint64_t>(rl.rlim_max)},
       {"detail", "one file descriptor per gateway connection (docs/operations.md)"}});
}

}  // namespace

int main(int argc, char** argv) {
  pumptwin::device_link::TuneProcessForStreaming();

  pumptwin::tools::ListOwnFlagsInHelp("pumptwind " PUMPTWIN_VERSION);
  absl::SetProgramUsageMessage(
      "pumptwin server: live digital twins of implanted intrathecal drug pumps.\n"
      "Decision support for clinicians; not a medical device.\n"
      "Usage: pumptwind [--listen=127.0.0.1:50051] [--data_dir=./data] [flags]");
  std::vector<std::string> storage;
  storage.reserve(1);
  std::vector<char*> args = ExpandConfig(argc, argv, &storage);
  pumptwin::tools::ParseFlagsOrExit(static_cast<int>(args.size()), args.data());

  using pumptwin::server::Log;
  using pumptwin::server::LogLevel;
  pumptwin::server::ServerOptions options;
  if (auto store = pumptwin::server::ParseStoreKind(absl::GetFlag(FLAGS_store)); store.ok()) {
    options.store = *store;
  } else {
    Log(LogLevel::kError, "startup_failed",
        {{"code", "INVALID_ARGUMENT"}, {"error", std::string(store.status().message())}});
    return 2;
  }
  options.postgres_dsn = absl::GetFlag(FLAGS_postgres_dsn);
  options.postgres_schema = absl::GetFlag(FLAGS_postgres_schema);
  options.cluster.replica = absl::GetFlag(FLAGS_cluster_replica);
  options.cluster.address = absl::GetFlag(FLAGS_cluster_advertise);
  options.cluster.shard_count = absl::GetFlag(FLAGS_cluster_shards);
  options.cluster.lease_ttl = absl::GetFlag(FLAGS_cluster_lease_ttl).value;
  if (absl::GetFlag(FLAGS_print_openapi)) {
    auto doc = pumptwin::server::http::HttpGateway::OpenApi(PUMPTWIN_VERSION);
    if (!doc.ok()) {
      std::cerr << "pumptwind: " << doc.status().message() << "\n";
      return 1;
    }
    std::cout << *doc << "\n";
    return 0;
  }
  if (absl::GetFlag(FLAGS_verify)) {
    if (options.store == pumptwin::server::ServerOptions::StoreKind::kPostgres)
      return pumptwin::server::RunVerifyPostgres(options);
    return pumptwin::server::RunVerify(absl::GetFlag(FLAGS_data_dir));
  }
  RaiseOpenFileLimit();

  // Block the shutdown signals in every thread; main waits for them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  options.listen = absl::GetFlag(FLAGS_listen);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  options.http_max_streams = absl::GetFlag(FLAGS_http_max_streams);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  options.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  options.insecure = absl::GetFlag(FLAGS_insecure);
  options.gateways_authenticated_externally =
      absl::GetFlag(FLAGS_gateways_authenticated_externally);
  options.auth_tokens_file = absl::GetFlag(FLAGS_auth_tokens_file);
  options.port_file = absl::GetFlag(FLAGS_port_file);
  options.drug_library_file = absl::GetFlag(FLAGS_drug_library);
  options.shards = absl::GetFlag(FLAGS_shards);
  options.snapshot_every_samples = absl::GetFlag(FLAGS_snapshot_every_samples);
  options.snapshot_interval = absl::GetFlag(FLAGS_snapshot_interval).value;
  options.telemetry_retention = absl::GetFlag(FLAGS_retention).value;
  options.history_window = absl::GetFlag(FLAGS_history_window).value;
  options.store_memtable_bytes = size_t{absl::GetFlag(FLAGS_store_memtable_mb)} << 20;
  options.store_block_cache_bytes = size_t{absl::GetFlag(FLAGS_store_block_cache_mb)} << 20;
  options.tick_interval = absl::GetFlag(FLAGS_tick_interval).value;
  if (const std::string clock = absl::GetFlag(FLAGS_clock); clock == "data") {
    options.tick_clock = pumptwin::server::ServerOptions::TickClock::kData;
  } else if (clock != "wall") {
    Log(LogLevel::kError, "startup_failed",
        {{"code", "INVALID_ARGUMENT"},
         {"error", "--clock must be \"wall\" or \"data\", not \"" + clock + "\""}});
    return 2;
  }
  options.store_idle_flush = absl::GetFlag(FLAGS_store_idle_flush).value;
  options.gateway_max_samples_per_second = absl::GetFlag(FLAGS_gateway_max_samples_per_second);
  options.reorder_window_seqs = absl::GetFlag(FLAGS_reorder_window);
  options.gateway_window_frames = absl::GetFlag(FLAGS_gateway_window_frames);
  options.backup_dir = absl::GetFlag(FLAGS_backup_dir);
  options.backup_interval = absl::GetFlag(FLAGS_backup_interval).value;
  options.backup_keep = absl::GetFlag(FLAGS_backup_keep);

  pumptwin::server::ServerApp app(options);
  if (absl::Status s = app.Start(); !s.ok()) {
    Log(LogLevel::kError, "startup_failed",
        {{"code", absl::StatusCodeToString(s.code())}, {"error", std::string(s.message())}});
    return pumptwin::server::StartFailureExitCode(s);
  }
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      Log(LogLevel::kInfo, "sighup", {{"action", "reload"}});
      (void)app.ReloadDrugLibrary();  // logs the outcome; a bad file keeps the library
      (void)app.ReloadAuth();         // logs the outcome; a bad file keeps the previous tokens
      continue;                       // reloadable files (drug library, tokens) hook in here
    }
    Log(LogLevel::kInfo, "shutdown_requested", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
    break;
  }
  app.Shutdown(absl::GetFlag(FLAGS_shutdown_grace).value);
  return 0;
}
