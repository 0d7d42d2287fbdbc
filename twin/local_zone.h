// LocalZone: a patient's IANA time zone as the twin uses it (flex schedule steps are local
// time, DST included). The twin does no I/O: whoever loads zones (the server, with
// absl::LoadTimeZone and the system tzdata) interns them here, and installs a loader the
// codec uses to resolve a decoded twin's zone by name. Interned zones live for the process
// (a few hundred names at most; at most kMaxZones). A LocalZone is a 4-byte index, so it
// fits in the padding of PumpConfig. Thread-safe.
#ifndef PUMPTWIN_TWIN_LOCAL_ZONE_H_
#define PUMPTWIN_TWIN_LOCAL_ZONE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pumptwin::twin {

class LocalZone {
 public:
  // Loads a zone by IANA name (the server's tzdata reader). NOT_FOUND / INVALID_ARGUMENT.
  using Loader = absl::StatusOr<absl::TimeZone> (*)(absl::string_view name);

  LocalZone() = default;  // UTC

  // Interns `tz` under `name` ("UTC" or empty: UTC). The first zone interned under a name
  // is kept.
  static LocalZone Intern(absl::string_view name, absl::TimeZone tz);
  // An interned zone, or one loaded through the installed loader and interned; UTC for
  // "UTC" and "". FAILED_PRECONDITION when no loader is installed and the name is new.
  static absl::StatusOr<LocalZone> Resolve(absl::string_view name);
  static void SetLoader(Loader loader);

  bool is_utc() const { return index_ == 0; }
  absl::string_view name() const;  // "UTC" for UTC
  // Offset east of UTC at `t` and the next instant after `t` at which it changes
  // (INT64_MAX when never), both in nanoseconds.
  void OffsetAt(int64_t t_ns, int64_t* offset_ns, int64_t* next_change_ns) const;

  bool operator==(const LocalZone& o) const { return index_ == o.index_; }

  static constexpr uint32_t kMaxZones = 4096;

 private:
  explicit LocalZone(uint32_t index) : index_(index) {}
  uint32_t index_ = 0;  // 0: UTC; else the interned entry
};

}  // namespace pumptwin::twin

#endif  // PUMPTWIN_TWIN_LOCAL_ZONE_H_
