#include "server/core/twin_registry.h"

#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "server/core/replay.h"
#include "server/store/store_keys.h"

namespace pumptwin::server {
namespace {

int ShardCount(int requested) {
  if (requested > 0) return requested;
  int n = static_cast<int>(std::thread::hardware_concurrency());
  return n > 0 ? n : 1;
}

}  // namespace

TwinRegistry::TwinRegistry(store::Store* store, CommitGate* gate, RegistryOptions options)
    : store_(store),
      gate_(gate),
      options_(std::move(options)),
      directory_(ShardCount(options_.shards)) {
  options_.shard.on_store_error = [this](const absl::Status& s) { OnStoreError(s); };
  options_.shard.store = store_;
  for (int i = 0; i < directory_.stripes(); ++i) {
    shards_.push_back(std::make_unique<Shard>(i, gate_, &directory_, options_.shard));
  }
}

TwinRegistry::~TwinRegistry() { Stop(); }

void TwinRegistry::Stop() {
  if (stopped_.exchange(true)) return;
  if (!degraded_.load()) {
    for (auto& shard : shards_) {
      Shard* sh = shard.get();
      sh->Post([sh] { sh->SnapshotAll(); });
    }
  }
  for (auto& shard : shards_) shard->Stop();
}

void TwinRegistry::OnStoreError(const absl::Status& status) {
  if (!degraded_.exchange(true)) {
    Log(LogLevel::kError, "store_degraded",
        {{"error", std::string(status.message())},
         {"action", "ingest and changes answer UNAVAILABLE until the store accepts writes"}});
  }
}

absl::StatusOr<RecoveryStats> TwinRegistry::Recover() {
  RecoveryStats stats;
  absl::Time t0 = absl::Now();
  if (absl::Status s = gate_->Load(); !s.ok()) return s;
  if (absl::Status s = LoadAll(&stats); !s.ok()) return s;
  stats.duration = absl::Now() - t0;
  return stats;
}

absl::Status TwinRegistry::LoadAll(RecoveryStats* stats,
                                   const std::function<bool(absl::string_view)>& which,
                                   bool fresh) {
  auto selected = [&](absl::string_view id) { return which ? which(id) : Holds(id); };
  // Count first, then size every map once: loading a million twins without rehashing.
  size_t registered = 0;
  if (fresh) {
    absl::Status counted = store_->ScanPumps([&](absl::string_view, absl::string_view) {
      ++registered;
      return true;
    });
    if (!counted.ok()) return counted;
    directory_.Reserve(registered);
  }
  if (fresh) {
    absl::BlockingCounter reserved(static_cast<int>(shards_.size()));
    const size_t per_shard = registered / shards_.size() + 1;
    for (auto& shard : shards_) {
      Shard* sh = shard.get();
      sh->Post([sh, per_shard, &reserved] {
        sh->slots().reserve(per_shard);
        reserved.DecrementCount();
      });
    }
    reserved.Wait();
  }
  absl::Status parse_error;
  absl::Status status = store_->ScanPumps([&](absl::string_view id, absl::string_view bytes) {
    if (!selected(id)) return true;
    v1::Pump pump;
    if (!pump.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      parse_error =
          absl::DataLossError(absl::StrCat("registration of pump '", id, "' does not parse"));
      return false;
    }
    directory_.Put(pump);
    ++stats->pumps;
    return true;
  });
  if (!status.ok()) return status;
  if (!parse_error.ok()) return parse_error;

  // Head seq of every pump with telemetry, in one sequential scan (instead of a point
  // lookup per twin): only twins whose snapshot is behind their head replay.
  absl::flat_hash_map<std::string, uint64_t> heads;
  status = store_->ScanPumpHeads([&](const store::PumpHead& h) {
    heads.emplace(h.pump_id, h.last_seq);
    return true;
  });
  if (!status.ok()) return status;

  // Snapshots are decoded and replayed on the shard threads, in batches posted while the
  // scan goes on (the scan overlaps the decoding); at most kInFlight batches are held in
  // memory at once, so a million snapshots never sit in memory side by side.
  constexpr size_t kBatch = 512;
  const int kInFlight = 2 * static_cast<int>(shards_.size());
  absl::Mutex mu;
  absl::Status first_error;
  int in_flight = 0;
  std::atomic<size_t> twins{0}, replayed{0};
  using Items = std::vector<std::pair<std::string, std::string>>;
  std::vector<Items> pending(shards_.size());
  auto load = [&](Shard* sh, const Items& items) {
    for (const auto& [id, bytes] : items) {
      auto twin = twin::Twin::Deserialize(bytes);
      auto head = heads.find(id);
      absl::StatusOr<size_t> n =
          twin.ok() ? ReplayTelemetry(*store_, id, *twin, head == heads.end() ? 0 : head->second)
                    : absl::StatusOr<size_t>(twin.status());
      if (!n.ok()) {
        absl::MutexLock lock(&mu);
        if (first_error.ok()) {
          first_error = absl::DataLossError(
              absl::StrCat("twin of pump '", id, "' cannot be recovered: ", n.status().message()));
        }
        continue;
      }
      replayed += *n;
      ++twins;
      PumpSlot& slot = sh->slots()
                           .insert_or_assign(id, PumpSlot(*std::move(twin), options_.shard.now()))
                           .first->second;
      // Replayed samples are not in the stored snapshot yet: the time-based policy writes
      // one within snapshot_interval, so the next recovery does not replay them again.
      slot.since_snapshot = static_cast<uint32_t>(std::min<size_t>(*n, UINT32_MAX));
      sh->PublishSummary(id, slot);
    }
  };
  auto post = [&](size_t shard, Items items) {
    {
      absl::MutexLock lock(&mu);
      auto has_room = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return in_flight < kInFlight; };
      mu.Await(absl::Condition(&has_room));
      ++in_flight;
    }
    Shard* sh = shards_[shard].get();
    const bool posted = sh->Post([&, sh, items = std::move(items)]() {
      load(sh, items);
      absl::MutexLock lock(&mu);
      --in_flight;
    });
    if (!posted) {
      absl::MutexLock lock(&mu);
      --in_flight;
      if (first_error.ok()) first_error = absl::UnavailableError("server stopping during recovery");
    }
  };
  status = store_->ScanAllSnapshots([&](absl::string_view id, absl::string_view bytes) {
    if (!selected(id)) return true;
    const size_t s = static_cast<size_t>(ShardIndexOf(id));
    pending[s].emplace_back(std::string(id), std::string(bytes));
    if (pending[s].size() >= kBatch) {
      post(s, std::move(pending[s]));
      pending[s] = Items();
      pending[s].reserve(kBatch);
    }
    return true;
  });
  for (size_t s = 0; s < pending.size(); ++s) {
    if (!pending[s].empty()) post(s, std::move(pending[s]));
  }
  {
    absl::MutexLock lock(&mu);
    auto drained = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return in_flight == 0; };
    mu.Await(absl::Condition(&drained));
  }
  if (!status.ok()) return status;
  if (!first_error.ok()) return first_error;
  stats->twins = twins.load();
  stats->replayed_samples = replayed.load();
  if (stats->twins != stats->pumps) {
    return absl::DataLossError(absl::StrCat(stats->pumps, " pumps are registered but ",
                                            stats->twins, " twin snapshots were found"));
  }
  return absl::OkStatus();
}

void TwinRegistry::Submit(device_link::IngestBatch batch,
                          std::function<void(device_link::IngestResult)> done) {
  if (degraded_.load() || stopped_.load()) {
    device_link::IngestResult r;
    r.status = absl::UnavailableError(
        "the store is not accepting writes (disk full or I/O error); nothing was stored, "
        "resend later");
    done(std::move(r));
    return;
  }
  if (batch.pumps.empty()) {
    done(device_link::IngestResult());
    return;
  }
  // One task and one completion per shard the frame touches, not per pump.
  std::vector<std::vector<device_link::PumpSamples>> per_shard(shards_.size());
  int touched = 0;
  for (device_link::PumpSamples& part : batch.pumps) {
    auto& parts = per_shard[static_cast<size_t>(ShardIndexOf(part.pump_id))];
    if (parts.empty()) ++touched;
    parts.push_back(std::move(part));
  }
  auto state = std::make_shared<BatchState>(touched, options_.shard.now(), std::move(done));
  for (size_t i = 0; i < per_shard.size(); ++i) {
    if (per_shard[i].empty()) continue;
    Shard* sh = shards_[i].get();
    bool posted = sh->Post(
        [sh, parts = std::move(per_shard[i]), state, gateway = batch.gateway_id]() mutable {
          sh->ApplyIngest(std::move(parts), std::move(state), gateway);
        },
        /*block=*/false);
    if (!posted) {
      state->Complete(
          absl::ResourceExhaustedError("the server's shard queue is full; back off and resend"), {},
          {});
    }
  }
}

absl::StatusOr<std::vector<device_link::ResumePoint>> TwinRegistry::ResumePoints(
    absl::string_view gateway_id, const std::vector<std::string>& pump_ids) {
  std::vector<std::string> ids =
      pump_ids.empty() ? directory_.PumpsOfGateway(gateway_id) : pump_ids;
  std::vector<device_link::ResumePoint> out;
  out.reserve(ids.size());
  for (const std::string& id : ids) {
    if (!CheckServed(id).ok()) {
      out.push_back(options_.cluster.moved_route(id));
      continue;
    }
    if (!directory_.Authorize(gateway_id, id).ok()) continue;
    auto head = store_->GetPumpHead(id);
    if (absl::IsNotFound(head.status())) {
      out.push_back({id, 0});
      continue;
    }
    if (!head.ok()) return head.status();
    out.push_back({id, head->last_seq});
  }
  return out;
}

absl::Status TwinRegistry::CheckServedForCall(absl::string_view pump_id) const {
  absl::Status s = CheckServed(pump_id);
  if (s.ok()) return s;
  const auto owner = s.GetPayload(device_link::kMovedPayloadUrl);
  if (!owner.has_value() || owner->empty()) return s;  // UNAVAILABLE: being taken over
  return absl::UnavailableError(absl::StrCat("pump ", pump_id, " is served by the replica at ",
                                             std::string(*owner),
                                             " (its shard changed replicas); retry the call"));
}

absl::Status TwinRegistry::Authorize(absl::string_view gateway_id, absl::string_view pump_id) {
  if (absl::Status s = CheckServed(pump_id); !s.ok()) return s;
  return directory_.Authorize(gateway_id, pump_id);
}

void TwinRegistry::Register(v1::Pump pump, twin::Twin twin, std::vector<AuditDraft> audit,
                            std::function<void(absl::Status)> done) {
  if (degraded_.load()) {
    done(absl::UnavailableError("the store is not accepting writes; nothing was changed"));
    return;
  }
  if (absl::Status s = CheckServedForCall(pump.pump_id()); !s.ok()) {
    done(std::move(s));
    return;
  }
  // The directory entry is the atomic "one twin per id" check and places the pump. It is
  // made on the shard thread of the id's directory stripe (one thread per id, so two
  // registrations of an id are serialised there), not on this gRPC thread: its memory then
  // lies among long-lived objects, not among the request's short-lived buffers, which
  // would leave holes the heap trim cannot return (docs/benchmarks.md, fleet memory).
  // Everything the registration writes is serialized here, so the shard threads that keep
  // the twins allocate no short-lived buffers between them.
  struct Job {
    v1::Pump pump;
    std::string snapshot;  // the twin's bytes: its first snapshot...
    MutationContext ctx;   // ...and, in ctx.extra, the genesis copy and the registration
    std::function<void(absl::Status)> done;
  };
  auto job = std::make_shared<Job>();
  job->snapshot = twin.Serialize();
  job->ctx.audit = std::move(audit);
  job->ctx.extra.pumps.emplace_back(pump.pump_id(), pump.SerializeAsString());
  // The twin as registered: `pumptwind --verify` replays all telemetry from it.
  job->ctx.extra.meta.emplace_back(store::keys::GenesisMetaKey(pump.pump_id()), job->snapshot);
  job->pump = std::move(pump);
  job->done = std::move(done);
  Shard* home = shards_[static_cast<size_t>(directory_.StripeOf(job->pump.pump_id()))].get();
  const bool posted = home->Post([this, home, job] {
    absl::StatusOr<int> shard = directory_.Insert(job->pump);
    if (!shard.ok()) {
      job->done(shard.status());
      return;
    }
    Shard* sh = shards_[static_cast<size_t>(*shard)].get();
    auto add = [sh, job, now = options_.shard.now] {
      job->ctx.server_time = now();
      sh->AddPump(job->pump.pump_id(), std::move(job->snapshot), std::move(job->ctx),
                  std::move(job->done));
    };
    if (sh == home) {
      add();
    } else if (!sh->Post(add, /*block=*/false)) {  // never block one shard on another
      directory_.Erase(job->pump.pump_id());
      job->done(absl::ResourceExhaustedError(
          "the server's shard queue is full; nothing was registered, retry later"));
    }
  });
  if (!posted) {
    job->done(absl::UnavailableError("the server is shutting down; the pump was not registered"));
  }
}

void TwinRegistry::Mutate(const std::string& pump_id, Shard::MutateFn fn,
                          std::function<void(absl::Status)> done, bool block) {
  if (degraded_.load()) {
    done(absl::UnavailableError("the store is not accepting writes; nothing was changed"));
    return;
  }
  if (absl::Status s = CheckServedForCall(pump_id); !s.ok()) {
    done(std::move(s));
    return;
  }
  Shard* sh = &ShardOf(pump_id);
  auto shared_done = std::make_shared<std::function<void(absl::Status)>>(std::move(done));
  const bool posted = sh->Post(
      [sh, pump_id, fn = std::move(fn), shared_done]() mutable {
        sh->Mutate(pump_id, std::move(fn), std::move(*shared_done));
      },
      block);
  if (!posted) {
    (*shared_done)(block
                       ? absl::UnavailableError("the server is shutting down; nothing was changed")
                       : absl::ResourceExhaustedError(
                             "the server's shard queue is full; nothing was changed, retry later"));
  }
}

void TwinRegistry::Read(const std::string& pump_id,
                        std::function<void(const twin::Twin*, absl::Status)> fn) {
  if (absl::Status s = CheckServedForCall(pump_id); !s.ok()) {
    fn(nullptr, std::move(s));
    return;
  }
  Shard* sh = &ShardOf(pump_id);
  bool posted = sh->Post([sh, pump_id, fn]() {
    auto it = sh->slots().find(pump_id);
    if (it == sh->slots().end()) {
      fn(nullptr, absl::NotFoundError(absl::StrCat("pump '", pump_id, "' is not registered")));
      return;
    }
    fn(&it->second.twin, absl::OkStatus());
  });
  if (!posted) fn(nullptr, absl::UnavailableError("the server is shutting down"));
}

void TwinRegistry::Tick(absl::Time server_time, absl::Time received_before) {
  if (degraded_.load() || stopped_.load()) return;
  for (auto& shard : shards_) {
    Shard* sh = shard.get();
    sh->Post([sh, server_time, received_before] { sh->TickAll(server_time, received_before); },
             /*block=*/false);
  }
}

std::optional<absl::Time> TwinRegistry::NewestModelTime() const {
  std::optional<absl::Time> newest;
  for (const auto& shard : shards_) {
    if (auto t = shard->newest_model_time(); t && (!newest || *t > *newest)) newest = t;
  }
  return newest;
}

absl::Status TwinRegistry::Reload(absl::string_view why) {
  Log(LogLevel::kInfo, "cluster_reload", {{"reason", std::string(why)}});
  absl::Status reason = absl::UnavailableError(
      absl::StrCat("this replica is reloading its twins (", why, "); resend in a moment"));
  degraded_.store(true);
  gate_->LatchStoreFailure(reason);
  return TryRevive();
}

absl::Status TwinRegistry::LoadGained(const std::function<bool(absl::string_view)>& gained,
                                      absl::string_view why) {
  absl::MutexLock lock(&revive_mu_);
  if (degraded_.load()) {
    return absl::UnavailableError("the registry is reloading every twin after a store failure");
  }
  const absl::Time t0 = absl::Now();
  RecoveryStats stats;
  if (absl::Status s = LoadAll(&stats, gained, /*fresh=*/false); !s.ok()) return s;
  // The former owner can no longer append for these pumps (its fence fails): once followed
  // to the end, their alert book is what the log says.
  absl::StatusOr<size_t> n;
  do {
    n = gate_->Follow(1000);
  } while (n.ok() && *n > 0);
  if (!n.ok()) return n.status();
  Log(LogLevel::kInfo, "cluster_loaded_gained",
      {{"reason", std::string(why)},
       {"twins", stats.twins},
       {"replayed_samples", stats.replayed_samples},
       {"ms", absl::ToInt64Milliseconds(absl::Now() - t0)}});
  return absl::OkStatus();
}

absl::Status TwinRegistry::DropGivenBack(const std::function<bool(absl::string_view)>& given_back,
                                         absl::string_view why) {
  absl::MutexLock lock(&revive_mu_);
  if (degraded_.load()) {
    return absl::UnavailableError("the registry is reloading every twin after a store failure");
  }
  std::atomic<bool> all_dropped{true};
  absl::BlockingCounter dropped(static_cast<int>(shards_.size()));
  for (auto& shard : shards_) {
    Shard* sh = shard.get();
    const bool posted = sh->Post([sh, &given_back, &all_dropped, &dropped] {
      if (!sh->DropPumps(given_back)) all_dropped.store(false);
      dropped.DecrementCount();
    });
    if (!posted) {
      all_dropped.store(false);
      dropped.DecrementCount();
    }
  }
  dropped.Wait();
  if (!all_dropped.load()) {
    return absl::FailedPreconditionError(
        "a pump of a shard given back still has data forming; reload instead");
  }
  const size_t pumps = directory_.EraseIf(given_back);
  Log(LogLevel::kInfo, "cluster_dropped_given_back",
      {{"reason", std::string(why)}, {"pumps", pumps}});
  return absl::OkStatus();
}

absl::Status TwinRegistry::TryRevive() {
  if (!degraded_.load()) return absl::OkStatus();
  absl::MutexLock lock(&revive_mu_);
  if (!degraded_.load()) return absl::OkStatus();
  // Probe: a tiny write through the same queue as everything else (so every group queued
  // before it has finished when it completes). The committer's failure latch stays set:
  // the shards may still hold groups formed on state the failed commit never stored.
  store::WriteGroup probe;
  probe.meta.emplace_back(store::keys::kProbeMetaKey, absl::FormatTime(absl::Now()));
  absl::Notification committed;
  absl::Status result;
  absl::Status st = gate_->SubmitProbe(std::move(probe), [&](absl::Status s) {
    result = s;
    committed.Notify();
  });
  if (!st.ok()) return st;
  committed.WaitForNotification();
  if (!result.ok()) return result;
  // Writes work again: drop in-memory state and reload it from the store (crash-only).
  absl::BlockingCounter cleared(static_cast<int>(shards_.size()));
  for (auto& shard : shards_) {
    Shard* sh = shard.get();
    sh->Post([sh, &cleared] {
      sh->ResetState();
      cleared.DecrementCount();
    });
  }
  cleared.Wait();
  // Nothing formed before the reset can reach the store now: writes may go again.
  gate_->ClearStoreFailure();
  directory_.Clear();
  if (absl::Status s = gate_->Load(); !s.ok()) return s;
  RecoveryStats stats;
  if (absl::Status s = LoadAll(&stats); !s.ok()) return s;
  degraded_.store(false);
  Log(LogLevel::kInfo, "store_revived", {{"twins", stats.twins}});
  return absl::OkStatus();
}

}  // namespace pumptwin::server
