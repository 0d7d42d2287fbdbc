// TwinService therapy methods: SetPrescription (optimistic concurrency, drug-library hard
// and soft limits, history in store meta), GetPrescriptionHistory, ReplayTwin (what-if on
// a copy of the twin) and ListDrugs. See docs/api.md "Method reference (server)" and
// docs/storage.md "Prescription history".
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/grpc_status.h"
#include "server/api/twin_service.h"
#include "server/api/twin_service_common.h"
#include "server/core/clinical_time.h"
#include "server/core/convert.h"
#include "server/core/event_inputs.h"
#include "server/store/store_keys.h"

namespace pumptwin::server {
namespace {

constexpr int kDefaultHistoryPage = 20;
constexpr int kMaxHistoryPage = 100;
constexpr int64_t kDefaultHorizonMs = 30LL * 24 * 3600 * 1000;
constexpr int64_t kMaxHorizonMs = 5LL * 366 * 24 * 3600 * 1000;
constexpr int64_t kMaxReplayPoints = 100000;
// How far ahead of server time a prescription may take effect: a planned change is
// entered days or weeks ahead; a date beyond a year is a typing error (docs/api.md).
constexpr absl::Duration kMaxEffectiveAhead = absl::Hours(24 * 366);

std::shared_ptr<const DrugLibrarySnapshot> Library(const DrugLibraryHolder* holder) {
  return DrugLibraryHolder::Current(holder);
}

// Newest set prescription (a pending one counts: it is the latest version).
twin::Prescription LatestPrescription(const twin::Twin& t) {
  auto pending = t.pending_prescription();
  return pending.has_value() ? *pending : t.prescription();
}

std::string Describe(const twin::LimitViolation& v) {
  return absl::StrCat(v.code, ": ", v.field, "=", v.value,
                      v.limit != 0 ? absl::StrCat(" (limit ", v.limit, ")") : "", ": ", v.message);
}

// INVALID_ARGUMENT listing every hard violation, FAILED_PRECONDITION listing every soft
// one not acknowledged, else OK.
absl::Status CheckViolations(const std::vector<twin::LimitViolation>& v,
                             const google::protobuf::RepeatedPtrField<std::string>& acked,
                             const std::string& library_version) {
  std::vector<std::string> hard, soft;
  for (const auto& x : v) {
    if (x.hard) {
      hard.push_back(Describe(x));
    } else if (std::find(acked.begin(), acked.end(), x.code) == acked.end()) {
      soft.push_back(Describe(x));
    }
  }
  if (!hard.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("prescription violates hard limits of drug library ", library_version, ": ",
                     absl::StrJoin(hard, "; "), "; nothing was changed"));
  }
  if (!soft.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "prescription exceeds soft limits; to proceed, repeat the call with these codes in "
        "acknowledged_warnings: ",
        absl::StrJoin(soft, "; ")));
  }
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* TwinServiceImpl::SetPrescription(grpc::CallbackServerContext* ctx,
                                                           const v1::SetPrescriptionRequest* req,
                                                           v1::SetPrescriptionResponse* resp) {
  PumpChange call(deps_, &overlay_, ctx, Role::kClinician, req->name());
  if (!call.ok()) return call.Fail(call.status());
  auto fail = [&call](const absl::Status& s) { return call.Fail(s); };
  if (!req->has_prescription()) {
    return fail(absl::InvalidArgumentError("prescription is required"));
  }
  if (req->expected_version() == 0) {
    return fail(absl::InvalidArgumentError(
        "expected_version=0: pass the current prescription version (TwinState."
        "prescription_version, or the newest of GetPrescriptionHistory); versions start at 1"));
  }
  if (req->prescription().mode() == v1::THERAPY_MODE_UNSPECIFIED) {
    return fail(absl::InvalidArgumentError(
        "prescription.mode is required: THERAPY_MODE_SIMPLE_CONTINUOUS, THERAPY_MODE_FLEX, "
        "or THERAPY_MODE_STOPPED to stop the infusion; nothing was changed"));
  }
  if (req->prescription().effective_time_ms() < 0) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("prescription.effective_time_ms=", req->prescription().effective_time_ms(),
                     " must be >= 0 (0: now)")));
  }
  if (const absl::Time latest = deps_.now() + kMaxEffectiveAhead;
      req->prescription().effective_time_ms() > ToUnixMs(latest)) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "prescription.effective_time_ms=", req->prescription().effective_time_ms(), " (",
        absl::FormatTime("%Y-%m-%d", FromUnixMs(req->prescription().effective_time_ms()),
                         absl::UTCTimeZone()),
        ") is more than 366 days ahead of server time; check the date; nothing was changed")));
  }
  auto rx = ToPrescription(req->prescription());
  if (!rx.ok()) return fail(rx.status());
  auto lib = Library(deps_.drugs);
  store::Store* st = deps_.store;
  return call.Apply(
      "SetPrescription", req->prescription().reason(),
      [req, resp, lib, st,
       parsed = *std::move(rx)](PumpChangeScope& c) -> absl::StatusOr<ChangeJson> {
        twin::Twin& t = c.twin();
        MutationContext& mctx = c.mutation();
        const std::string& pump_id = c.pump_id();
        const twin::Prescription old = LatestPrescription(t);
        if (req->expected_version() != old.version) {
          return absl::AbortedError(absl::StrCat(
              "expected_version=", req->expected_version(),
              " but the current prescription of pump '", pump_id, "' is version ", old.version,
              " (changed by someone else); re-read it, "
              "review the change and retry with expected_version=",
              old.version));
        }
        twin::Prescription rx = parsed;
        std::vector<twin::LimitViolation> v = t.ValidatePrescription(rx, lib->library);
        if (absl::Status s = CheckViolations(v, req->acknowledged_warnings(), lib->version);
            !s.ok()) {
          return s;
        }
        rx.version = old.version + 1;
        const absl::Time model = t.device_time();
        const absl::Time eff = req->prescription().effective_time_ms() > 0
                                   ? FromUnixMs(req->prescription().effective_time_ms())
                                   : model;
        // One of the pump's event-time inputs: a back-dated change applies at its effective
        // time (a rewind), a later one is pending from now (the twin activates it).
        v1::SetPrescriptionRequest record;
        *record.mutable_prescription() = FromPrescription(rx);
        record.mutable_prescription()->set_effective_time_ms(
            req->prescription().effective_time_ms());
        *record.mutable_acknowledged_warnings() = req->acknowledged_warnings();
        if (absl::Status s =
                mctx.apply_input(MakeClinicalInput(InputKind::kPrescription, std::min(eff, model),
                                                   mctx.server_time, record.SerializeAsString()),
                                 nullptr);
            !s.ok()) {
          return s;
        }
        v1::Prescription before = FromPrescription(old);
        v1::Prescription stored = FromPrescription(rx);
        stored.set_effective_time_ms(ToUnixMs(eff));
        stored.set_set_by(c.who().actor);
        stored.set_reason(req->prescription().reason());
        if (old.version == 1 &&
            absl::IsNotFound(st->GetMeta(store::keys::RxHistoryMetaKey(pump_id, 1)).status())) {
          // Version 1 came with the registration: record it once, when it is superseded.
          v1::Prescription first = before;
          first.set_reason("initial prescription (RegisterPump)");
          mctx.extra.meta.emplace_back(store::keys::RxHistoryMetaKey(pump_id, 1),
                                       first.SerializeAsString());
        }
        mctx.extra.meta.emplace_back(store::keys::RxHistoryMetaKey(pump_id, rx.version),
                                     stored.SerializeAsString());
        *resp->mutable_prescription() = stored;
        for (const twin::LimitViolation& x : v) {
          if (!x.hard) *resp->add_warnings() = FromViolation(x);
        }
        return ChangeJson{MessageJson(before), MessageJson(stored)};
      });
}

grpc::ServerUnaryReactor* TwinServiceImpl::GetPrescriptionHistory(
    grpc::CallbackServerContext* ctx, const v1::GetPrescriptionHistoryRequest* req,
    v1::GetPrescriptionHistoryResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  auto fail = [reactor](const absl::Status& s) { return FinishWith(reactor, s); };
  auto id = AuthorizedPumpId(deps_, *ctx, Role::kViewer, req->name());
  if (!id.ok()) return fail(id.status());
  auto page_size = PageSize(req->page_size(), kDefaultHistoryPage, kMaxHistoryPage);
  if (!page_size.ok()) return fail(page_size.status());
  uint64_t start_version = 0;  // 0: newest
  if (!req->page_token().empty()) {
    auto payload = DecodePageToken(req->page_token(), "rxh", "GetPrescriptionHistory");
    if (!payload.ok()) return fail(payload.status());
    if (!absl::SimpleAtoi(*payload, &start_version) || start_version == 0) {
      return fail(absl::InvalidArgumentError(
          "page_token is malformed; start again with an empty page_token"));
    }
  }
  store::Store* st = deps_.store;
  const int n = *page_size;
  deps_.registry->Read(*id, [reactor, resp, st, n, start_version, pump_id = *id](
                                const twin::Twin* t, absl::Status s) {
    if (t == nullptr) {
      reactor->Finish(ToGrpc(s));
      return;
    }
    const twin::Prescription latest = LatestPrescription(*t);
    uint64_t v = start_version == 0 ? latest.version : std::min(start_version, latest.version);
    for (; v >= 1 && resp->prescriptions_size() < n; --v) {
      auto bytes = st->GetMeta(store::keys::RxHistoryMetaKey(pump_id, v));
      if (bytes.ok()) {
        if (!resp->add_prescriptions()->ParseFromString(*bytes)) {
          reactor->Finish(ToGrpc(absl::DataLossError(absl::StrCat(
              "prescription history of pump '", pump_id, "' version ", v, " does not parse"))));
          return;
        }
      } else if (absl::IsNotFound(bytes.status())) {
        // Only version 1 of a pump never re-prescribed lacks a record: the live twin has it.
        if (v == latest.version) *resp->add_prescriptions() = FromPrescription(latest);
      } else {
        reactor->Finish(ToGrpc(bytes.status()));
        return;
      }
    }
    if (v >= 1) resp->set_next_page_token(EncodePageToken("rxh", absl::StrCat(v)));
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* TwinServiceImpl::ReplayTwin(grpc::CallbackServerContext* ctx,
                                                      const v1::ReplayTwinRequest* req,
                                                      v1::ReplayTwinResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  auto fail = [reactor](const absl::Status& s) { return FinishWith(reactor, s); };
  auto id = AuthorizedPumpId(deps_, *ctx, Role::kViewer, req->name());
  if (!id.ok()) return fail(id.status());
  const int64_t horizon_ms = req->horizon_ms() == 0 ? kDefaultHorizonMs : req->horizon_ms();
  if (horizon_ms < 0 || horizon_ms > kMaxHorizonMs) {
    return fail(absl::InvalidArgumentError(absl::StrCat("horizon_ms=", req->horizon_ms(),
                                                        " must be in [1, ", kMaxHorizonMs,
                                                        "] (5 years; 0: default 30 days)")));
  }
  int64_t step_ms = req->step_ms();
  if (step_ms < 0) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("step_ms=", step_ms, " must be >= 0 (0: horizon_ms / 100)")));
  }
  if (step_ms == 0) step_ms = std::max<int64_t>(1000, horizon_ms / 100);
  if (horizon_ms / step_ms > kMaxReplayPoints) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "horizon_ms/step_ms=", horizon_ms / step_ms, " points exceeds the limit of ",
        kMaxReplayPoints, "; raise step_ms to at least ", horizon_ms / kMaxReplayPoints + 1)));
  }
  std::optional<twin::Prescription> proposed;
  if (req->has_proposed_prescription()) {
    auto rx = ToPrescription(req->proposed_prescription());
    if (!rx.ok()) return fail(rx.status());
    proposed = *std::move(rx);
  }
  auto lib = Library(deps_.drugs);
  deps_.registry->Read(*id, [reactor, resp, lib, proposed, horizon_ms, step_ms](
                                const twin::Twin* live, absl::Status s) {
    if (live == nullptr) {
      reactor->Finish(ToGrpc(s));
      return;
    }
    twin::Twin copy = *live;  // the live twin is never touched
    if (proposed.has_value()) {
      twin::Prescription rx = *proposed;
      rx.version = LatestPrescription(copy).version + 1;
      std::vector<twin::LimitViolation> v = copy.ValidatePrescription(rx, lib->library);
      std::vector<std::string> all_codes;
      for (const auto& x : v) {
        *resp->add_violations() = FromViolation(x);
        all_codes.push_back(x.code);
      }
      if (twin::HasHardViolation(v)) {
        google::protobuf::RepeatedPtrField<std::string> none;
        reactor->Finish(ToGrpc(CheckViolations(v, none, lib->version)));
        return;
      }
      auto set = copy.SetPrescription(rx, copy.device_time(), all_codes, nullptr, lib->library);
      if (!set.ok()) {
        reactor->Finish(ToGrpc(set.status()));
        return;
      }
    }
    const absl::Time until = copy.device_time() + absl::Milliseconds(horizon_ms);
    auto points = copy.Predict(until, absl::Milliseconds(step_ms), nullptr, lib->library);
    if (!points.ok()) {
      reactor->Finish(ToGrpc(points.status()));
      return;
    }
    for (const auto& p : *points) {
      v1::TrajectoryPoint* o = resp->add_trajectory();
      o->set_device_time_ms(ToUnixMs(p.device_time));
      o->set_calculated_reservoir_ul(p.calculated_reservoir.value());
      o->set_estimated_reservoir_ul(p.estimated_reservoir.value());
      o->set_delivered_24h_ug(p.delivered_24h.value());
      o->set_battery_charge_fraction(p.battery_charge_fraction);
    }
    *resp->mutable_forecast() = FromForecast(copy.ForecastAt(copy.device_time()), copy);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* TwinServiceImpl::ListDrugs(grpc::CallbackServerContext* ctx,
                                                     const v1::ListDrugsRequest*,
                                                     v1::ListDrugsResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  if (auto p = deps_.auth->Check(*ctx, Role::kViewer); !p.ok()) {
    reactor->Finish(ToGrpc(p.status()));
    return reactor;
  }
  auto lib = Library(deps_.drugs);
  for (const twin::DrugLimits& d : lib->library.drugs()) *resp->add_drugs() = FromDrugLimits(d);
  resp->set_library_version(lib->version);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace pumptwin::server
