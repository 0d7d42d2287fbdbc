// Per-pump sequencing: releases samples in seq order exactly once, de-duplicates, and
// re-orders within a small window. PumpSequencer is the compact per-pump state the server
// keeps next to each twin (16 bytes; a reorder buffer is allocated only while samples wait
// for a gap to fill). Deterministic, no I/O, no clock. Thread-compatible: the owner (the
// pump's shard) serialises access.
#ifndef PUMPTWIN_DEVICE_LINK_SEQUENCER_H_
#define PUMPTWIN_DEVICE_LINK_SEQUENCER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "twin/sample.h"

namespace pumptwin::device_link {

struct SequencerConfig {
  // A seq may run at most this far ahead of the highest applied seq and be buffered;
  // beyond it the sample is refused (Nack OUT_OF_ORDER). Bounds per-pump buffer memory.
  uint32_t reorder_window_seqs = 64;
};

// One slot of a pump's sequence: a sample to apply, or a seq consumed by a sample that was
// rejected upstream (Nack'd INVALID_FIELD / TIME_ABSURD): it advances the sequence without
// touching the twin, so one bad sample never blocks a pump.
struct SequencedEntry {
  uint64_t seq = 0;
  std::optional<twin::Sample> sample;  // nullopt: consumed by a rejected sample

  bool operator==(const SequencedEntry&) const = default;
};

enum class SeqVerdict {
  kReleased,      // in order: released (with any buffered successors it unblocked)
  kBuffered,      // ahead of a gap, within the window: held until the gap fills
  kDuplicate,     // <= applied or already buffered: acknowledge, do not re-apply
  kBeyondWindow,  // gap larger than the window: Nack OUT_OF_ORDER, not kept
};

const char* SeqVerdictName(SeqVerdict v);

class PumpSequencer {
 public:
  // `applied_seq`: highest seq already applied (from recovery); 0 for a new pump.
  explicit PumpSequencer(uint64_t applied_seq = 0) : applied_seq_(applied_seq) {}
  PumpSequencer(PumpSequencer&&) noexcept = default;
  PumpSequencer& operator=(PumpSequencer&&) noexcept = default;
  PumpSequencer(const PumpSequencer&) = delete;
  PumpSequencer& operator=(const PumpSequencer&) = delete;

  // Offers one entry. In-order entries, followed by buffered ones they unblock, are
  // appended to *released in seq order; nothing else is ever appended.
  SeqVerdict Offer(const SequencerConfig& config, SequencedEntry entry,
                   std::vector<SequencedEntry>* released);

  // The common case without the reorder machinery: when nothing is buffered and `seq` is
  // the next one, releases it (true); otherwise false and nothing changes (use Offer).
  bool TakeNextInOrder(uint64_t seq) {
    if (pending_ || seq != applied_seq_ + 1) return false;
    applied_seq_ = seq;
    return true;
  }

  // Highest seq released so far (every seq <= it was released exactly once).
  uint64_t applied_seq() const { return applied_seq_; }
  // Entries waiting for a gap to fill.
  size_t buffered_count() const;
  // Heap bytes held by the reorder buffer (0 in the common in-order case).
  size_t buffered_bytes() const;

 private:
  uint64_t applied_seq_;
  // Sorted by seq, all > applied_seq_ + 1, within the window. Null when empty.
  std::unique_ptr<std::vector<SequencedEntry>> pending_;
};

// Text for a kBeyondWindow Nack, e.g. "seq=200 is 190 ahead of applied seq 10 ...".
std::string BeyondWindowMessage(absl::string_view pump_id, uint64_t seq, uint64_t applied_seq,
                                const SequencerConfig& config);

}  // namespace pumptwin::device_link

#endif  // PUMPTWIN_DEVICE_LINK_SEQUENCER_H_
