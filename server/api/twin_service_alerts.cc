// TwinService.ListAlerts and AcknowledgeAlert. Active alerts come from the CommitGate's
// book; history (resolved alerts) is folded from the store's alert event log. An
// acknowledgement is checked and submitted on the pump's shard thread, the only thread
// that submits that pump's raise/resolve events, so it cannot race a resolution.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "device_link/input_limits.h"
#include "server/api/twin_service.h"
#include "server/core/commit_gate.h"
#include "server/core/convert.h"

namespace pumptwin::server {
namespace {

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;

struct AlertName {
  std::string pump_id;
  std::string alert_id;
  uint64_t raise_cursor = 0;  // the cursor in "<type>-<cursor>"
};

absl::StatusOr<AlertName> ParseAlertName(const std::string& name) {
  const std::string expected = "expected pumps/{pump_id}/alerts/{alert_id}";
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "name=", device_link::Echo(name), " is not an alert resource name (", expected, ")"));
  };
  if (name.rfind("pumps/", 0) != 0) return bad();
  size_t slash = name.find('/', 6);
  if (slash == std::string::npos || slash == 6) return bad();
  const std::string mid = "/alerts/";
  if (name.compare(slash, mid.size(), mid) != 0) return bad();
  AlertName out;
  out.pump_id = name.substr(6, slash - 6);
  out.alert_id = name.substr(slash + mid.size());
  if (out.alert_id.empty() || out.alert_id.find('/') != std::string::npos) return bad();
  if (absl::Status s = device_link::ValidateId(out.pump_id, "name's pump_id"); !s.ok()) return s;
  if (out.alert_id.size() > device_link::kMaxIdBytes) return bad();
  size_t dash = out.alert_id.rfind('-');
  if (dash == std::string::npos ||
      !absl::SimpleAtoi(out.alert_id.substr(dash + 1), &out.raise_cursor) ||
      out.raise_cursor == 0) {
    return absl::NotFoundError(absl::StrCat("alert '", name,
                                            "' does not exist (alert ids look "
                                            "like flow_drift_over-42)"));
  }
  return out;
}

bool Keep(const v1::ListAlertsRequest& r, const v1::Alert& a) {
  if (!r.pump_id().empty() && a.pump_id() != r.pump_id()) return false;
  if (!r.clinic().empty() && a.clinic() != r.clinic()) return false;
  if (r.type() != v1::ALERT_TYPE_UNSPECIFIED && a.type() != r.type()) return false;
  if (r.min_severity() != v1::SEVERITY_UNSPECIFIED && a.severity() < r.min_severity()) {
    return false;
  }
  if (r.state() != v1::ALERT_STATE_UNSPECIFIED && a.state() != r.state()) return false;
  if (r.active_only() && a.state() == v1::ALERT_STATE_RESOLVED) return false;
  return true;
}

uint64_t RaiseCursorOf(const v1::Alert& a) {
  size_t dash = a.alert_id().rfind('-');
  uint64_t c = 0;
  if (dash != std::string::npos) (void)absl::SimpleAtoi(a.alert_id().substr(dash + 1), &c);
  return c;
}

// Latest state of every alert in the event log, keyed by its raise cursor.
absl::Status FoldHistory(const store::Store& store, std::map<uint64_t, v1::Alert>* out) {
  return ForEachStoredAlertEvent(store, [out](uint64_t, const v1::AlertEvent& ev) {
    (*out)[RaiseCursorOf(ev.alert())] = ev.alert();
  });
}

}  // namespace

grpc::ServerUnaryReactor* TwinServiceImpl::ListAlerts(grpc::CallbackServerContext* ctx,
                                                      const v1::ListAlertsRequest* req,
                                                      v1::ListAlertsResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  auto fail = [reactor](const absl::Status& s) { return FinishWith(reactor, s); };
  auto principal = deps_.auth->Check(*ctx, Role::kViewer);
  if (!principal.ok()) return fail(principal.status());
  // A caller scoped to a clinic lists that clinic's alerts only.
  auto clinic = ScopedClinic(*principal, req->clinic());
  if (!clinic.ok()) return fail(clinic.status());
  if (!req->pump_id().empty()) {
    if (absl::Status s = CheckPumpInScope(deps_.registry->directory(), *principal, req->pump_id());
        !s.ok()) {
      return fail(s);
    }
  }
  v1::ListAlertsRequest scoped;
  if (*clinic != req->clinic()) {
    scoped = *req;
    scoped.set_clinic(*clinic);
    req = &scoped;
  }
  if (req->page_size() < 0 || req->page_size() > kMaxPageSize) {
    return fail(absl::InvalidArgumentError(absl::StrCat("page_size=", req->page_size(),
                                                        " must be 0 (default ", kDefaultPageSize,
                                                        ") to ", kMaxPageSize)));
  }
  if (!v1::AlertType_IsValid(req->type()) || !v1::Severity_IsValid(req->min_severity()) ||
      !v1::AlertState_IsValid(req->state())) {
    return fail(
        absl::InvalidArgumentError("type, min_severity or state is not a known enum value"));
  }
  uint64_t after = 0;
  if (!req->page_token().empty() && !absl::SimpleAtoi(req->page_token(), &after)) {
    return fail(
        absl::InvalidArgumentError(absl::StrCat("page_token=", device_link::Echo(req->page_token()),
                                                " is not a token returned by ListAlerts")));
  }
  const size_t page = req->page_size() == 0 ? kDefaultPageSize : req->page_size();
  // Both sources are ordered by raise cursor; the page token is the last one returned.
  std::map<uint64_t, v1::Alert> alerts;
  const bool active_only = req->active_only() || req->state() == v1::ALERT_STATE_RAISED ||
                           req->state() == v1::ALERT_STATE_ACKNOWLEDGED;
  if (active_only) {
    for (v1::Alert& a : deps_.gate->ActiveAlerts(req->pump_id())) {
      alerts[RaiseCursorOf(a)] = std::move(a);
    }
  } else if (absl::Status s = FoldHistory(*deps_.store, &alerts); !s.ok()) {
    return fail(s);
  }
  for (auto it = alerts.upper_bound(after); it != alerts.end(); ++it) {
    if (!Keep(*req, it->second)) continue;
    if (static_cast<size_t>(resp->alerts_size()) == page) {
      resp->set_next_page_token(absl::StrCat(RaiseCursorOf(resp->alerts(resp->alerts_size() - 1))));
      break;
    }
    *resp->add_alerts() = it->second;
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* TwinServiceImpl::AcknowledgeAlert(grpc::CallbackServerContext* ctx,
                                                            const v1::AcknowledgeAlertRequest* req,
                                                            v1::Alert* resp) {
  auto* reactor = ctx->DefaultReactor();
  auto principal = deps_.auth->Check(*ctx, Role::kClinician);
  if (!principal.ok()) return FinishWith(reactor, principal.status());
  auto name = ParseAlertName(req->name());
  if (!name.ok()) return FinishWith(reactor, name.status());
  if (absl::Status s = CheckPumpInScope(deps_.registry->directory(), *principal, name->pump_id);
      !s.ok()) {
    return FinishWith(reactor, s);
  }
  if (req->comment().size() > 4096) {
    return FinishWith(
        reactor, absl::InvalidArgumentError(absl::StrCat("comment is ", req->comment().size(),
                                                         " bytes; at most 4096 are accepted")));
  }
  CommitGate* gate = deps_.gate;
  store::Store* store = deps_.store;
  absl::Time now = deps_.now();
  std::string full_name = req->name();
  std::string comment = req->comment();
  Principal who = *principal;
  // On the pump's shard thread: no resolve of this pump can be submitted meanwhile.
  deps_.registry->Read(name->pump_id, [=, name = *name](const twin::Twin* twin, absl::Status st) {
    if (twin == nullptr) {
      reactor->Finish(ToGrpc(
          absl::IsNotFound(st)
              ? absl::NotFoundError(absl::StrCat("alert '", full_name, "' does not exist: pump '",
                                                 name.pump_id, "' is not registered"))
              : st));
      return;
    }
    auto active = gate->FindActiveById(name.pump_id, name.alert_id);
    if (!active.has_value()) {
      auto raised = store->ScanAlertsAfter(name.raise_cursor - 1, 1);
      v1::AlertEvent ev;
      if (raised.ok() && !raised->empty() && ev.ParseFromString(raised->front().second) &&
          ev.alert().name() == full_name) {
        reactor->Finish(ToGrpc(absl::FailedPreconditionError(
            absl::StrCat("alert '", full_name,
                         "' is resolved; only raised or acknowledged alerts can be "
                         "acknowledged (see ListAlerts with active_only)"))));
      } else if (!raised.ok()) {
        reactor->Finish(ToGrpc(raised.status()));
      } else {
        reactor->Finish(
            ToGrpc(absl::NotFoundError(absl::StrCat("alert '", full_name, "' does not exist"))));
      }
      return;
    }
    PendingGroup pending;
    AlertDraft draft;
    draft.pump_id = name.pump_id;
    draft.clinic = active->clinic();
    draft.transition.type = static_cast<twin::AlertType>(active->type());
    draft.server_time = now;
    draft.acknowledge = true;
    draft.acknowledged_by = who.actor;
    draft.comment = comment;
    pending.alerts.push_back(std::move(draft));
    v1::Alert after = *active;
    after.set_state(v1::ALERT_STATE_ACKNOWLEDGED);
    after.set_acknowledged_by(who.actor);
    after.set_acknowledge_comment(comment);
    after.set_acknowledged_time_ms(ToUnixMs(now));
    after.set_updated_time_ms(ToUnixMs(now));
    pending.audit.push_back(MakeAudit(who, now, "AcknowledgeAlert", full_name, MessageJson(*active),
                                      MessageJson(after), comment));
    *resp = after;
    absl::Status s = gate->Submit(std::move(pending), [reactor](absl::Status s) {
      reactor->Finish(
          ToGrpc(s.ok() ? s
                        : absl::UnavailableError(absl::StrCat(
                              "the acknowledgement was not stored: ", s.message(), "; retry"))));
    });
    if (!s.ok()) reactor->Finish(ToGrpc(s));
  });
  return reactor;
}

}  // namespace pumptwin::server
