// GroupCommitter: one writer thread, many producers, one fsync per drained batch.
#include "server/store/group_committer.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/thread_name.h"

namespace pumptwin::store {

GroupCommitter::GroupCommitter(Store* store, GroupCommitterOptions options)
    : store_(store), options_(std::move(options)), writer_([this] {
        server::NameThisThread("pt-committer");
        Run();
      }) {}

GroupCommitter::~GroupCommitter() { Shutdown(); }

absl::Status GroupCommitter::Submit(WriteGroup group, DoneFn done) {
  return Enqueue(std::move(group), std::move(done), /*block=*/false, /*probe=*/false);
}

absl::Status GroupCommitter::SubmitBlocking(WriteGroup group, DoneFn done) {
  return Enqueue(std::move(group), std::move(done), /*block=*/true, /*probe=*/false);
}

absl::Status GroupCommitter::SubmitProbe(WriteGroup group, DoneFn done) {
  return Enqueue(std::move(group), std::move(done), /*block=*/true, /*probe=*/true);
}

void GroupCommitter::Latch(absl::Status error) {
  absl::MutexLock lock(&mu_);
  if (failure_.ok() && !error.ok()) failure_ = std::move(error);
}

void GroupCommitter::ClearFailure() {
  absl::MutexLock lock(&mu_);
  failure_ = absl::OkStatus();
}

absl::Status GroupCommitter::failure() const {
  absl::MutexLock lock(&mu_);
  return failure_;
}

absl::Status GroupCommitter::LatchedError() const {
  return absl::UnavailableError(absl::StrCat(
      "an earlier store commit failed (", failure_.message(),
      "); nothing more is written until the server has reloaded its state from the store"));
}

bool GroupCommitter::HasRoom(size_t bytes) const {
  if (queue_.empty()) return true;  // a single oversized group is still accepted alone
  return queue_.size() < options_.max_queued_groups &&
         queued_bytes_ + bytes <= options_.max_queued_bytes;
}

absl::Status GroupCommitter::Enqueue(WriteGroup group, DoneFn done, bool block, bool probe) {
  // A malformed group is refused here so that it cannot fail the groups merged with it.
  if (absl::Status s = ValidateWriteGroup(group); !s.ok()) return s;
  const size_t bytes = group.ByteSize();
  {
    absl::MutexLock lock(&mu_);
    if (block) {
      auto ready = [this, bytes]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || HasRoom(bytes); };
      mu_.Await(absl::Condition(&ready));
    }
    if (stopping_) return absl::UnavailableError("store writer is shut down");
    if (!failure_.ok() && !probe) return LatchedError();
    if (HasRoom(bytes)) {
      queue_.push_back(Pending{std::move(group), std::move(done), bytes, options_.now(), probe});
      queued_bytes_ += bytes;
      return absl::OkStatus();
    }
  }
  if (options_.metrics.on_rejected) options_.metrics.on_rejected(bytes);
  return absl::ResourceExhaustedError(
      absl::StrCat("store write queue full (max ", options_.max_queued_groups, " groups, ",
                   options_.max_queued_bytes, " bytes); retry later"));
}

void GroupCommitter::Run() {
  std::vector<Pending> batch;
  std::vector<Pending> refused;
  for (;;) {
    batch.clear();
    refused.clear();
    absl::Status latched;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&has_work));
      if (queue_.empty()) return;  // stopping and drained
      size_t bytes = 0;
      while (!queue_.empty() &&
             (batch.empty() || bytes + queue_.front().bytes <= options_.max_commit_bytes)) {
        bytes += queue_.front().bytes;
        if (!failure_.ok() && !queue_.front().probe) {
          refused.push_back(std::move(queue_.front()));  // queued before the latch was set
        } else {
          batch.push_back(std::move(queue_.front()));
        }
        queue_.pop_front();
      }
      queued_bytes_ -= bytes;
      if (!refused.empty()) latched = LatchedError();
    }
    for (Pending& p : refused) {
      if (p.done) p.done(latched);
    }
    if (batch.empty()) continue;
    CommitStats stats;
    stats.groups = batch.size();
    WriteGroup merged;
    for (Pending& p : batch) {
      stats.bytes += p.bytes;
      merged.Append(std::move(p.group));
    }
    const absl::Time start = options_.now();
    if (options_.commit) {
      stats.status = options_.commit(merged);  // numbers log_appends under the log's lock
    } else {
      stats.status = ResolveLogAppends(*store_, merged);
      if (stats.status.ok()) stats.status = store_->Commit(merged);
    }
    const absl::Time end = options_.now();
    if (!stats.status.ok()) {
      absl::MutexLock lock(&mu_);
      if (failure_.ok()) failure_ = stats.status;
    }
    stats.commit_latency = end - start;
    stats.oldest_wait = end - batch.front().submitted;
    if (options_.metrics.on_commit) options_.metrics.on_commit(stats);
    for (Pending& p : batch) {
      if (p.done) p.done(stats.status);
    }
  }
}

void GroupCommitter::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  absl::MutexLock join_lock(&join_mu_);
  if (writer_.joinable()) writer_.join();
}

size_t GroupCommitter::queued_groups() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

}  // namespace pumptwin::store
