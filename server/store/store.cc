// WriteGroup helpers and the structural validation shared by every Store backend.
#include "server/store/store.h"

#include <iterator>

#include "absl/strings/str_cat.h"
#include "server/store/store_keys.h"

namespace pumptwin::store {
namespace {

template <typename T>
void MoveAppend(std::vector<T>& dst, std::vector<T>& src) {
  if (dst.empty()) {
    dst = std::move(src);
  } else {
    dst.insert(dst.end(), std::make_move_iterator(src.begin()), std::make_move_iterator(src.end()));
  }
  src.clear();
}

absl::Status CheckPumpId(absl::string_view what, absl::string_view pump_id) {
  if (pump_id.empty() || pump_id.size() > kMaxPumpIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": pump id length ", pump_id.size(), " outside 1..", kMaxPumpIdBytes));
  }
  return absl::OkStatus();
}

}  // namespace

bool WriteGroup::empty() const {
  return telemetry.empty() && snapshots.empty() && pumps.empty() && alerts.empty() &&
         audit.empty() && meta.empty() && meta_erase_ranges.empty() && log_appends.empty();
}

size_t WriteGroup::ByteSize() const {
  size_t bytes = 0;
  for (const auto& c : telemetry) bytes += c.pump_id.size() + c.encoded.size() + 32;
  for (const auto& [k, v] : snapshots) bytes += k.size() + v.size();
  for (const auto& [k, v] : pumps) bytes += k.size() + v.size();
  for (const auto& [k, v] : alerts) bytes += sizeof(k) + v.size();
  for (const auto& [k, v] : audit) bytes += sizeof(k) + v.size();
  for (const auto& [k, v] : meta) bytes += k.size() + v.size();
  for (const auto& [b, e] : meta_erase_ranges) bytes += b.size() + e.size();
  return bytes;
}

void WriteGroup::Append(WriteGroup&& other) {
  MoveAppend(telemetry, other.telemetry);
  MoveAppend(snapshots, other.snapshots);
  MoveAppend(pumps, other.pumps);
  MoveAppend(alerts, other.alerts);
  MoveAppend(audit, other.audit);
  MoveAppend(meta, other.meta);
  MoveAppend(meta_erase_ranges, other.meta_erase_ranges);
  MoveAppend(log_appends, other.log_appends);
}

absl::Status ResolveLogAppends(const Store& store, WriteGroup& group) {
  if (group.log_appends.empty()) return absl::OkStatus();
  LogTail tail;
  absl::StatusOr<uint64_t> cursor = store.LastAlertCursor();
  if (!cursor.ok()) return cursor.status();
  absl::StatusOr<uint64_t> seq = store.LastAuditSeq();
  if (!seq.ok()) return seq.status();
  tail.last_cursor = *cursor;
  tail.last_audit_seq = *seq;
  if (*seq > 0) {
    auto last = store.ScanAuditAfter(*seq - 1, 1);
    if (!last.ok()) return last.status();
    if (last->empty()) return absl::DataLossError("the last audit record is missing");
    tail.last_audit_record = std::move(last->front().second);
  }
  std::vector<LogAppendFn> appends = std::move(group.log_appends);
  group.log_appends.clear();
  for (const LogAppendFn& append : appends) {
    if (absl::Status s = append(tail, group); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ValidateWriteGroup(const WriteGroup& group) {
  for (const TelemetryChunk& c : group.telemetry) {
    if (absl::Status s = CheckPumpId("telemetry", c.pump_id); !s.ok()) return s;
    if (c.first_seq == 0 || c.first_seq > c.last_seq) {
      return absl::InvalidArgumentError(absl::StrCat(
          "telemetry chunk of ", c.pump_id, ": bad seq range ", c.first_seq, "..", c.last_seq));
    }
    if (!keys::TimeToUnixNanos(c.first_device_time).ok() ||
        !keys::TimeToUnixNanos(c.last_device_time).ok() ||
        !keys::TimeToUnixNanos(c.server_time).ok() || c.first_device_time > c.last_device_time) {
      return absl::InvalidArgumentError(
          absl::StrCat("telemetry chunk of ", c.pump_id, ": bad device time range"));
    }
    if (c.encoded.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("telemetry chunk of ", c.pump_id, ": empty encoding"));
    }
  }
  for (const auto& [id, bytes] : group.snapshots) {
    if (absl::Status s = CheckPumpId("snapshot", id); !s.ok()) return s;
  }
  for (const auto& [id, bytes] : group.pumps) {
    if (absl::Status s = CheckPumpId("pump", id); !s.ok()) return s;
  }
  for (const auto& [cursor, bytes] : group.alerts) {
    if (cursor == 0) return absl::InvalidArgumentError("alert cursor 0 is reserved");
  }
  for (const auto& [seq, bytes] : group.audit) {
    if (seq == 0) return absl::InvalidArgumentError("audit seq 0 is reserved");
  }
  for (const auto& [name, bytes] : group.meta) {
    if (name.empty()) return absl::InvalidArgumentError("empty meta name");
  }
  return absl::OkStatus();
}

absl::Status EnsureFormatVersion(Store& store, absl::string_view where) {
  absl::StatusOr<std::string> version = store.GetMeta(keys::kFormatVersionKey);
  if (absl::IsNotFound(version.status())) {
    WriteGroup init;
    init.meta.emplace_back(keys::kFormatVersionKey, keys::kFormatVersion);
    return store.Commit(init);
  }
  if (!version.ok()) return version.status();
  if (*version != keys::kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(where, " has format version ", *version,
                                                      ", this build reads ", keys::kFormatVersion));
  }
  return absl::OkStatus();
}

}  // namespace pumptwin::store
