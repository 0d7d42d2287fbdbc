// Process-wide settings every pumptwin binary that moves telemetry makes first thing in
// main(): the server, the null sink, the load tool and the simulator, so that the
// side-by-side benchmarks compare like with like.
#ifndef PUMPTWIN_DEVICE_LINK_PROCESS_TUNING_H_
#define PUMPTWIN_DEVICE_LINK_PROCESS_TUNING_H_

#include <malloc.h>

#include "absl/synchronization/mutex.h"

namespace pumptwin::device_link {

inline void TuneProcessForStreaming() {
  // glibc returning freed gRPC buffers to the kernel costs 2-5x throughput (docs/building.md).
  mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
  // Setting the trim threshold freezes glibc's mmap threshold at 128 KiB: every larger
  // buffer (RocksDB arena blocks and write batches, big gRPC messages) would then be a
  // fresh mmap, page-faulted in and unmapped again. Keep them on the heap instead.
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  // Debian's Abseil keeps the mutex deadlock detector on: a global graph updated on every
  // lock order and every Mutex destruction (one per ingest batch). Lock order is checked
  // by the TSan build instead (docs/building.md).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace pumptwin::device_link

#endif  // PUMPTWIN_DEVICE_LINK_PROCESS_TUNING_H_
