#include "server/core/pump_list.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/string_view.h"

namespace pumptwin::server {
namespace {

bool Matches(const v1::ListPumpsRequest& r, const PumpEntry& e,
             const std::optional<uint32_t>& clinic) {
  if (!r.include_decommissioned() && e.lifecycle == v1::PUMP_LIFECYCLE_DECOMMISSIONED) {
    return false;
  }
  if (clinic.has_value() && e.clinic_id != *clinic) return false;
  if (r.alerting_only() && e.summary.worst_severity == 0) return false;
  if (r.min_severity() > 0 && e.summary.worst_severity < r.min_severity()) return false;
  if (r.stale_only() && !e.summary.silent) return false;
  if (r.refill_due_before_ms() > 0 && (e.summary.next_refill_due_ms <= 0 ||
                                       e.summary.next_refill_due_ms >= r.refill_due_before_ms())) {
    return false;
  }
  if (r.battery_replacement_due_before_ms() > 0 &&
      (e.summary.battery_eri_ms <= 0 ||
       e.summary.battery_eri_ms >= r.battery_replacement_due_before_ms())) {
    return false;
  }
  return true;
}

}  // namespace

bool ListKey::operator<(const ListKey& o) const {
  return std::tie(neg_severity, due_ms, id) < std::tie(o.neg_severity, o.due_ms, o.id);
}

PumpPage SelectPumps(const PumpDirectory& dir, const v1::ListPumpsRequest& req,
                     const std::optional<ListKey>& after, size_t page_size) {
  PumpPage page;
  std::optional<uint32_t> clinic;
  if (!req.clinic().empty()) {
    clinic = dir.FindClinic(req.clinic());
    if (!clinic.has_value()) return page;  // no pump was ever registered in it
  }
  const size_t cap = page_size + 1;  // one more than the page: is there a next page?
  // Each stripe's index in the order asked: its first `cap` matches after `after`, then the
  // page out of all stripes' (at most stripes x cap keys).
  std::vector<ListKey> found;
  std::vector<size_t> per_stripe(static_cast<size_t>(dir.stripes()), 0);
  auto take = [&](int stripe, ListKey k) {
    found.push_back(std::move(k));
    return ++per_stripe[static_cast<size_t>(stripe)] < cap;
  };
  if (req.order() == v1::PUMP_ORDER_URGENCY) {
    std::optional<PumpDirectory::UrgencyPos> from;
    if (after.has_value()) {
      from = PumpDirectory::UrgencyPos{after->neg_severity, after->due_ms, after->id};
    }
    dir.WalkByUrgency(from, [&](int stripe, const std::string& id, const PumpEntry& e) {
      if (!Matches(req, e, clinic)) return true;
      const PumpDirectory::UrgencyPos p = PumpDirectory::UrgencyOf(id, e.summary);
      return take(stripe, ListKey{p.neg_severity, p.due_ms, id});
    });
  } else {
    std::optional<absl::string_view> from;
    if (after.has_value()) from = after->id;
    dir.WalkById(from, [&](int stripe, const std::string& id, const PumpEntry& e) {
      return !Matches(req, e, clinic) || take(stripe, ListKey{0, INT64_MAX, id});
    });
  }
  std::sort(found.begin(), found.end());
  page.more = found.size() > page_size;
  if (page.more) found.resize(page_size);
  page.keys = std::move(found);
  return page;
}

}  // namespace pumptwin::server
