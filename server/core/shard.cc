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
    StoreFailed(encode);
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

void Shard::StoreFailed(const absl::Status& error) {
  gate_->LatchStoreFailure(error);
  if (options_.on_store_error) options_.on_store_error(error);
}

const twin::DrugLibrary& Shard::Library(std::shared_ptr<const DrugLibrarySnapshot>& hold) const {
  if (options_.drugs) hold = options_.drugs();
  return hold != nullptr ? hold->library : twin::DrugLibrary::Default();
}

}  // namespace pumptwin::server
