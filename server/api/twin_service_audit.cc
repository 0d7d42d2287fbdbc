// TwinService.ListAuditRecords (admin): the hash-chained audit log in sequence order,
// filtered by resource (exact, or any sub-resource: "pumps/P1" includes
// "pumps/P1/alerts/..."), actor and server time [start, end). Paging by sequence.
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "device_link/input_limits.h"
#include "server/api/twin_service.h"

namespace pumptwin::server {
namespace {

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;
// Records examined per call at most; beyond it the page is returned short with a token.
constexpr size_t kMaxScannedPerCall = 200000;

bool Keep(const v1::ListAuditRecordsRequest& r, const v1::AuditRecord& a) {
  if (!r.resource().empty() && a.resource() != r.resource() &&
      !absl::StartsWith(a.resource(), absl::StrCat(r.resource(), "/"))) {
    return false;
  }
  if (!r.actor().empty() && a.actor() != r.actor()) return false;
  if (r.start_time_ms() != 0 && a.server_time_ms() < r.start_time_ms()) return false;
  if (r.end_time_ms() != 0 && a.server_time_ms() >= r.end_time_ms()) return false;
  return true;
}

}  // namespace

grpc::ServerUnaryReactor* TwinServiceImpl::ListAuditRecords(grpc::CallbackServerContext* ctx,
                                                            const v1::ListAuditRecordsRequest* req,
                                                            v1::ListAuditRecordsResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  auto fail = [reactor](const absl::Status& s) { return FinishWith(reactor, s); };
  if (auto p = deps_.auth->Check(*ctx, Role::kAdmin); !p.ok()) return fail(p.status());
  if (req->page_size() < 0 || req->page_size() > kMaxPageSize) {
    return fail(absl::InvalidArgumentError(absl::StrCat("page_size=", req->page_size(),
                                                        " must be 0 (default ", kDefaultPageSize,
                                                        ") to ", kMaxPageSize)));
  }
  if (req->end_time_ms() != 0 && req->end_time_ms() <= req->start_time_ms()) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("end_time_ms=", req->end_time_ms(),
                     " must be after start_time_ms=", req->start_time_ms(), " (or 0: no end)")));
  }
  uint64_t after = 0;
  if (!req->page_token().empty() && !absl::SimpleAtoi(req->page_token(), &after)) {
    return fail(
        absl::InvalidArgumentError(absl::StrCat("page_token=", device_link::Echo(req->page_token()),
                                                " is not a token returned by ListAuditRecords")));
  }
  const size_t page = req->page_size() == 0 ? kDefaultPageSize : req->page_size();
  size_t scanned = 0;
  for (;;) {
    auto batch = deps_.store->ScanAuditAfter(after, 1024);
    if (!batch.ok()) return fail(batch.status());
    if (batch->empty()) break;
    for (const auto& [seq, bytes] : *batch) {
      v1::AuditRecord rec;
      if (!rec.ParseFromString(bytes)) {
        return fail(absl::DataLossError(
            absl::StrCat("audit record ", seq, " does not parse; the store is damaged")));
      }
      if (Keep(*req, rec)) {
        if (static_cast<size_t>(resp->records_size()) == page) {
          resp->set_next_page_token(absl::StrCat(after));
          reactor->Finish(grpc::Status::OK);
          return reactor;
        }
        *resp->add_records() = std::move(rec);
      }
      after = seq;
      if (++scanned >= kMaxScannedPerCall) {
        resp->set_next_page_token(absl::StrCat(after));
        reactor->Finish(grpc::Status::OK);
        return reactor;
      }
    }
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace pumptwin::server
