// Shard, changes made through the API on the shard thread: Mutate runs a clinical change
// (a refill, an event, a prescription...) on one pump's twin, putting a record stated before
// later inputs in its place by a rewind (shard_event_time.cc); AddPump keeps a newly
// registered twin. Both join the shard's forming commit group (shard.cc).
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "server/core/convert.h"
#include "server/core/shard.h"
#include "server/store/store_keys.h"

namespace pumptwin::server {

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

}  // namespace pumptwin::server
