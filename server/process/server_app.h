// ServerApp: the composition root of pumptwind. Owns the gRPC server, the metrics
// exposer and (as they land) the store, the shard registry and the alert hub; runs
// start-up (recovery) with Health NOT_SERVING, then serves; shuts down cleanly.
// Start/Shutdown are called from one thread (main); the services it owns are thread-safe.
#ifndef PUMPTWIN_SERVER_SERVER_APP_H_
#define PUMPTWIN_SERVER_SERVER_APP_H_

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "server/api/call_forwarder.h"
#include "server/metrics/metrics.h"
#include "server/process/cluster_mode.h"

namespace pumptwin::store {
class Store;
class GroupCommitter;
}  // namespace pumptwin::store
namespace pumptwin::device_link {
class GatewayService;
}  // namespace pumptwin::device_link

namespace pumptwin::server {

namespace http {
class HttpGateway;
}  // namespace http

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";         // gRPC address; port 0 = ephemeral
  std::string metrics_listen = "127.0.0.1:9464";  // Prometheus /metrics; port 0 = ephemeral
  // HTTP/JSON API (server/http, docs/http_api.md); port 0 = ephemeral; empty = off.
  std::string http_listen = "127.0.0.1:8480";
  int http_max_streams = 1000;  // open Server-Sent Event streams
  std::string data_dir = "./data";
  // Where twins, telemetry, alerts and audit are stored: the embedded RocksDB store in
  // `data_dir`, or a PostgreSQL database (libpq connection string `postgres_dsn`, tables in
  // `postgres_schema`; docs/scaling.md). PostgreSQL has no checkpoints (no backup_dir) and
  // applies no telemetry_retention.
  enum class StoreKind { kRocksDb, kPostgres };
  StoreKind store = StoreKind::kRocksDb;
  std::string postgres_dsn;
  std::string postgres_schema = "pumptwin";
  // Cluster mode (docs/scaling.md "Replicas"): several replicas on one PostgreSQL store;
  // cluster.replica empty = a single server.
  ClusterModeOptions cluster;
  std::string tls_cert_file;       // PEM server certificate chain; empty = no TLS
  std::string tls_key_file;        // PEM private key
  std::string tls_client_ca_file;  // PEM CA that signs gateway client certificates (mTLS)
  bool insecure = false;           // allow plaintext on a non-loopback address
  // Gateways are authenticated outside pumptwind (a proxy terminating mTLS, a private
  // network): a non-loopback address may serve DeviceGateway without tls_client_ca_file.
  bool gateways_authenticated_externally = false;
  // Bearer-token file (server/token_auth.h). Empty: everyone is admin "anonymous"
  // (OpenAuthorizer), refused on a non-loopback address unless `insecure`.
  std::string auth_tokens_file;
  std::string port_file;  // if set, "grpc_port=N\nmetrics_port=M\nhttp_port=H\n" is written here
  int shards = 0;         // 0: one per core
  uint32_t snapshot_every_samples = 256;
  absl::Duration snapshot_interval = absl::Hours(1);    // see ShardOptions
  absl::Duration history_window = absl::Hours(24 * 7);  // ShardOptions::history_window
  absl::Duration telemetry_retention = absl::InfiniteDuration();
  size_t store_memtable_bytes = size_t{64} << 20;  // all memtables together
  size_t store_block_cache_bytes = size_t{32} << 20;
  absl::Duration tick_interval = absl::Seconds(5);
  // What the server-time checks run on. kWall: the wall clock. kData: the newest model time
  // any twin reached (never past the wall clock), for replays and simulations that run
  // recorded time faster than real time: model-only forecasts of pumps that report nothing
  // follow the data; silence (measured on arrival times) is then never raised.
  enum class TickClock { kWall, kData };
  TickClock tick_clock = TickClock::kWall;
  // Memtables are flushed once the store saw no write for this long (0: never; see
  // server/idle_flush.h).
  absl::Duration store_idle_flush = absl::Seconds(30);
  double gateway_max_samples_per_second = 0;  // per gateway; 0 = unlimited
  uint32_t reorder_window_seqs = 64;
  uint32_t gateway_window_frames = 32;  // per stream, frames not yet acked
  // Drug library file (DrugLibrary::Format text, e.g. deploy/drug_library.txt); empty:
  // built-in defaults. Re-read by ReloadDrugLibrary (SIGHUP).
  std::string drug_library_file;
  // Events buffered per WatchAlerts subscriber; 0: the --watch_alerts_buffer flag (4096).
  size_t watch_alerts_buffer = 0;
  // WatchAlerts streams held at once (0: no limit); unset: the
  // --watch_alerts_max_subscribers flag (unset: 50 per CPU core).
  std::optional<size_t> watch_alerts_max_subscribers;
  // Online backups (docs/operations.md "Backup and restore"): every `backup_interval` a
  // consistent store checkpoint is written to `backup_dir`/checkpoint-<unix_ms> (the time it
  // started; built as .tmp and renamed when complete); the newest `backup_keep` are kept.
  // Empty dir: no backups.
  std::string backup_dir;
  absl::Duration backup_interval = absl::Hours(6);
  int backup_keep = 3;
};

// Parses --store: "rocksdb" or "postgres"; INVALID_ARGUMENT otherwise, or "postgres" in a
// build without the PostgreSQL store.
absl::StatusOr<ServerOptions::StoreKind> ParseStoreKind(const std::string& value);

// A libpq connection string fit for logs: the value of every password (key=value form
// `password=...`, URI user info `user:secret@`, URI query `password=`) reads "***".
std::string RedactDsn(const std::string& dsn);

// Warnings to log at start-up about options the chosen store does not apply (e.g. telemetry
// retention on PostgreSQL); empty when there are none.
std::vector<std::string> StoreOptionWarnings(const ServerOptions& options);

// `pumptwind --verify --store=postgres`: like RunVerify (server/core/verify_main.h) on the
// PostgreSQL store of `options` (postgres_dsn, postgres_schema); same report and exit codes
// (0 all exact, 3 a mismatch, 1 the store cannot be read, 2 bad options).
int RunVerifyPostgres(const ServerOptions& options);

// Returns true for "localhost", 127.0.0.0/8 and ::1 (with or without brackets).
bool IsLoopbackHost(const std::string& host);

// Splits "host:port" / "[v6]:port" into host and port; unix: addresses have no port.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& address);

// Checks the options before anything binds (e.g. plaintext on a public address, or a public
// address where any client could open DeviceGateway.Connect as any gateway).
absl::Status ValidateOptions(const ServerOptions& options);

// The warning to log when DeviceGateway trusts Hello.gateway_id without a client certificate
// (no tls_client_ca_file: loopback, insecure or gateways_authenticated_externally); empty
// when gateways are authenticated by mTLS.
std::string GatewayAuthWarning(const ServerOptions& options);

// pumptwind's exit code for a failed Start: 2 for a configuration error (a bad flag value,
// an unreadable or malformed file, a refused address; systemd's RestartPreventExitStatus),
// 1 otherwise (a port in use, the store failing).
int StartFailureExitCode(const absl::Status& status);

// The largest TwinService request the API needs (a few KiB in practice). The server's
// receive limit is the larger of this and device_link::MaxGatewayMessageBytes; a larger
// message is refused RESOURCE_EXHAUSTED by the transport.
inline constexpr size_t kApiMaxReceiveBytes = size_t{1} << 20;

class ServerApp {
 public:
  explicit ServerApp(ServerOptions options);
  ~ServerApp();
  ServerApp(const ServerApp&) = delete;
  ServerApp& operator=(const ServerApp&) = delete;

  // Binds, recovers, then marks Health SERVING. Returns an error (and serves nothing)
  // when the options are invalid or a port cannot be bound.
  absl::Status Start();

  // Health NOT_SERVING, stop accepting, give in-flight calls `grace` to finish, cancel
  // the rest, flush the store. Idempotent.
  void Shutdown(absl::Duration grace);

  // Re-reads --auth_tokens_file (SIGHUP). OK and a no-op without a token file; on error
  // the previous tokens stay in force.
  absl::Status ReloadAuth();

  // Re-reads --drug_library (SIGHUP). On error the previous library stays in force.
  absl::Status ReloadDrugLibrary();

  // Writes one checkpoint now (what the backup thread does); returns its directory.
  absl::StatusOr<std::string> BackupNow();

  int grpc_port() const { return grpc_port_; }
  class TwinRegistry* registry() {
    return registry_.get();
  }
  int metrics_port() const { return metrics_port_; }
  int http_port() const { return http_port_; }

 private:
  absl::Status WritePortFile() const;

  ServerOptions options_;
  absl::Status OpenStore();  // store_ per options_.store
  absl::Status OpenStoreAndRecover();
  void RunTicker();
  void RunBackups();
  void PruneBackups() const;

  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<class IngestMetrics> ingest_metrics_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<store::GroupCommitter> committer_;
  std::unique_ptr<class CommitGate> gate_;
  std::unique_ptr<class AlertHub> alert_hub_;
  std::unique_ptr<class TwinWatchHub> twin_watch_hub_;
  std::unique_ptr<class TwinRegistry> registry_;
  std::unique_ptr<device_link::GatewayService> gateway_service_;
  std::unique_ptr<class Authorizer> auth_;
  class TokenAuthorizer* token_auth_ = nullptr;  // == auth_ when a token file is used
  std::unique_ptr<class DrugLibraryHolder> drugs_;
  std::unique_ptr<grpc::Service> twin_service_;
  std::thread ticker_;
  std::thread backup_thread_;
  absl::Mutex ticker_mu_;
  bool ticker_stop_ ABSL_GUARDED_BY(ticker_mu_) = false;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<http::HttpGateway> http_;
  // Last: its threads call into the registry and the committer commits through it.
  std::unique_ptr<ClusterMode> cluster_;
  std::unique_ptr<CallForwarder> forwarder_;  // cluster mode: TwinService calls to owners
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  int http_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_SERVER_APP_H_
