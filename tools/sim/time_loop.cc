// The accelerated-time loop: telemetry through the gateways, outages and backfill, clinic
// sessions at their minute (sim_parts.h).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "device_link/gateway_client.h"
#include "tools/sim/sim_parts.h"

namespace pumptwin::sim {
namespace {

constexpr int64_t kStepMs = kHourMs;
constexpr size_t kMaxSamplesPerFrame = 1000;
const absl::Duration kDrainTimeout = absl::Seconds(120);

// One gateway: its GatewayClient (store-and-forward to pumptwind) while it has a network,
// and what its pumps reported while it had none (sent, oldest first, once it is back).
struct Gateway {
  std::string id;
  std::unique_ptr<device_link::GatewayClient> client;
  std::vector<v1::TelemetrySample> pending;
  int64_t offline_until_ms = 0;
  uint64_t acked_before = 0, nacked_before = 0;  // by clients of earlier connections
  std::map<int, uint64_t> nacks_before;          // NackReason -> count, the same
};

std::unique_ptr<device_link::GatewayClient> Connect(const std::string& target,
                                                    const std::string& id) {
  device_link::GatewayClientOptions go;
  go.target = target;
  go.credentials = grpc::InsecureChannelCredentials();
  go.gateway_id = id;
  go.max_buffered_frames = 1024;
  go.when_full = device_link::GatewayClientOptions::WhenFull::kBlock;
  go.block_timeout = kDrainTimeout;
  go.backoff.initial = absl::Milliseconds(20);
  go.backoff.max = absl::Milliseconds(500);
  auto client = std::make_unique<device_link::GatewayClient>(std::move(go));
  client->Start();
  return client;
}

// Hands the gateway's pending samples to its client; with `wait`, until all are acked.
absl::Status Flush(Gateway& g, bool wait) {
  for (size_t i = 0; i < g.pending.size(); i += kMaxSamplesPerFrame) {
    const size_t end = std::min(g.pending.size(), i + kMaxSamplesPerFrame);
    std::vector<v1::TelemetrySample> frame(g.pending.begin() + static_cast<std::ptrdiff_t>(i),
                                           g.pending.begin() + static_cast<std::ptrdiff_t>(end));
    auto id = g.client->Send(std::move(frame));
    if (!id.ok()) return id.status();
  }
  g.pending.clear();
  if (wait && !g.client->WaitUntilAllDone(kDrainTimeout)) {
    return absl::DeadlineExceededError(
        absl::StrCat("gateway ", g.id, " did not drain within 120 s"));
  }
  return absl::OkStatus();
}

// The network goes: what is in flight is delivered (or it would be resent by the same
// client), then the connection closes. Returns when the client is gone.
absl::Status Disconnect(Gateway& g) {
  if (auto st = Flush(g, true); !st.ok()) return st;
  const auto stats = g.client->stats();
  g.acked_before += stats.samples_acked;
  g.nacked_before += stats.samples_nacked;
  for (const auto& [reason, n] : stats.nacks_by_reason) g.nacks_before[reason] += n;
  g.client->Stop();
  g.client.reset();
  return absl::OkStatus();
}

// Reports of `p` due up to `upto_ms` (true time), into its gateway's pending list.
void Report(SimPump& p, int64_t upto_ms, Gateway& g, uint64_t& samples, std::mt19937_64& rng) {
  if (p.sample_interval_ms > 0) {
    for (int64_t ts = p.last_sample_ms + p.sample_interval_ms; ts <= upto_ms;
         ts = p.last_sample_ms + p.sample_interval_ms) {
      p.AdvanceTo(ts, rng);
      g.pending.push_back(p.TakeSample(rng));
      ++samples;
    }
  }
  p.AdvanceTo(upto_ms, rng);
}

}  // namespace

absl::Status TimeLoop(const RunOptions& o, const Scenario& sc, Fleet& fleet,
                      v1::TwinService::Stub& stub, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u01(0, 1);
  const double speed = o.realtime ? 1.0 : o.speed;
  std::vector<Gateway> gws(static_cast<size_t>(fleet.gateways));
  for (int g = 0; g < fleet.gateways; ++g) {
    gws[static_cast<size_t>(g)].id = GatewayId(o.pump_prefix, g);
    gws[static_cast<size_t>(g)].client = Connect(o.target, gws[static_cast<size_t>(g)].id);
  }
  Clinic clinic(stub, sc);

  // Live alert counter for the progress lines (WatchAlerts from the beginning).
  std::atomic<uint64_t> alerts_raised{0};
  grpc::ClientContext watch_ctx;
  std::thread watcher([&] {
    v1::WatchAlertsRequest req;
    auto reader = stub.WatchAlerts(&watch_ctx, req);
    v1::AlertEvent ev;
    while (reader->Read(&ev)) {
      if (ev.transition() == v1::ALERT_TRANSITION_RAISED &&
          absl::StartsWith(ev.alert().pump_id(), o.pump_prefix + "-")) {
        alerts_raised.fetch_add(1);
      }
    }
    (void)reader->Finish();
  });
  struct WatchStop {
    grpc::ClientContext* ctx;
    std::thread* t;
    ~WatchStop() {
      ctx->TryCancel();
      t->join();
    }
  } watch_stop{&watch_ctx, &watcher};

  uint64_t samples = 0, outages = 0;
  const absl::Time wall0 = absl::Now();
  absl::Time last_progress = wall0;
  auto totals = [&](uint64_t* acked, uint64_t* nacked) {
    *acked = *nacked = 0;
    for (const auto& g : gws) {
      *acked += g.acked_before;
      *nacked += g.nacked_before;
      if (g.client) {
        const auto s = g.client->stats();
        *acked += s.samples_acked;
        *nacked += s.samples_nacked;
      }
    }
  };
  auto progress = [&](int64_t t, bool force) {
    const absl::Time now = absl::Now();
    if (!force && now - last_progress < absl::Seconds(o.progress_every_s)) return;
    last_progress = now;
    uint64_t acked = 0, nacked = 0;
    totals(&acked, &nacked);
    int offline = 0;
    for (const auto& g : gws) offline += g.client ? 0 : 1;
    const ClinicCounters& c = clinic.counters();
    std::printf(
        "pumpsim: day %6.2f/%.0f | samples %llu acked %llu | alerts %llu | gateways offline "
        "%d/%d | refills %llu mri %llu | wall %.0fs\n",
        static_cast<double>(t - fleet.start_ms) / kDayMs, o.days,
        static_cast<unsigned long long>(samples), static_cast<unsigned long long>(acked),
        static_cast<unsigned long long>(alerts_raised.load()), offline, fleet.gateways,
        static_cast<unsigned long long>(c.refills), static_cast<unsigned long long>(c.mri),
        absl::ToDoubleSeconds(now - wall0));
    std::fflush(stdout);
  };

  std::vector<size_t> visiting;
  for (int64_t t = fleet.start_ms; t < fleet.end_ms; t += kStepMs) {
    const int64_t step_end = std::min(t + kStepMs, fleet.end_ms);
    // 1. Every pump up to its next clinic session in this step, or to the step's end.
    visiting.clear();
    for (size_t i = 0; i < fleet.pumps.size(); ++i) {
      SimPump& p = fleet.pumps[i];
      const int64_t visit = Clinic::NextVisitMs(p);
      const bool due = visit < step_end;
      Report(p, due ? std::max(visit, p.t_ms) : step_end, gws[static_cast<size_t>(p.gateway)],
             samples, rng);
      if (due) visiting.push_back(i);
    }
    // 2. Connected gateways deliver what their visiting pumps reported before the session.
    std::vector<bool> flushed(gws.size(), false);
    for (size_t i : visiting) {
      Gateway& g = gws[static_cast<size_t>(fleet.pumps[i].gateway)];
      if (g.client == nullptr || flushed[static_cast<size_t>(fleet.pumps[i].gateway)]) continue;
      if (auto st = Flush(g, true); !st.ok()) return st;
      flushed[static_cast<size_t>(fleet.pumps[i].gateway)] = true;
    }
    // 3. The sessions, then those pumps on to the step's end.
    for (size_t i : visiting) {
      SimPump& p = fleet.pumps[i];
      if (auto st = clinic.Visit(p, fleet.refills_true_ms[i], rng); !st.ok()) return st;
      Report(p, step_end, gws[static_cast<size_t>(p.gateway)], samples, rng);
    }
    for (SimPump& p : fleet.pumps) clinic.AfterStep(p, rng);
    // 4. Gateway outages (up to outage_hours_max) and the backfill after them.
    for (Gateway& g : gws) {
      if (g.client != nullptr &&
          u01(rng) < sc.gateway_outages_per_day() * static_cast<double>(kStepMs) / kDayMs) {
        const double h =
            sc.outage_hours_min() + (sc.outage_hours_max() - sc.outage_hours_min()) * u01(rng);
        g.offline_until_ms = step_end + static_cast<int64_t>(h * kHourMs);
        ++outages;
        if (auto st = Disconnect(g); !st.ok()) return st;
      }
      if (g.client == nullptr && g.offline_until_ms <= step_end) {
        g.client = Connect(o.target, g.id);  // a new connection: Hello, Welcome, resume
      }
      if (g.client != nullptr) {
        if (auto st = Flush(g, false); !st.ok()) return st;
      }
    }
    if (speed > 0) {
      const absl::Time due =
          wall0 + absl::Milliseconds(static_cast<double>(step_end - fleet.start_ms) / speed);
      absl::SleepFor(due - absl::Now());  // pacing only, never synchronisation
    }
    progress(step_end, false);
  }
  for (Gateway& g : gws) {
    if (g.client == nullptr) g.client = Connect(o.target, g.id);
    if (auto st = Flush(g, true); !st.ok()) return st;
  }
  progress(fleet.end_ms, true);
  uint64_t acked = 0, nacked = 0;
  totals(&acked, &nacked);
  const ClinicCounters& c = clinic.counters();
  // A pump without a fault that runs dry is a true alert, not a false one: the physics or
  // the refill schedule would be wrong, so it is said.
  int dry_without_fault = 0;
  for (const SimPump& p : fleet.pumps) {
    dry_without_fault += p.fault.kind == FaultKind::kNone && p.outcome.dry_true_ms != 0 ? 1 : 0;
  }
  if (dry_without_fault > 0) {
    std::printf("pumpsim: WARNING %d pumps without a fault ran dry\n", dry_without_fault);
  }
  std::printf(
      "pumpsim: done: %llu samples (%llu acked, %llu nacked), %llu gateway outages, refills "
      "%llu (missed %llu), clinician boluses %llu, MRI %llu, programming %llu (refused %llu), "
      "interrogations %llu\n",
      static_cast<unsigned long long>(samples), static_cast<unsigned long long>(acked),
      static_cast<unsigned long long>(nacked), static_cast<unsigned long long>(outages),
      static_cast<unsigned long long>(c.refills), static_cast<unsigned long long>(c.missed_refills),
      static_cast<unsigned long long>(c.boluses), static_cast<unsigned long long>(c.mri),
      static_cast<unsigned long long>(c.programming),
      static_cast<unsigned long long>(c.programming_refused),
      static_cast<unsigned long long>(c.interrogations));
  if (nacked > 0) {
    std::map<int, uint64_t> by_reason;
    for (const Gateway& g : gws) {
      for (const auto& [r, n] : g.nacks_before) by_reason[r] += n;
      for (const auto& [r, n] : g.client->stats().nacks_by_reason) by_reason[r] += n;
    }
    std::string reasons;
    for (const auto& [r, n] : by_reason) {
      absl::StrAppend(&reasons, " ", v1::NackReason_Name(static_cast<v1::NackReason>(r)), "=", n);
    }
    std::printf("pumpsim: WARNING %llu samples nacked:%s\n",
                static_cast<unsigned long long>(nacked), reasons.c_str());
  }
  for (Gateway& g : gws) g.client->Stop();
  return absl::OkStatus();
}

}  // namespace pumptwin::sim
