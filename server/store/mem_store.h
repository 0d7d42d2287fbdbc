// MemStore: an in-memory Store for unit tests of the layers above the store (no disk, no
// fsync), with the same key ordering as RocksDbStore and switches to inject commit failures
// or to block a commit until the test releases it.
// Thread-safety: fully thread-safe; callbacks run without the internal lock held.
#ifndef PUMPTWIN_SERVER_STORE_MEM_STORE_H_
#define PUMPTWIN_SERVER_STORE_MEM_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/store/store.h"

namespace pumptwin::store {

class MemStore final : public Store {
 public:
  MemStore() = default;
  MemStore(const MemStore&) = delete;
  MemStore& operator=(const MemStore&) = delete;

  // Every Commit fails with `status` (nothing applied) until ClearFailure(); OK clears it.
  // A commit fails when the store was failing as it started or is failing as it applies
  // (a test may clear the failure while a failing commit is held in the hook).
  void FailCommits(absl::Status status);
  void ClearFailure() { FailCommits(absl::OkStatus()); }
  // Called at the start of every Commit, without the lock (tests block or count here).
  void SetCommitHook(std::function<void()> hook);
  // Successful commits so far (each one stands for one fsync).
  int64_t commit_count() const;

  absl::Status Commit(const WriteGroup& group) override;
  absl::StatusOr<std::string> GetPump(absl::string_view pump_id) const override;
  absl::Status ScanPumps(const KeyValueFn& fn) const override;
  absl::StatusOr<std::string> GetSnapshot(absl::string_view pump_id) const override;
  absl::Status ScanAllSnapshots(const KeyValueFn& fn) const override;
  absl::StatusOr<PumpHead> GetPumpHead(absl::string_view pump_id) const override;
  absl::Status ScanPumpHeads(const HeadFn& fn) const override;
  absl::Status ScanTelemetry(absl::string_view pump_id, absl::Time from, absl::Time to,
                             const ChunkFn& fn) const override;
  absl::Status ScanTelemetryAfterSeq(absl::string_view pump_id, uint64_t after_seq,
                                     const ChunkFn& fn) const override;
  absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> ScanAlertsAfter(
      uint64_t after_cursor, size_t limit) const override;
  absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> ScanAuditAfter(
      uint64_t after_seq, size_t limit) const override;
  absl::StatusOr<uint64_t> LastAlertCursor() const override;
  absl::StatusOr<uint64_t> LastAuditSeq() const override;
  absl::StatusOr<std::string> GetMeta(absl::string_view name) const override;
  absl::Status ScanMetaRange(absl::string_view begin, absl::string_view end,
                             const KeyValueFn& fn) const override;

 private:
  using StringMap = std::map<std::string, std::string, std::less<>>;
  using CursorMap = std::map<uint64_t, std::string>;
  // Helpers take a member pointer so that the guarded map is only touched under mu_.
  absl::StatusOr<std::string> Get(StringMap MemStore::*map, absl::string_view key,
                                  absl::string_view what) const;
  absl::Status Scan(StringMap MemStore::*map, const KeyValueFn& fn) const;
  absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> ScanCursor(CursorMap MemStore::*map,
                                                                           uint64_t after,
                                                                           size_t limit) const;

  mutable absl::Mutex mu_;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  std::function<void()> hook_ ABSL_GUARDED_BY(mu_);
  int64_t commits_ ABSL_GUARDED_BY(mu_) = 0;
  StringMap pumps_ ABSL_GUARDED_BY(mu_);
  StringMap snapshots_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, PumpHead, std::less<>> heads_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, TelemetryChunk> telemetry_ ABSL_GUARDED_BY(mu_);  // keys::TelemetryKey
  CursorMap alerts_ ABSL_GUARDED_BY(mu_);
  CursorMap audit_ ABSL_GUARDED_BY(mu_);
  StringMap meta_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pumptwin::store

#endif  // PUMPTWIN_SERVER_STORE_MEM_STORE_H_
