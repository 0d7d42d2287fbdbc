// pumptwin_loadgen: drives N gateway streams (one GatewayClient each, one producer thread
// each) at a batch size against a DeviceGateway, for a bounded frame count and time, and
// reports acknowledged samples/s and per-frame ack latency percentiles. Optionally holds
// WatchAlerts subscribers meanwhile (--watch_alerts, some never reading) and runs an alert
// probe (--alert_probe_ms) that reports sample-to-alert latency at the reading ones.
// Against a cluster (--targets: the replicas), each stream is one ClusterGatewayClient that
// sends each pump's frames to the replica serving it, and --register_pumps registers each
// pump at that replica.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/help_flags.h"
#include "device_link/cluster_gateway_client.h"
#include "device_link/gateway_client.h"
#include "device_link/process_tuning.h"
#include "grpcpp/grpcpp.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "tools/loadgen/alert_watchers.h"
#include "tools/loadgen/loadgen_common.h"

ABSL_FLAG(std::string, target, "", "server address, e.g. 127.0.0.1:50051 (this or --targets)");
ABSL_FLAG(std::string, targets, "",
          "cluster mode: the replicas, comma-separated (e.g. 127.0.0.1:50051,127.0.0.1:50061); "
          "each stream is a ClusterGatewayClient seeded with all of them, which follows the "
          "replicas' NACK_REASON_MOVED answers to each pump's owner, and --register_pumps "
          "registers each pump at its owner (asked round-robin, then where a refusal names, "
          "unless the replica forwarded the call). Before the timed run, one frame per pump is "
          "sent and acknowledged (its route learnt: warmup_samples, not in the rate). Loopback "
          "addresses only. The pumps must be new (seqs start at 1: use a fresh --pump_prefix "
          "per run). Not with --watch_alerts, --alert_probe_ms, --late_record_percent, "
          "--register_only");
ABSL_FLAG(double, cluster_failover_s, 2,
          "--targets: a replica session down this long, with frames waiting, is given up and "
          "its unacknowledged samples are sent through the others");
ABSL_FLAG(int, streams, 1, "concurrent gateway streams (one client + producer thread each)");
ABSL_FLAG(int, batch, 100, "samples per frame");
ABSL_FLAG(int, pumps_per_stream, 1, "pumps per gateway (frames go round-robin over them)");
ABSL_FLAG(int64_t, frames_per_stream, 20000, "frames each stream sends");
ABSL_FLAG(double, duration_s, 30, "hard time bound for the run");
ABSL_FLAG(int, frame_interval_ms, 0,
          "> 0: each stream sends a frame every this many ms (a steady load, e.g. across a "
          "failover); 0: as fast as the window allows");
ABSL_FLAG(uint32_t, max_unacked_frames, 32, "client in-flight window");
ABSL_FLAG(std::string, gateway_prefix, "loadgw", "gateway ids are <prefix>-<i>");
ABSL_FLAG(bool, register_pumps, false,
          "register the pumps first via TwinService.RegisterPump (needed against pumptwind; "
          "ALREADY_EXISTS is fine, so a rerun continues their sequences)");
ABSL_FLAG(int, register_concurrency, 64, "RegisterPump calls in flight (group commit merges them)");
ABSL_FLAG(int64_t, register_only, 0,
          "register this many extra idle pumps (ids <prefix>idle<N>; implanted and filled an "
          "hour before, so no alert is raised) and exit: fleet-size runs");
ABSL_FLAG(bool, distinct_prescriptions, false,
          "--register_only: give every pump its own basal rate (no two twins share a therapy "
          "plan: the memory worst case); default: all pumps on the same prescription");
ABSL_FLAG(int64_t, sample_interval_ms, 60000, "device time between consecutive samples of a pump");
ABSL_FLAG(std::string, pump_prefix, "", "pump ids are <prefix>s<stream>p<pump>");
ABSL_FLAG(double, late_percent, 0,
          "percent of samples sent out of seq order, after the next sample of the same pump "
          "(at most one per frame, so at most 100/--batch %): two neighbours of a frame are "
          "swapped. The server's per-pump sequencer restores seq order, so this measures "
          "reordering, not an event-time rewind (which a clinical record ahead of the "
          "telemetry causes); 0: everything in order");
ABSL_FLAG(double, late_record_percent, 0,
          "percent of samples made late for the twin by a clinical record ahead of them: before "
          "every M-th frame of a stream (M = 50 / percent), an access-port aspiration is recorded "
          "(TwinService.RecordEvent) at the device time of that frame's middle sample. The "
          "frame is sent at once, the record as soon as the pump's earlier frames are "
          "acknowledged: whichever of the two reaches the pump's shard second is late for the "
          "twin (the frame's first half behind a record stated later, or the record behind "
          "the half after it), and the server applies it by an event-time rewind. Needs "
          "--register_pumps; 0: none");
ABSL_FLAG(bool, late_record_wait, false,
          "with --late_record_percent: the stream waits for each record's answer before "
          "sending the frame (every record ahead of its frame; the stream idles for a record "
          "round trip each time)");
ABSL_FLAG(int, watch_alerts, 0,
          "TwinService.WatchAlerts subscribers held open during the run (from a fresh server)");
ABSL_FLAG(int, watch_alerts_stalled, -1, "of them, how many never read (a stuck client); -1: half");
ABSL_FLAG(int, watch_alerts_per_channel, 100, "WatchAlerts streams per HTTP/2 connection");
ABSL_FLAG(
    int, alert_probe_ms, 0,
    "> 0: a probe pump raises and resolves a motor-stall alert, one sample every this "
    "many ms while the ingest runs at full speed (from each stream's second window of acks to "
    "the last frame sent), and the reading subscribers time each raise (sample send -> "
    "AlertEvent)");

namespace {

using pumptwin::device_link::ClusterGatewayClient;
using pumptwin::device_link::ClusterGatewayClientOptions;
using pumptwin::device_link::GatewayClient;
using pumptwin::device_link::GatewayClientOptions;
using pumptwin::loadgen::PumpBinding;
using pumptwin::loadgen::RegistrationTemplate;
using pumptwin::v1::TelemetrySample;

// One load stream: a GatewayClient to --target, or a ClusterGatewayClient over --targets.
class LoadStream {
 public:
  explicit LoadStream(std::unique_ptr<GatewayClient> single) : single_(std::move(single)) {}
  explicit LoadStream(std::unique_ptr<ClusterGatewayClient> cluster)
      : cluster_(std::move(cluster)) {}
  void Start() { single_ ? single_->Start() : cluster_->Start(); }
  // The cluster client connects on its first frame: nothing to wait for.
  bool WaitUntilWelcomed(absl::Duration timeout) {
    return single_ == nullptr || single_->WaitUntilWelcomed(1, timeout);
  }
  // The cluster client's RESOURCE_EXHAUSTED (a full replica session; nothing of a one-pump
  // frame was taken) is retried until `deadline`.
  absl::Status Send(std::vector<TelemetrySample> samples, absl::Time deadline) {
    if (single_ != nullptr) return single_->Send(std::move(samples)).status();
    for (;;) {
      absl::Status st = cluster_->Send(samples);
      if (st.code() != absl::StatusCode::kResourceExhausted || absl::Now() >= deadline) return st;
    }
  }
  uint64_t acked_seq(const std::string& pump) const {
    return single_ ? single_->acked_seq(pump) : cluster_->acked_seq(pump);
  }
  bool WaitUntilAllDone(absl::Duration timeout) {
    return single_ ? single_->WaitUntilAllDone(timeout) : cluster_->WaitUntilAllDone(timeout);
  }
  void Stop() { single_ ? single_->Stop() : cluster_->Stop(); }
  struct Totals {
    uint64_t acked = 0, nacked = 0, reconnects = 0, buffered = 0;
    uint64_t moved = 0, rerouted = 0, given_up = 0, replicas = 0;
    std::map<int, uint64_t> nacks_by_reason;  // NackReason -> samples
  };
  void AddTo(Totals* t) const {
    auto add = [t](const pumptwin::device_link::GatewayClientStats& st) {
      t->acked += st.samples_acked;
      t->nacked += st.samples_nacked;
      t->reconnects += st.reconnects;
      t->buffered += st.buffered_frames;
      for (const auto& [reason, n] : st.nacks_by_reason) t->nacks_by_reason[reason] += n;
    };
    if (single_ != nullptr) {
      add(single_->stats());
      return;
    }
    const pumptwin::device_link::ClusterGatewayStats cs = cluster_->stats();
    for (const auto& [address, st] : cs.sessions) add(st);
    t->moved += cs.samples_moved;
    t->rerouted += cs.samples_rerouted;
    t->given_up += cs.sessions_given_up;
    t->replicas = std::max<uint64_t>(t->replicas, cs.sessions.size());
  }

 private:
  std::unique_ptr<GatewayClient> single_;
  std::unique_ptr<ClusterGatewayClient> cluster_;
};

}  // namespace

int main(int argc, char** argv) {
  pumptwin::tools::ListOwnFlagsInHelp();
  absl::SetProgramUsageMessage(
      "Gateway load generator.\n"
      "Usage: pumptwin_loadgen --target=127.0.0.1:50051 --streams=1 --batch=100\n"
      "       pumptwin_loadgen --targets=127.0.0.1:50051,127.0.0.1:50061 --register_pumps ...");
  pumptwin::tools::ParseFlagsOrExit(argc, argv);
  pumptwin::device_link::TuneProcessForStreaming();
  const std::vector<std::string> replicas =
      absl::StrSplit(absl::GetFlag(FLAGS_targets), ',', absl::SkipWhitespace());
  const bool cluster = !replicas.empty();
  if (cluster && !absl::GetFlag(FLAGS_target).empty()) {
    std::fprintf(stderr, "give --target or --targets, not both\n");
    return 2;
  }
  const std::string target = cluster ? replicas.front() : absl::GetFlag(FLAGS_target);
  if (target.empty()) {
    std::fprintf(stderr, "--target or --targets is required (see --help)\n");
    return 2;
  }
  if (cluster) {
    for (const std::string& r : replicas) {
      if (!pumptwin::loadgen::IsLoopbackTarget(r)) {
        std::fprintf(stderr, "--targets: %s is not a loopback address\n", r.c_str());
        return 2;
      }
    }
    if (absl::GetFlag(FLAGS_watch_alerts) > 0 || absl::GetFlag(FLAGS_alert_probe_ms) > 0 ||
        absl::GetFlag(FLAGS_late_record_percent) > 0 || absl::GetFlag(FLAGS_register_only) > 0) {
      std::fprintf(stderr,
                   "--targets: not with --watch_alerts, --alert_probe_ms, --late_record_percent "
                   "or --register_only\n");
      return 2;
    }
  }
  const int streams = std::max(1, absl::GetFlag(FLAGS_streams));
  const int batch = std::max(1, absl::GetFlag(FLAGS_batch));
  const int pumps = std::max(1, absl::GetFlag(FLAGS_pumps_per_stream));
  const int64_t frames = absl::GetFlag(FLAGS_frames_per_stream);
  const absl::Time deadline = absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_duration_s));

  const int64_t interval_ms = std::max<int64_t>(1, absl::GetFlag(FLAGS_sample_interval_ms));
  // Device time of seq 1, early enough that the last sample is not in the future (with
  // --targets, each pump's routing frame comes first).
  const int64_t start_ms = absl::ToUnixMillis(absl::Now()) -
                           (frames * batch / pumps + (cluster ? batch : 0) + 10) * interval_ms;
  const std::string prefix = absl::GetFlag(FLAGS_pump_prefix);
  auto pump_name = [&](int stream, int p) { return absl::StrCat(prefix, "s", stream, "p", p); };
  if (const int64_t n = absl::GetFlag(FLAGS_register_only); n > 0) {
    auto stub = pumptwin::v1::TwinService::NewStub(
        grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
    std::vector<PumpBinding> ids;
    ids.reserve(n);
    for (int64_t i = 0; i < n; ++i) ids.push_back({absl::StrCat(prefix, "idle", i), "loadgw-idle"});
    const absl::Time t0 = absl::Now();
    // Implanted an hour ago and just filled: twins at rest, with no alert to hold (an implant
    // years back, never refilled, would raise a drug-stability alert on every pump).
    grpc::Status st = pumptwin::loadgen::RegisterPumps(
        *stub, ids,
        RegistrationTemplate{.implant_time_ms = absl::ToUnixMillis(absl::Now() - absl::Hours(1)),
                             .distinct_rates = absl::GetFlag(FLAGS_distinct_prescriptions)},
        absl::GetFlag(FLAGS_register_concurrency));
    const double secs = absl::ToDoubleSeconds(absl::Now() - t0);
    std::printf("registered=%lld elapsed_s=%.1f registrations_per_s=%.0f status=%s\n",
                static_cast<long long>(n), secs, n / secs,
                st.ok() ? "OK" : st.error_message().c_str());
    return st.ok() ? 0 : 1;
  }
  if (absl::GetFlag(FLAGS_register_pumps)) {
    std::vector<PumpBinding> bindings;
    for (int i = 0; i < streams; ++i) {
      for (int p = 0; p < pumps; ++p) {
        bindings.push_back(
            {pump_name(i, p), absl::StrCat(absl::GetFlag(FLAGS_gateway_prefix), "-", i)});
      }
    }
    const RegistrationTemplate tmpl{.implant_time_ms = start_ms - interval_ms,
                                    .reporting_interval_ms = 3600000};
    grpc::Status st;
    if (cluster) {
      const absl::Time t0 = absl::Now();
      int64_t redirected = 0;
      st = pumptwin::loadgen::RegisterPumpsAtOwners(
          replicas, bindings, tmpl, absl::GetFlag(FLAGS_register_concurrency),
          absl::Seconds(std::max(60.0, absl::GetFlag(FLAGS_duration_s))), /*max_rounds=*/20,
          &redirected);
      std::printf("registered=%zu at_owner_after_redirect=%lld elapsed_s=%.1f\n", bindings.size(),
                  static_cast<long long>(redirected), absl::ToDoubleSeconds(absl::Now() - t0));
    } else {
      auto stub = pumptwin::v1::TwinService::NewStub(
          grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
      st = pumptwin::loadgen::RegisterPumps(*stub, bindings, tmpl,
                                            absl::GetFlag(FLAGS_register_concurrency));
    }
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.error_message().c_str());
      return 1;
    }
  }

  // Alert subscribers and the probe, before any telemetry flows.
  const int n_watch = std::max(0, absl::GetFlag(FLAGS_watch_alerts));
  const int stalled_flag = absl::GetFlag(FLAGS_watch_alerts_stalled);
  pumptwin::loadgen::AlertLoad alert_load(pumptwin::loadgen::AlertLoadOptions{
      .target = target,
      .watchers = n_watch,
      .stalled = std::clamp(stalled_flag < 0 ? n_watch / 2 : stalled_flag, 0, n_watch),
      .per_channel = absl::GetFlag(FLAGS_watch_alerts_per_channel),
      .probe_interval = absl::Milliseconds(std::max(0, absl::GetFlag(FLAGS_alert_probe_ms))),
      .max_total = absl::Seconds(absl::GetFlag(FLAGS_duration_s) + 120)});
  if (absl::Status s = alert_load.Start(); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return absl::IsInvalidArgument(s) ? 2 : 1;
  }

  pumptwin::loadgen::LatencyRecorder lat;
  std::vector<std::unique_ptr<LoadStream>> clients;
  for (int i = 0; i < streams; ++i) {
    GatewayClientOptions o;
    o.target = target;
    o.credentials = grpc::InsecureChannelCredentials();
    o.gateway_id = absl::StrCat(absl::GetFlag(FLAGS_gateway_prefix), "-", i);
    o.max_unacked_frames = absl::GetFlag(FLAGS_max_unacked_frames);
    o.max_buffered_frames = 2 * o.max_unacked_frames;
    o.max_samples_per_frame = batch;
    o.when_full = GatewayClientOptions::WhenFull::kBlock;
    // --targets: a short wait, retried by LoadStream::Send until the run's deadline, so that
    // neither a stream nor the cluster client's own resends stay blocked on the full buffer
    // of a replica that died (the cluster client routes the retry elsewhere once it has
    // given that replica up).
    o.block_timeout =
        cluster ? absl::Milliseconds(200) : absl::GetFlag(FLAGS_duration_s) * absl::Seconds(1);
    // A fresh channel per stream (distinct subchannel / TCP connection per gateway).
    o.channel_args.SetInt("pumptwin.loadgen.stream", i);
    o.on_frame_done = [&lat](uint64_t, absl::Duration d) { lat.Add(d); };
    if (cluster) {
      ClusterGatewayClientOptions co;
      co.session = std::move(o);
      co.seeds = replicas;
      co.failover_after = absl::Seconds(absl::GetFlag(FLAGS_cluster_failover_s));
      clients.push_back(
          std::make_unique<LoadStream>(std::make_unique<ClusterGatewayClient>(std::move(co))));
    } else {
      clients.push_back(
          std::make_unique<LoadStream>(std::make_unique<GatewayClient>(std::move(o))));
    }
  }
  for (auto& c : clients) c->Start();
  for (auto& c : clients) {
    if (!c->WaitUntilWelcomed(absl::Seconds(10))) {
      std::fprintf(stderr, "no Welcome from %s within 10 s\n", target.c_str());
      return 1;
    }
  }

  // --targets: one frame per pump first, all acknowledged, so that every route is known
  // before the timed run (the load tool would otherwise race many frames of a pump through
  // a replica that does not serve it).
  uint64_t warmup_samples = 0;
  if (cluster) {
    for (int i = 0; i < streams; ++i) {
      for (int p = 0; p < pumps; ++p) {
        std::vector<TelemetrySample> samples(batch,
                                             pumptwin::loadgen::SampleTemplate(pump_name(i, p)));
        uint64_t seq = clients[i]->acked_seq(pump_name(i, p)) + 1;
        for (TelemetrySample& s : samples) {
          s.set_device_time_ms(start_ms + static_cast<int64_t>(seq) * interval_ms);
          s.set_seq(seq++);
        }
        if (!clients[i]->Send(std::move(samples), deadline).ok()) {
          std::fprintf(stderr, "routing frame of %s not accepted\n", pump_name(i, p).c_str());
          return 1;
        }
        warmup_samples += batch;
      }
    }
    for (auto& c : clients) {
      if (!c->WaitUntilAllDone(std::max(absl::ZeroDuration(), deadline - absl::Now()))) {
        std::fprintf(stderr, "routing frames not all acknowledged before the deadline\n");
        return 1;
      }
    }
  }
  const absl::Time start = absl::Now();
  std::atomic<int64_t> send_errors{0};
  std::atomic<int64_t> late_sent{0};
  std::atomic<int64_t> late_records{0}, late_record_errors{0};
  const bool late_record_wait = absl::GetFlag(FLAGS_late_record_wait);
  // Records not waited for: answered on gRPC's threads, all awaited (bounded) at the end.
  absl::Mutex records_mu;
  int64_t records_pending = 0;  // guarded by records_mu
  const double late_record_percent = std::max(0.0, absl::GetFlag(FLAGS_late_record_percent));
  if (late_record_percent > 0 && !absl::GetFlag(FLAGS_register_pumps)) {
    std::fprintf(stderr, "--late_record_percent needs --register_pumps\n");
    return 2;
  }
  // One record every `record_every` frames of a stream makes batch/2 of every
  // 2 * record_every * batch / 2 samples late: record_every = 50 / percent.
  const int64_t record_every =
      late_record_percent > 0
          ? std::max<int64_t>(1, static_cast<int64_t>(std::llround(50.0 / late_record_percent)))
          : 0;
  std::shared_ptr<grpc::Channel> record_channel;
  if (record_every > 0) {
    record_channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  }
  const double late_percent = std::max(0.0, absl::GetFlag(FLAGS_late_percent));
  // Per stream and pump, the first seq this run sends (durable_samples counts from it).
  std::vector<std::vector<uint64_t>> first_seq(streams);
  std::vector<std::thread> producers;
  for (int i = 0; i < streams; ++i) {
    producers.emplace_back([&, i] {
      std::vector<TelemetrySample> templates;
      for (int p = 0; p < pumps; ++p) {
        templates.push_back(pumptwin::loadgen::SampleTemplate(pump_name(i, p)));
      }
      // Continue after what the server already stored (a rerun against the same store).
      std::vector<uint64_t> next_seq(pumps, 1);
      for (int p = 0; p < pumps; ++p) next_seq[p] = clients[i]->acked_seq(pump_name(i, p)) + 1;
      first_seq[i] = next_seq;
      // --late_percent: per pump, the fraction of a late sample owed.
      const double late_per_frame = std::clamp(late_percent / 100.0 * batch, 0.0, 1.0);
      std::vector<double> late_owed(pumps, 0.0);
      std::unique_ptr<pumptwin::v1::TwinService::Stub> records;
      if (record_channel != nullptr) records = pumptwin::v1::TwinService::NewStub(record_channel);
      const int64_t late_half = batch / 2;
      auto send_record = [&](pumptwin::v1::RecordEventRequest req, bool wait) {
        auto answered = [&late_records, &late_record_errors, &late_sent,
                         late_half](const grpc::Status& st) {
          if (st.ok()) {
            ++late_records;
            late_sent += late_half;
          } else {
            ++late_record_errors;
          }
        };
        if (wait) {
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
          pumptwin::v1::RecordEventResponse resp;
          answered(records->RecordEvent(&ctx, req, &resp));
          return;
        }
        struct Call {
          grpc::ClientContext ctx;
          pumptwin::v1::RecordEventRequest req;
          pumptwin::v1::RecordEventResponse resp;
        };
        auto* call = new Call;
        call->req = std::move(req);
        call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        {
          absl::MutexLock l(&records_mu);
          ++records_pending;
        }
        records->async()->RecordEvent(
            &call->ctx, &call->req, &call->resp,
            [call, answered, &records_mu, &records_pending](grpc::Status st) {
              answered(st);
              delete call;
              absl::MutexLock l(&records_mu);
              --records_pending;
            });
      };
      struct HeldRecord {
        std::string pump;
        uint64_t first_seq;  // of the frame it is stated inside
        pumptwin::v1::RecordEventRequest req;
      };
      std::deque<HeldRecord> held;
      // Sends the held records whose pump has every frame before theirs acknowledged (all
      // of them, waiting for those acks within the run's deadline, when `all`).
      auto release_held = [&](bool all) {
        while (!held.empty()) {
          HeldRecord& h = held.front();
          if (clients[i]->acked_seq(h.pump) + 1 < h.first_seq) {
            if (!all || absl::Now() >= deadline) return;
            absl::SleepFor(absl::Milliseconds(1));  // the load tool polls the acks
            continue;
          }
          send_record(std::move(h.req), /*wait=*/false);
          held.pop_front();
        }
      };
      const absl::Duration pace = absl::Milliseconds(absl::GetFlag(FLAGS_frame_interval_ms));
      const absl::Time paced_from = absl::Now();
      for (int64_t f = 0; f < frames && absl::Now() < deadline; ++f) {
        if (pace > absl::ZeroDuration()) {
          const absl::Time due = std::min(deadline, paced_from + f * pace);
          if (due > absl::Now()) absl::SleepFor(due - absl::Now());  // pacing, not a sync
        }
        const int p = static_cast<int>(f % pumps);
        std::vector<TelemetrySample> samples(batch, templates[p]);
        for (TelemetrySample& s : samples) {
          s.set_device_time_ms(start_ms + static_cast<int64_t>(next_seq[p]) * interval_ms);
          s.set_seq(next_seq[p]++);
        }
        late_owed[p] += late_per_frame;
        if (batch >= 2 && late_owed[p] >= 1.0) {
          // Inside the frame, so its ack still covers all of it (the gateway's resume
          // point is the highest contiguous durable seq).
          late_owed[p] -= 1.0;
          const size_t at = static_cast<size_t>((f * 37) % (batch - 1));
          std::swap(samples[at], samples[at + 1]);
          ++late_sent;
        }
        if (records != nullptr && f % record_every == record_every - 1 && batch >= 2) {
          pumptwin::v1::RecordEventRequest req;
          req.set_name(absl::StrCat("pumps/", pump_name(i, p)));
          req.set_type(pumptwin::v1::CLINICAL_EVENT_ACCESS_PORT_ASPIRATION);
          req.set_device_time_ms(samples[samples.size() / 2].device_time_ms());
          req.set_outcome("load test: clear fluid");
          req.set_reason("load test: a record ahead of the telemetry");
          if (late_record_wait) {
            send_record(std::move(req), /*wait=*/true);
          } else {
            // Sent once the pump's frames before this one are acknowledged: then exactly
            // this frame's first half and the record are out of order, whichever is applied
            // first (frames of the pump still in flight would be late too).
            held.push_back({pump_name(i, p), samples.front().seq(), std::move(req)});
          }
        }
        release_held(false);
        if (!clients[i]->Send(std::move(samples), deadline).ok()) {
          ++send_errors;
          break;
        }
      }
      release_held(true);
    });
  }
  // The probe raises only while the ingest runs at full speed: from the moment every stream
  // has had its window acknowledged twice (connections up, queues at their steady depth; half
  // the run's frames for a short run) until the producers have sent their last frame.
  const size_t steady_after =
      std::min(2 * static_cast<size_t>(streams) * absl::GetFlag(FLAGS_max_unacked_frames),
               std::max<size_t>(1, static_cast<size_t>(streams) * frames / 2));
  if (alert_load.probing() && lat.WaitForCount(steady_after, deadline)) alert_load.Begin();
  for (auto& t : producers) t.join();
  alert_load.Finish();
  {
    absl::MutexLock l(&records_mu);
    auto none = [&] { return records_pending == 0; };
    records_mu.AwaitWithDeadline(absl::Condition(&none), deadline + absl::Seconds(10));
  }
  for (auto& c : clients)
    c->WaitUntilAllDone(std::max(absl::ZeroDuration(), deadline - absl::Now()));
  const absl::Duration elapsed = absl::Now() - start;

  // Samples the server reports durable per pump (its highest contiguous seq), over the run.
  uint64_t durable = 0;
  for (int i = 0; i < streams; ++i) {
    for (int p = 0; p < pumps && p < static_cast<int>(first_seq[i].size()); ++p) {
      const uint64_t a = clients[i]->acked_seq(pump_name(i, p));
      if (a + 1 > first_seq[i][p]) durable += a + 1 - first_seq[i][p];
    }
  }
  LoadStream::Totals totals;
  for (auto& c : clients) {
    c->Stop();
    c->AddTo(&totals);
  }
  // The routing frames (--targets) are not part of the timed run.
  const uint64_t acked = totals.acked - std::min<uint64_t>(totals.acked, warmup_samples),
                 nacked = totals.nacked, reconnects = totals.reconnects, buffered = totals.buffered;
  const std::vector<int64_t> ns = lat.SortedNanos();
  using pumptwin::loadgen::PercentileMs;
  const double secs = absl::ToDoubleSeconds(elapsed);
  std::printf(
      "streams=%d batch=%d frames_acked=%zu samples_acked=%llu elapsed_s=%.3f "
      "samples_per_s=%.0f frames_per_s=%.0f ack_latency_ms_p50=%.3f p99=%.3f max=%.3f "
      "nacked=%llu reconnects=%llu unfinished_frames=%llu send_errors=%lld late_samples=%lld "
      "late_records=%lld late_record_errors=%lld\n",
      streams, batch, ns.size(), static_cast<unsigned long long>(acked), secs, acked / secs,
      ns.size() / secs, PercentileMs(ns, 0.50), PercentileMs(ns, 0.99),
      ns.empty() ? 0.0 : ns.back() / 1e6, static_cast<unsigned long long>(nacked),
      static_cast<unsigned long long>(reconnects), static_cast<unsigned long long>(buffered),
      static_cast<long long>(send_errors.load()), static_cast<long long>(late_sent.load()),
      static_cast<long long>(late_records.load()),
      static_cast<long long>(late_record_errors.load()));
  if (cluster) {
    // nacked above includes the moved answers (samples_moved: handed to the owner).
    std::printf(
        "replicas=%zu warmup_samples=%llu durable_samples=%llu durable_per_s=%.0f "
        "replica_sessions=%llu "
        "samples_moved=%llu samples_rerouted=%llu sessions_given_up=%llu nacks_by_reason=%s\n",
        replicas.size(), static_cast<unsigned long long>(warmup_samples),
        static_cast<unsigned long long>(durable), durable / secs,
        static_cast<unsigned long long>(totals.replicas),
        static_cast<unsigned long long>(totals.moved),
        static_cast<unsigned long long>(totals.rerouted),
        static_cast<unsigned long long>(totals.given_up),
        totals.nacks_by_reason.empty()
            ? "-"
            : absl::StrJoin(totals.nacks_by_reason, ",", absl::PairFormatter(":")).c_str());
  }
  if (const std::string alerts = alert_load.Summary(); !alerts.empty()) {
    std::printf("%s\n", alerts.c_str());
  }
  return buffered == 0 && send_errors.load() == 0 ? 0 : 1;
}
