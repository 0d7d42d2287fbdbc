#include "server/process/server_app.h"

#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/thread_name.h"
#include "device_link/gateway_service.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "server/api/alert_hub.h"
#include "server/api/auth.h"
#include "server/api/token_auth.h"
#include "server/api/transport_auth.h"
#include "server/api/twin_service.h"
#include "server/api/twin_watch_hub.h"
#include "server/core/commit_gate.h"
#include "server/core/idle_flush.h"
#include "server/core/twin_registry.h"
#include "server/core/verify.h"
#include "server/http/http_gateway.h"
#include "server/metrics/ingest_metrics.h"
#include "server/process/transport_credentials.h"
#include "server/store/group_committer.h"
#include "server/store/rocksdb_store.h"
#ifdef PUMPTWIN_HAVE_POSTGRES
#include "server/store/postgres_store.h"
#endif

#ifndef PUMPTWIN_VERSION
#define PUMPTWIN_VERSION "dev"
#endif

// Defined here (not in main.cc) because it belongs to the alert hub this file wires.
ABSL_FLAG(uint32_t, watch_alerts_buffer, 4096,
          "Alert events buffered per WatchAlerts subscriber; a subscriber that falls further "
          "behind is ended with RESOURCE_EXHAUSTED and resumes from its last cursor.");
ABSL_FLAG(std::optional<uint32_t>, watch_alerts_max_subscribers, std::nullopt,
          "WatchAlerts streams served at once; the next is refused with RESOURCE_EXHAUSTED "
          "(each held stream costs writes on the threads that also serve ingest). Unset: 50 "
          "per CPU core. 0: no limit.");
ABSL_FLAG(uint32_t, watch_alerts_threads, 0,
          "Threads that deliver alert events to WatchAlerts streams, each serving its share of "
          "the streams. 0: one per CPU core, at most 4.");

namespace pumptwin::server {

int RunVerifyPostgres(const ServerOptions& o) {
#ifdef PUMPTWIN_HAVE_POSTGRES
  if (o.postgres_dsn.empty()) {
    std::fprintf(stderr, "verify: --store=postgres needs --postgres_dsn\n");
    return 2;
  }
  store::PostgresStoreOptions po;
  po.dsn = o.postgres_dsn;
  po.schema = o.postgres_schema;
  auto st = store::PostgresStore::Open(std::move(po));
  if (!st.ok()) {
    std::fprintf(stderr, "verify: cannot open the PostgreSQL store (%s, schema %s): %s\n",
                 RedactDsn(o.postgres_dsn).c_str(), o.postgres_schema.c_str(),
                 std::string(st.status().message()).c_str());
    return 1;
  }
  auto report = VerifyStore(**st);
  if (!report.ok()) {
    std::fprintf(stderr, "verify: %s\n", std::string(report.status().message()).c_str());
    return 1;
  }
  for (const std::string& m : report->mismatches) std::printf("MISMATCH %s\n", m.c_str());
  std::printf("verify: pumps=%zu exact=%zu mismatches=%zu samples=%zu records=%zu\n", report->pumps,
              report->exact, report->mismatches.size(), report->samples, report->records);
  return report->mismatches.empty() ? 0 : 3;
#else
  (void)o;
  std::fprintf(stderr, "verify: this pumptwind was built without the PostgreSQL store\n");
  return 2;
#endif
}

ServerApp::ServerApp(ServerOptions options) : options_(std::move(options)) {}

ServerApp::~ServerApp() {
  Shutdown(absl::ZeroDuration());
#ifdef PUMPTWIN_HAVE_POSTGRES
  if (cluster_ != nullptr) {  // a start that failed after cluster mode began
    cluster_->Quiesce();
    if (registry_ != nullptr) registry_->Stop();
    if (committer_ != nullptr) committer_->Shutdown();
    cluster_.reset();
  }
#endif
}

absl::Status ServerApp::Start() {
  if (absl::Status s = ValidateOptions(options_); !s.ok()) return s;
  absl::Time t0 = absl::Now();
  metrics_ = std::make_unique<ServerMetrics>(PUMPTWIN_VERSION);
  auto metrics_port = metrics_->StartExposer(options_.metrics_listen);
  if (!metrics_port.ok()) return metrics_port.status();
  metrics_port_ = *metrics_port;

  auto creds = ServerTransportCredentials(options_.tls_cert_file, options_.tls_key_file,
                                          options_.tls_client_ca_file);
  if (!creds.ok()) return creds.status();

  ingest_metrics_ = std::make_unique<IngestMetrics>(metrics_->registry());
  device_link::GatewayServiceOptions gw;
  gw.max_samples_per_second = options_.gateway_max_samples_per_second;
  gw.max_unacked_frames = options_.gateway_window_frames;
  gw.require_peer_identity = !options_.tls_client_ca_file.empty();
  gw.server_version = absl::StrCat("pumptwind ", PUMPTWIN_VERSION);
  gw.metrics = ingest_metrics_->GatewayHooks();
  if (absl::Status s = OpenStoreAndRecover(); !s.ok()) return s;
  if (cluster_ != nullptr) gw.virtual_shards = options_.cluster.shard_count;
  gateway_service_ = std::make_unique<device_link::GatewayService>(registry_.get(), gw);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // gRPC's built-in health service has no protobuf descriptors of its own: link the
  // generated grpc.health.v1 code so that reflection can describe it.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  if (options_.auth_tokens_file.empty()) {
    auth_ = std::make_unique<OpenAuthorizer>();
    Log(LogLevel::kInfo, "auth_open",
        {{"detail", "no --auth_tokens_file: every caller is admin \"anonymous\""}});
  } else {
    auto token_auth = TokenAuthorizer::Load(options_.auth_tokens_file);
    if (!token_auth.ok()) return token_auth.status();
    token_auth_ = token_auth->get();
    auth_ = *std::move(token_auth);
    Log(LogLevel::kInfo, "auth_tokens_loaded",
        {{"file", options_.auth_tokens_file}, {"principals", token_auth_->size()}});
  }
  if (!options_.tls_cert_file.empty()) {
    // Strangers are refused when a call's headers arrive, before its message is received.
    (*creds)->SetAuthMetadataProcessor(
        std::make_shared<TransportAuthGate>(token_auth_, gw.require_peer_identity));
  }
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, *creds, &grpc_port_);
  // One limit for the whole server (gRPC has no per-service receive limit): the larger of
  // a full gateway frame and the largest API request; anything bigger is refused
  // RESOURCE_EXHAUSTED instead of being parsed.
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::max(device_link::MaxGatewayMessageBytes(gw.frame_limits), kApiMaxReceiveBytes)));
  if (std::string warning = GatewayAuthWarning(options_); !warning.empty()) {
    Log(LogLevel::kWarning, "gateway_auth_none", {{"detail", warning}});
  }
  drugs_ = std::make_unique<DrugLibraryHolder>();
  if (absl::Status s = drugs_->Load(options_.drug_library_file); !s.ok()) {
    return absl::InvalidArgumentError(s.message());
  }
  Log(LogLevel::kInfo, "drug_library_loaded",
      {{"source", drugs_->Get()->source}, {"version", drugs_->Get()->version}});
  TwinServiceDeps deps{registry_.get(), gate_.get(), store_.get(), auth_.get()};
  deps.drugs = drugs_.get();
  deps.alert_hub = alert_hub_.get();
  deps.twin_watch_hub = twin_watch_hub_.get();
  if (cluster_ != nullptr) {
    auto transport = PeerTransportCredentials(options_.tls_cert_file);
    if (!transport.ok()) return transport.status();
    forwarder_ = std::make_unique<CallForwarder>(
        CallForwarderOptions{.replica = cluster_->replica_name(),
                             .owner_address = cluster_->owner_address(),
                             .peers = cluster_->peers(),
                             .credentials = *transport,
                             .on_forward = [m = ingest_metrics_.get()] { m->CountForwardedCall(); },
                             .self_address = options_.cluster.address});
    deps.forwarder = forwarder_.get();
  }
  twin_service_ = std::make_unique<TwinServiceImpl>(std::move(deps));
  builder.RegisterService(twin_service_.get());
  builder.RegisterService(gateway_service_.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> icpt;
  icpt.push_back(metrics_->InterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(icpt));
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || grpc_port_ == 0) {
    server_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.listen, " (address in use or not local?)"));
  }
  // Not serving until recovery has finished.
  server_->GetHealthCheckService()->SetServingStatus(false);
  if (!options_.http_listen.empty()) {
    http::HttpGatewayOptions ho;
    ho.listen = options_.http_listen;
    ho.tls_cert_file = options_.tls_cert_file;
    ho.tls_key_file = options_.tls_key_file;
    ho.insecure = options_.insecure;
    ho.max_streams = options_.http_max_streams;
    ho.version = PUMPTWIN_VERSION;
    // Browser logins: the token file's entry; without a token file everyone is admin
    // "anonymous", as on gRPC, and any token logs in as that.
    ho.identify = [this](absl::string_view token) -> absl::StatusOr<http::SessionIdentity> {
      if (token_auth_ == nullptr) return http::SessionIdentity{"anonymous", "admin", ""};
      absl::StatusOr<TokenEntry> e = token_auth_->Identify(token);
      if (!e.ok()) return e.status();
      return http::SessionIdentity{e->name, RoleName(e->role), e->clinic, e->expires};
    };
    http_ = std::make_unique<http::HttpGateway>(
        ho, server_->InProcessChannel(grpc::ChannelArguments()));
    if (absl::Status s = http_->Start(); !s.ok()) return s;
    http_port_ = http_->port();
  }
  Log(LogLevel::kInfo, "listening",
      {{"grpc_port", grpc_port_},
       {"metrics_port", metrics_port_},
       {"http_port", http_port_},
       {"listen", options_.listen},
       {"tls", options_.tls_cert_file.empty() ? "off" : "on"}});

  // Recovery ran before binding (OpenStoreAndRecover): Health was never SERVING before.
  ingest_metrics_->RefreshFleet(*registry_, *gate_, absl::Now());  // gauges from scrape one
  if (auto sizes = store_->ApproximateSizes(); sizes.ok()) ingest_metrics_->SetStoreSizes(*sizes);
  ticker_ = std::thread([this] {
    NameThisThread("pt-ticker");
    RunTicker();
  });
  if (!options_.backup_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options_.backup_dir, ec);
    if (ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create --backup_dir=", options_.backup_dir, ": ", ec.message()));
    }
    backup_thread_ = std::thread([this] {
      NameThisThread("pt-backup");
      RunBackups();
    });
  }

  if (absl::Status s = WritePortFile(); !s.ok()) return s;
  server_->GetHealthCheckService()->SetServingStatus(true);
  metrics_->ready().Set(1);
  Log(LogLevel::kInfo, "serving",
      {{"startup_ms", absl::ToInt64Milliseconds(absl::Now() - t0)}, {"version", PUMPTWIN_VERSION}});
  return absl::OkStatus();
}

absl::Status ServerApp::ReloadAuth() {
  if (token_auth_ == nullptr) return absl::OkStatus();
  absl::Status s = token_auth_->Reload();
  if (s.ok()) {
    Log(LogLevel::kInfo, "auth_tokens_reloaded",
        {{"file", token_auth_->path()}, {"principals", token_auth_->size()}});
  } else {
    Log(LogLevel::kError, "auth_tokens_reload_failed",
        {{"file", token_auth_->path()},
         {"error", std::string(s.message())},
         {"detail", "previous tokens stay in force"}});
  }
  return s;
}

absl::Status ServerApp::WritePortFile() const {
  if (options_.port_file.empty()) return absl::OkStatus();
  std::string tmp = options_.port_file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "grpc_port=" << grpc_port_ << "\nmetrics_port=" << metrics_port_
        << "\nhttp_port=" << http_port_ << "\n";
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write --port_file ", tmp));
  }
  if (std::rename(tmp.c_str(), options_.port_file.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot rename ", tmp, " to ", options_.port_file));
  }
  return absl::OkStatus();
}

absl::Status ServerApp::OpenStore() {
  if (options_.store == ServerOptions::StoreKind::kPostgres) {
#ifdef PUMPTWIN_HAVE_POSTGRES
    const std::string dsn = RedactDsn(options_.postgres_dsn);
    for (const std::string& w : StoreOptionWarnings(options_)) {
      Log(LogLevel::kWarning, "store_option_not_applied", {{"detail", w}});
    }
    store::PostgresStoreOptions po;
    po.dsn = options_.postgres_dsn;
    po.schema = options_.postgres_schema;
    auto store = store::PostgresStore::Open(std::move(po));
    if (!store.ok()) {
      return absl::Status(store.status().code(),
                          absl::StrCat("cannot open the PostgreSQL store (--postgres_dsn=", dsn,
                                       " --postgres_schema=", options_.postgres_schema,
                                       "): ", store.status().message()));
    }
    store_ = *std::move(store);
    Log(LogLevel::kInfo, "store_opened",
        {{"store", "postgres"}, {"dsn", dsn}, {"schema", options_.postgres_schema}});
    return absl::OkStatus();
#else
    return absl::InvalidArgumentError("this pumptwind was built without the PostgreSQL store");
#endif
  }
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create --data_dir=", options_.data_dir, ": ", ec.message()));
  }
  store::RocksDbStoreOptions so;
  so.path = options_.data_dir;
  so.now = [] { return absl::Now(); };
  so.telemetry_retention = options_.telemetry_retention;
  so.memtable_budget_bytes = options_.store_memtable_bytes;
  so.block_cache_bytes = options_.store_block_cache_bytes;
  auto store = store::RocksDbStore::Open(so);
  if (!store.ok()) {
    return absl::Status(store.status().code(),
                        absl::StrCat("cannot open the store in --data_dir=", options_.data_dir,
                                     ": ", store.status().message()));
  }
  store_ = *std::move(store);
  return absl::OkStatus();
}

absl::Status ServerApp::OpenStoreAndRecover() {
  absl::Time t0 = absl::Now();
  if (absl::Status s = OpenStore(); !s.ok()) return s;
  store::GroupCommitterOptions co;
  co.metrics = ingest_metrics_->CommitHooks();
#ifdef PUMPTWIN_HAVE_POSTGRES
  if (!options_.cluster.replica.empty()) {
    auto cluster = ClusterMode::Create(store_.get(), options_.cluster);
    if (!cluster.ok()) return cluster.status();
    cluster_ = *std::move(cluster);
    co.commit = cluster_->commit_hook();
  }
#endif
  committer_ = std::make_unique<store::GroupCommitter>(store_.get(), co);
  gate_ = std::make_unique<CommitGate>(store_.get(), committer_.get());
#ifdef PUMPTWIN_HAVE_POSTGRES
  if (cluster_ != nullptr) cluster_->ShareLog(gate_.get());
#endif
  gate_->add_listener(ingest_metrics_.get());
  auto last_cursor = store_->LastAlertCursor();
  if (!last_cursor.ok()) return last_cursor.status();
  AlertHubOptions hub_options;
  hub_options.buffer_events = options_.watch_alerts_buffer != 0
                                  ? options_.watch_alerts_buffer
                                  : std::max<uint32_t>(1, absl::GetFlag(FLAGS_watch_alerts_buffer));
  const std::optional<uint32_t> max_subscribers_flag =
      absl::GetFlag(FLAGS_watch_alerts_max_subscribers);
  hub_options.max_subscribers = options_.watch_alerts_max_subscribers.value_or(
      max_subscribers_flag.has_value()
          ? *max_subscribers_flag
          : DefaultMaxSubscribers(std::thread::hardware_concurrency()));
  hub_options.delivery_threads = absl::GetFlag(FLAGS_watch_alerts_threads);
  if (hub_options.delivery_threads > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("--watch_alerts_threads=", hub_options.delivery_threads,
                     " must be 0 (one per CPU core, at most 4) to 64"));
  }
  if (hub_options.delivery_threads == 0) {
    hub_options.delivery_threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4);
  }
  Log(LogLevel::kInfo, "alert_delivery",
      {{"threads", hub_options.delivery_threads},
       {"max_subscribers", hub_options.max_subscribers},
       {"buffer_events", hub_options.buffer_events}});
  alert_hub_ = std::make_unique<AlertHub>(hub_options, *last_cursor, ingest_metrics_.get());
  gate_->add_listener(alert_hub_.get());
  RegistryOptions ro;
  ro.shards = options_.shards;
  ro.shard.snapshot_every_samples = options_.snapshot_every_samples;
  ro.shard.snapshot_interval = options_.snapshot_interval;
  ro.shard.sequencer.reorder_window_seqs = options_.reorder_window_seqs;
  IngestMetrics* im = ingest_metrics_.get();
  ro.shard.on_alert_latency = [im](double s) { im->ObserveAlertLatency(s); };
  ro.shard.on_ingest_stages = [im](const IngestStageTimes& t) { im->AddIngestStages(t); };
  ro.shard.on_late_input = [im](absl::string_view path) { im->CountLateInput(path); };
  ro.shard.on_rewind = [im](bool from_memory) { im->CountRewind(from_memory); };
  ro.shard.history_window = options_.history_window;
  ro.shard.drugs = [this]() -> std::shared_ptr<const DrugLibrarySnapshot> {
    return drugs_ != nullptr ? drugs_->Get() : nullptr;
  };
  twin_watch_hub_ = std::make_unique<TwinWatchHub>(ingest_metrics_.get());
  TwinWatchHub* watch_hub = twin_watch_hub_.get();
  ro.shard.on_twin_changed = [watch_hub](const std::string& id, const twin::Twin&) {
    watch_hub->OnTwinChanged(id);
  };
#ifdef PUMPTWIN_HAVE_POSTGRES
  if (cluster_ != nullptr) ro.cluster = cluster_->view();
#endif
  registry_ = std::make_unique<TwinRegistry>(store_.get(), gate_.get(), ro);
  auto stats = registry_->Recover();
  if (!stats.ok()) {
    return absl::Status(stats.status().code(),
                        absl::StrCat("recovery failed: ", stats.status().message()));
  }
#ifdef PUMPTWIN_HAVE_POSTGRES
  if (cluster_ != nullptr) {
    // Recovery loaded nothing (no shard held yet): the first round takes this replica's
    // share and loads it.
    if (absl::Status s = cluster_->Start(registry_.get(), gate_.get(), ingest_metrics_.get());
        !s.ok()) {
      return s;
    }
    stats->twins = registry_->directory().size();
  }
#endif
  ingest_metrics_->SetRecovery(absl::Now() - t0, stats->twins);
  // Recovery's transient buffers (snapshot batches, decode scratch) lie between the twins
  // it kept: hand those free pages back (glibc; main.cc keeps the trim threshold high).
  malloc_trim(0);
  twin_watch_hub_->Start(registry_.get());
  Log(LogLevel::kInfo, "recovered",
      {{"pumps", stats->pumps},
       {"twins", stats->twins},
       {"replayed_samples", stats->replayed_samples},
       {"recovery_ms", absl::ToInt64Milliseconds(absl::Now() - t0)},
       {"shards", registry_->shard_count()}});
  return absl::OkStatus();
}

void ServerApp::RunTicker() {
  // Freed request buffers lie scattered between long-lived twins in glibc's per-thread
  // arenas; with the trim threshold raised (main.cc) nothing hands them back on its own.
  // A trim a minute returns them (a few ms of CPU) without the per-free cost.
  constexpr absl::Duration kTrimEvery = absl::Minutes(1);
  absl::Time last_trim = absl::Now();
  IdleFlushPolicy idle_flush(options_.store_idle_flush, /*min_bytes=*/1 << 20);
  absl::Time last_data_tick = absl::InfinitePast();
  absl::MutexLock lock(&ticker_mu_);
  for (;;) {
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ticker_mu_) { return ticker_stop_; };
    if (ticker_mu_.AwaitWithTimeout(absl::Condition(&stop), options_.tick_interval)) return;
    ticker_mu_.Unlock();
    absl::Time now = absl::Now();
    if (registry_->degraded()) {
      if (absl::Status s = registry_->TryRevive(); !s.ok()) {
        Log(LogLevel::kWarning, "store_still_failing", {{"error", std::string(s.message())}});
      }
    }
    if (options_.tick_clock == ServerOptions::TickClock::kWall) {
      registry_->Tick(now);
    } else if (std::optional<absl::Time> data = registry_->NewestModelTime();
               data && *data > last_data_tick) {
      // Silence on the data clock needs a pump quiet on the wall clock too: in a replay
      // faster than real time one shard's data runs hours ahead of another's within
      // milliseconds (Twin::Tick measures the silence itself on the data clock). The data
      // clock only ticks while data moves it: when a replay ends, pumps whose clocks run
      // behind the fleet's fastest one are not silent.
      last_data_tick = *data;
      registry_->Tick(std::min(*data, now), now - 2 * options_.tick_interval);
    }
    ingest_metrics_->RefreshFleet(*registry_, *gate_, now);
    if (auto sizes = store_->ApproximateSizes(); sizes.ok()) {
      ingest_metrics_->SetStoreSizes(*sizes);
      if (idle_flush.Observe(now, sizes->memtable_bytes)) {
        const absl::Time t0 = absl::Now();
        absl::Status flushed = store_->FlushMemtables();
        Log(flushed.ok() ? LogLevel::kInfo : LogLevel::kWarning, "store_idle_flush",
            {{"memtable_bytes", sizes->memtable_bytes},
             {"flush_ms", absl::ToInt64Milliseconds(absl::Now() - t0)},
             {"status", flushed.ok() ? "ok" : std::string(flushed.message())}});
        last_trim = absl::InfinitePast();  // hand the freed memtable arenas back now
      }
    }
    if (now - last_trim >= kTrimEvery) {
      malloc_trim(0);
      last_trim = now;
    }
    ticker_mu_.Lock();
  }
}

absl::StatusOr<std::string> ServerApp::BackupNow() {
  if (store_ == nullptr) return absl::FailedPreconditionError("the server is not started");
  absl::Time t0 = absl::Now();
  std::string final_dir = absl::StrCat(options_.backup_dir, "/checkpoint-", absl::ToUnixMillis(t0));
  std::string tmp = final_dir + ".tmp";
  std::error_code ec;
  std::filesystem::remove_all(tmp, ec);  // a leftover of a crash during a checkpoint
  absl::Status s = store_->Checkpoint(tmp);
  if (s.ok()) {
    std::filesystem::rename(tmp, final_dir, ec);
    if (ec) s = absl::UnavailableError(absl::StrCat("renaming ", tmp, ": ", ec.message()));
  }
  if (!s.ok()) {
    std::filesystem::remove_all(tmp, ec);
    Log(LogLevel::kError, "backup_failed",
        {{"dir", final_dir}, {"error", std::string(s.message())}});
    return s;
  }
  Log(LogLevel::kInfo, "backup_done",
      {{"dir", final_dir}, {"duration_ms", absl::ToInt64Milliseconds(absl::Now() - t0)}});
  PruneBackups();
  return final_dir;
}

void ServerApp::PruneBackups() const {
  std::vector<std::string> done;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(options_.backup_dir, ec)) {
    std::string name = e.path().filename().string();
    if (absl::StartsWith(name, "checkpoint-") && !absl::EndsWith(name, ".tmp")) {
      done.push_back(e.path().string());
    }
  }
  // Same-width millisecond stamps sort by time; keep the newest backup_keep.
  std::sort(done.begin(), done.end());
  int keep = std::max(1, options_.backup_keep);
  for (size_t i = 0; i + keep < done.size(); ++i) std::filesystem::remove_all(done[i], ec);
}

void ServerApp::RunBackups() {
  absl::MutexLock lock(&ticker_mu_);
  for (;;) {
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ticker_mu_) { return ticker_stop_; };
    if (ticker_mu_.AwaitWithTimeout(absl::Condition(&stop), options_.backup_interval)) return;
    ticker_mu_.Unlock();
    (void)BackupNow();  // logs its outcome; the next interval tries again
    ticker_mu_.Lock();
  }
}

absl::Status ServerApp::ReloadDrugLibrary() {
  if (drugs_ == nullptr) return absl::FailedPreconditionError("the server is not started");
  absl::Status s = drugs_->Reload();
  auto cur = drugs_->Get();
  if (s.ok()) {
    Log(LogLevel::kInfo, "drug_library_reloaded",
        {{"source", cur->source}, {"version", cur->version}});
  } else {
    Log(LogLevel::kError, "drug_library_reload_failed",
        {{"error", std::string(s.message())}, {"kept_version", cur->version}});
  }
  return s;
}

void ServerApp::Shutdown(absl::Duration grace) {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  metrics_->ready().Set(0);
  server_->GetHealthCheckService()->SetServingStatus(false);
  absl::Time t0 = absl::Now();
  {
    absl::MutexLock lock(&ticker_mu_);
    ticker_stop_ = true;
  }
  if (ticker_.joinable()) ticker_.join();
  if (backup_thread_.joinable()) backup_thread_.join();
  // Streams end now with UNAVAILABLE ("resume from cursor N") instead of at the deadline.
  if (alert_hub_ != nullptr) alert_hub_->Shutdown();
  if (twin_watch_hub_ != nullptr) twin_watch_hub_->Shutdown();
  // HTTP first: its calls run over the in-process channel of the gRPC server.
  if (http_ != nullptr) http_->Stop();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
  // Flush: dirty twins are snapshotted, the last groups commit, the store closes.
#ifdef PUMPTWIN_HAVE_POSTGRES
  if (cluster_ != nullptr) cluster_->Quiesce();
#endif
  registry_->Stop();
  committer_->Shutdown();
#ifdef PUMPTWIN_HAVE_POSTGRES
  if (cluster_ != nullptr) cluster_->Stop();  // hands the shards over
#endif
  Log(LogLevel::kInfo, "stopped", {{"shutdown_ms", absl::ToInt64Milliseconds(absl::Now() - t0)}});
}

}  // namespace pumptwin::server
