// IdleFlushPolicy: when to flush the store's memtables. Writes fill the memtables (up to
// --store_memtable_mb) and an idle server would otherwise hold them for good: after a
// burst of registrations, 64 MiB is ~670 bytes per twin at 100 000 twins. Once the
// memtable size has not changed for `idle` (no writes) and holds at least `min_bytes`,
// a flush is due: the memory goes back, and a restart replays no WAL for it. While
// telemetry keeps arriving the memtables change at every tick and are never flushed here
// (RocksDB flushes them when full). Plain value type; not thread-safe (the ticker's).
#ifndef PUMPTWIN_SERVER_IDLE_FLUSH_H_
#define PUMPTWIN_SERVER_IDLE_FLUSH_H_

#include <cstdint>

#include "absl/time/time.h"

namespace pumptwin::server {

class IdleFlushPolicy {
 public:
  // idle <= 0: never flush.
  IdleFlushPolicy(absl::Duration idle, uint64_t min_bytes) : idle_(idle), min_bytes_(min_bytes) {}

  // Called at every tick with the memtables' current size; true when a flush is due now.
  bool Observe(absl::Time now, uint64_t memtable_bytes) {
    if (memtable_bytes != last_bytes_ || since_ == absl::InfinitePast()) {
      last_bytes_ = memtable_bytes;  // written to since the last tick (or the first tick)
      since_ = now;
      return false;
    }
    if (idle_ <= absl::ZeroDuration() || memtable_bytes < min_bytes_ || now - since_ < idle_) {
      return false;
    }
    since_ = now;  // not again before another idle period, should the flush fail
    return true;
  }

 private:
  const absl::Duration idle_;
  const uint64_t min_bytes_;
  uint64_t last_bytes_ = 0;
  absl::Time since_ = absl::InfinitePast();  // when last_bytes_ was first seen
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_IDLE_FLUSH_H_
