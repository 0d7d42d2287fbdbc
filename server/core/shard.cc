#include "server/core/shard.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/thread_name.h"
#include "server/core/convert.h"
#include "server/store/store_keys.h"
#include "server/store/telemetry_codec.h"

namespace pumptwin::server {
namespace {

// Spare sample vectors kept per shard: at most this many samples of capacity in all
// (~1.8 MB at ~220 bytes per sample).
constexpr size_t kMaxSpareSamples = 8192;

// A pump that keeps its recent inputs is replaced by a newly late pump only when it has not
// rewound during the last kRecentKeepRewinds x (pumps kept) rewinds of its shard.
constexpr uint64_t kRecentKeepRewinds = 4;

}  // namespace

void BatchState::Complete(absl::Status status, std::vector<device_link::ResumePoint> durable,
                          std::vector<device_link::SinkNack> nacks) {
  std::function<void(device_link::IngestResult)> done;
  device_link::IngestResult result;
  {
    absl::MutexLock lock(&mu_);
    if (!status.ok() && result_.status.ok()) result_.status = status;
    for (auto& d : durable) result_.durable.push_back(std::move(d));
    for (auto& n : nacks) result_.nacks.push_back(std::move(n));
    if (--remaining_ > 0) return;
    done = std::move(done_);
    result = std::move(result_);
  }
  done(std::move(result));
}

Shard::Shard(int index, CommitGate* gate, PumpDirectory* directory, ShardOptions options)
    : index_(index), gate_(gate), directory_(directory), options_(std::move(options)) {
  thread_ = std::thread([this] {
    NameThisThread(absl::StrCat("pt-shard-", index_));
    Run();
  });
}

Shard::~Shard() { Stop(); }

bool Shard::Post(Task task, bool block) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  if (queue_.size() >= options_.max_tasks) {
    if (!block) return false;
    auto has_room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || queue_.size() < options_.max_tasks;
    };
    mu_.Await(absl::Condition(&has_room));
    if (stopping_) return false;
  }
  queue_.push_back(std::move(task));
  depth_.store(queue_.size(), std::memory_order_relaxed);
  cv_.Signal();
  return true;
}

void Shard::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

size_t Shard::queue_depth() const { return depth_.load(std::memory_order_relaxed); }

std::optional<absl::Time> Shard::newest_model_time() const {
  const int64_t ns = newest_model_ns_.load(std::memory_order_relaxed);
  if (ns == INT64_MIN) return std::nullopt;
  return absl::FromUnixNanos(ns);
}

void Shard::Run() {
  std::vector<Task> batch;
  std::vector<Completion> completions;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      // Stop ends the loop once every group this shard submitted has completed: the
      // committer's callbacks reference this shard.
      auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return queue_.empty() && completed_.empty();
      };
      while (idle() && !(stopping_ && in_flight_ == 0)) cv_.Wait(&mu_);
      if (idle() && stopping_ && in_flight_ == 0) break;
      // Take everything queued: one flush per burst, not per task.
      while (!completed_.empty()) {
        completions.push_back(std::move(completed_.front()));
        completed_.pop_front();
      }
      while (!queue_.empty()) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      depth_.store(0, std::memory_order_relaxed);
    }
    // Completions first, in commit order: acks go out as early as possible and the
    // freed in-flight slots let the flush below submit.
    for (Completion& c : completions) Complete(c);
    completions.clear();
    for (Task& t : batch) {
      t();
      // A clinical or admin call waits for its commit (a record ahead of telemetry holds its
      // sender back until then): its group goes now, not after the frames queued behind it.
      if (!forming_waiting_.done.empty()) MaybeFlush().IgnoreError();
    }
    batch.clear();
    MaybeFlush().IgnoreError();  // a failed group was answered and reported
  }
}

void Shard::Complete(Completion& c) {
  --in_flight_;
  if (options_.on_ingest_stages && c.status.ok() && !c.waiting.acks.empty()) {
    const absl::Time answered = options_.now();
    IngestStageTimes t;
    t.frame_parts = c.waiting.acks.size();
    for (const PendingAck& a : c.waiting.acks) {
      t.shard_queue += a.applied - a.batch->posted();
      t.group_wait += c.waiting.submitted - a.applied;
    }
    const auto parts = static_cast<int64_t>(t.frame_parts);
    t.store = (c.committed - c.waiting.submitted) * parts;
    t.ack_return = (answered - c.committed) * parts;
    options_.on_ingest_stages(t);
  }
  c.waiting.Answer(c.status);
}

void Shard::AddTransitions(const std::string& pump_id, absl::Time server_time,
                           std::vector<twin::AlertTransition>& transitions,
                           const std::string& correction) {
  if (transitions.empty()) return;
  std::string clinic;
  if (auto e = directory_->Get(pump_id)) clinic = directory_->ClinicName(e->clinic_id);
  for (twin::AlertTransition& t : transitions) {
    AlertDraft d{pump_id, clinic, std::move(t), server_time};
    d.correction = correction;
    forming_.alerts.push_back(std::move(d));
  }
  transitions.clear();
}

void Shard::AddSnapshot(const std::string& pump_id, PumpSlot& slot, absl::Time server_time) {
  forming_.group.snapshots.emplace_back(pump_id, slot.twin.Serialize());
  slot.since_snapshot = 0;
  slot.snapshot_minute = PumpSlot::MinuteOf(server_time);
}

void Shard::PublishSummary(const std::string& pump_id, const PumpSlot& slot) {
  const int64_t model_ns = absl::ToUnixNanos(slot.twin.device_time());
  if (model_ns > newest_model_ns_.load(std::memory_order_relaxed)) {
    newest_model_ns_.store(model_ns, std::memory_order_relaxed);  // written by this thread only
  }
  PumpSummary s;
  for (int t = 1; t < twin::kNumAlertTypes; ++t) {
    auto sev = static_cast<uint8_t>(slot.twin.active_alert(static_cast<twin::AlertType>(t)));
    if (sev > s.worst_severity) s.worst_severity = sev;
  }
  s.silent = slot.twin.active_alert(twin::AlertType::kSilentPump) != twin::Severity::kUnspecified;
  twin::Forecast f = slot.twin.ForecastAt(slot.twin.device_time());
  s.next_refill_due_ms = ToUnixMs(f.next_refill_due);
  s.battery_eri_ms = ToUnixMs(f.battery_eri);
  if (auto t = slot.twin.last_sample_server_time()) s.last_sample_server_ms = ToUnixMs(*t);
  directory_->UpdateSummary(pump_id, s);
  if (options_.on_twin_changed) options_.on_twin_changed(pump_id, slot.twin);
}

void Shard::ApplyIngest(std::vector<device_link::PumpSamples> parts,
                        std::shared_ptr<BatchState> batch, const std::string& gateway_id) {
  const absl::Time applied = options_.now();
  if (!group_time_) group_time_ = applied;
  frame_time_ = applied;
  std::vector<device_link::ResumePoint> durable;
  std::vector<device_link::SinkNack> nacks;
  durable.reserve(parts.size());
  const absl::Time server_time = *group_time_;
  for (device_link::PumpSamples& part : parts) {
    ApplyPart(part, server_time, gateway_id, durable, nacks);
    // A rewind commits the forming group; the rest of this frame keeps its server time.
    if (!group_time_) group_time_ = server_time;
  }
  if (durable.empty()) {  // only unknown pumps: nothing waits for a commit
    batch->Complete(absl::OkStatus(), {}, std::move(nacks));
    return;
  }
  // The ack covers everything the sequencers released so far: it is durable once the
  // forming group (or an earlier one) commits.
  forming_waiting_.acks.push_back(
      {std::move(batch), std::move(durable), std::move(nacks), applied});
  if (forming_samples_ >= options_.max_group_samples) MaybeFlush().IgnoreError();
}

void Shard::Waiting::Answer(const absl::Status& status) {
  for (PendingAck& a : acks) {
    if (!status.ok()) {
      a.batch->Complete(absl::UnavailableError(absl::StrCat(
                            "telemetry not stored: ", status.message(), "; resend later")),
                        {}, {});
    } else {
      a.batch->Complete(absl::OkStatus(), std::move(a.durable), std::move(a.nacks));
    }
  }
  for (auto& d : done) d(status);
}

void Shard::ApplyPart(device_link::PumpSamples& part, absl::Time server_time,
                      const std::string& gateway_id, std::vector<device_link::ResumePoint>& durable,
                      std::vector<device_link::SinkNack>& nacks) {
  auto it = slots_.find(part.pump_id);
  if (it == slots_.end()) {
    for (const twin::Sample& s : part.samples) {
      nacks.push_back({part.pump_id, s.seq, v1::NACK_REASON_UNKNOWN_PUMP,
                       absl::StrCat("pump '", part.pump_id, "' has no twin on this server")});
    }
    return;
  }
  PumpSlot& slot = it->second;
  RecentInputs* recent = Recent(part.pump_id);
  std::vector<twin::AlertTransition> transitions;
  // Samples from the first one before the model time on (event time: they are applied in
  // their place by a rewind once this part's in-order samples are in the forming group).
  std::vector<twin::Sample> late;
  // The model checks and applies a sample; false (and a Nack) when the twin refuses it.
  // The pump's refill log entries of the samples taken (rare: most samples log nothing).
  std::vector<RefillLogEntry> refill_logs;
  auto note_refills = [&](const twin::Sample& sample) {
    for (const twin::DeviceEvent& e : sample.events) {
      if (e.type == twin::DeviceEventType::kReservoirRefill) {
        refill_logs.push_back({e.device_time, sample.seq});
      }
    }
  };
  auto apply = [&](const twin::Sample& sample) {
    if (!sample.events.empty()) note_refills(sample);
    const absl::Time model = slot.twin.device_time();
    if (!late.empty() || sample.device_time < model ||
        (sample.device_time == model && slot.record_at_model_time)) {
      late.push_back(sample);
      return false;
    }
    if (twin::CrossesCheckpoint(slot.twin, sample.device_time, options_.checkpoint_every)) {
      AddCheckpoint(
          part.pump_id, slot.twin,
          twin::CheckpointBoundaryAtOrBefore(sample.device_time, options_.checkpoint_every),
          forming_.group);
    }
    absl::Status st = slot.twin.Observe(sample, server_time, &transitions);
    if (!st.ok()) {
      nacks.push_back({part.pump_id, sample.seq,
                       st.code() == absl::StatusCode::kFailedPrecondition
                           ? v1::NACK_REASON_TIME_ABSURD
                           : v1::NACK_REASON_INVALID_FIELD,
                       std::string(st.message())});
      return false;
    }
    ++slot.since_snapshot;
    ++forming_samples_;
    slot.record_at_model_time = false;
    if (recent != nullptr) recent->AddSample(sample, server_time);
    return true;
  };
  std::vector<twin::Sample>* forming = nullptr;
  auto forming_vector = [&]() -> std::vector<twin::Sample>& {
    if (forming == nullptr) {
      auto [it, inserted] = forming_pumps_.try_emplace(part.pump_id);
      forming = &it->second;
      if (inserted && !spare_vectors_.empty()) {
        *forming = std::move(spare_vectors_.back());
        spare_vectors_.pop_back();
        spare_samples_ -= forming->capacity();
      }
    }
    return *forming;
  };
  auto observe = [&](twin::Sample& sample) {
    if (apply(sample)) forming_vector().push_back(std::move(sample));
  };
  // In-order samples (the common case) go straight to the model and stay where they are
  // (closing the gaps of refused ones); from the first one that is not next in line, the
  // sequencer's reorder path takes the rest.
  const size_t n = part.samples.size();
  size_t i = 0, kept = 0;
  for (; i < n && slot.seq.TakeNextInOrder(part.samples[i].seq); ++i) {
    if (!apply(part.samples[i])) continue;
    if (kept != i) part.samples[kept] = std::move(part.samples[i]);
    ++kept;
  }
  if (kept > 0) {
    if (i == n && !forming_pumps_.contains(part.pump_id)) {
      // The whole part was in order and the pump has nothing in the forming group yet: the
      // frame's vector becomes its forming samples, with no per-sample move.
      part.samples.resize(kept);
      forming = &forming_pumps_.emplace(part.pump_id, std::move(part.samples)).first->second;
    } else {
      std::vector<twin::Sample>& f = forming_vector();
      f.reserve(f.size() + kept);
      for (size_t k = 0; k < kept; ++k) f.push_back(std::move(part.samples[k]));
    }
  }
  std::vector<device_link::SequencedEntry> released;
  auto offer = [&](device_link::SequencedEntry entry) {
    uint64_t seq = entry.seq;
    device_link::SeqVerdict v = slot.seq.Offer(options_.sequencer, std::move(entry), &released);
    if (v == device_link::SeqVerdict::kBeyondWindow) {
      nacks.push_back({part.pump_id, seq, v1::NACK_REASON_OUT_OF_ORDER,
                       device_link::BeyondWindowMessage(part.pump_id, seq, slot.seq.applied_seq(),
                                                        options_.sequencer)});
    }
  };
  for (; i < n; ++i) offer({part.samples[i].seq, std::move(part.samples[i])});
  for (uint64_t seq : part.rejected_seqs) offer({seq, std::nullopt});
  for (device_link::SequencedEntry& e : released) {
    if (e.sample) observe(*e.sample);  // no sample: consumed by an upstream rejection
  }
  if (!late.empty()) {
    AddTransitions(part.pump_id, frame_time_, transitions);
    ApplyLateSamples(part.pump_id, slot, std::move(late), server_time, gateway_id, nacks);
    if (!refill_logs.empty()) {
      ReconcileRefillLogs(part.pump_id, slot, refill_logs, server_time, gateway_id);
    }
    if (RecentInputs* r = Recent(part.pump_id)) MaintainRecent(*r, slot);
    durable.push_back({part.pump_id, slot.seq.applied_seq()});
    if (options_.on_twin_changed) options_.on_twin_changed(part.pump_id, slot.twin);
    return;
  }
  bool alerted = !transitions.empty();
  AddTransitions(part.pump_id, frame_time_, transitions);
  if (alerted) {
    // Alert-raising state changes are snapshotted at once (recovery stays exact and
    // cheap), and the summary the list calls use is refreshed.
    AddSnapshot(part.pump_id, slot, server_time);
    PublishSummary(part.pump_id, slot);
    if (options_.on_alert_latency) {
      options_.on_alert_latency(absl::ToDoubleSeconds(options_.now() - server_time));
    }
  } else if (slot.since_snapshot >= options_.snapshot_every_samples) {
    AddSnapshot(part.pump_id, slot, server_time);
    PublishSummary(part.pump_id, slot);
  }
  if (!refill_logs.empty()) {
    ReconcileRefillLogs(part.pump_id, slot, refill_logs, server_time, gateway_id);
  }
  if (RecentInputs* r = Recent(part.pump_id)) MaintainRecent(*r, slot);
  durable.push_back({part.pump_id, slot.seq.applied_seq()});
  // Every applied sample changes the twin (WatchTwin); the summary above only when it alerted
  // or was snapshotted. The hub coalesces repeated notices.
  if (!alerted && options_.on_twin_changed) options_.on_twin_changed(part.pump_id, slot.twin);
}

void Shard::Mutate(const std::string& pump_id, MutateFn fn,
                   std::function<void(absl::Status)> done) {
  auto it = slots_.find(pump_id);
  if (it == slots_.end()) {
    done(absl::NotFoundError(absl::StrCat("pump '", pump_id, "' is not registered")));
    return;
  }
  PumpSlot& slot = it->second;
  // Work on a copy: a failing call leaves the live twin untouched.
  twin::Twin before = slot.twin;
  int inputs_applied = 0;  // through ctx.apply_input
  MutationContext ctx;
  ctx.server_time = options_.now();
  ctx.apply_input = [this, &pump_id, &slot, &ctx, &inputs_applied](
                        const StoredInput& record, twin::RefillResult* refill) -> absl::Status {
    // Arrival order among records stated at the same time: a strictly increasing tie.
    StoredInput in = record;
    in.key.tie = std::max(in.key.tie, last_record_tie_ + 1);
    // An approximate refill whose pump log entry arrived first takes the entry's time.
    std::string reconciled;
    if (options_.store != nullptr && IsApproximateRefill(in)) {
      if (!Drain()) return absl::UnavailableError("the store failed; nothing was stored");
      auto entry = FindRefillLogEntry(*options_.store, pump_id, in.key.time);
      if (!entry.ok()) return entry.status();
      if (entry->has_value()) {
        const RefillLogEntry& e = **entry;
        reconciled = absl::StrCat(
            "refill stated at ",
            absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", in.key.time, absl::UTCTimeZone()),
            " (approximate) taken at the pump's refill log entry ",
            absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", e.device_time, absl::UTCTimeZone()),
            " (sample seq ", e.seq, ")");
        Log(LogLevel::kInfo, "refill_reconciled",
            {{"pump", pump_id},
             {"seq", e.seq},
             {"stated_time", absl::FormatTime(in.key.time)},
             {"pump_time", absl::FormatTime(e.device_time)},
             {"order", "record after log entry"}});
        in = RekeyRefill(in, e.device_time);
        ctx.extra.meta_erase_ranges.push_back(
            SingleKeyRange(RefillLogMetaKey(pump_id, e.device_time)));
      }
    }
    std::shared_ptr<const DrugLibrarySnapshot> hold;
    const twin::DrugLibrary& library = Library(hold);
    const absl::Time model = slot.twin.device_time();
    if (in.key.time > model || (in.key.time == model && !slot.record_at_model_time)) {
      if (twin::CrossesCheckpoint(slot.twin, in.key.time, options_.checkpoint_every)) {
        AddCheckpoint(pump_id, slot.twin,
                      twin::CheckpointBoundaryAtOrBefore(in.key.time, options_.checkpoint_every),
                      ctx.extra);
      }
      // A record stated ahead of the pump's telemetry makes the frames still in flight late:
      // their rewinds start from the twin before the record and fold again only the record.
      RecentInputs* recent = Recent(pump_id);
      if (recent != nullptr) recent->StartGeneration(slot.twin);
      absl::Status st = ApplyStoredInput(in, slot.twin, library, &ctx.transitions, refill);
      if (!st.ok()) return st;
      if (recent != nullptr) recent->AddRecord(in);
    } else {
      if (in.key.time < model - options_.history_window) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the record's time ",
            absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", in.key.time, absl::UTCTimeZone()),
            " is more than the history window (", absl::FormatDuration(options_.history_window),
            ", --history_window) before the twin's model time ",
            absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", model, absl::UTCTimeZone()),
            "; it cannot be applied in its place"));
      }
      std::vector<twin::FoldInput> fresh(1);
      fresh[0].key = in.key;
      fresh[0].server_time = in.server_time;
      fresh[0].fresh = true;
      fresh[0].apply = [&in, &library, refill](twin::Twin& t,
                                               std::vector<twin::AlertTransition>* out) {
        return ApplyStoredInput(in, t, library, out, refill);
      };
      ctx.correction = !reconciled.empty()
                           ? reconciled
                           : absl::StrCat("a back-dated clinical record at ",
                                          absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", in.key.time,
                                                           absl::UTCTimeZone()));
      auto r = Rewind(pump_id, slot, std::move(fresh), ctx.correction, ctx.extra, ctx.transitions,
                      std::nullopt, &in);
      if (!r.ok()) return r.status();
      if (!r->refused.empty()) return r->refused.front().second;
      if (options_.on_late_input) options_.on_late_input("rewind");
    }
    ctx.extra.meta.emplace_back(InputMetaKey(pump_id, in.key), InputValue(in));
    if (!reconciled.empty()) {
      ctx.audit.push_back(MakeAuditDraft({.actor = "server",
                                          .role = "system",
                                          .method = "RefillTimeReconciled",
                                          .resource = absl::StrCat("pumps/", pump_id),
                                          .reason = reconciled,
                                          .server_time = ctx.server_time}));
    }
    slot.record_at_model_time = true;
    last_record_tie_ = in.key.tie;
    ++inputs_applied;
    return absl::OkStatus();
  };
  absl::Status st = fn(slot.twin, ctx);
  if (!st.ok()) {
    slot.twin = std::move(before);
    // Inputs that were taken (or a rewind) are undone with the twin.
    if (RecentInputs* recent = Recent(pump_id)) recent->Reset(slot.twin);
    done(st);
    return;
  }
  if (RecentInputs* recent = Recent(pump_id)) {
    // A call that changed the twin without an input starts the recent inputs again there.
    if (inputs_applied == 0) recent->Reset(slot.twin);
    MaintainRecent(*recent, slot);
  }
  AddTransitions(pump_id, ctx.server_time, ctx.transitions, ctx.correction);
  AddSnapshot(pump_id, slot, ctx.server_time);
  for (AuditDraft& a : ctx.audit) forming_.audit.push_back(std::move(a));
  forming_.group.Append(std::move(ctx.extra));
  PublishSummary(pump_id, slot);
  forming_waiting_.done.push_back(std::move(done));
}

void Shard::AddPump(const std::string& pump_id, std::string twin_bytes, MutationContext ctx,
                    std::function<void(absl::Status)> done) {
  absl::StatusOr<twin::Twin> twin = twin::Twin::Deserialize(twin_bytes);
  if (!twin.ok()) {
    directory_->Erase(pump_id);  // placed by the registry: the id is free again
    done(absl::InvalidArgumentError(
        absl::StrCat("twin of pump '", pump_id, "' does not decode: ", twin.status().message())));
    return;
  }
  // try_emplace leaves the twin untouched when the id is already there.
  auto [it, inserted] = slots_.try_emplace(pump_id, *std::move(twin), ctx.server_time);
  if (!inserted) {
    done(absl::AlreadyExistsError(absl::StrCat("pump '", pump_id, "' is already registered")));
    return;
  }
  // Decoded here, the twin's per-pump setup is allocated on the shard thread that keeps it,
  // next to its slot, and not among the registration request's short-lived buffers on a
  // gRPC thread, which would otherwise be left as holes the heap trim cannot return
  // (docs/benchmarks.md, fleet memory).
  PumpSlot& slot = it->second;
  AddTransitions(pump_id, ctx.server_time, ctx.transitions);
  forming_.group.snapshots.emplace_back(pump_id, std::move(twin_bytes));
  for (AuditDraft& a : ctx.audit) forming_.audit.push_back(std::move(a));
  forming_.group.Append(std::move(ctx.extra));
  PublishSummary(pump_id, slot);
  forming_waiting_.done.push_back(std::move(done));
}

void Shard::TickAll(absl::Time server_time, absl::Time received_before) {
  std::vector<twin::AlertTransition> transitions;
  const int64_t interval_minutes =
      options_.snapshot_interval > absl::ZeroDuration()
          ? std::max<int64_t>(1, absl::ToInt64Minutes(options_.snapshot_interval))
          : -1;
  const int64_t now_minute = PumpSlot::MinuteOf(server_time);
  for (auto& [id, slot] : slots_) {
    if (received_before != absl::InfiniteFuture()) {
      const std::optional<absl::Time> received = slot.twin.last_sample_server_time();
      if (received && *received >= received_before) continue;
    }
    slot.twin.Tick(server_time, &transitions);
    if (transitions.empty()) {
      if (slot.since_snapshot > 0 && interval_minutes > 0 &&
          now_minute - slot.snapshot_minute >= interval_minutes) {
        AddSnapshot(id, slot, server_time);  // the time-based snapshot policy
      }
      continue;
    }
    // A tick that changed the twin is one of its inputs (at the model time it ran at),
    // so every replay applies it in the same place.
    StoredInput tick = MakeTickInput(slot.twin.device_time(), server_time);
    forming_.group.meta.emplace_back(InputMetaKey(id, tick.key), InputValue(tick));
    if (RecentInputs* recent = Recent(id)) {
      recent->AddRecord(tick);
      MaintainRecent(*recent, slot);
    }
    slot.record_at_model_time = true;
    AddTransitions(id, server_time, transitions);
    AddSnapshot(id, slot, server_time);
    PublishSummary(id, slot);
  }
}

void Shard::ResetState() {
  slots_.clear();
  recent_.clear();
  forming_ = PendingGroup();
  forming_pumps_.clear();
  spare_vectors_.clear();
  spare_samples_ = 0;
  forming_samples_ = 0;
  group_time_.reset();
  Waiting waiting = std::move(forming_waiting_);
  forming_waiting_ = Waiting();
  waiting.Answer(absl::UnavailableError("the store failed; nothing was stored"));
}

bool Shard::DropPumps(const std::function<bool(absl::string_view)>& which) {
  for (const auto& [id, samples] : forming_pumps_) {
    if (which(id)) return false;
  }
  for (const store::TelemetryChunk& c : forming_.group.telemetry) {
    if (which(c.pump_id)) return false;
  }
  for (const auto& [id, bytes] : forming_.group.snapshots) {
    if (which(id)) return false;
  }
  for (const AlertDraft& a : forming_.alerts) {
    if (which(a.pump_id)) return false;
  }
  auto drop = [&](auto& map) {
    for (auto it = map.begin(); it != map.end();) {
      if (which(it->first)) {
        map.erase(it++);
      } else {
        ++it;
      }
    }
  };
  drop(slots_);
  drop(recent_);
  return true;
}

void Shard::SnapshotAll() {
  for (auto& [id, slot] : slots_) {
    if (slot.since_snapshot > 0) AddSnapshot(id, slot, options_.now());
  }
}

absl::Status Shard::MaybeFlush() {
  // A group that answers clinical or admin calls takes one more place: the caller waits
  // for its commit (a record ahead of telemetry holds its sender back until then), and
  // queued behind the group in flight it joins that group's commit instead of waiting for a
  // place first and then for a commit of its own.
  const int limit =
      std::max(1, options_.max_groups_in_flight) + (forming_waiting_.done.empty() ? 0 : 1);
  if (in_flight_ >= limit ||
      (forming_.empty() && forming_pumps_.empty() && forming_waiting_.empty())) {
    return absl::OkStatus();  // a completion ends the wait for room: Run flushes after it
  }
  forming_.group.telemetry.reserve(forming_.group.telemetry.size() + forming_pumps_.size());
  absl::Status encode = absl::OkStatus();
  for (auto& [id, samples] : forming_pumps_) {
    if (samples.empty()) continue;
    auto chunk =
        options_.make_chunk ? options_.make_chunk(id, samples) : store::MakeChunk(id, samples);
    if (!chunk.ok()) {
      // Samples the twin accepted always encode; if they ever do not, the pump's resume
      // point has already moved past them, so the whole group fails (nothing acked) and
      // the committer is latched as after a failed commit: the registry degrades and
      // reloads from the store, and the gateway resends.
      Log(LogLevel::kError, "chunk_encode_failed",
          {{"pump", id}, {"error", std::string(chunk.status().message())}});
      encode = absl::InternalError(absl::StrCat(
          "telemetry of pump '", id, "' could not be encoded: ", chunk.status().message()));
      break;
    }
    chunk->server_time = group_time_.value_or(options_.now());
    forming_.group.telemetry.push_back(*std::move(chunk));
  }
  for (auto& [id, samples] : forming_pumps_) {
    if (spare_samples_ + samples.capacity() > kMaxSpareSamples) continue;
    spare_samples_ += samples.capacity();
    samples.clear();
    spare_vectors_.push_back(std::move(samples));
  }
  forming_pumps_.clear();
  forming_samples_ = 0;
  group_time_.reset();
  PendingGroup group = std::move(forming_);
  forming_ = PendingGroup();
  auto waiting = std::make_shared<Waiting>(std::move(forming_waiting_));
  forming_waiting_ = Waiting();
  if (!encode.ok()) {
    gate_->LatchStoreFailure(encode);
    if (options_.on_store_error) options_.on_store_error(encode);
    waiting->Answer(encode);
    return encode;
  }
  if (!waiting->acks.empty()) waiting->submitted = options_.now();
  ++in_flight_;
  auto on_commit = [this, waiting](absl::Status s) {
    if (!s.ok() && options_.on_store_error) options_.on_store_error(s);
    const absl::Time committed = waiting->acks.empty() ? absl::InfinitePast() : options_.now();
    // Back onto the shard thread, in commit order: the acks' gRPC work stays off the
    // committer thread, and the freed slot lets the next group go. Never blocks.
    absl::MutexLock lock(&mu_);
    completed_.push_back(Completion{std::move(s), std::move(*waiting), committed});
    cv_.Signal();
  };
  absl::Status st = gate_->Submit(std::move(group), std::move(on_commit));
  if (!st.ok()) {
    // The committer refused (shut down, or latched after a failed commit): nothing of the
    // group is durable.
    --in_flight_;
    if (options_.on_store_error) options_.on_store_error(st);
    waiting->Answer(st);
    return st;
  }
  return absl::OkStatus();
}

bool Shard::Drain() {
  bool ok = true;
  for (;;) {
    if (!MaybeFlush().ok()) ok = false;
    const bool forming_empty =
        forming_.empty() && forming_pumps_.empty() && forming_waiting_.empty();
    if (in_flight_ == 0 && forming_empty) return ok;
    Completion c;
    {
      absl::MutexLock lock(&mu_);
      auto has_completion = [this]()
                                ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !completed_.empty(); };
      mu_.Await(absl::Condition(&has_completion));
      c = std::move(completed_.front());
      completed_.pop_front();
    }
    if (!c.status.ok()) ok = false;
    Complete(c);
  }
}

const twin::DrugLibrary& Shard::Library(std::shared_ptr<const DrugLibrarySnapshot>& hold) const {
  if (options_.drugs) hold = options_.drugs();
  return hold != nullptr ? hold->library : twin::DrugLibrary::Default();
}

void Shard::AddCheckpoint(const std::string& pump_id, const twin::Twin& twin, absl::Time boundary,
                          store::WriteGroup& group) const {
  group.meta.emplace_back(CheckpointMetaKey(pump_id, boundary), twin.Serialize());
  // Keep the checkpoint that covers the start of the history window, drop older ones.
  const absl::Time keep = twin::CheckpointBoundaryAtOrBefore(boundary - options_.history_window,
                                                             options_.checkpoint_every);
  group.meta_erase_ranges.push_back(CheckpointRangeBefore(pump_id, keep));
}

RecentInputs* Shard::Recent(const std::string& pump_id) {
  if (recent_.empty()) return nullptr;
  auto it = recent_.find(pump_id);
  return it == recent_.end() ? nullptr : &it->second.inputs;
}

RecentInputs* Shard::TrackRecent(const std::string& pump_id, const twin::Twin& base,
                                 const twin::InputKey& last_key, absl::Time last_sample_time) {
  if (options_.rewind_memory_pumps == 0) return nullptr;
  auto it = recent_.find(pump_id);
  if (it != recent_.end()) {
    it->second.inputs = RecentInputs(base, last_key, last_sample_time);
    return &it->second.inputs;
  }
  if (recent_.size() >= options_.rewind_memory_pumps) {
    auto oldest = recent_.begin();
    for (auto r = recent_.begin(); r != recent_.end(); ++r) {
      if (r->second.last_rewind < oldest->second.last_rewind) oldest = r;
    }
    // Pumps that rewound lately keep their place: more late pumps than places would
    // otherwise take turns evicting each other and none would rewind from memory.
    if (rewinds_ - oldest->second.last_rewind < kRecentKeepRewinds * recent_.size()) {
      return nullptr;
    }
    recent_.erase(oldest);
  }
  return &recent_.try_emplace(pump_id, RecentEntry{RecentInputs(base, last_key, last_sample_time)})
              .first->second.inputs;
}

void Shard::MaintainRecent(RecentInputs& recent, const PumpSlot& slot) {
  recent.Maintain(slot.twin, options_.rewind_memory_inputs);
  if (options_.on_recent_inputs)
    options_.on_recent_inputs(recent.size(), recent.generations(), recent_.size());
}

absl::StatusOr<twin::FoldResult> Shard::Rewind(const std::string& pump_id, PumpSlot& slot,
                                               std::vector<twin::FoldInput> fresh,
                                               const std::string& why, store::WriteGroup& group,
                                               std::vector<twin::AlertTransition>& corrections,
                                               std::optional<twin::InputKey> replaced,
                                               const StoredInput* fresh_record) {
  twin::InputKey earliest{absl::InfiniteFuture(), twin::InputRank::kTick, ~uint64_t{0}};
  if (replaced) earliest = *replaced;
  bool describable = !replaced.has_value();  // every fresh input can join the recent inputs
  for (const twin::FoldInput& f : fresh) {
    earliest = std::min(earliest, f.key);
    if (f.sample == nullptr && fresh_record == nullptr) describable = false;
  }
  std::shared_ptr<const twin::DrugLibrary> library;
  {
    std::shared_ptr<const DrugLibrarySnapshot> hold;
    const twin::DrugLibrary& lib = Library(hold);
    library = hold ? std::shared_ptr<const twin::DrugLibrary>(hold, &hold->library)
                   : std::shared_ptr<const twin::DrugLibrary>(std::shared_ptr<void>(), &lib);
  }
  RecentInputs* recent = Recent(pump_id);
  const bool from_memory = recent != nullptr && describable &&
                           earliest.time >= slot.twin.device_time() - options_.history_window &&
                           recent->Covers(earliest);
  // The latest checkpoint at or before the earliest fresh input, else the registration.
  absl::Time from = absl::InfinitePast();
  std::optional<twin::Twin> start;
  bool beyond_window = false;
  PumpHistory history;
  std::vector<twin::FoldInput> inputs;
  absl::Time last_stored_sample = absl::InfinitePast();
  if (from_memory) {
    RecentInputs::Start s = recent->From(earliest, library);
    from = s.twin.device_time();
    start.emplace(std::move(s.twin));
    inputs = std::move(s.inputs);
  } else {
    if (options_.store == nullptr) {
      return absl::FailedPreconditionError("this shard has no store to rewind from");
    }
    // Everything applied so far must be readable from the store.
    if (!Drain()) return absl::UnavailableError("the store failed; nothing was stored");
    std::string start_bytes;
    auto ckpt = FindCheckpoint(*options_.store, pump_id, earliest.time);
    if (ckpt.ok()) {
      from = ckpt->first;
      start_bytes = std::move(ckpt->second);
    } else if (absl::IsNotFound(ckpt.status())) {
      auto genesis = options_.store->GetMeta(store::keys::GenesisMetaKey(pump_id));
      if (!genesis.ok()) return genesis.status();
      start_bytes = *std::move(genesis);
      beyond_window = earliest.time < slot.twin.device_time() - options_.history_window;
    } else {
      return ckpt.status();
    }
    auto decoded = twin::Twin::Deserialize(start_bytes);
    if (!decoded.ok()) return decoded.status();
    start.emplace(*std::move(decoded));
    if (absl::Status s = LoadPumpHistory(*options_.store, pump_id, from, &history); !s.ok()) {
      return s;
    }
    if (auto head = options_.store->GetPumpHead(pump_id); head.ok()) {
      last_stored_sample = head->last_device_time;
    }
    inputs = history.FoldInputs(library);
  }
  if (replaced) {
    std::erase_if(inputs, [&](const twin::FoldInput& f) {
      return f.sample == nullptr && f.key == *replaced;
    });
  }
  const size_t stored = inputs.size();
  for (twin::FoldInput& f : fresh) inputs.push_back(std::move(f));
  SortAppendedInputs(inputs, stored);
  twin::FoldOptions fo;
  fo.checkpoint_every = options_.checkpoint_every;
  fo.on_checkpoint = [&](absl::Time boundary, const twin::Twin& t) {
    if (boundary > from) AddCheckpoint(pump_id, t, boundary, group);
  };
  std::vector<twin::AlertTransition> replayed;
  twin::Twin rewound = *std::move(start);
  // The fold stops before the earliest fresh input to keep the twin there: the recent inputs
  // go on from it, so the next late input after this one (the rest of a backlog, frames
  // still in flight behind a record) replays only from here and needs no store read.
  const size_t split =
      !describable ? 0
                   : static_cast<size_t>(
                         std::lower_bound(inputs.begin(), inputs.end(), earliest,
                                          [](const twin::FoldInput& f, const twin::InputKey& k) {
                                            return f.key < k;
                                          }) -
                         inputs.begin());
  const absl::Span<const twin::FoldInput> all(inputs);
  auto result = twin::Fold(rewound, all.first(split), fo, &replayed);
  if (!result.ok()) return result.status();
  std::optional<twin::Twin> base;
  twin::InputKey base_key{from - absl::Nanoseconds(1), twin::InputRank::kTick, ~uint64_t{0}};
  if (split > 0) base_key = inputs[split - 1].key;
  if (describable && (split > 0 || !from_memory)) base.emplace(rewound);
  // From memory, the twin after the last fresh input is kept too when stored inputs follow
  // it (the record a late frame arrived behind): the next late part before them (a frame of
  // the same pump still in flight behind that record) replays only them, not this part again.
  size_t after_fresh = inputs.size();
  if (from_memory) {
    while (after_fresh > split && !inputs[after_fresh - 1].fresh) --after_fresh;
  }
  std::optional<twin::Twin> after;
  if (after_fresh > split && after_fresh < inputs.size()) {
    auto fresh_part = twin::Fold(rewound, all.subspan(split, after_fresh - split), fo, &replayed);
    if (!fresh_part.ok()) return fresh_part.status();
    result->applied += fresh_part->applied;
    for (auto& r : fresh_part->refused) result->refused.push_back(std::move(r));
    after.emplace(rewound);
  } else {
    after_fresh = split;
  }
  auto rest = twin::Fold(rewound, all.subspan(after_fresh), fo, &replayed);
  if (!rest.ok()) return rest.status();
  result->applied += rest->applied;
  for (auto& r : rest->refused) result->refused.push_back(std::move(r));
  // Alert corrections: what the replay changed in the set of active alerts.
  for (int i = 1; i < twin::kNumAlertTypes; ++i) {
    const auto type = static_cast<twin::AlertType>(i);
    const twin::Severity before = slot.twin.active_alert(type);
    const twin::Severity after = rewound.active_alert(type);
    if (before == after) continue;
    twin::AlertTransition t;
    for (auto it = replayed.rbegin(); it != replayed.rend(); ++it) {
      if (it->type == type && it->kind != twin::TransitionKind::kResolved) {
        t = *it;
        break;
      }
    }
    t.type = type;
    t.severity = after;
    // Active in the start snapshot already, or raised without a transition of its own in
    // the replayed range: the model time is the best pump time there is.
    if (t.device_time == absl::UnixEpoch()) t.device_time = rewound.device_time();
    if (after == twin::Severity::kUnspecified) {
      t.kind = twin::TransitionKind::kResolved;
      t.device_time = rewound.device_time();
      t.summary =
          absl::StrCat("withdrawn: ", why, " shows ", twin::AlertTypeName(type), " did not hold");
    } else {
      t.kind = before == twin::Severity::kUnspecified ? twin::TransitionKind::kRaised
                                                      : twin::TransitionKind::kUpdated;
      t.summary = absl::StrCat(t.summary.empty() ? "" : absl::StrCat(t.summary, " "),
                               "(raised on replay: ", why, ")");
    }
    corrections.push_back(std::move(t));
  }
  slot.twin = std::move(rewound);
  // Conservative: any record at or after the new model time makes a sample stamped exactly
  // then take this path again.
  slot.record_at_model_time = false;
  for (const twin::FoldInput& f : inputs) {
    if (f.sample == nullptr && f.key.time >= slot.twin.device_time()) {
      slot.record_at_model_time = true;
    }
  }
  ++rewinds_;
  // The pump's recent inputs take the accepted fresh inputs (from memory), or start again
  // at `base` with the inputs after it (from the store).
  auto accepted = [&](const twin::FoldInput& f) {
    for (const auto& [key, status] : result->refused) {
      if (key == f.key) return false;
    }
    return true;
  };
  if (from_memory) {
    recent->Rebase(earliest, base ? &*base : nullptr, base_key, after ? &*after : nullptr,
                   after ? inputs[after_fresh - 1].key : twin::InputKey{});
    for (const twin::FoldInput& f : inputs) {  // the fresh ones reference no recent input
      if (!f.fresh || !accepted(f)) continue;
      if (f.sample != nullptr) {
        recent->AddSample(*f.sample, f.server_time);
      } else {
        recent->AddRecord(*fresh_record);
      }
    }
  } else if (base.has_value()) {
    // More inputs after `base` than the recent inputs keep: MaintainRecent below would drop
    // them all with the generation at `base` and keep an empty one at the live twin (a late
    // input a week old: ~10 000 samples copied only to be freed). Start there at once.
    size_t kept = 0;
    twin::InputKey last_key = base_key;
    absl::Time last_sample = last_stored_sample;
    for (size_t i = split; i < inputs.size(); ++i) {
      const twin::FoldInput& f = inputs[i];
      if (f.fresh && !accepted(f)) continue;
      ++kept;
      last_key = std::max(last_key, f.key);
      if (f.sample != nullptr) last_sample = std::max(last_sample, f.sample->device_time);
    }
    const bool all_dropped = kept > options_.rewind_memory_inputs;
    recent = all_dropped ? TrackRecent(pump_id, slot.twin, last_key, last_sample)
                         : TrackRecent(pump_id, *base, base_key, last_stored_sample);
    for (size_t i = split; recent != nullptr && !all_dropped && i < inputs.size(); ++i) {
      const twin::FoldInput& f = inputs[i];
      if (f.fresh && !accepted(f)) continue;
      if (f.sample != nullptr) {
        recent->AddSample(*f.sample, f.server_time);
      } else if (f.fresh) {
        recent->AddRecord(*fresh_record);
      } else {
        for (const StoredInput& in : history.inputs) {
          if (in.key == f.key) recent->AddRecord(in);
        }
      }
    }
  } else {
    // A re-keyed record: the recent inputs start at the rewound twin.
    recent = TrackRecent(pump_id, slot.twin, inputs.back().key, last_stored_sample);
  }
  inputs.clear();
  if (recent != nullptr) {
    recent_.find(pump_id)->second.last_rewind = rewinds_;
    MaintainRecent(*recent, slot);
  }
  if (options_.on_rewind) options_.on_rewind(from_memory);
  if (options_.on_rewind_replayed) options_.on_rewind_replayed(stored);
  if (beyond_window) {
    Log(LogLevel::kWarning, "late_input_beyond_history_window",
        {{"pump", pump_id},
         {"seq", slot.twin.last_seq()},
         {"event_time", absl::FormatTime(earliest.time)},
         {"rule", "replayed from the registration"}});
    if (options_.on_late_input) options_.on_late_input("beyond_window");
  }
  return result;
}

void Shard::ReconcileRefillLogs(const std::string& pump_id, PumpSlot& slot,
                                const std::vector<RefillLogEntry>& entries, absl::Time server_time,
                                const std::string& gateway_id) {
  if (options_.store == nullptr) return;
  for (const RefillLogEntry& e : entries) {
    // Records of this shard are in the store once drained.
    if (!Drain()) return;  // the registry degrades; nothing of this frame is acked
    auto found = FindApproximateRefill(*options_.store, pump_id, e.device_time);
    if (!found.ok() || !found->has_value()) {
      if (!found.ok()) {
        Log(LogLevel::kError, "refill_log_lookup_failed",
            {{"pump", pump_id}, {"seq", e.seq}, {"error", std::string(found.status().message())}});
      }
      // Stored with its sample; kept as an entry a later approximate record takes its time
      // from.
      forming_.group.meta.emplace_back(RefillLogMetaKey(pump_id, e.device_time),
                                       RefillLogValue(e.seq));
      Log(LogLevel::kInfo, "refill_log_unmatched",
          {{"pump", pump_id},
           {"seq", e.seq},
           {"pump_time", absl::FormatTime(e.device_time)},
           {"rule", "kept for an approximate refill record within 2 h"}});
      continue;
    }
    const StoredInput& old = **found;
    const StoredInput moved = RekeyRefill(old, e.device_time);
    const std::string why =
        absl::StrCat("the pump's refill log entry",
                     gateway_id.empty() ? "" : absl::StrCat(" from gateway ", gateway_id), " at ",
                     absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", e.device_time, absl::UTCTimeZone()),
                     " (sample seq ", e.seq, ") for the refill stated at ",
                     absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", old.key.time, absl::UTCTimeZone()),
                     " (approximate)");
    // The moved record is folded as a fresh input in place of the stored one; both changes
    // are stored in one group.
    std::shared_ptr<const DrugLibrarySnapshot> hold;
    const twin::DrugLibrary& library = Library(hold);
    std::vector<twin::FoldInput> fresh(1);
    fresh[0].key = moved.key;
    fresh[0].server_time = moved.server_time;
    fresh[0].apply = [&moved, &library](twin::Twin& t, std::vector<twin::AlertTransition>* out) {
      return ApplyStoredInput(moved, t, library, out);
    };
    std::vector<twin::AlertTransition> corrections;
    store::WriteGroup group;
    auto result = Rewind(pump_id, slot, std::move(fresh), why, group, corrections, old.key);
    if (!result.ok()) {
      // Crash-only: the registry reloads from the store (the record still at its stated time).
      Log(LogLevel::kError, "rewind_failed",
          {{"pump", pump_id}, {"seq", e.seq}, {"error", std::string(result.status().message())}});
      absl::Status err = absl::UnavailableError(
          absl::StrCat("refill of pump '", pump_id,
                       "' could not be moved to its logged time: ", result.status().message()));
      gate_->LatchStoreFailure(err);
      if (options_.on_store_error) options_.on_store_error(err);
      return;
    }
    group.meta_erase_ranges.push_back(SingleKeyRange(InputMetaKey(pump_id, old.key)));
    group.meta.emplace_back(InputMetaKey(pump_id, moved.key), InputValue(moved));
    forming_.group.Append(std::move(group));
    forming_.audit.push_back(MakeAuditDraft(
        {.actor = gateway_id.empty() ? "server" : absl::StrCat("gateway:", gateway_id),
         .role = "system",
         .method = "RefillTimeReconciled",
         .resource = absl::StrCat("pumps/", pump_id),
         .reason = why,
         .server_time = server_time}));
    Log(LogLevel::kInfo, "refill_reconciled",
        {{"pump", pump_id},
         {"seq", e.seq},
         {"stated_time", absl::FormatTime(old.key.time)},
         {"pump_time", absl::FormatTime(e.device_time)},
         {"order", "log entry after record"}});
    if (options_.on_late_input) options_.on_late_input("rewind");
    AddTransitions(pump_id, frame_time_, corrections, why);
    AddSnapshot(pump_id, slot, server_time);
    PublishSummary(pump_id, slot);
  }
}

void Shard::ApplyLateSamples(const std::string& pump_id, PumpSlot& slot,
                             std::vector<twin::Sample> late, absl::Time server_time,
                             const std::string& gateway_id,
                             std::vector<device_link::SinkNack>& nacks) {
  // A pump clock that goes back between its own samples is a defect of the data, not a
  // late arrival: such a sample is refused as before. Everything applied so far must be
  // in the store to compare with (and for the rewind).
  // A pump that keeps its recent inputs knows its latest sample without the store.
  absl::Time previous = absl::InfinitePast();
  if (RecentInputs* recent = Recent(pump_id)) {
    previous = recent->last_sample_time();
  } else {
    if (!Drain()) return;  // the registry degrades; nothing of this frame is acked
    if (options_.store != nullptr) {
      auto head = options_.store->GetPumpHead(pump_id);
      if (head.ok()) previous = head->last_device_time;
    }
  }
  {
    std::vector<twin::Sample> in_order;
    in_order.reserve(late.size());
    for (twin::Sample& s : late) {
      if (s.device_time < previous) {
        nacks.push_back({pump_id, s.seq, v1::NACK_REASON_TIME_ABSURD,
                         absl::StrCat("sample.device_time ", absl::FormatTime(s.device_time),
                                      " is before the pump's previous sample (",
                                      absl::FormatTime(previous), "): the pump clock went back")});
        continue;
      }
      previous = s.device_time;
      in_order.push_back(std::move(s));
    }
    late = std::move(in_order);
  }
  if (late.empty()) return;
  std::vector<twin::FoldInput> fresh(late.size());
  for (size_t i = 0; i < late.size(); ++i) {
    fresh[i].key = {late[i].device_time, twin::InputRank::kSample, late[i].seq};
    fresh[i].server_time = server_time;
    fresh[i].sample = &late[i];
    fresh[i].fresh = true;
  }
  std::vector<twin::AlertTransition> corrections;
  store::WriteGroup group;
  const std::string why = absl::StrCat(
      "late telemetry", gateway_id.empty() ? "" : absl::StrCat(" from gateway ", gateway_id),
      " (pump time ",
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", late.front().device_time, absl::UTCTimeZone()), ")");
  auto result = Rewind(pump_id, slot, std::move(fresh), why, group, corrections);
  if (!result.ok()) {
    // The sequencer has consumed these seqs: crash-only, the registry reloads from the
    // store and the gateway resends (nothing of them is acked).
    Log(LogLevel::kError, "rewind_failed",
        {{"pump", pump_id},
         {"seq", late.front().seq},
         {"error", std::string(result.status().message())}});
    absl::Status err = absl::UnavailableError(
        absl::StrCat("late telemetry of pump '", pump_id,
                     "' could not be applied in its place: ", result.status().message()));
    gate_->LatchStoreFailure(err);
    if (options_.on_store_error) options_.on_store_error(err);
    return;
  }
  // Refused late samples are nacked for what they are (as in order: a bad field, or a
  // time before the twin's start); the others are stored with this group (a rewind from
  // the store committed everything before them, and the pump's samples already in the
  // forming group all have lower seqs, so seq order holds).
  absl::flat_hash_map<uint64_t, const absl::Status*> refused;
  for (const auto& [key, status] : result->refused) refused[key.tie] = &status;
  std::vector<twin::Sample> kept;
  kept.reserve(late.size());
  for (twin::Sample& s : late) {
    auto it = refused.find(s.seq);
    if (it != refused.end()) {
      const absl::Status& st = *it->second;
      nacks.push_back({pump_id, s.seq,
                       st.code() == absl::StatusCode::kFailedPrecondition
                           ? v1::NACK_REASON_TIME_ABSURD
                           : v1::NACK_REASON_INVALID_FIELD,
                       std::string(st.message())});
      continue;
    }
    kept.push_back(std::move(s));
  }
  if (options_.on_late_input) options_.on_late_input("rewind");
  forming_.group.Append(std::move(group));
  auto& forming = forming_pumps_[pump_id];
  for (twin::Sample& s : kept) forming.push_back(std::move(s));
  forming_samples_ += kept.size();
  AddTransitions(pump_id, frame_time_, corrections, why);
  AddSnapshot(pump_id, slot, server_time);
  PublishSummary(pump_id, slot);
}

}  // namespace pumptwin::server
