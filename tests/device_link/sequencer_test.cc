// PumpSequencer: in-order release, duplicates, reorder window, gap beyond the window, and a
// property test against a straightforward reference model.
#include "device_link/sequencer.h"

#include <algorithm>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace pumptwin::device_link {
namespace {

SequencedEntry Entry(uint64_t seq) {
  twin::Sample s;
  s.seq = seq;
  return SequencedEntry{seq, s};
}

std::vector<uint64_t> Seqs(const std::vector<SequencedEntry>& v) {
  std::vector<uint64_t> out;
  for (const auto& e : v) out.push_back(e.seq);
  return out;
}

TEST(PumpSequencer, StateIsSixteenBytes) { EXPECT_EQ(sizeof(PumpSequencer), 16u); }

TEST(PumpSequencer, InOrderSamplesAreReleasedImmediately) {
  PumpSequencer p;
  SequencerConfig c;
  std::vector<SequencedEntry> out;
  for (uint64_t s = 1; s <= 5; ++s) EXPECT_EQ(p.Offer(c, Entry(s), &out), SeqVerdict::kReleased);
  EXPECT_EQ(Seqs(out), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(p.applied_seq(), 5u);
  EXPECT_EQ(p.buffered_bytes(), 0u);
}

TEST(PumpSequencer, TakeNextInOrderOnlyTakesTheNextSeqWithNothingBuffered) {
  PumpSequencer p(10);
  SequencerConfig c;
  std::vector<SequencedEntry> out;
  EXPECT_FALSE(p.TakeNextInOrder(10)) << "a duplicate";
  EXPECT_FALSE(p.TakeNextInOrder(12)) << "a gap";
  EXPECT_EQ(p.applied_seq(), 10u);
  EXPECT_TRUE(p.TakeNextInOrder(11));
  EXPECT_EQ(p.applied_seq(), 11u);
  EXPECT_EQ(p.Offer(c, Entry(13), &out), SeqVerdict::kBuffered);
  // 12 is next, but 13 waits in the buffer: only Offer may release both, in order.
  EXPECT_FALSE(p.TakeNextInOrder(12));
  EXPECT_EQ(p.Offer(c, Entry(12), &out), SeqVerdict::kReleased);
  EXPECT_EQ(Seqs(out), (std::vector<uint64_t>{12, 13}));
  EXPECT_TRUE(p.TakeNextInOrder(14));
}

TEST(PumpSequencer, DuplicatesAreNotReleasedAgain) {
  PumpSequencer p;
  SequencerConfig c;
  std::vector<SequencedEntry> out;
  p.Offer(c, Entry(1), &out);
  p.Offer(c, Entry(2), &out);
  EXPECT_EQ(p.Offer(c, Entry(1), &out), SeqVerdict::kDuplicate);
  EXPECT_EQ(p.Offer(c, Entry(2), &out), SeqVerdict::kDuplicate);
  EXPECT_EQ(p.Offer(c, Entry(4), &out), SeqVerdict::kBuffered);
  EXPECT_EQ(p.Offer(c, Entry(4), &out), SeqVerdict::kDuplicate);  // already buffered
  EXPECT_EQ(Seqs(out), (std::vector<uint64_t>{1, 2}));
}

TEST(PumpSequencer, ReordersWithinWindowAndFreesBufferWhenGapFills) {
  PumpSequencer p(10);  // recovered: 1..10 applied
  SequencerConfig c;
  std::vector<SequencedEntry> out;
  EXPECT_EQ(p.Offer(c, Entry(13), &out), SeqVerdict::kBuffered);
  EXPECT_EQ(p.Offer(c, Entry(12), &out), SeqVerdict::kBuffered);
  EXPECT_EQ(p.buffered_count(), 2u);
  EXPECT_GT(p.buffered_bytes(), 0u);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(p.Offer(c, Entry(11), &out), SeqVerdict::kReleased);
  EXPECT_EQ(Seqs(out), (std::vector<uint64_t>{11, 12, 13}));
  EXPECT_EQ(p.applied_seq(), 13u);
  EXPECT_EQ(p.buffered_bytes(), 0u);
}

TEST(PumpSequencer, GapBeyondWindowIsRefusedAndNotKept) {
  PumpSequencer p(10);
  SequencerConfig c;
  c.reorder_window_seqs = 4;
  std::vector<SequencedEntry> out;
  EXPECT_EQ(p.Offer(c, Entry(14), &out), SeqVerdict::kBuffered);  // 4 ahead: at the edge
  EXPECT_EQ(p.Offer(c, Entry(15), &out), SeqVerdict::kBeyondWindow);
  EXPECT_EQ(p.buffered_count(), 1u);
  EXPECT_EQ(BeyondWindowMessage("p1", 15, 10, c),
            "pump p1 seq=15 is 5 ahead of applied seq 10, beyond the reorder window of 4 "
            "(reorder_window_seqs); send seq 11 first");
}

TEST(PumpSequencer, RejectedSlotsAdvanceTheSequence) {
  PumpSequencer p;
  SequencerConfig c;
  std::vector<SequencedEntry> out;
  p.Offer(c, Entry(1), &out);
  EXPECT_EQ(p.Offer(c, Entry(3), &out), SeqVerdict::kBuffered);
  EXPECT_EQ(p.Offer(c, SequencedEntry{2, std::nullopt}, &out), SeqVerdict::kReleased);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_FALSE(out[1].sample.has_value());
  EXPECT_EQ(p.applied_seq(), 3u);
}

// Reference model: the obvious implementation with std::set.
struct ReferenceSequencer {
  uint64_t applied = 0;
  std::set<uint64_t> buffered;
  SeqVerdict Offer(uint32_t window, uint64_t seq, std::vector<uint64_t>* released) {
    if (seq <= applied || buffered.count(seq)) return SeqVerdict::kDuplicate;
    if (seq > applied + window) return SeqVerdict::kBeyondWindow;
    buffered.insert(seq);
    if (seq != applied + 1) return SeqVerdict::kBuffered;
    while (buffered.count(applied + 1)) {
      buffered.erase(applied + 1);
      released->push_back(++applied);
    }
    return SeqVerdict::kReleased;
  }
};

TEST(PumpSequencer, MatchesReferenceModelOnRandomPermutationsWithDuplicates) {
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    std::mt19937_64 rng(seed);
    const uint64_t n = 1 + rng() % 200;
    const uint32_t window = 1 + static_cast<uint32_t>(rng() % 70);
    // Mostly-ordered arrivals: local shuffles (like a gateway resending), plus duplicates.
    std::vector<uint64_t> arrivals;
    for (uint64_t s = 1; s <= n; ++s) arrivals.push_back(s);
    const size_t block = 1 + rng() % 80;
    for (size_t i = 0; i < arrivals.size(); i += block) {
      std::shuffle(arrivals.begin() + i, arrivals.begin() + std::min(arrivals.size(), i + block),
                   rng);
    }
    const size_t dups = rng() % (n + 1);
    for (size_t d = 0; d < dups; ++d) {
      arrivals.insert(arrivals.begin() + rng() % (arrivals.size() + 1), 1 + rng() % n);
    }
    // Second pass: a full in-order resend (what a reconnecting gateway does).
    for (uint64_t s = 1; s <= n; ++s) arrivals.push_back(s);

    PumpSequencer p;
    ReferenceSequencer ref;
    SequencerConfig c;
    c.reorder_window_seqs = window;
    std::vector<SequencedEntry> got;
    std::vector<uint64_t> want;
    for (uint64_t seq : arrivals) {
      const SeqVerdict v = p.Offer(c, Entry(seq), &got);
      const SeqVerdict rv = ref.Offer(window, seq, &want);
      ASSERT_EQ(v, rv) << "seed " << seed << " seq " << seq << ": " << SeqVerdictName(v) << " vs "
                       << SeqVerdictName(rv);
      ASSERT_EQ(p.applied_seq(), ref.applied);
      ASSERT_EQ(p.buffered_count(), ref.buffered.size());
    }
    ASSERT_EQ(Seqs(got), want) << "seed " << seed;
    // Exactly once, in order, and complete thanks to the in-order resend.
    ASSERT_EQ(got.size(), n) << "seed " << seed;
    for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(got[i].seq, i + 1);
    ASSERT_EQ(p.buffered_bytes(), 0u);
  }
}

}  // namespace
}  // namespace pumptwin::device_link
