// The selection behind ListPumps: which registered pumps match a request's filters and
// which of them make the next page, in id or urgency order, from the directory alone.
// It walks the directory's ordered indexes (urgency, id), each stripe from the position after
// the page token until page_size + 1 matches, and merges the stripes: a page costs its size
// times the stripes, not the fleet (unless the filters reject almost every pump).
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
