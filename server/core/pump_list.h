// The selection behind ListPumps: which registered pumps match a request's filters and
// which of them make the next page, in id or urgency order, from the directory alone.
// One pass over the directory with a bounded heap of the page (memory and sorting in the
// page size, not in the fleet: a first page of a million pumps copies page_size + 1 ids).
#ifndef PUMPTWIN_SERVER_CORE_PUMP_LIST_H_
#define PUMPTWIN_SERVER_CORE_PUMP_LIST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pumptwin/v1/twin_service.pb.h"
#include "server/core/pump_directory.h"

namespace pumptwin::server {

// Sort key of a listed pump; urgency: higher severity first, then the soonest known due
// date (refill or battery ERI; unknown last), then id. Id order uses the id only.
struct ListKey {
  int neg_severity = 0;
  int64_t due_ms = INT64_MAX;
  std::string id;
  bool operator<(const ListKey& o) const;
};

struct PumpPage {
  std::vector<ListKey> keys;  // the page, in order
  bool more = false;          // pumps after the page match too
};

// The page of at most `page_size` (> 0) pumps after `after` (none: the first page).
PumpPage SelectPumps(const PumpDirectory& dir, const v1::ListPumpsRequest& req,
                     const std::optional<ListKey>& after, size_t page_size);

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_CORE_PUMP_LIST_H_
