// The virtual shard of a pump in cluster mode: FNV-1a (32 bit) of its id modulo the shard
// count (0 when the count is 0). Part of the stored format (the lease table's shards) and of
// the gateway protocol (a gateway routes a pump by its shard's known replica): every replica,
// every release and every gateway library must agree on it. Header only.
#ifndef PUMPTWIN_COMMON_VIRTUAL_SHARD_H_
#define PUMPTWIN_COMMON_VIRTUAL_SHARD_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace pumptwin {

inline uint32_t VirtualShardOf(absl::string_view pump_id, uint32_t shard_count) {
  uint32_t h = 2166136261u;  // FNV-1a, 32 bit
  for (unsigned char ch : pump_id) {
    h ^= ch;
    h *= 16777619u;
  }
  return shard_count == 0 ? 0 : h % shard_count;
}

}  // namespace pumptwin

#endif  // PUMPTWIN_COMMON_VIRTUAL_SHARD_H_
