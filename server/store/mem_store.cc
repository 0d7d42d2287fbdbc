// MemStore: maps under one mutex; reads copy out and call back without the lock.
#include "server/store/mem_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/store/store_keys.h"

namespace pumptwin::store {

void MemStore::FailCommits(absl::Status status) {
  absl::MutexLock lock(&mu_);
  failure_ = std::move(status);
}

void MemStore::SetCommitHook(std::function<void()> hook) {
  absl::MutexLock lock(&mu_);
  hook_ = std::move(hook);
}

int64_t MemStore::commit_count() const {
  absl::MutexLock lock(&mu_);
  return commits_;
}

absl::Status MemStore::Commit(const WriteGroup& group) {
  std::function<void()> hook;
  absl::Status failing_at_start;
  {
    absl::MutexLock lock(&mu_);
    hook = hook_;
    failing_at_start = failure_;
  }
  if (hook) hook();
  if (!failing_at_start.ok()) return failing_at_start;
  if (absl::Status s = ValidateWriteGroup(group); !s.ok()) return s;
  // Convert every time first so that a refusal leaves nothing applied.
  std::vector<std::pair<std::string, PumpHead>> chunk_keys;
  for (const TelemetryChunk& c : group.telemetry) {
    absl::StatusOr<int64_t> first = keys::TimeToUnixNanos(c.first_device_time);
    if (!first.ok()) return first.status();
    if (absl::StatusOr<int64_t> last = keys::TimeToUnixNanos(c.last_device_time); !last.ok()) {
      return last.status();
    }
    chunk_keys.push_back({keys::TelemetryKey(c.pump_id, *first, c.first_seq),
                          PumpHead{c.pump_id, c.last_seq, c.last_device_time}});
  }
  absl::MutexLock lock(&mu_);
  if (!failure_.ok()) return failure_;
  for (size_t i = 0; i < group.telemetry.size(); ++i) {
    telemetry_[chunk_keys[i].first] = group.telemetry[i];
    heads_[chunk_keys[i].second.pump_id] = chunk_keys[i].second;
  }
  for (const auto& [k, v] : group.snapshots) snapshots_[k] = v;
  for (const auto& [k, v] : group.pumps) pumps_[k] = v;
  for (const auto& [k, v] : group.alerts) alerts_[k] = v;
  for (const auto& [k, v] : group.audit) audit_[k] = v;
  for (const auto& [b, e] : group.meta_erase_ranges) {
    if (b < e) meta_.erase(meta_.lower_bound(b), meta_.lower_bound(e));
  }
  for (const auto& [k, v] : group.meta) meta_[k] = v;
  if (!group.empty()) ++commits_;
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemStore::Get(StringMap MemStore::*member, absl::string_view key,
                                          absl::string_view what) const {
  absl::MutexLock lock(&mu_);
  const StringMap& map = this->*member;
  auto it = map.find(key);
  if (it == map.end()) return absl::NotFoundError(absl::StrCat("no ", what, " for ", key));
  return it->second;
}

absl::Status MemStore::Scan(StringMap MemStore::*member, const KeyValueFn& fn) const {
  StringMap copy;
  {
    absl::MutexLock lock(&mu_);
    copy = this->*member;
  }
  for (const auto& [k, v] : copy) {
    if (!fn(k, v)) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemStore::GetPump(absl::string_view pump_id) const {
  return Get(&MemStore::pumps_, pump_id, "pump");
}
absl::Status MemStore::ScanPumps(const KeyValueFn& fn) const { return Scan(&MemStore::pumps_, fn); }
absl::StatusOr<std::string> MemStore::GetSnapshot(absl::string_view pump_id) const {
  return Get(&MemStore::snapshots_, pump_id, "snapshot");
}
absl::Status MemStore::ScanAllSnapshots(const KeyValueFn& fn) const {
  return Scan(&MemStore::snapshots_, fn);
}
absl::StatusOr<std::string> MemStore::GetMeta(absl::string_view name) const {
  return Get(&MemStore::meta_, name, "meta");
}

absl::Status MemStore::ScanMetaRange(absl::string_view begin, absl::string_view end,
                                     const KeyValueFn& fn) const {
  std::vector<std::pair<std::string, std::string>> copy;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = meta_.lower_bound(begin); it != meta_.end() && it->first < end; ++it) {
      copy.emplace_back(it->first, it->second);
    }
  }
  for (const auto& [k, v] : copy) {
    if (!fn(k, v)) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<PumpHead> MemStore::GetPumpHead(absl::string_view pump_id) const {
  absl::MutexLock lock(&mu_);
  auto it = heads_.find(pump_id);
  if (it == heads_.end()) return absl::NotFoundError(absl::StrCat("no telemetry for ", pump_id));
  return it->second;
}

absl::Status MemStore::ScanPumpHeads(const HeadFn& fn) const {
  std::vector<PumpHead> copy;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [k, h] : heads_) copy.push_back(h);
  }
  for (const PumpHead& h : copy) {
    if (!fn(h)) break;
  }
  return absl::OkStatus();
}

absl::Status MemStore::ScanTelemetry(absl::string_view pump_id, absl::Time from, absl::Time to,
                                     const ChunkFn& fn) const {
  std::vector<TelemetryChunk> copy;
  {
    absl::MutexLock lock(&mu_);
    const std::string prefix = keys::TelemetryPrefix(pump_id);
    for (auto it = telemetry_.lower_bound(prefix);
         it != telemetry_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      const TelemetryChunk& c = it->second;
      if (c.first_device_time >= to) break;
      if (c.last_device_time >= from) copy.push_back(c);
    }
  }
  for (const TelemetryChunk& c : copy) {
    if (!fn(c)) break;
  }
  return absl::OkStatus();
}

absl::Status MemStore::ScanTelemetryAfterSeq(absl::string_view pump_id, uint64_t after_seq,
                                             const ChunkFn& fn) const {
  std::vector<TelemetryChunk> copy;
  {
    absl::MutexLock lock(&mu_);
    const std::string prefix = keys::TelemetryPrefix(pump_id);
    for (auto it = telemetry_.lower_bound(prefix);
         it != telemetry_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      if (it->second.last_seq > after_seq) copy.push_back(it->second);
    }
  }
  std::sort(copy.begin(), copy.end(), [](const TelemetryChunk& a, const TelemetryChunk& b) {
    return a.first_seq < b.first_seq;
  });
  for (const TelemetryChunk& c : copy) {
    if (!fn(c)) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> MemStore::ScanCursor(
    CursorMap MemStore::*member, uint64_t after, size_t limit) const {
  absl::MutexLock lock(&mu_);
  const CursorMap& map = this->*member;
  std::vector<std::pair<uint64_t, std::string>> out;
  for (auto it = map.upper_bound(after); it != map.end() && out.size() < limit; ++it) {
    out.push_back(*it);
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> MemStore::ScanAlertsAfter(
    uint64_t after_cursor, size_t limit) const {
  return ScanCursor(&MemStore::alerts_, after_cursor, limit);
}
absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> MemStore::ScanAuditAfter(
    uint64_t after_seq, size_t limit) const {
  return ScanCursor(&MemStore::audit_, after_seq, limit);
}
absl::StatusOr<uint64_t> MemStore::LastAlertCursor() const {
  absl::MutexLock lock(&mu_);
  return alerts_.empty() ? 0 : alerts_.rbegin()->first;
}
absl::StatusOr<uint64_t> MemStore::LastAuditSeq() const {
  absl::MutexLock lock(&mu_);
  return audit_.empty() ? 0 : audit_.rbegin()->first;
}

}  // namespace pumptwin::store
