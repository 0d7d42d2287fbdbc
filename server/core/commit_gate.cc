#include "server/core/commit_gate.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proto/audit_hash.h"
#include "server/core/convert.h"

namespace pumptwin::server {
namespace {

void FillEvidence(const twin::AlertTransition& t, v1::Alert* a) {
  a->clear_evidence();
  for (const twin::Evidence& e : t.evidence) {
    auto* ev = a->add_evidence();
    ev->set_signal(e.signal);
    ev->set_observed(e.observed);
    ev->set_predicted(e.predicted);
    ev->set_threshold(e.threshold);
    ev->set_unit(e.unit);
    ev->set_note(e.note);
  }
  a->set_summary(t.summary);
  FillDiagnosis(t, a);
}

}  // namespace

// The one implementation of the chain link, shared with pumptwinctl's `audit verify`.
std::string CommitGate::AuditHash(const v1::AuditRecord& record) {
  return audit::AuditRecordHashHex(record);
}

CommitGate::CommitGate(store::Store* store, store::GroupCommitter* committer)
    : store_(store), committer_(committer) {}

absl::Status ForEachStoredAlertEvent(
    const store::Store& store,
    const std::function<void(uint64_t cursor, const v1::AlertEvent&)>& fn) {
  uint64_t after = 0;
  for (;;) {
    auto batch = store.ScanAlertsAfter(after, 4096);
    if (!batch.ok()) return batch.status();
    if (batch->empty()) return absl::OkStatus();
    for (const auto& [cursor, bytes] : *batch) {
      after = cursor;
      v1::AlertEvent ev;
      if (!ev.ParseFromString(bytes)) {
        return absl::DataLossError(absl::StrCat("alert event at cursor ", cursor,
                                                " does not parse; the store is damaged"));
      }
      fn(cursor, ev);
    }
  }
}

AuditDraft MakeAuditDraft(AuditFields f) {
  AuditDraft a;
  a.record.set_server_time_ms(ToUnixMs(f.server_time));
  a.record.set_actor(std::move(f.actor));
  a.record.set_role(std::move(f.role));
  a.record.set_method(std::move(f.method));
  a.record.set_resource(std::move(f.resource));
  a.record.set_before_json(std::move(f.before_json));
  a.record.set_after_json(std::move(f.after_json));
  a.record.set_reason(std::move(f.reason));
  return a;
}

absl::Status CommitGate::Load() {
  absl::flat_hash_map<Key, v1::Alert> active;
  uint64_t after = 0;
  absl::Status scanned =
      ForEachStoredAlertEvent(*store_, [&](uint64_t cursor, const v1::AlertEvent& ev) {
        after = cursor;
        Key key{ev.alert().pump_id(), ev.alert().type()};
        if (ev.alert().state() == v1::ALERT_STATE_RESOLVED) {
          active.erase(key);
        } else {
          active[key] = ev.alert();
        }
      });
  if (!scanned.ok()) return scanned;
  auto last_audit = store_->LastAuditSeq();
  if (!last_audit.ok()) return last_audit.status();
  std::string last_hash;
  if (*last_audit > 0) {
    auto rec = store_->ScanAuditAfter(*last_audit - 1, 1);
    if (!rec.ok()) return rec.status();
    v1::AuditRecord r;
    if (rec->empty() || !r.ParseFromString(rec->front().second)) {
      return absl::DataLossError("the last audit record cannot be read; the store is damaged");
    }
    last_hash = r.hash_hex();
  }
  absl::MutexLock lock(&mu_);
  active_ = std::move(active);
  // Exactly what is stored: numbers given to groups that failed were never published.
  next_cursor_ = after + 1;
  next_audit_seq_ = *last_audit + 1;
  last_audit_hash_ = last_hash;
  // The first load starts following after what is stored (the listeners' initial position);
  // a reload (takeover, a conflicting commit) leaves what was not yet followed to Follow,
  // which publishes it: a subscriber of this replica misses nothing another one appended.
  if (!loaded_ || !shared_log_) followed_cursor_ = after;
  loaded_ = true;
  followed_audit_ = *last_audit;
  return absl::OkStatus();
}

absl::StatusOr<size_t> CommitGate::Follow(size_t limit) {
  absl::MutexLock follow(&follow_mu_);
  uint64_t after_cursor, after_audit;
  {
    absl::MutexLock lock(&mu_);
    after_cursor = followed_cursor_;
    after_audit = followed_audit_;
  }
  auto alerts = store_->ScanAlertsAfter(after_cursor, limit);
  if (!alerts.ok()) return alerts.status();
  auto audit = store_->ScanAuditAfter(after_audit, limit);
  if (!audit.ok()) return audit.status();
  std::vector<v1::AlertEvent> events;
  events.reserve(alerts->size());
  for (const auto& [cursor, bytes] : *alerts) {
    v1::AlertEvent ev;
    if (!ev.ParseFromString(bytes)) {
      return absl::DataLossError(absl::StrCat("alert event at cursor ", cursor, " does not parse"));
    }
    ev.set_cursor(cursor);
    events.push_back(std::move(ev));
  }
  {
    absl::MutexLock lock(&mu_);
    for (const v1::AlertEvent& ev : events) {
      // The book of a pump this replica serves is its own (BuildEvent keeps it); the
      // others' follows the log.
      if (!serves_ || !serves_(ev.alert().pump_id())) {
        Key key{ev.alert().pump_id(), ev.alert().type()};
        if (ev.alert().state() == v1::ALERT_STATE_RESOLVED) {
          active_.erase(key);
        } else {
          active_[key] = ev.alert();
        }
      }
      next_cursor_ = std::max(next_cursor_, ev.cursor() + 1);
      followed_cursor_ = std::max(followed_cursor_, ev.cursor());
    }
    for (const auto& [seq, bytes] : *audit) {
      v1::AuditRecord r;
      if (!r.ParseFromString(bytes)) {
        return absl::DataLossError(absl::StrCat("audit record ", seq, " does not parse"));
      }
      if (seq >= next_audit_seq_) {
        next_audit_seq_ = seq + 1;
        last_audit_hash_ = r.hash_hex();
      }
      followed_audit_ = std::max(followed_audit_, seq);
    }
  }
  if (!events.empty()) {
    for (AlertListener* l : listeners_) l->OnAlertEvents(events);
  }
  return events.size() + audit->size();
}

v1::AlertEvent CommitGate::BuildEvent(const AlertDraft& d, uint64_t cursor) {
  v1::AlertEvent ev;
  ev.set_cursor(cursor);
  Key key{d.pump_id, static_cast<int>(d.transition.type)};
  int64_t now_ms = ToUnixMs(d.server_time);
  auto it = active_.find(key);
  v1::Alert alert;
  if (it != active_.end()) alert = it->second;
  if (d.acknowledge) {
    ev.set_transition(v1::ALERT_TRANSITION_ACKNOWLEDGED);
    alert.set_state(v1::ALERT_STATE_ACKNOWLEDGED);
    alert.set_acknowledged_by(d.acknowledged_by);
    alert.set_acknowledge_comment(d.comment);
    alert.set_acknowledged_time_ms(now_ms);
    alert.set_updated_time_ms(now_ms);
    active_[key] = alert;
  } else if (d.transition.kind == twin::TransitionKind::kRaised || it == active_.end()) {
    ev.set_transition(v1::ALERT_TRANSITION_RAISED);
    alert = v1::Alert();
    std::string id =
        absl::StrCat(AlertTypeLabel(static_cast<v1::AlertType>(d.transition.type)), "-", cursor);
    alert.set_alert_id(id);
    alert.set_name(absl::StrCat(PumpName(d.pump_id), "/alerts/", id));
    alert.set_pump_id(d.pump_id);
    alert.set_clinic(d.clinic);
    alert.set_type(static_cast<v1::AlertType>(d.transition.type));
    alert.set_severity(static_cast<v1::Severity>(d.transition.severity));
    alert.set_state(v1::ALERT_STATE_RAISED);
    alert.set_raised_time_ms(now_ms);
    alert.set_raised_device_time_ms(ToUnixMs(d.transition.device_time));
    alert.set_event_time_ms(ToUnixMs(d.transition.device_time));
    if (!d.correction.empty()) alert.set_correction(d.correction);
    alert.set_updated_time_ms(now_ms);
    FillEvidence(d.transition, &alert);
    if (d.transition.kind == twin::TransitionKind::kResolved) {
      alert.set_state(v1::ALERT_STATE_RESOLVED);
      alert.set_resolved_time_ms(now_ms);
      ev.set_transition(d.correction.empty() ? v1::ALERT_TRANSITION_RESOLVED
                                             : v1::ALERT_TRANSITION_WITHDRAWN);
    } else {
      active_[key] = alert;
    }
  } else if (d.transition.kind == twin::TransitionKind::kUpdated) {
    ev.set_transition(v1::ALERT_TRANSITION_UPDATED);
    if (d.transition.severity != twin::Severity::kUnspecified) {
      alert.set_severity(static_cast<v1::Severity>(d.transition.severity));
    }
    alert.set_updated_time_ms(now_ms);
    alert.set_event_time_ms(ToUnixMs(d.transition.device_time));
    if (!d.correction.empty()) alert.set_correction(d.correction);
    FillEvidence(d.transition, &alert);
    it->second = alert;
  } else {
    ev.set_transition(d.correction.empty() ? v1::ALERT_TRANSITION_RESOLVED
                                           : v1::ALERT_TRANSITION_WITHDRAWN);
    alert.set_state(v1::ALERT_STATE_RESOLVED);
    alert.set_resolved_time_ms(now_ms);
    alert.set_updated_time_ms(now_ms);
    alert.set_event_time_ms(ToUnixMs(d.transition.device_time));
    if (!d.correction.empty()) alert.set_correction(d.correction);
    if (!d.transition.summary.empty()) alert.set_summary(d.transition.summary);
    active_.erase(it);
  }
  *ev.mutable_alert() = std::move(alert);
  return ev;
}

void CommitGate::Number(const std::vector<AlertDraft>& alerts, std::vector<AuditDraft>& audit,
                        LogPosition& at, store::WriteGroup& out,
                        std::vector<v1::AlertEvent>* events) {
  for (const AlertDraft& d : alerts) {
    const uint64_t cursor = ++at.last_cursor;
    v1::AlertEvent ev = BuildEvent(d, cursor);
    out.alerts.emplace_back(cursor, ev.SerializeAsString());
    if (events != nullptr) events->push_back(std::move(ev));
  }
  for (AuditDraft& a : audit) {
    a.record.set_sequence(++at.last_audit_seq);
    a.record.set_previous_hash_hex(at.last_audit_hash.empty() ? audit::kGenesisPreviousHashHex
                                                              : at.last_audit_hash);
    a.record.set_hash_hex(AuditHash(a.record));
    at.last_audit_hash = a.record.hash_hex();
    out.audit.emplace_back(a.record.sequence(), a.record.SerializeAsString());
  }
  next_cursor_ = std::max(next_cursor_, at.last_cursor + 1);
  if (at.last_audit_seq + 1 > next_audit_seq_) {
    next_audit_seq_ = at.last_audit_seq + 1;
    last_audit_hash_ = at.last_audit_hash;
  }
}

absl::Status CommitGate::AppendToSharedLog(const std::vector<AlertDraft>& alerts,
                                           std::vector<AuditDraft>& audit, store::LogTail& tail,
                                           store::WriteGroup& out) {
  LogPosition at{tail.last_cursor, tail.last_audit_seq, ""};
  if (!audit.empty() && tail.last_audit_seq > 0) {
    v1::AuditRecord last;
    if (!last.ParseFromString(tail.last_audit_record)) {
      return absl::DataLossError(absl::StrCat("audit record ", tail.last_audit_seq,
                                              " does not parse; the store is damaged"));
    }
    at.last_audit_hash = last.hash_hex();
  }
  absl::MutexLock lock(&mu_);
  Number(alerts, audit, at, out, nullptr);
  tail.last_cursor = at.last_cursor;
  if (!audit.empty()) {
    tail.last_audit_seq = at.last_audit_seq;
    tail.last_audit_record = out.audit.back().second;
  }
  return absl::OkStatus();
}

absl::Status CommitGate::Submit(PendingGroup pending, DoneFn done) {
  if (shared_log_) {
    // Several replicas append to the one log: the entries are numbered when the group is
    // committed, under the store's log lock, right after what is stored then. They reach
    // the listeners through Follow.
    if (!pending.alerts.empty() || !pending.audit.empty()) {
      pending.group.log_appends.push_back(
          [this, alerts = std::move(pending.alerts), audit = std::move(pending.audit)](
              store::LogTail& tail, store::WriteGroup& out) mutable {
            return AppendToSharedLog(alerts, audit, tail, out);
          });
    }
    return committer_->SubmitBlocking(std::move(pending.group), std::move(done));
  }
  std::vector<v1::AlertEvent> events;
  absl::MutexLock lock(&mu_);
  events.reserve(pending.alerts.size());
  LogPosition at{next_cursor_ - 1, next_audit_seq_ - 1, last_audit_hash_};
  Number(pending.alerts, pending.audit, at, pending.group, &events);
  // Queue while still holding the lock: queue order == cursor order.
  auto on_commit = [this, events = std::move(events), done = std::move(done)](absl::Status s) {
    if (s.ok() && !events.empty()) {
      for (AlertListener* l : listeners_) l->OnAlertEvents(events);
    }
    if (done) done(s);
  };
  return committer_->SubmitBlocking(std::move(pending.group), std::move(on_commit));
}

std::vector<v1::Alert> CommitGate::ActiveAlerts(const std::string& pump_id) const {
  std::vector<v1::Alert> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [key, alert] : active_) {
    if (pump_id.empty() || key.pump_id == pump_id) out.push_back(alert);
  }
  return out;
}

std::optional<v1::Alert> CommitGate::FindActive(const std::string& pump_id,
                                                v1::AlertType type) const {
  absl::MutexLock lock(&mu_);
  auto it = active_.find(Key{pump_id, static_cast<int>(type)});
  if (it == active_.end()) return std::nullopt;
  return it->second;
}

std::optional<v1::Alert> CommitGate::FindActiveById(const std::string& pump_id,
                                                    const std::string& alert_id) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [key, alert] : active_) {
    if (key.pump_id == pump_id && alert.alert_id() == alert_id) return alert;
  }
  return std::nullopt;
}

uint64_t CommitGate::last_cursor() const {
  absl::MutexLock lock(&mu_);
  return next_cursor_ - 1;
}

}  // namespace pumptwin::server
