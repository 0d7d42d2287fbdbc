#include "device_link/sequencer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace pumptwin::device_link {

static_assert(sizeof(PumpSequencer) == 16, "per-pump sequencing state must stay compact");

const char* SeqVerdictName(SeqVerdict v) {
  switch (v) {
    case SeqVerdict::kReleased:
      return "released";
    case SeqVerdict::kBuffered:
      return "buffered";
    case SeqVerdict::kDuplicate:
      return "duplicate";
    case SeqVerdict::kBeyondWindow:
      return "beyond_window";
  }
  return "?";
}

SeqVerdict PumpSequencer::Offer(const SequencerConfig& config, SequencedEntry entry,
                                std::vector<SequencedEntry>* released) {
  const uint64_t seq = entry.seq;
  if (seq <= applied_seq_) return SeqVerdict::kDuplicate;
  if (seq == applied_seq_ + 1) {
    released->push_back(std::move(entry));
    applied_seq_ = seq;
    if (pending_) {
      auto& p = *pending_;
      size_t n = 0;
      while (n < p.size() && p[n].seq == applied_seq_ + 1) {
        applied_seq_ = p[n].seq;
        released->push_back(std::move(p[n]));
        ++n;
      }
      p.erase(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(n));
      if (p.empty()) pending_.reset();  // give the memory back: most pumps are in order
    }
    return SeqVerdict::kReleased;
  }
  if (seq - applied_seq_ > config.reorder_window_seqs) return SeqVerdict::kBeyondWindow;
  if (!pending_) pending_ = std::make_unique<std::vector<SequencedEntry>>();
  auto& p = *pending_;
  auto it = std::lower_bound(p.begin(), p.end(), seq,
                             [](const SequencedEntry& e, uint64_t s) { return e.seq < s; });
  if (it != p.end() && it->seq == seq) return SeqVerdict::kDuplicate;
  p.insert(it, std::move(entry));
  return SeqVerdict::kBuffered;
}

size_t PumpSequencer::buffered_count() const { return pending_ ? pending_->size() : 0; }

size_t PumpSequencer::buffered_bytes() const {
  if (!pending_) return 0;
  return sizeof(*pending_) + pending_->capacity() * sizeof(SequencedEntry);
}

std::string BeyondWindowMessage(absl::string_view pump_id, uint64_t seq, uint64_t applied_seq,
                                const SequencerConfig& config) {
  return absl::StrCat("pump ", pump_id, " seq=", seq, " is ", seq - applied_seq,
                      " ahead of applied seq ", applied_seq, ", beyond the reorder window of ",
                      config.reorder_window_seqs, " (reorder_window_seqs); send seq ",
                      applied_seq + 1, " first");
}

}  // namespace pumptwin::device_link
