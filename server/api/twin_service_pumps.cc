// TwinService pump methods: the twin a registration starts with (new implant or
// enrolment), ListPumps (directory filters, id or urgency order, opaque page tokens, full
// registrations from the store) and DecommissionPump (archive, link a successor, audit).
// See docs/api.md "Method reference (server)".
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/grpc_status.h"
#include "device_link/input_limits.h"
#include "server/api/call_forwarder.h"
#include "server/api/twin_service.h"
#include "server/api/twin_service_common.h"
#include "server/core/convert.h"
#include "server/core/pump_list.h"
#include "server/core/pump_registration.h"

namespace pumptwin::server {
namespace {

constexpr int kDefaultPumpPage = 100;
constexpr int kMaxPumpPage = 1000;

// Filters and order hashed into the token, so a token is only valid for the same query.
std::string QueryFingerprint(const v1::ListPumpsRequest& r) {
  return absl::StrCat(r.clinic().size(), ":", r.clinic(), ",", r.alerting_only(), ",",
                      r.min_severity(), ",", r.stale_only(), ",", r.refill_due_before_ms(), ",",
                      r.battery_replacement_due_before_ms(), ",", r.include_decommissioned(), ",",
                      r.order());
}

absl::Status ValidateList(const v1::ListPumpsRequest& r) {
  if (r.min_severity() < v1::SEVERITY_UNSPECIFIED || r.min_severity() > v1::SEVERITY_CRITICAL) {
    return absl::InvalidArgumentError(absl::StrCat("min_severity=", r.min_severity(),
                                                   " is not a Severity (0..3: UNSPECIFIED, INFO, "
                                                   "WARNING, CRITICAL)"));
  }
  if (r.order() != v1::PUMP_ORDER_UNSPECIFIED && r.order() != v1::PUMP_ORDER_URGENCY) {
    return absl::InvalidArgumentError(
        absl::StrCat("order=", r.order(), " is not a PumpOrder (0: by id, 1: URGENCY)"));
  }
  if (r.refill_due_before_ms() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refill_due_before_ms=", r.refill_due_before_ms(), " must be >= 0 (0: no filter)"));
  }
  if (r.battery_replacement_due_before_ms() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("battery_replacement_due_before_ms=", r.battery_replacement_due_before_ms(),
                     " must be >= 0 (0: no filter)"));
  }
  return absl::OkStatus();
}

// Token payload: fingerprint \x1f neg_severity \x1f due_ms \x1f id (of the last pump).
std::string KeyToken(const ListKey& k, const std::string& fingerprint) {
  return EncodePageToken(
      "pumps", absl::StrCat(fingerprint, "\x1f", k.neg_severity, "\x1f", k.due_ms, "\x1f", k.id));
}

absl::StatusOr<ListKey> KeyFromToken(const std::string& token, const std::string& fingerprint) {
  auto payload = DecodePageToken(token, "pumps", "ListPumps");
  if (!payload.ok()) return payload.status();
  std::vector<std::string> parts = absl::StrSplit(*payload, '\x1f');
  ListKey k;
  if (parts.size() != 4 || !absl::SimpleAtoi(parts[1], &k.neg_severity) ||
      !absl::SimpleAtoi(parts[2], &k.due_ms)) {
    return absl::InvalidArgumentError(
        "page_token is malformed; start again with an empty page_token");
  }
  if (parts[0] != fingerprint) {
    return absl::InvalidArgumentError(
        "page_token was issued for different filters or order; keep the filters of the "
        "first page, or start again with an empty page_token");
  }
  k.id = parts[3];
  return k;
}

}  // namespace

absl::Status CheckNotTooFarAhead(const char* field, int64_t time_ms, absl::Time now,
                                 absl::Duration max_future) {
  const absl::Time t = FromUnixMs(time_ms);
  if (t <= now + max_future) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      field, "=", time_ms, " is ", absl::FormatDuration(absl::Trunc(t - now, absl::Minutes(1))),
      " after the server time; times may be at most ", absl::FormatDuration(max_future),
      " ahead (max_device_time_in_future): check the date"));
}

absl::StatusOr<twin::Twin> RegistrationTwin(const RegistrationInput& in, absl::Time now,
                                            absl::Duration max_future,
                                            const twin::DrugLibrary& library) {
  const v1::Pump& pump = *in.pump;
  if (absl::Status s =
          CheckNotTooFarAhead("pump.implant_time_ms", pump.implant_time_ms(), now, max_future);
      !s.ok()) {
    return s;
  }
  auto cfg = ToPumpConfig(pump);
  if (!cfg.ok()) return cfg.status();
  if (in.initial_prescription == nullptr) {
    return absl::InvalidArgumentError(
        "initial_prescription is required: give the drug and concentration the pump is filled "
        "with at implant, or in force at the enrolment's interrogation (mode "
        "THERAPY_MODE_STOPPED if it is not infusing)");
  }
  auto parsed_rx = ToPrescription(*in.initial_prescription);
  if (!parsed_rx.ok()) return parsed_rx.status();
  twin::Prescription rx = *std::move(parsed_rx);
  rx.version = 1;
  absl::StatusOr<twin::Twin> twin;
  if (in.enrolment != nullptr) {
    const v1::Enrolment& e = *in.enrolment;
    if (pump.implant_time_ms() <= 0) {
      return absl::InvalidArgumentError(
          "pump.implant_time_ms is required with an enrolment (the battery and the service "
          "life are counted from it)");
    }
    for (auto [field, ms] :
         {std::pair{"enrolment.interrogation_time_ms", e.interrogation_time_ms()},
          std::pair{"enrolment.last_refill_time_ms", e.last_refill_time_ms()}}) {
      if (absl::Status s = CheckNotTooFarAhead(field, ms, now, max_future); !s.ok()) return s;
    }
    auto enrolment = ToEnrolment(e);
    if (!enrolment.ok()) return enrolment.status();
    twin = twin::Twin::Enrol(*cfg, rx, *enrolment, library);
  } else {
    const absl::Time start = pump.implant_time_ms() > 0 ? FromUnixMs(pump.implant_time_ms()) : now;
    twin = twin::Twin::Create(*cfg, rx, twin::Microliters(in.initial_reservoir_ul), start, library);
  }
  if (twin.ok()) twin->SetRegistered(now);
  return twin;
}

grpc::ServerUnaryReactor* TwinServiceImpl::ListPumps(grpc::CallbackServerContext* ctx,
                                                     const v1::ListPumpsRequest* req,
                                                     v1::ListPumpsResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  auto fail = [reactor](const absl::Status& s) { return FinishWith(reactor, s); };
  auto principal = deps_.auth->Check(*ctx, Role::kViewer);
  if (!principal.ok()) return fail(principal.status());
  if (absl::Status s = ValidateList(*req); !s.ok()) return fail(s);
  // A caller scoped to a clinic lists that clinic's pumps only.
  auto clinic = ScopedClinic(*principal, req->clinic());
  if (!clinic.ok()) return fail(clinic.status());
  v1::ListPumpsRequest scoped;
  if (*clinic != req->clinic()) {
    scoped = *req;
    scoped.set_clinic(*clinic);
    req = &scoped;
  }
  auto page_size = PageSize(req->page_size(), kDefaultPumpPage, kMaxPumpPage);
  if (!page_size.ok()) return fail(page_size.status());
  const std::string fingerprint = QueryFingerprint(*req);
  std::optional<ListKey> after;
  if (!req->page_token().empty()) {
    auto k = KeyFromToken(req->page_token(), fingerprint);
    if (!k.ok()) return fail(k.status());
    after = *std::move(k);
  }

  const PumpPage page =
      SelectPumps(deps_.registry->directory(), *req, after, static_cast<size_t>(*page_size));
  const bool for_a_replica = CallForwarder::IsForwarded(*ctx);
  std::vector<ListKey> keys;
  for (const ListKey& key : page.keys) {
    auto bytes = deps_.store->GetPump(key.id);
    if (!bytes.ok()) {
      if (absl::IsNotFound(bytes.status())) continue;  // registration raced: skip
      return fail(bytes.status());
    }
    if (!resp->add_pumps()->ParseFromString(*bytes)) {
      return fail(
          absl::DataLossError(absl::StrCat("registration of pump '", key.id, "' does not parse")));
    }
    if (for_a_replica) resp->add_page_keys(KeyToken(key, fingerprint));
    keys.push_back(key);
  }
  if (page.more && !page.keys.empty()) {
    resp->set_next_page_token(KeyToken(page.keys.back(), fingerprint));
  }
  const std::vector<std::string> peers = deps_.forwarder != nullptr
                                             ? deps_.forwarder->FanOutTargets(*ctx)
                                             : std::vector<std::string>();
  if (peers.empty()) {
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  // Cluster mode: every replica lists the pumps it serves; the page is the first page_size
  // of all their pages merged by position (the same keys on every replica).
  deps_.forwarder->FanOut<v1::ListPumpsRequest, v1::ListPumpsResponse>(
      *ctx, peers, "/pumptwin.v1.TwinService/ListPumps", *req,
      [reactor, resp, keys = std::move(keys), more = page.more, fingerprint,
       size = static_cast<size_t>(*page_size)](
          std::vector<CallForwarder::PeerAnswer<v1::ListPumpsResponse>> answers) mutable {
        std::vector<std::pair<ListKey, v1::Pump>> all;
        for (size_t i = 0; i < keys.size(); ++i) {
          all.emplace_back(keys[i], std::move(*resp->mutable_pumps(static_cast<int>(i))));
        }
        for (auto& a : answers) {
          if (!a.status.ok()) {
            reactor->Finish(grpc::Status(
                a.status.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
                        a.status.error_code() == grpc::StatusCode::UNAUTHENTICATED
                    ? a.status.error_code()
                    : grpc::StatusCode::UNAVAILABLE,
                absl::StrCat("the replica at ", a.address,
                             " did not answer for its pumps: ", a.status.error_message(),
                             "; retry (a replica that stopped is replaced within the lease TTL)")));
            return;
          }
          if (a.response.page_keys_size() != a.response.pumps_size()) {
            reactor->Finish(grpc::Status(
                grpc::StatusCode::INTERNAL,
                absl::StrCat("the replica at ", a.address, " answered without page positions")));
            return;
          }
          more = more || !a.response.next_page_token().empty();
          for (int k = 0; k < a.response.pumps_size(); ++k) {
            auto key = KeyFromToken(a.response.page_keys(k), fingerprint);
            if (!key.ok()) {
              reactor->Finish(ToGrpc(key.status()));
              return;
            }
            all.emplace_back(*std::move(key), std::move(*a.response.mutable_pumps(k)));
          }
        }
        std::sort(all.begin(), all.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        more = more || all.size() > size;
        if (all.size() > size) all.resize(size);
        resp->Clear();
        for (auto& [key, pump] : all) *resp->add_pumps() = std::move(pump);
        if (more && !all.empty()) {
          resp->set_next_page_token(KeyToken(all.back().first, fingerprint));
        }
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

grpc::ServerUnaryReactor* TwinServiceImpl::DecommissionPump(grpc::CallbackServerContext* ctx,
                                                            const v1::DecommissionPumpRequest* req,
                                                            v1::Pump* resp) {
  PumpChange call(deps_, &overlay_, ctx, Role::kAdmin, req->name());
  if (!call.ok()) return call.Fail(call.status());
  const std::string& pump_id = call.pump_id();
  const std::string successor = req->replaced_by_pump_id();
  if (!successor.empty()) {
    if (absl::Status s = device_link::ValidateId(successor, "replaced_by_pump_id"); !s.ok()) {
      return call.Fail(s);
    }
  }
  if (successor == pump_id) {
    return call.Fail(
        absl::InvalidArgumentError(absl::StrCat("replaced_by_pump_id='", successor,
                                                "' is the pump being decommissioned; name the "
                                                "successor pump, or leave it empty")));
  }
  PumpDirectory* dir = &deps_.registry->directory();
  if (!dir->Contains(pump_id)) {
    return call.Fail(absl::NotFoundError(absl::StrCat("pump '", pump_id, "' is not registered")));
  }
  if (!successor.empty()) {
    auto e = dir->Get(successor);
    if (!e.has_value()) {
      return call.Fail(absl::FailedPreconditionError(
          absl::StrCat("replaced_by_pump_id='", successor,
                       "' is not registered; register the successor "
                       "pump first (RegisterPump), then decommission '",
                       pump_id, "'")));
    }
    if (e->lifecycle == v1::PUMP_LIFECYCLE_DECOMMISSIONED) {
      return call.Fail(absl::FailedPreconditionError(
          absl::StrCat("replaced_by_pump_id='", successor, "' is itself decommissioned")));
    }
  }
  // The old pump's registration is read-modify-written on its shard thread and the
  // successor's on the successor's (they may differ): each is serialised with every other
  // change of that pump. Without a successor that is one change. With one, the old pump is
  // checked on its shard (and its registration claimed), then the successor is checked on
  // its shard, which commits both registrations and both audit records in one group.
  auto before = std::make_shared<v1::Pump>();  // the old pump's registration when checked
  auto check = [before](PumpChangeScope& c) -> absl::Status {
    auto pump = c.LoadRegistration();
    if (!pump.ok()) return pump.status();
    if (pump->lifecycle() == v1::PUMP_LIFECYCLE_DECOMMISSIONED) {
      return absl::FailedPreconditionError(
          absl::StrCat("pump '", c.pump_id(), "' is already decommissioned",
                       pump->replaced_by_pump_id().empty()
                           ? ""
                           : absl::StrCat(" (replaced by '", pump->replaced_by_pump_id(), "')")));
    }
    *before = *std::move(pump);
    return absl::OkStatus();
  };
  // Both registrations into the change; the directory follows.
  auto link = [dir, successor, before, resp](PumpChangeScope& c) -> absl::StatusOr<ChangeJson> {
    v1::Pump after = *before;
    after.set_lifecycle(v1::PUMP_LIFECYCLE_DECOMMISSIONED);
    after.set_replaced_by_pump_id(successor);
    std::optional<v1::Pump> succ_before, succ_after;
    if (!successor.empty()) {
      auto s = c.LoadRegistrationOf(successor);
      if (!s.ok()) return s.status();
      if (s->lifecycle() == v1::PUMP_LIFECYCLE_DECOMMISSIONED) {
        return absl::FailedPreconditionError(
            absl::StrCat("replaced_by_pump_id='", successor, "' is itself decommissioned"));
      }
      if (!s->replaces_pump_id().empty() && s->replaces_pump_id() != c.pump_id()) {
        return absl::FailedPreconditionError(
            absl::StrCat("replaced_by_pump_id='", successor, "' already replaces pump '",
                         s->replaces_pump_id(), "'; a pump has at most one predecessor"));
      }
      succ_before = *s;
      succ_after = *s;
      succ_after->set_replaces_pump_id(c.pump_id());
    }
    // Staging replaces the claim (if any): the old pump's newest registration is `after`.
    c.StageRegistration(after);
    if (succ_after.has_value()) {
      c.StageRegistrationOf(*succ_after);
      c.AuditAlso(PumpName(successor), {MessageJson(*succ_before), MessageJson(*succ_after)});
      dir->Put(*succ_after);
    }
    // From here on ingest for this pump is nacked DECOMMISSIONED (directory lifecycle).
    dir->Put(after);
    *resp = after;
    return ChangeJson{MessageJson(*before), MessageJson(after)};
  };
  if (successor.empty()) {
    return call.ApplyAnyLifecycle("DecommissionPump", req->reason(),
                                  [check, link](PumpChangeScope& c) -> absl::StatusOr<ChangeJson> {
                                    if (absl::Status s = check(c); !s.ok()) return s;
                                    return link(c);
                                  });
  }
  return call.ApplyAcross("DecommissionPump", req->reason(), successor, std::move(check),
                          std::move(link));
}

}  // namespace pumptwin::server
