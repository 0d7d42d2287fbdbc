#include "server/metrics/ingest_metrics.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "server/core/convert.h"
#include "server/core/shard.h"
#include "server/core/twin_registry.h"
#include "server/metrics/metrics.h"

namespace pumptwin::server {
namespace {

std::string NackReasonLabel(v1::NackReason r) {
  std::string name = v1::NackReason_Name(r);
  if (absl::StartsWith(name, "NACK_REASON_")) name = name.substr(12);
  return absl::AsciiStrToLower(name);
}

const char* ProfileLabel(int profile) {
  switch (profile) {
    case v1::PUMP_PROFILE_PROGRAMMABLE_PERISTALTIC:
      return "programmable_peristaltic";
    case v1::PUMP_PROFILE_PROGRAMMABLE_VALVE:
      return "programmable_valve";
    case v1::PUMP_PROFILE_CONSTANT_FLOW:
      return "constant_flow";
    case v1::PUMP_PROFILE_SENSORIZED:
      return "sensorized";
  }
  return "unspecified";
}

}  // namespace

IngestMetrics::IngestMetrics(prometheus::Registry& r) : registry_(r) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  gateways_ = &BuildGauge()
                   .Name("pumptwin_gateways_connected")
                   .Help("Open DeviceGateway sessions.")
                   .Register(r)
                   .Add({});
  frames_ = &BuildCounter()
                 .Name("pumptwin_telemetry_frames_total")
                 .Help("Telemetry frames processed, by result.")
                 .Register(r);
  samples_ = &BuildCounter()
                  .Name("pumptwin_telemetry_samples_total")
                  .Help("Telemetry samples processed, by result.")
                  .Register(r);
  rejected_ = &BuildCounter()
                   .Name("pumptwin_telemetry_samples_rejected_total")
                   .Help("Rejected telemetry samples, by Nack reason.")
                   .Register(r);
  ack_latency_ = &BuildHistogram()
                      .Name("pumptwin_ack_latency_seconds")
                      .Help("Frame received to Ack queued, including the fsync.")
                      .Register(r)
                      .Add({}, LatencyBucketsSeconds());
  alert_latency_ = &BuildHistogram()
                        .Name("pumptwin_sample_to_alert_latency_seconds")
                        .Help("Sample received to alert event queued for commit.")
                        .Register(r)
                        .Add({}, LatencyBucketsSeconds());
  auto& late = BuildCounter()
                   .Name("pumptwin_late_inputs_total")
                   .Help(
                       "Inputs (telemetry, clinical records) that arrived after later ones "
                       "and were applied in their place, by path: rewind (from a "
                       "checkpoint) or beyond_window (older than --history_window, "
                       "replayed from the registration).")
                   .Register(r);
  late_rewind_ = &late.Add({{"path", "rewind"}});
  late_beyond_window_ = &late.Add({{"path", "beyond_window"}});
  auto& rewinds = BuildCounter()
                      .Name("pumptwin_rewinds_total")
                      .Help(
                          "Event-time rewinds, by where the replay started: memory (the "
                          "pump's recent inputs) or store (a checkpoint and the inputs after "
                          "it read back).")
                      .Register(r);
  rewind_memory_ = &rewinds.Add({{"source", "memory"}});
  rewind_store_ = &rewinds.Add({{"source", "store"}});
  auto& stages = BuildCounter()
                     .Name("pumptwin_ingest_stage_seconds_total")
                     .Help(
                         "Durable-ack time of ingest frame parts, summed by stage: "
                         "rate(...{stage}) / rate(pumptwin_ingest_stage_frame_parts_total) "
                         "is the mean per frame part.")
                     .Register(r);
  stage_shard_queue_ = &stages.Add({{"stage", "shard_queue"}});
  stage_group_wait_ = &stages.Add({{"stage", "group_wait"}});
  stage_store_ = &stages.Add({{"stage", "store"}});
  stage_ack_return_ = &stages.Add({{"stage", "ack_return"}});
  stage_parts_ = &BuildCounter()
                      .Name("pumptwin_ingest_stage_frame_parts_total")
                      .Help("Frame parts (one per shard a frame touched) in the stage sums.")
                      .Register(r)
                      .Add({});
  queue_depth_ = &BuildGauge()
                      .Name("pumptwin_shard_queue_depth")
                      .Help("Tasks waiting for a shard worker.")
                      .Register(r);
  rate_limited_ = &BuildCounter()
                       .Name("pumptwin_gateway_rate_limited_total")
                       .Help("Gateway streams ended RESOURCE_EXHAUSTED for their rate.")
                       .Register(r)
                       .Add({});
  commit_seconds_ = &BuildHistogram()
                         .Name("pumptwin_store_commit_duration_seconds")
                         .Help("One group commit (write + fsync).")
                         .Register(r)
                         .Add({}, LatencyBucketsSeconds());
  commits_ = &BuildCounter()
                  .Name("pumptwin_store_commits_total")
                  .Help("Group commits (one fsync each).")
                  .Register(r)
                  .Add({});
  commit_groups_ = &BuildCounter()
                        .Name("pumptwin_store_commit_groups_total")
                        .Help("Write groups merged into commits.")
                        .Register(r)
                        .Add({});
  written_bytes_ = &BuildCounter()
                        .Name("pumptwin_store_written_bytes_total")
                        .Help("Bytes handed to the store.")
                        .Register(r)
                        .Add({});
  store_errors_ = &BuildCounter()
                       .Name("pumptwin_store_errors_total")
                       .Help("Failed store operations.")
                       .Register(r);
  store_errors_->Add({{"op", "commit"}});
  store_errors_->Add({{"op", "read"}});
  live_data_bytes_ = &BuildGauge()
                          .Name("pumptwin_store_live_data_bytes")
                          .Help("RocksDB estimated live data size.")
                          .Register(r)
                          .Add({});
  memtable_bytes_ = &BuildGauge()
                         .Name("pumptwin_store_memtable_bytes")
                         .Help("Memory held by the store's memtables (flushed when full or idle).")
                         .Register(r)
                         .Add({});
  pending_compaction_bytes_ = &BuildGauge()
                                   .Name("pumptwin_store_pending_compaction_bytes")
                                   .Help("RocksDB estimated pending compaction bytes.")
                                   .Register(r)
                                   .Add({});
  recovery_seconds_ = &BuildGauge()
                           .Name("pumptwin_recovery_duration_seconds")
                           .Help("Duration of the last start-up recovery.")
                           .Register(r)
                           .Add({});
  shards_owned_ = &BuildGauge()
                       .Name("pumptwin_shards_owned")
                       .Help("Cluster mode: virtual shards this replica serves (0 outside it).")
                       .Register(r)
                       .Add({});
  {
    auto& takeover = BuildHistogram()
                         .Name("pumptwin_cluster_takeover_seconds")
                         .Help(
                             "Cluster mode: takeovers (lease change to twins served), by kind: "
                             "incremental = the gained shards' twins loaded and the given-back "
                             "ones' dropped, reload = every twin reloaded after a shard was "
                             "lost.")
                         .Register(r);
    const prometheus::Histogram::BucketBoundaries bounds{0.05, 0.1, 0.25, 0.5, 1,  2.5,
                                                         5,    10,  30,   60,  120};
    takeover_gained_ = &takeover.Add({{"kind", "incremental"}}, bounds);
    takeover_reload_ = &takeover.Add({{"kind", "reload"}}, bounds);
  }
  takeovers_ = &prometheus::BuildCounter()
                    .Name("pumptwin_cluster_takeovers_total")
                    .Help("Cluster mode: takeovers (changes of the shards served) so far.")
                    .Register(r)
                    .Add({});
  forwarded_calls_ = &prometheus::BuildCounter()
                          .Name("pumptwin_cluster_forwarded_calls_total")
                          .Help(
                              "Cluster mode: TwinService calls about a pump this replica does "
                              "not serve, forwarded to the replica that does.")
                          .Register(r)
                          .Add({});
  recovered_twins_ = &BuildGauge()
                          .Name("pumptwin_recovered_twins")
                          .Help("Twins loaded at the last start-up.")
                          .Register(r)
                          .Add({});
  twins_ = &BuildGauge()
                .Name("pumptwin_twins")
                .Help("Registered twins by state and pump profile.")
                .Register(r);
  silent_ = &BuildGauge()
                 .Name("pumptwin_silent_pumps")
                 .Help("Pumps silent beyond their reporting threshold.")
                 .Register(r)
                 .Add({});
  active_alerts_ = &BuildGauge()
                        .Name("pumptwin_active_alerts")
                        .Help("Active alerts by type and severity.")
                        .Register(r);
  unacked_critical_ = &BuildGauge()
                           .Name("pumptwin_unacknowledged_critical_alerts")
                           .Help("Active unacknowledged critical alerts by age.")
                           .Register(r);
  transitions_ = &BuildCounter()
                      .Name("pumptwin_alert_transitions_total")
                      .Help("Alert lifecycle transitions.")
                      .Register(r);
  clinic_raised_ = &BuildCounter()
                        .Name("pumptwin_clinic_alerts_raised_total")
                        .Help("Raised alerts per clinic (bounded label).")
                        .Register(r);
  subscribers_ =
      &BuildGauge().Name("pumptwin_subscribers").Help("Open subscriber streams.").Register(r);
  subscribers_dropped_ = &BuildCounter()
                              .Name("pumptwin_subscribers_dropped_total")
                              .Help("Subscribers ended because their buffer overflowed.")
                              .Register(r);
  subscribers_refused_ = &BuildCounter()
                              .Name("pumptwin_subscribers_refused_total")
                              .Help("Subscriptions refused because the server held its maximum.")
                              .Register(r);
  subscribers_refused_->Add({{"stream", "watch_alerts"}});
  for (const char* s : {"watch_alerts", "watch_twin"}) {
    subscribers_->Add({{"stream", s}});
    subscribers_dropped_->Add({{"stream", s}});
  }
  for (const char* res : {"acked", "rejected"}) frames_->Add({{"result", res}});
  for (const char* res : {"applied", "duplicate", "rejected"}) samples_->Add({{"result", res}});
  // The per-frame counters, resolved once: Family::Add builds a label map and takes the
  // family's lock, a few hundred ns per call on the ack path.
  frames_acked_ = &frames_->Add({{"result", "acked"}});
  samples_applied_ = &samples_->Add({{"result", "applied"}});
  samples_rejected_ = &samples_->Add({{"result", "rejected"}});
  for (const char* age : {"lt_15m", "15m_to_1h", "gt_1h"}) unacked_critical_->Add({{"age", age}});
  // Every bounded label combination exists from the first scrape (zero until counted).
  for (int r = 1; r < v1::NackReason_ARRAYSIZE; ++r) {
    if (v1::NackReason_IsValid(r)) {
      rejected_->Add({{"reason", NackReasonLabel(static_cast<v1::NackReason>(r))}});
    }
  }
  for (int t = 1; t < v1::AlertType_ARRAYSIZE; ++t) {
    if (!v1::AlertType_IsValid(t)) continue;
    std::string type = AlertTypeLabel(static_cast<v1::AlertType>(t));
    // Clinics are not known in advance: the overflow value "other" makes the family visible.
    clinic_raised_->Add({{"clinic", "other"}, {"type", type}});
    for (const char* tr : {"raised", "updated", "acknowledged", "resolved"}) {
      transitions_->Add({{"type", type}, {"transition", tr}});
    }
    for (int s = 1; s < v1::Severity_ARRAYSIZE; ++s) {
      if (!v1::Severity_IsValid(s)) continue;
      active_alerts_->Add(
          {{"type", type}, {"severity", SeverityLabel(static_cast<v1::Severity>(s))}});
    }
  }
  for (const char* state : {"ok", "alerting", "unknown", "not_observable"}) {
    for (int p = 1; p <= 4; ++p) twins_->Add({{"state", state}, {"profile", ProfileLabel(p)}});
  }
}

void IngestMetrics::SetStoreSizes(const store::Store::Sizes& sizes) {
  live_data_bytes_->Set(static_cast<double>(sizes.live_data_bytes));
  pending_compaction_bytes_->Set(static_cast<double>(sizes.pending_compaction_bytes));
  memtable_bytes_->Set(static_cast<double>(sizes.memtable_bytes));
}

device_link::GatewayMetrics IngestMetrics::GatewayHooks() {
  device_link::GatewayMetrics m;
  m.stream_opened = [this] { gateways_->Increment(); };
  m.stream_closed = [this](absl::StatusCode) { gateways_->Decrement(); };
  m.samples_accepted = [this](uint64_t n) {
    samples_applied_->Increment(static_cast<double>(n));
    frames_acked_->Increment();
  };
  m.nack = [this](v1::NackReason reason) {
    rejected_->Add({{"reason", NackReasonLabel(reason)}}).Increment();
    samples_rejected_->Increment();
  };
  m.rate_limited = [this] { rate_limited_->Increment(); };
  m.frame_ack_latency = [this](absl::Duration d) {
    ack_latency_->Observe(absl::ToDoubleSeconds(d));
  };
  return m;
}

store::GroupCommitMetrics IngestMetrics::CommitHooks() {
  store::GroupCommitMetrics m;
  m.on_commit = [this](const store::CommitStats& s) {
    if (!s.status.ok()) {
      store_errors_->Add({{"op", "commit"}}).Increment();
      return;
    }
    commit_seconds_->Observe(absl::ToDoubleSeconds(s.commit_latency));
    commits_->Increment();
    commit_groups_->Increment(static_cast<double>(s.groups));
    written_bytes_->Increment(static_cast<double>(s.bytes));
  };
  return m;
}

void IngestMetrics::AddIngestStages(const IngestStageTimes& t) {
  // The server clock is the wall clock: a step backwards must not make a counter shrink.
  auto seconds = [](absl::Duration d) { return std::max(0.0, absl::ToDoubleSeconds(d)); };
  stage_parts_->Increment(static_cast<double>(t.frame_parts));
  stage_shard_queue_->Increment(seconds(t.shard_queue));
  stage_group_wait_->Increment(seconds(t.group_wait));
  stage_store_->Increment(seconds(t.store));
  stage_ack_return_->Increment(seconds(t.ack_return));
}

void IngestMetrics::SetRecovery(absl::Duration d, size_t twins) {
  recovery_seconds_->Set(absl::ToDoubleSeconds(d));
  recovered_twins_->Set(static_cast<double>(twins));
}

void IngestMetrics::OnAlertEvents(const std::vector<v1::AlertEvent>& events) {
  for (const v1::AlertEvent& ev : events) {
    std::string type = AlertTypeLabel(ev.alert().type());
    std::string transition =
        absl::AsciiStrToLower(v1::AlertTransitionKind_Name(ev.transition())
                                  .substr(std::string("ALERT_TRANSITION_").size()));
    transitions_->Add({{"type", type}, {"transition", transition}}).Increment();
    if (ev.transition() == v1::ALERT_TRANSITION_RAISED) {
      std::string clinic = ev.alert().clinic();
      {
        absl::MutexLock lock(&clinic_mu_);
        if (!clinics_seen_.contains(clinic)) {
          if (clinics_seen_.size() >= max_clinic_labels_)
            clinic = "other";
          else
            clinics_seen_.insert(clinic);
        }
      }
      clinic_raised_->Add({{"clinic", clinic}, {"type", type}}).Increment();
    }
  }
}

void IngestMetrics::RefreshFleet(TwinRegistry& registry, const CommitGate& gate, absl::Time now) {
  for (int i = 0; i < registry.shard_count(); ++i) {
    queue_depth_->Add({{"shard", std::to_string(i)}})
        .Set(static_cast<double>(registry.shard_queue_depth(i)));
  }
  // state x profile counts
  double counts[4][5] = {};
  double silent = 0;
  registry.directory().ForEach([&](const std::string&, const PumpEntry& e) {
    if (e.lifecycle == v1::PUMP_LIFECYCLE_DECOMMISSIONED) return;
    int profile = std::min<int>(e.profile, 4);
    int state = 0;                                                            // ok
    if (e.summary.silent || e.summary.last_sample_server_ms == 0) state = 2;  // unknown
    if (e.summary.worst_severity > 0) state = 1;                              // alerting
    if (e.profile == v1::PUMP_PROFILE_CONSTANT_FLOW && state != 1) state = 3;
    counts[state][profile] += 1;
    if (e.summary.silent) silent += 1;
  });
  static const char* kStates[] = {"ok", "alerting", "unknown", "not_observable"};
  for (int s = 0; s < 4; ++s) {
    for (int p = 1; p <= 4; ++p) {
      twins_->Add({{"state", kStates[s]}, {"profile", ProfileLabel(p)}}).Set(counts[s][p]);
    }
  }
  silent_->Set(silent);
  // Active alerts by type x severity; unacknowledged critical by age.
  double by[v1::AlertType_ARRAYSIZE][v1::Severity_ARRAYSIZE] = {};
  double age[3] = {};
  int64_t now_ms = ToUnixMs(now);
  for (const v1::Alert& a : gate.ActiveAlerts()) {
    if (a.type() < v1::AlertType_ARRAYSIZE && a.severity() < v1::Severity_ARRAYSIZE) {
      by[a.type()][a.severity()] += 1;
    }
    if (a.severity() == v1::SEVERITY_CRITICAL && a.state() == v1::ALERT_STATE_RAISED) {
      int64_t age_ms = now_ms - a.raised_time_ms();
      age[age_ms < 15 * 60000 ? 0 : age_ms < 60 * 60000 ? 1 : 2] += 1;
    }
  }
  for (int t = 1; t < v1::AlertType_ARRAYSIZE; ++t) {
    for (int s = 1; s < v1::Severity_ARRAYSIZE; ++s) {
      active_alerts_
          ->Add({{"type", AlertTypeLabel(static_cast<v1::AlertType>(t))},
                 {"severity", SeverityLabel(static_cast<v1::Severity>(s))}})
          .Set(by[t][s]);
    }
  }
  unacked_critical_->Add({{"age", "lt_15m"}}).Set(age[0]);
  unacked_critical_->Add({{"age", "15m_to_1h"}}).Set(age[1]);
  unacked_critical_->Add({{"age", "gt_1h"}}).Set(age[2]);
}

}  // namespace pumptwin::server
