#include "server/core/pump_list.h"

#include <algorithm>
#include <queue>
#include <tuple>

#include "absl/strings/string_view.h"

namespace pumptwin::server {
namespace {

struct KeyView {
  int neg_severity = 0;
  int64_t due_ms = INT64_MAX;
  absl::string_view id;
};

KeyView ViewOf(const std::string& id, const PumpEntry& e, bool urgency) {
  KeyView k;
  k.id = id;
  if (!urgency) return k;
  k.neg_severity = -static_cast<int>(e.summary.worst_severity);
  for (int64_t d : {e.summary.next_refill_due_ms, e.summary.battery_eri_ms}) {
    if (d > 0) k.due_ms = std::min(k.due_ms, d);
  }
  return k;
}

bool Less(const KeyView& a, const ListKey& b) {
  return std::tie(a.neg_severity, a.due_ms, a.id) <
         std::tie(b.neg_severity, b.due_ms, static_cast<const std::string&>(b.id));
}
bool Less(const ListKey& a, const KeyView& b) {
  return std::tie(a.neg_severity, a.due_ms, static_cast<const std::string&>(a.id)) <
         std::tie(b.neg_severity, b.due_ms, b.id);
}

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
  const bool urgency = req.order() == v1::PUMP_ORDER_URGENCY;
  const size_t cap = page_size + 1;   // one more than the page: is there a next page?
  std::priority_queue<ListKey> best;  // the largest kept key on top
  dir.ForEach([&](const std::string& id, const PumpEntry& e) {
    if (!Matches(req, e, clinic)) return;
    const KeyView k = ViewOf(id, e, urgency);
    if (after.has_value() && !Less(*after, k)) return;
    if (best.size() == cap) {
      if (!Less(k, best.top())) return;
      best.pop();
    }
    best.push(ListKey{k.neg_severity, k.due_ms, std::string(k.id)});
  });
  page.more = best.size() > page_size;
  if (page.more) best.pop();
  page.keys.resize(best.size());
  for (size_t i = best.size(); i-- > 0;) {
    page.keys[i] = best.top();
    best.pop();
  }
  return page;
}

}  // namespace pumptwin::server
