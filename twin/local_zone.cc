#include "twin/local_zone.h"

#include <atomic>
#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace pumptwin::twin {
namespace {

struct Entry {
  std::string name;
  absl::TimeZone tz;
};

struct Registry {
  absl::Mutex mu;
  LocalZone::Loader loader ABSL_GUARDED_BY(mu) = nullptr;
  absl::flat_hash_map<std::string, uint32_t> by_name ABSL_GUARDED_BY(mu);
  uint32_t next ABSL_GUARDED_BY(mu) = 1;
  // Published once, never freed or changed: read without the lock.
  std::atomic<const Entry*> entries[LocalZone::kMaxZones] = {};
};

Registry& Reg() {
  static Registry* r = new Registry;
  return *r;
}

bool IsUtcName(absl::string_view name) { return name.empty() || name == "UTC"; }

const Entry& EntryOf(uint32_t index) {
  return *Reg().entries[index].load(std::memory_order_acquire);
}

}  // namespace

LocalZone LocalZone::Intern(absl::string_view name, absl::TimeZone tz) {
  if (IsUtcName(name)) return LocalZone();
  Registry& r = Reg();
  absl::MutexLock lock(&r.mu);
  auto it = r.by_name.find(name);
  if (it != r.by_name.end()) return LocalZone(it->second);
  if (r.next >= kMaxZones) return LocalZone();  // unreachable: IANA has ~600 names
  const uint32_t i = r.next++;
  r.entries[i].store(new Entry{std::string(name), tz}, std::memory_order_release);
  r.by_name.emplace(std::string(name), i);
  return LocalZone(i);
}

absl::StatusOr<LocalZone> LocalZone::Resolve(absl::string_view name) {
  if (IsUtcName(name)) return LocalZone();
  Loader loader;
  {
    Registry& r = Reg();
    absl::MutexLock lock(&r.mu);
    auto it = r.by_name.find(name);
    if (it != r.by_name.end()) return LocalZone(it->second);
    loader = r.loader;
  }
  if (loader == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("time zone '", name, "' cannot be loaded: no zone loader installed"));
  }
  absl::StatusOr<absl::TimeZone> tz = loader(name);
  if (!tz.ok()) return tz.status();
  return Intern(name, *tz);
}

void LocalZone::SetLoader(Loader loader) {
  Registry& r = Reg();
  absl::MutexLock lock(&r.mu);
  r.loader = loader;
}

absl::string_view LocalZone::name() const {
  return index_ == 0 ? absl::string_view("UTC") : absl::string_view(EntryOf(index_).name);
}

void LocalZone::OffsetAt(int64_t t_ns, int64_t* offset_ns, int64_t* next_change_ns) const {
  if (index_ == 0) {
    *offset_ns = 0;
    *next_change_ns = INT64_MAX;
    return;
  }
  const absl::TimeZone& tz = EntryOf(index_).tz;
  const absl::Time t = absl::FromUnixNanos(t_ns);
  *offset_ns = static_cast<int64_t>(tz.At(t).offset) * 1'000'000'000;
  absl::TimeZone::CivilTransition tr;
  *next_change_ns = INT64_MAX;
  // NextTransition reports the first transition strictly after `t`.
  if (tz.NextTransition(t, &tr)) {
    const int64_t at = absl::ToUnixNanos(tz.At(tr.to).trans);
    if (at > t_ns) *next_change_ns = at;
  }
}

}  // namespace pumptwin::twin
