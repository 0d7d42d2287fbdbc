// RecentInputs: a pump's latest event-time inputs kept in memory, so that an input arriving
// a little late is applied in its place without reading the store (docs/model.md "Event
// time"). It holds generations: a copy of the twin as it was when the generation started
// (its base) and every input applied after it (samples, clinical records, ticks that
// changed the twin). A rewind folds from the newest base that precedes the late input, with
// the inputs of that generation and the newer ones (at most max_inputs / 8 of them more
// than the inputs after the late one); the result
// is the twin the same fold from a stored checkpoint gives, byte for byte, because the
// base is the live twin, which is that fold.
// Memory: after Maintain, at most `max_inputs` inputs and kMaxGenerations twin copies.
// Thread-compatible (the shard thread owns it).
#ifndef PUMPTWIN_SERVER_RECENT_INPUTS_H_
#define PUMPTWIN_SERVER_RECENT_INPUTS_H_

#include <cstddef>
#include <deque>
#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "server/core/event_inputs.h"
#include "twin/drug_library.h"
#include "twin/event_fold.h"
#include "twin/twin.h"

namespace pumptwin::server {

class RecentInputs {
 public:
  // A new generation starts every max_inputs / kGenerationsPerBound inputs.
  static constexpr size_t kGenerationsPerBound = 8;
  // At most this many generations (twin copies) after Maintain.
  static constexpr size_t kMaxGenerations = 2 * kGenerationsPerBound;

  // Starts at `live`, the twin after every input up to and including `last_key`;
  // `last_sample_time`: the pump time of its latest applied sample (the clock check of late
  // samples).
  RecentInputs(const twin::Twin& live, const twin::InputKey& last_key, absl::Time last_sample_time);

  // An input applied to the live twin (in order, or accepted by a rewind from here); it
  // joins the newest generation whose base precedes it.
  void AddSample(const twin::Sample& sample, absl::Time server_time);
  void AddRecord(const StoredInput& input);

  // Whether a rewind for inputs from `earliest` on can start here: some base holds only
  // inputs before it.
  bool Covers(const twin::InputKey& earliest) const;
  // The fold that applies inputs from `earliest` on (Covers must hold): the base to start
  // from and the inputs after it, sorted (they reference this object: use them before the
  // next change).
  struct Start {
    twin::Twin twin;
    std::vector<twin::FoldInput> inputs;
  };
  Start From(const twin::InputKey& earliest,
             const std::shared_ptr<const twin::DrugLibrary>& library) const;
  // After the fold of From(earliest) replaced the live twin (the newer generations' bases
  // are stale): `before` is the twin that fold had before its first input at or after
  // `earliest`, after `before_key`; null when it had none before (the generation it
  // started from takes every input). The generation it started from keeps its inputs before
  // `earliest`, a new one starts at `before` with those at and after it, so the next late
  // input after this one replays only from here. `after` (optional): the twin that fold had
  // after its last late input, at `after_key`, before the inputs stored after it (the record
  // a late frame arrived behind): it starts one more generation with those, so a later late
  // part before them (a frame still in flight behind the same record) replays only them.
  // Add the accepted late inputs after this.
  void Rebase(const twin::InputKey& earliest, const twin::Twin* before,
              const twin::InputKey& before_key, const twin::Twin* after = nullptr,
              const twin::InputKey& after_key = {});
  // Starts a new generation at `live` (unless the newest holds no input yet): before an
  // input that telemetry still in flight may precede, such as a clinical record stated
  // ahead of it, so the rewinds of that telemetry fold again only from here.
  void StartGeneration(const twin::Twin& live);
  // Drops everything and starts again at `live` (a change the inputs do not describe).
  void Reset(const twin::Twin& live);
  // Starts a new generation at `live` once the newest holds max_inputs /
  // kGenerationsPerBound inputs, drops the oldest generations while more than `max_inputs`
  // are held and joins adjacent ones beyond kMaxGenerations (never into the newest): afterwards
  // size() <= max_inputs and generations() <= kMaxGenerations, and the inputs of at least the
  // newest generation are kept.
  void Maintain(const twin::Twin& live, size_t max_inputs);

  size_t size() const;  // inputs held (samples and records)
  size_t generations() const { return gens_.size(); }
  absl::Time last_sample_time() const { return last_sample_time_; }

 private:
  struct Generation {
    twin::Twin base;
    twin::InputKey base_key;  // every input folded into `base` is at or before it
    PumpHistory inputs;
    size_t size() const { return inputs.samples.size() + inputs.inputs.size(); }
  };
  // Index of the newest generation whose base precedes `earliest` (-1: none).
  int GenerationFor(const twin::InputKey& earliest) const;
  // The generation an input at `key` joins (the newest whose base precedes it; the oldest
  // when none does).
  PumpHistory& InputsFor(const twin::InputKey& key);
  void Note(const twin::InputKey& key);

  std::deque<Generation> gens_;  // oldest first, never empty
  twin::InputKey last_key_;      // the latest input applied to the live twin
  absl::Time last_sample_time_;
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_RECENT_INPUTS_H_
