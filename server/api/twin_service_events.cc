// TwinService clinical-event and telemetry methods: RecordRefill (discrepancy verdict,
// alerts via the mutation's transitions), RecordEvent (every ClinicalEventType; catheter
// revision also updates the registration) and GetTelemetry (range, down-sampling,
// paging over the stored chunks). See docs/api.md "Method reference (server)".
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/grpc_status.h"
#include "device_link/sample_codec.h"
#include "server/api/twin_service.h"
#include "server/api/twin_service_common.h"
#include "server/core/clinical_time.h"
#include "server/core/convert.h"
#include "server/core/event_inputs.h"
#include "server/store/telemetry_codec.h"

namespace pumptwin::server {
namespace {

constexpr int kDefaultTelemetryPage = 1000;
constexpr int kMaxTelemetryPage = 10000;

std::shared_ptr<const DrugLibrarySnapshot> Library(const DrugLibraryHolder* holder) {
  static const DrugLibraryHolder* defaults = new DrugLibraryHolder();
  return (holder != nullptr ? holder : defaults)->Get();
}

// "0: now" for clinical calls: server time on the pump's clock (smoothed skew), in whole
// milliseconds (the stored record's resolution, so a replay applies the same time).
absl::Time EventTime(int64_t device_time_ms, const twin::Twin& t, absl::Time server_now) {
  return device_time_ms > 0 ? FromUnixMs(device_time_ms)
                            : FromUnixMs(ToUnixMs(server_now + t.clock_skew()));
}

absl::Status NonNegative(const char* field, double v) {
  if (!std::isfinite(v) || v < 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, "=", v, " must be a finite number >= 0"));
  }
  return absl::OkStatus();
}

absl::Status Positive(const char* field, double v, const char* why) {
  if (!std::isfinite(v) || v <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, "=", v, " must be > 0 ", why));
  }
  return absl::OkStatus();
}

absl::Status ValidateEvent(const v1::RecordEventRequest& r) {
  if (r.type() <= v1::CLINICAL_EVENT_TYPE_UNSPECIFIED || r.type() > v1::CLINICAL_EVENT_TRIAL_END) {
    return absl::InvalidArgumentError(absl::StrCat(
        "type=", r.type(), " is not a ClinicalEventType (1..9: CLINICIAN_BOLUS ... TRIAL_END)"));
  }
  if (r.device_time_ms() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("device_time_ms=", r.device_time_ms(), " must be >= 0 (0: now)"));
  }
  if (absl::Status s = NonNegative("volume_ul", r.volume_ul()); !s.ok()) return s;
  if (absl::Status s = NonNegative("dose_ug", r.dose_ug()); !s.ok()) return s;
  if (r.duration_ms() < 0 || r.duration_ms() > 7LL * 24 * 3600 * 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("duration_ms=", r.duration_ms(), " must be in [0, 604800000] (7 days)"));
  }
  switch (r.type()) {
    case v1::CLINICAL_EVENT_CLINICIAN_BOLUS:
      if (r.volume_ul() <= 0 && r.dose_ug() <= 0) {
        return absl::InvalidArgumentError(
            "CLINICIAN_BOLUS needs volume_ul > 0 or dose_ug > 0 (dose at the current "
            "concentration)");
      }
      if (r.volume_ul() > 0 && r.dose_ug() > 0) {
        return absl::InvalidArgumentError("CLINICIAN_BOLUS takes volume_ul or dose_ug, not both");
      }
      break;
    case v1::CLINICAL_EVENT_CATHETER_REVISION:
      if (absl::Status s = Positive("catheter_length_cm", r.catheter_length_cm(),
                                    "for CATHETER_REVISION (new catheter geometry)");
          !s.ok())
        return s;
      if (absl::Status s = Positive("catheter_inner_diameter_mm", r.catheter_inner_diameter_mm(),
                                    "for CATHETER_REVISION (new catheter geometry)");
          !s.ok())
        return s;
      break;
    case v1::CLINICAL_EVENT_ACCESS_PORT_ASPIRATION:
    case v1::CLINICAL_EVENT_TRIAL_END:
      if (r.outcome().empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("outcome is required for ", v1::ClinicalEventType_Name(r.type()),
                         " (e.g. \"CSF aspirated freely\" or \"success: 60% relief\")"));
      }
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* TwinServiceImpl::RecordRefill(grpc::CallbackServerContext* ctx,
                                                        const v1::RecordRefillRequest* req,
                                                        v1::RecordRefillResponse* resp) {
  PumpChange call(deps_, &overlay_, ctx, Role::kClinician, req->name());
  if (!call.ok()) return call.Fail(call.status());
  if (absl::Status s = NonNegative("withdrawn_volume_ul", req->withdrawn_volume_ul()); !s.ok()) {
    return call.Fail(s);
  }
  if (absl::Status s = NonNegative("added_volume_ul", req->added_volume_ul()); !s.ok()) {
    return call.Fail(s);
  }
  if (absl::Status s = NonNegative("concentration_ug_per_ml", req->concentration_ug_per_ml());
      !s.ok())
    return call.Fail(s);
  if (req->device_time_ms() < 0) {
    return call.Fail(absl::InvalidArgumentError(
        absl::StrCat("device_time_ms=", req->device_time_ms(), " must be >= 0 (0: now)")));
  }
  if (absl::Status s =
          CheckClinicalTimeNotInFuture("device_time_ms", req->device_time_ms(), deps_.now());
      !s.ok()) {
    return call.Fail(s);
  }
  auto lib = Library(deps_.drugs);
  if (!req->drug().empty() && lib->library.Find(req->drug()) == nullptr) {
    return call.Fail(absl::InvalidArgumentError(
        absl::StrCat("drug='", req->drug(), "' is not in drug library ", lib->version,
                     " (ListDrugs shows the keys; empty: unchanged)")));
  }
  return call.Apply("RecordRefill", req->reason(),
                    [req, resp, lib](PumpChangeScope& c) -> absl::StatusOr<ChangeJson> {
                      twin::Twin& t = c.twin();
                      MutationContext& mctx = c.mutation();
                      v1::TwinState before = FromTwin(t);
                      // The record as applied (its time resolved) is one of the pump's event-time
                      // inputs.
                      v1::RecordRefillRequest record = *req;
                      record.clear_name();
                      record.clear_reason();
                      const absl::Time at = EventTime(req->device_time_ms(), t, mctx.server_time);
                      record.set_device_time_ms(ToUnixMs(at));
                      twin::RefillResult res;
                      if (absl::Status s = mctx.apply_input(
                              MakeClinicalInput(InputKind::kRefill, at, mctx.server_time,
                                                record.SerializeAsString()),
                              &res);
                          !s.ok()) {
                        return s;
                      }
                      resp->set_expected_remaining_ul(res.expected_remaining.value());
                      resp->set_discrepancy_ul(res.discrepancy.value());
                      resp->set_threshold_ul(res.threshold.value());
                      resp->set_verdict(static_cast<v1::RefillVerdict>(res.verdict));
                      *resp->mutable_twin() = FromTwin(t);
                      v1::RecordRefillResponse after = *resp;
                      after.clear_twin();
                      return ChangeJson{MessageJson(before),
                                        absl::StrCat("{\"request\":", MessageJson(*req),
                                                     ",\"result\":", MessageJson(after), "}")};
                    });
}

grpc::ServerUnaryReactor* TwinServiceImpl::RecordEvent(grpc::CallbackServerContext* ctx,
                                                       const v1::RecordEventRequest* req,
                                                       v1::RecordEventResponse* resp) {
  PumpChange call(deps_, &overlay_, ctx, Role::kClinician, req->name());
  if (!call.ok()) return call.Fail(call.status());
  if (absl::Status s = ValidateEvent(*req); !s.ok()) return call.Fail(s);
  if (absl::Status s =
          CheckClinicalTimeNotInFuture("device_time_ms", req->device_time_ms(), deps_.now());
      !s.ok()) {
    return call.Fail(s);
  }
  return call.Apply(
      "RecordEvent", req->reason(), [req, resp](PumpChangeScope& c) -> absl::StatusOr<ChangeJson> {
        twin::Twin& t = c.twin();
        MutationContext& mctx = c.mutation();
        v1::TwinState before = FromTwin(t);
        const bool revision = req->type() == v1::CLINICAL_EVENT_CATHETER_REVISION;
        v1::RecordEventRequest record = *req;
        record.clear_name();
        record.clear_reason();
        record.clear_outcome();
        const absl::Time at = EventTime(req->device_time_ms(), t, mctx.server_time);
        record.set_device_time_ms(ToUnixMs(at));
        if (absl::Status s =
                mctx.apply_input(MakeClinicalInput(InputKind::kEvent, at, mctx.server_time,
                                                   record.SerializeAsString()),
                                 nullptr);
            !s.ok()) {
          return s;
        }
        std::string before_json = MessageJson(before);
        if (revision) {
          auto pump = c.LoadRegistration();
          if (!pump.ok()) return pump.status();
          before_json =
              absl::StrCat("{\"pump\":", MessageJson(*pump), ",\"twin\":", before_json, "}");
          pump->set_catheter_length_cm(req->catheter_length_cm());
          pump->set_catheter_inner_diameter_mm(req->catheter_inner_diameter_mm());
          c.StageRegistration(*pump);
        }
        *resp->mutable_twin() = FromTwin(t);
        return ChangeJson{std::move(before_json), MessageJson(*req)};
      });
}

grpc::ServerUnaryReactor* TwinServiceImpl::GetTelemetry(grpc::CallbackServerContext* ctx,
                                                        const v1::GetTelemetryRequest* req,
                                                        v1::GetTelemetryResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  auto fail = [reactor](const absl::Status& s) { return FinishWith(reactor, s); };
  auto id = AuthorizedPumpId(deps_, *ctx, Role::kViewer, req->name());
  if (!id.ok()) return fail(id.status());
  if (req->start_device_time_ms() < 0) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("start_device_time_ms=", req->start_device_time_ms(), " must be >= 0")));
  }
  // 0: now, with a day of tolerance for pump clocks running ahead of the server.
  const int64_t end_ms = req->end_device_time_ms() != 0 ? req->end_device_time_ms()
                                                        : ToUnixMs(deps_.now() + absl::Hours(24));
  if (end_ms <= req->start_device_time_ms()) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "end_device_time_ms=", end_ms,
        " must be > start_device_time_ms=", req->start_device_time_ms(), " (0: now)")));
  }
  if (req->downsample_interval_ms() < 0) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("downsample_interval_ms=", req->downsample_interval_ms(),
                     " must be >= 0 (0: every sample)")));
  }
  auto page_size = PageSize(req->page_size(), kDefaultTelemetryPage, kMaxTelemetryPage);
  if (!page_size.ok()) return fail(page_size.status());
  if (!deps_.registry->directory().Contains(*id)) {
    return fail(absl::NotFoundError(absl::StrCat("pump '", *id, "' is not registered")));
  }
  // Resume point: scan from `from_ms`, skipping samples at exactly from_ms with
  // seq <= after_seq (the last sample of the previous page).
  int64_t from_ms = req->start_device_time_ms();
  uint64_t after_seq = 0;
  if (!req->page_token().empty()) {
    auto payload = DecodePageToken(req->page_token(), "tm", "GetTelemetry");
    if (!payload.ok()) return fail(payload.status());
    std::vector<std::string> parts = absl::StrSplit(*payload, ',');
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &from_ms) ||
        !absl::SimpleAtoi(parts[1], &after_seq) || from_ms < req->start_device_time_ms()) {
      return fail(absl::InvalidArgumentError(
          "page_token is malformed or does not belong to this range; start again with an "
          "empty page_token"));
    }
  }
  const int64_t interval = req->downsample_interval_ms();
  const int64_t start_ms = req->start_device_time_ms();
  const size_t limit = static_cast<size_t>(*page_size);
  int64_t last_bucket = -1;
  std::string next_token;
  const std::string pump_id = *id;
  absl::Status scan = store::ScanSamples(
      *deps_.store, pump_id, FromUnixMs(from_ms), FromUnixMs(end_ms), [&](const twin::Sample& s) {
        const int64_t t_ms = absl::ToUnixMillis(s.device_time);
        if (t_ms == from_ms && s.seq <= after_seq) return true;
        if (interval > 0) {
          // The first sample of each bucket, and every sample that carries pump event-log
          // entries (a refill, MRI or bolus must not vanish from a chart's timeline).
          const int64_t bucket = (t_ms - start_ms) / interval;
          const bool taken = bucket == last_bucket;
          if (taken && s.events.empty()) return true;
          if (static_cast<size_t>(resp->samples_size()) == limit) {
            next_token = EncodePageToken(
                "tm", taken ? absl::StrCat(t_ms, ",", s.seq - 1)  // resume at this sample
                            : absl::StrCat(start_ms + bucket * interval, ",0"));
            return false;
          }
          last_bucket = bucket;
        } else if (static_cast<size_t>(resp->samples_size()) == limit) {
          const auto& last = resp->samples(resp->samples_size() - 1);
          next_token = EncodePageToken("tm", absl::StrCat(last.device_time_ms(), ",", last.seq()));
          return false;
        }
        device_link::ToProtoSample(pump_id, s, resp->add_samples());
        return true;
      });
  if (!scan.ok()) return fail(scan);
  resp->set_next_page_token(next_token);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace pumptwin::server
