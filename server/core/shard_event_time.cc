// Shard, event time: inputs that arrive after later ones. The pump's recent inputs kept in
// memory (RecentInputs), the rewind from them or from the store's checkpoints and telemetry,
// late samples, refill logs reconciled with the clinical records, and the checkpoints
// written on the way. The in-order path is in shard.cc; the rules are in docs/model.md
// ("Event time").
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "server/core/convert.h"
#include "server/core/shard.h"
#include "server/store/store_keys.h"
#include "server/store/telemetry_codec.h"

namespace pumptwin::server {
namespace {

// A pump that keeps its recent inputs is replaced by a newly late pump only when it has not
// rewound during the last kRecentKeepRewinds x (pumps kept) rewinds of its shard.
constexpr uint64_t kRecentKeepRewinds = 4;

}  // namespace

void Shard::AddCheckpoint(const std::string& pump_id, const twin::Twin& twin, absl::Time boundary,
                          store::WriteGroup& group) const {
  group.meta.emplace_back(CheckpointMetaKey(pump_id, boundary), twin.Serialize());
  // Keep the checkpoint that covers the start of the history window, drop older ones.
  const absl::Time keep = twin::CheckpointBoundaryAtOrBefore(boundary - options_.history_window,
                                                             options_.checkpoint_every);
  group.meta_erase_ranges.push_back(CheckpointRangeBefore(pump_id, keep));
}

void Shard::RewindFailed(const std::string& pump_id, uint64_t seq, absl::string_view what,
                         const absl::Status& status) {
  Log(LogLevel::kError, "rewind_failed",
      {{"pump", pump_id}, {"seq", seq}, {"error", std::string(status.message())}});
  StoreFailed(absl::UnavailableError(absl::StrCat(what, status.message())));
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
      RewindFailed(
          pump_id, e.seq,
          absl::StrCat("refill of pump '", pump_id, "' could not be moved to its logged time: "),
          result.status());
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
    RewindFailed(
        pump_id, late.front().seq,
        absl::StrCat("late telemetry of pump '", pump_id, "' could not be applied in its place: "),
        result.status());
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
