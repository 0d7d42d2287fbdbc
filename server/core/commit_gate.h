// CommitGate: the one door to the GroupCommitter for everything the server makes durable.
// Under one short lock it gives alert events their global cursors and audit records their
// sequence numbers and hash-chain links, keeps the book of active alerts, and queues the
// group, so commit order == cursor order == audit order. After a successful commit it
// publishes the alert events (in cursor order) to the AlertListener.
// Thread-safe: Submit is called from every shard worker and from API threads.
#ifndef PUMPTWIN_SERVER_COMMIT_GATE_H_
#define PUMPTWIN_SERVER_COMMIT_GATE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "pumptwin/v1/resources.pb.h"
#include "server/store/group_committer.h"
#include "server/store/store.h"
#include "twin/alert_types.h"

namespace pumptwin::server {

// A change of one alert, before it has a cursor.
struct AlertDraft {
  std::string pump_id;
  std::string clinic;
  twin::AlertTransition transition;  // kind raised/updated/resolved from the twin
  absl::Time server_time;
  // Set for a clinician acknowledgement (transition.kind is then ignored).
  bool acknowledge = false;
  std::string acknowledged_by;
  std::string comment;
  // Set when an event-time replay caused this change (Alert.correction); a resolution is
  // then a WITHDRAWN transition.
  std::string correction;
};

// An audit record before it has a sequence number and hash.
struct AuditDraft {
  v1::AuditRecord record;  // actor, role, method, resource, before/after, reason, time
};

// What the author of an audit record states; the gate adds the sequence and the hash chain
// when it commits.
struct AuditFields {
  std::string actor;   // a token's name, "server", "gateway:<id>"
  std::string role;    // a role name, or "system"
  std::string method;  // e.g. "TwinService.SetPrescription", "RefillTimeReconciled"
  std::string resource;
  std::string before_json;
  std::string after_json;
  std::string reason;
  absl::Time server_time;
};
// Every audit draft is built here.
AuditDraft MakeAuditDraft(AuditFields fields);

// What a shard or an API call wants durable in one atomic commit.
struct PendingGroup {
  store::WriteGroup group;  // telemetry, snapshots, pumps, meta
  std::vector<AlertDraft> alerts;
  std::vector<AuditDraft> audit;
  bool empty() const { return group.empty() && alerts.empty() && audit.empty(); }
};

class AlertListener {
 public:
  virtual ~AlertListener() = default;
  // Durable events, strictly increasing cursors, called on the committer thread.
  virtual void OnAlertEvents(const std::vector<v1::AlertEvent>& events) = 0;
};

// Calls fn for every stored alert event in cursor order. DATA_LOSS when one does not
// parse (a damaged store); stops at the first store error.
absl::Status ForEachStoredAlertEvent(
    const store::Store& store,
    const std::function<void(uint64_t cursor, const v1::AlertEvent&)>& fn);

class CommitGate {
 public:
  using DoneFn = std::function<void(absl::Status)>;

  CommitGate(store::Store* store, store::GroupCommitter* committer);
  CommitGate(const CommitGate&) = delete;
  CommitGate& operator=(const CommitGate&) = delete;

  // Rebuilds the active-alert book and the cursor/audit counters from the store.
  absl::Status Load();

  // Cluster mode: several replicas append to the one alert log and audit chain. Their
  // entries are then numbered at commit time, under the store's log lock, right after the
  // last stored ones (store::LogAppendFn), so no replica's commit conflicts. Alert events then
  // reach the listeners only through Follow, in cursor order and once each whoever
  // committed them; `serves` tells the pumps whose alert book this replica keeps itself.
  // Call before Load.
  void ShareLog(std::function<bool(absl::string_view pump_id)> serves) {
    shared_log_ = true;
    serves_ = std::move(serves);
  }
  // Reads the alert events and audit records stored after the last ones followed (up to
  // `limit` of each): the book of the pumps not served here and the numbering follow them,
  // and the alert events go to the listeners. Returns how many entries were read.
  absl::StatusOr<size_t> Follow(size_t limit);

  // Listeners get every durable alert event; add them all before the first Submit.
  void add_listener(AlertListener* listener) { listeners_.push_back(listener); }

  // Queues the group, waiting for room in the committer's queue (GroupCommitter::
  // SubmitBlocking); `done` runs on the committer thread after the commit. Errors from the
  // committer (shut down, failure latch) are returned and `done` is not called.
  absl::Status Submit(PendingGroup pending, DoneFn done);
  // After a failed commit the committer refuses everything (its failure latch) but probes;
  // the registry probes, drops its in-memory state, then clears the latch and reloads.
  absl::Status SubmitProbe(store::WriteGroup group, DoneFn done) {
    return committer_->SubmitProbe(std::move(group), std::move(done));
  }
  void ClearStoreFailure() { committer_->ClearFailure(); }
  // Latches the committer as a failed commit would (a group that cannot be stored).
  void LatchStoreFailure(absl::Status error) { committer_->Latch(std::move(error)); }

  // Active alerts (raised or acknowledged), optionally of one pump.
  std::vector<v1::Alert> ActiveAlerts(const std::string& pump_id = "") const;
  std::optional<v1::Alert> FindActive(const std::string& pump_id, v1::AlertType type) const;
  std::optional<v1::Alert> FindActiveById(const std::string& pump_id,
                                          const std::string& alert_id) const;
  uint64_t last_cursor() const;

  // SHA-256 chain link of an audit record (proto/audit_hash.h, the one implementation
  // shared with `pumptwinctl audit verify`; the first record links to 64 '0').
  static std::string AuditHash(const v1::AuditRecord& record);

 private:
  struct Key {
    std::string pump_id;
    int type;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.pump_id, k.type);
    }
    bool operator==(const Key&) const = default;
  };
  v1::AlertEvent BuildEvent(const AlertDraft& d, uint64_t cursor)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Where the next log entries go: after this cursor, this audit record and its hash.
  struct LogPosition {
    uint64_t last_cursor = 0;
    uint64_t last_audit_seq = 0;
    std::string last_audit_hash;  // "" before the first record
  };
  // Numbers the drafts right after `at` (alert cursors, audit sequence and hash chain),
  // appends them to `out` and moves `at` and the counters past them; the built events go to
  // `events` when set.
  void Number(const std::vector<AlertDraft>& alerts, std::vector<AuditDraft>& audit,
              LogPosition& at, store::WriteGroup& out, std::vector<v1::AlertEvent>* events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Shared-log mode, at commit time under the store's log lock: Number after `tail` (the
  // stored log's end). DATA_LOSS when the last audit record does not parse.
  absl::Status AppendToSharedLog(const std::vector<AlertDraft>& alerts,
                                 std::vector<AuditDraft>& audit, store::LogTail& tail,
                                 store::WriteGroup& out);

  store::Store* const store_;
  store::GroupCommitter* const committer_;
  std::vector<AlertListener*> listeners_;
  mutable absl::Mutex mu_;
  uint64_t next_cursor_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_audit_seq_ ABSL_GUARDED_BY(mu_) = 1;
  bool shared_log_ = false;
  std::function<bool(absl::string_view)> serves_;
  absl::Mutex follow_mu_;  // one Follow at a time
  // The last alert event published to the listeners in shared-log mode (Follow); a reload
  // never moves it forward, so events appended meanwhile are still published, in order.
  uint64_t followed_cursor_ ABSL_GUARDED_BY(mu_) = 0;
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t followed_audit_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_audit_hash_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Key, v1::Alert> active_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_COMMIT_GATE_H_
