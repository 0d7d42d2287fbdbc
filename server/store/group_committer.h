// GroupCommitter: the single store writer. Producers Submit(group, done); one thread drains
// everything queued, merges it (submission order) into ONE Store::Commit (one fsync) and then
// runs every `done` with that commit's status. Bounded queue; metrics through plain hooks.
// Thread-safety: Submit/SubmitBlocking/Shutdown are thread-safe. `done` runs on the writer
// thread: keep it short and never call SubmitBlocking from it. Does not own the Store.
//
// Failure latch: after a failed commit every later group fails too (UNAVAILABLE, nothing of it
// written), the ones already queued and the ones submitted later, until ClearFailure(). A
// producer's later group may continue its failed one (a shard's next telemetry chunk of the
// same pump); committing it would leave a gap in the store that no resume point shows, so
// the gateway would never resend the lost samples. Only probes (SubmitProbe) are committed
// while latched: the owner probes, drops the in-memory state that the failed groups changed,
// clears the latch and reloads from the store.
#ifndef PUMPTWIN_SERVER_STORE_GROUP_COMMITTER_H_
#define PUMPTWIN_SERVER_STORE_GROUP_COMMITTER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/store/store.h"

namespace pumptwin::store {

// What one merged commit looked like (one fsync).
struct CommitStats {
  absl::Duration commit_latency;  // Store::Commit alone
  absl::Duration oldest_wait;     // submission of the oldest group -> commit done
  size_t groups = 0;              // groups merged into this commit
  size_t bytes = 0;               // WriteGroup::ByteSize() summed
  absl::Status status;
};

// Optional hooks (empty = not called), invoked on the writer thread or in Submit.
struct GroupCommitMetrics {
  std::function<void(const CommitStats&)> on_commit;
  std::function<void(size_t group_bytes)> on_rejected;  // queue full (RESOURCE_EXHAUSTED)
};

struct GroupCommitterOptions {
  size_t max_queued_groups = 65536;
  size_t max_queued_bytes = size_t{256} << 20;
  // Upper bound of one merged commit; more waits for the next round. A single larger group
  // is still committed alone.
  size_t max_commit_bytes = size_t{64} << 20;
  GroupCommitMetrics metrics;
  std::function<absl::Time()> now = [] { return absl::Now(); };  // for latency metrics only
  // Commits a merged group instead of Store::Commit (cluster mode: a fenced commit). It runs
  // the group's log_appends itself, under the store's log lock; without it the committer
  // runs them against the store's tail (ResolveLogAppends) before Store::Commit.
  std::function<absl::Status(const WriteGroup&)> commit;
};

class GroupCommitter {
 public:
  using DoneFn = std::function<void(absl::Status)>;

  // Starts the writer thread. `store` must outlive this object.
  GroupCommitter(Store* store, GroupCommitterOptions options);
  ~GroupCommitter();  // Shutdown()
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Queues `group`; `done` later gets the status of the commit that carried it.
  // RESOURCE_EXHAUSTED when the queue is full, UNAVAILABLE after Shutdown, INVALID_ARGUMENT
  // when ValidateWriteGroup refuses it (in all three cases `done` is never called).
  absl::Status Submit(WriteGroup group, DoneFn done);
  // Like Submit but waits for room instead of RESOURCE_EXHAUSTED.
  absl::Status SubmitBlocking(WriteGroup group, DoneFn done);
  // Like SubmitBlocking, and committed even while the failure latch is set (it does not
  // clear it): "does the store take writes again?".
  absl::Status SubmitProbe(WriteGroup group, DoneFn done);
  // Lifts the failure latch: groups are committed again.
  void ClearFailure();
  // Sets the failure latch without a commit (a producer found a group it cannot store):
  // every later group fails until ClearFailure. Keeps the first error when already set.
  void Latch(absl::Status error);
  // The error that set the latch, OK when not latched.
  absl::Status failure() const;

  // Stops accepting, commits everything already queued, joins the thread. Idempotent; must
  // not be called from a `done` callback.
  void Shutdown();

  size_t queued_groups() const;

 private:
  struct Pending {
    WriteGroup group;
    DoneFn done;
    size_t bytes;
    absl::Time submitted;
    bool probe = false;
  };
  absl::Status Enqueue(WriteGroup group, DoneFn done, bool block, bool probe);
  absl::Status LatchedError() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasRoom(size_t bytes) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run();

  Store* const store_;
  const GroupCommitterOptions options_;
  mutable absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);  // the failure latch
  absl::Mutex join_mu_;
  std::thread writer_;  // last member: starts after everything above is initialised
};

}  // namespace pumptwin::store

#endif  // PUMPTWIN_SERVER_STORE_GROUP_COMMITTER_H_
