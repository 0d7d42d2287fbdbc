// Shard: one worker thread that owns a set of pump twins. Everything that touches one of
// its twins (ingest, clinical calls, reads, ticks) runs as a task on this thread, so the
// hot path takes no lock on twin state. The shard also owns its commit pipeline: it keeps
// applying and accumulating the next group while up to `max_groups_in_flight` earlier ones
// are queued or being committed (group commit at shard level; the store's GroupCommitter
// merges every queued group of every shard into one fsync). With two in flight the
// committer finds the next groups already queued when a commit ends instead of idling
// until the shards have heard of it. Completions come back to the shard in commit order; a
// failed commit latches the committer (GroupCommitter), so no later group of this shard is
// stored after an earlier one was lost.
// Thread-safety: Post/Stop/queue_depth are thread-safe; everything else runs on the shard
// thread (documented per method).
#ifndef PUMPTWIN_SERVER_SHARD_H_
#define PUMPTWIN_SERVER_SHARD_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "device_link/ingest_sink.h"
#include "device_link/sequencer.h"
#include "server/core/commit_gate.h"
#include "server/core/drug_library_holder.h"
#include "server/core/event_inputs.h"
#include "server/core/pump_directory.h"
#include "server/core/recent_inputs.h"
#include "twin/event_fold.h"
#include "twin/twin.h"

namespace pumptwin::server {

// Where the durable-ack time of ingest went, summed over the frame parts one commit's
// completion answered (a frame touching two shards counts once per shard).
struct IngestStageTimes {
  size_t frame_parts = 0;
  absl::Duration shard_queue;  // handed to the shard -> applied to the twins
  absl::Duration group_wait;   // applied -> its group handed to the store writer
  absl::Duration store;        // handed to the writer -> commit done (queue + write + fsync)
  absl::Duration ack_return;   // commit done -> answered on the shard thread
};

struct ShardOptions {
  size_t max_tasks = 4096;                // queued tasks before Post(block=false) refuses
  uint32_t snapshot_every_samples = 256;  // twin snapshot cadence per pump, in samples
  // ... and in time: a twin with samples not yet in a snapshot gets one at the first tick
  // this long after its last snapshot (0: samples only). Bounds the replay after a crash
  // for slowly reporting pumps (hourly telemetry would take 10 days to reach 256 samples).
  absl::Duration snapshot_interval = absl::Hours(1);
  size_t max_group_samples = 100000;  // flush the forming group beyond this
  // Submitted, not yet completed (>= 1); a group that answers clinical or admin calls may
  // take one place more (its caller waits for the commit).
  int max_groups_in_flight = 2;
  device_link::SequencerConfig sequencer;
  // Event time (docs/model.md "Event time"): a late input is applied in its place by a
  // rewind to the latest checkpoint before it. Checkpoints are taken at every multiple of
  // checkpoint_every the inputs cross and kept for history_window behind the model time.
  absl::Duration history_window = absl::Hours(24 * 7);
  absl::Duration checkpoint_every = absl::Hours(24);
  // Rewinds from memory (RecentInputs): a pump whose input arrived late keeps its latest
  // inputs in memory, so the next late ones are applied without waiting for the shard's
  // commits and reading the store. At most rewind_memory_pumps pumps per shard (0: always
  // from the store; when all places are taken, the least recently rewound pump makes room
  // if it has not rewound for 4 x that many rewinds of the shard), each holding at most
  // rewind_memory_inputs inputs (~250 bytes per sample) and 16 twin copies
  // (RecentInputs::kMaxGenerations, ~0.8 kB each): about 9 MB per shard with the defaults. A late
  // input older than those inputs takes the store path.
  size_t rewind_memory_pumps = 64;
  size_t rewind_memory_inputs = 512;
  const store::Store* store = nullptr;  // read by rewinds (set by the registry)
  // The drug library replays re-check records against (null or returning null: built-in).
  std::function<std::shared_ptr<const DrugLibrarySnapshot>()> drugs;
  // A late input was applied in its place: path "rewind" (from a checkpoint) or
  // "beyond_window" (older than the history window: replayed from the registration).
  std::function<void(absl::string_view path)> on_late_input;
  std::function<absl::Time()> now = [] { return absl::Now(); };
  // Encodes a pump's samples into a telemetry chunk (store::MakeChunk; tests inject
  // failures).
  std::function<absl::StatusOr<store::TelemetryChunk>(const std::string& pump_id,
                                                      const std::vector<twin::Sample>& samples)>
      make_chunk;
  // Called (on the committer thread) when a commit failed: the registry degrades.
  std::function<void(const absl::Status&)> on_store_error;
  // Sample received -> alert event queued (seconds), for the latency histogram.
  std::function<void(double)> on_alert_latency;
  // Called on the shard thread once per completed commit that answered ingest frames.
  std::function<void(const IngestStageTimes&)> on_ingest_stages;
  // Called on the shard thread after every rewind: from_memory says whether it was served
  // by the pump's recent inputs (RecentInputs) or read the store.
  std::function<void(bool from_memory)> on_rewind;
  // Called on the shard thread after every rewind with the number of inputs it folded
  // again (already applied before: the work a rewind does beyond in-order delivery).
  std::function<void(size_t replayed)> on_rewind_replayed;
  // Called on the shard thread after a pump's recent inputs changed: the inputs and twin
  // copies it holds now and the number of pumps of this shard that keep some (the memory
  // bound in tests).
  std::function<void(size_t inputs, size_t twins, size_t pumps)> on_recent_inputs;
  // Called on the shard thread after a pump's twin changed (samples, mutation, tick);
  // must be cheap and never block (WatchTwin's hub only marks the pump dirty).
  std::function<void(const std::string& pump_id, const twin::Twin& twin)> on_twin_changed;
};

// The per-pump state a shard keeps.
struct PumpSlot {
  explicit PumpSlot(twin::Twin t, absl::Time snapshot_time = absl::UnixEpoch())
      : twin(std::move(t)), seq(twin.last_seq()), snapshot_minute(MinuteOf(snapshot_time)) {}
  // Server time in whole minutes since the Unix epoch (32 bits: the slot's padding).
  static uint32_t MinuteOf(absl::Time t) {
    return static_cast<uint32_t>(std::max<int64_t>(0, absl::ToUnixSeconds(t) / 60));
  }
  twin::Twin twin;
  device_link::PumpSequencer seq;
  uint32_t since_snapshot = 0;   // samples applied since the last snapshot
  uint32_t snapshot_minute = 0;  // MinuteOf(server time of the last snapshot)
  // A clinical record or tick may be applied at the current model time: a sample stamped
  // exactly then sorts before it and takes the rewind path (true after a recovery too).
  bool record_at_model_time = true;
};

// Node-based: a flat table's power-of-two capacity would keep up to twice its 576-byte
// slots empty. The slot lives in its node (one allocation per twin, stable address).
using SlotMap = absl::node_hash_map<std::string, PumpSlot>;

// Collects the per-shard answers of one ingest batch; the last one calls `done`.
class BatchState {
 public:
  // `posted`: when the frame was handed to the shards (the stage metrics start there).
  BatchState(int parts, absl::Time posted, std::function<void(device_link::IngestResult)> done)
      : posted_(posted), remaining_(parts), done_(std::move(done)) {}
  absl::Time posted() const { return posted_; }
  void Complete(absl::Status status, std::vector<device_link::ResumePoint> durable,
                std::vector<device_link::SinkNack> nacks);

 private:
  const absl::Time posted_;
  absl::Mutex mu_;
  int remaining_ ABSL_GUARDED_BY(mu_);
  device_link::IngestResult result_ ABSL_GUARDED_BY(mu_);
  std::function<void(device_link::IngestResult)> done_;
};

// What a clinical/admin call may do to a twin inside Shard::Mutate.
struct MutationContext {
  absl::Time server_time;
  // Applies a clinical record in event time (set by Shard::Mutate): at once when it is
  // not before the model time, else by a rewind; stores it as an input of the pump.
  // FAILED_PRECONDITION when it is older than the history window.
  std::function<absl::Status(const StoredInput& input, twin::RefillResult* refill)> apply_input;
  std::vector<twin::AlertTransition> transitions;  // appended by the twin call
  std::vector<AuditDraft> audit;
  store::WriteGroup extra;
  // Set when the call rewound the twin: the reason its alert changes carry.
  std::string correction;  // e.g. an updated registration
};

class Shard {
 public:
  using Task = std::function<void()>;
  // A clinical change of one pump: gets its twin (and nothing else of the slot). A call that
  // changes the twin other than through ctx.apply_input must not call apply_input (the
  // pump's recent inputs then start again at the changed twin).
  using MutateFn = std::function<absl::Status(twin::Twin& twin, MutationContext& ctx)>;

  Shard(int index, CommitGate* gate, PumpDirectory* directory, ShardOptions options);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Queues a task. block=false: false when the queue is full or the shard stopped.
  bool Post(Task task, bool block = true);
  // Finishes queued tasks and the commit in flight, then joins the thread.
  void Stop();
  // The newest model time any twin on this shard reached (samples, records, ticks), or
  // nullopt before the first; read from any thread.
  std::optional<absl::Time> newest_model_time() const;
  size_t queue_depth() const;
  int index() const { return index_; }

  // ---- shard thread only ----
  SlotMap& slots() { return slots_; }
  // The parts of one frame that live on this shard: one completion for all of them.
  // `gateway_id` names the sender in alert corrections caused by late telemetry.
  void ApplyIngest(std::vector<device_link::PumpSamples> parts, std::shared_ptr<BatchState> batch,
                   const std::string& gateway_id = "");
  // Runs fn on the pump's slot; on OK commits snapshot + alerts + audit + extra, then
  // calls done (on the committer thread via this shard) with fn's status or the commit's.
  void Mutate(const std::string& pump_id, MutateFn fn, std::function<void(absl::Status)> done);
  // Adds a new twin (registration) from its serialized bytes (Twin::Serialize) and commits
  // `ctx` with them as its snapshot. The twin is decoded here, so what it keeps is
  // allocated on this thread; the bytes come from the caller, so this thread allocates no
  // short-lived buffers between long-lived twins. INVALID_ARGUMENT if they do not decode.
  void AddPump(const std::string& pump_id, std::string twin_bytes, MutationContext ctx,
               std::function<void(absl::Status)> done);
  // Server-time checks of every twin (silence, time-driven rules), and snapshots of the
  // twins whose last one is older than options.snapshot_interval. Twins whose last sample
  // was received at or after `received_before` are skipped (TwinRegistry::Tick).
  void TickAll(absl::Time server_time, absl::Time received_before = absl::InfiniteFuture());
  // Drops every twin and the forming group (its callers get UNAVAILABLE): the registry
  // reloads everything from the store after a store failure.
  void ResetState();
  // Cluster mode, shards given back: drops the twins and recent inputs of the pumps `which`
  // selects. False, dropping nothing, when one of them has samples in the forming group.
  bool DropPumps(const std::function<bool(absl::string_view pump_id)>& which);
  // Adds snapshots of every twin with unsnapshotted samples (clean shutdown).
  void SnapshotAll();
  // Publishes the pump's summary (worst alert, due dates) to the directory.
  void PublishSummary(const std::string& pump_id, const PumpSlot& slot);

 private:
  void Run();
  void AddTransitions(const std::string& pump_id, absl::Time server_time,
                      std::vector<twin::AlertTransition>& transitions,
                      const std::string& correction = "");
  void AddSnapshot(const std::string& pump_id, PumpSlot& slot, absl::Time server_time);
  // Applies one pump's samples; nacks and the pump's resume point are appended.
  void ApplyPart(device_link::PumpSamples& part, absl::Time server_time,
                 const std::string& gateway_id, std::vector<device_link::ResumePoint>& durable,
                 std::vector<device_link::SinkNack>& nacks);
  // Returns the error when the group could not be formed (it is then failed).
  absl::Status MaybeFlush();
  // Commits the forming group and waits until every group of this shard has completed
  // (answering them): the store then holds everything applied so far. False when a
  // commit failed (the registry degrades).
  bool Drain();
  const twin::DrugLibrary& Library(std::shared_ptr<const DrugLibrarySnapshot>& hold) const;
  // Sets the store failure latch (nothing more is committed) and reports `error`.
  void StoreFailed(const absl::Status& error);

  // Event time (shard_event_time.cc): inputs that arrive after later ones.
  // A rewind of `pump_id` (input `seq`) failed: logs it and StoreFailed("<what><status>");
  // crash-only, the registry reloads the pump from the store.
  void RewindFailed(const std::string& pump_id, uint64_t seq, absl::string_view what,
                    const absl::Status& status);
  // Adds the checkpoint at `boundary` (the twin before the first input past it) and
  // prunes those older than the history window.
  void AddCheckpoint(const std::string& pump_id, const twin::Twin& twin, absl::Time boundary,
                     store::WriteGroup& group) const;
  // Applies `fresh` (inputs before the model time) in their place: drains, folds the latest
  // checkpoint before them (or the registration) with the stored inputs and `fresh`,
  // replaces the twin, writes the new checkpoints into `group` and the alert corrections
  // (`why` is their reason) into `corrections`. Refused fresh inputs are reported.
  // `replaced`: a stored input one of `fresh` replaces (a re-keyed record): left out of the
  // fold, which starts at or before it too; the caller erases it in the group that stores
  // its replacement.
  // From the pump's recent inputs (RecentInputs, no drain, no store read) when they reach
  // back to the earliest fresh input, it is inside the history window and every fresh input
  // is a sample or `fresh_record` (the record behind a fresh closure); else from the store.
  // Accepted fresh inputs join the recent inputs.
  absl::StatusOr<twin::FoldResult> Rewind(const std::string& pump_id, PumpSlot& slot,
                                          std::vector<twin::FoldInput> fresh,
                                          const std::string& why, store::WriteGroup& group,
                                          std::vector<twin::AlertTransition>& corrections,
                                          std::optional<twin::InputKey> replaced = std::nullopt,
                                          const StoredInput* fresh_record = nullptr);
  // The pump's recent inputs, or null when it keeps none.
  RecentInputs* Recent(const std::string& pump_id);
  // Keeps recent inputs for the pump from `base` on (after a rewind from the store), making
  // room by dropping the least recently rewound pump's. Null when none are kept.
  RecentInputs* TrackRecent(const std::string& pump_id, const twin::Twin& base,
                            const twin::InputKey& last_key, absl::Time last_sample_time);
  // Maintain + the on_recent_inputs report.
  void MaintainRecent(RecentInputs& recent, const PumpSlot& slot);
  // The pump's refill log entries of samples just applied (docs/model.md "Approximate
  // clinical times"): each re-keys the nearest approximate refill record within
  // kRefillLogTolerance to its exact time (rewinding the twin), or is kept for a record
  // still to come and logged.
  void ReconcileRefillLogs(const std::string& pump_id, PumpSlot& slot,
                           const std::vector<RefillLogEntry>& entries, absl::Time server_time,
                           const std::string& gateway_id);
  // The late samples of one part (from the first one before the model time on).
  void ApplyLateSamples(const std::string& pump_id, PumpSlot& slot, std::vector<twin::Sample> late,
                        absl::Time server_time, const std::string& gateway_id,
                        std::vector<device_link::SinkNack>& nacks);
  // One frame's answer from this shard, given when its group's commit is done.
  struct PendingAck {
    std::shared_ptr<BatchState> batch;
    std::vector<device_link::ResumePoint> durable;
    std::vector<device_link::SinkNack> nacks;
    absl::Time applied;
  };
  // What waits for one group's commit: ingest answers (no closure per frame) and the
  // callbacks of clinical/admin calls.
  struct Waiting {
    std::vector<PendingAck> acks;
    std::vector<std::function<void(absl::Status)>> done;
    absl::Time submitted;  // handed to the commit gate
    bool empty() const { return acks.empty() && done.empty(); }
    // Answers everything with the commit's status.
    void Answer(const absl::Status& status);
  };
  struct Completion {
    absl::Status status;
    Waiting waiting;
    absl::Time committed;  // the commit's end
  };
  // Answers one completed group and reports its ingest stage times.
  void Complete(Completion& c);

  const int index_;
  CommitGate* const gate_;
  PumpDirectory* const directory_;
  const ShardOptions options_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  // Finished commits of this shard's groups, in commit order (run before queued tasks).
  std::deque<Completion> completed_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<size_t> depth_{0};
  // The newest model time of any twin on this shard (ns since the Unix epoch; INT64_MIN:
  // none yet), for the data clock (ServerOptions::tick_clock).
  std::atomic<int64_t> newest_model_ns_{INT64_MIN};

  // Shard-thread state.
  SlotMap slots_;
  PendingGroup forming_;
  // Samples of the forming group per pump, in seq order (freed at every flush: an idle
  // pump holds no sample buffer).
  absl::flat_hash_map<std::string, std::vector<twin::Sample>> forming_pumps_;
  // Emptied sample vectors of earlier groups, reused by the next pumps that form samples:
  // no allocation and no regrowth per pump and group. Bounded by their total capacity
  // (kMaxSpareSamples in shard.cc); idle pumps still hold nothing.
  std::vector<std::vector<twin::Sample>> spare_vectors_;
  size_t spare_samples_ = 0;  // capacity of spare_vectors_, in samples
  size_t forming_samples_ = 0;
  // Server time of the forming group: every sample of a group is observed with it and it
  // is stored with the group's chunks, so a replay after a crash is exact.
  std::optional<absl::Time> group_time_;
  // When the frame being applied reached the shard: the server time of the alerts it
  // raises (the group time can precede the frame).
  absl::Time frame_time_;
  // Tie of the last clinical record applied on this shard (InputKey.tie, kept increasing).
  uint64_t last_record_tie_ = 0;
  Waiting forming_waiting_;
  // Pumps that keep their recent inputs (at most options_.rewind_memory_pumps), with the
  // shard's rewind count when they last rewound (least recently rewound goes first).
  struct RecentEntry {
    RecentInputs inputs;
    uint64_t last_rewind = 0;
  };
  absl::node_hash_map<std::string, RecentEntry> recent_;
  uint64_t rewinds_ = 0;
  int in_flight_ = 0;  // groups submitted and not yet completed (shard thread)
  std::thread thread_;
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_SHARD_H_
