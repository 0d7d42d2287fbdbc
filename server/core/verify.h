// Offline consistency check of a data directory (`pumptwind --verify`): for every pump,
// the twin recovery would build (last snapshot + later telemetry) must be byte-identical
// to a twin rebuilt from scratch: the registered genesis twin folded with every stored
// input (telemetry, clinical records, state-changing ticks) in event-time order
// (twin/event_fold.h). Any difference is a mismatch (exit status 3).
// Reads the store only; the server must not be running on it.
#ifndef PUMPTWIN_SERVER_VERIFY_H_
#define PUMPTWIN_SERVER_VERIFY_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store/store.h"
#include "twin/drug_library.h"

namespace pumptwin::server {

struct VerifyReport {
  size_t pumps = 0;
  size_t exact = 0;                     // recovered bytes == from-scratch bytes
  size_t samples = 0;                   // telemetry samples replayed from scratch
  size_t records = 0;                   // clinical records and ticks replayed from scratch
  std::vector<std::string> mismatches;  // "pump: reason"
};

// `library`: the drug library records are re-checked against (nullptr: built-in).
absl::StatusOr<VerifyReport> VerifyStore(
    const store::Store& store, std::shared_ptr<const twin::DrugLibrary> library = nullptr);

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_VERIFY_H_
