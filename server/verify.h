// Offline consistency check of a data directory (`pumptwind --verify`): for every pump,
// the twin recovery would build (last snapshot + later telemetry) must be byte-identical
// to a twin rebuilt from scratch (the registered genesis twin + all stored telemetry).
// Pumps whose twin also changed through clinical calls or server-time checks (audit or
// alert records say so) cannot be rebuilt from telemetry alone and are counted apart.
// Reads the store only; the server must not be running on it.
#ifndef PUMPTWIN_SERVER_VERIFY_H_
#define PUMPTWIN_SERVER_VERIFY_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store/store.h"

namespace pumptwin::server {

struct VerifyReport {
  size_t pumps = 0;
  size_t exact = 0;                  // recovered bytes == from-scratch bytes
  size_t not_replayable = 0;         // changed by clinical calls / server-time checks
  size_t samples = 0;                // telemetry samples replayed from scratch
  std::vector<std::string> mismatches;  // "pump: reason"
};

absl::StatusOr<VerifyReport> VerifyStore(const store::Store& store);

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_VERIFY_H_
