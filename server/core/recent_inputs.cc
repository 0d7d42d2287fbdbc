#include "server/core/recent_inputs.h"

#include <algorithm>
#include <iterator>
#include <utility>

namespace pumptwin::server {

RecentInputs::RecentInputs(const twin::Twin& live, const twin::InputKey& last_key,
                           absl::Time last_sample_time)
    : last_key_(last_key), last_sample_time_(last_sample_time) {
  gens_.push_back({live, last_key, {}});
}

void RecentInputs::Note(const twin::InputKey& key) {
  if (last_key_ < key) last_key_ = key;
}

PumpHistory& RecentInputs::InputsFor(const twin::InputKey& key) {
  const int g = GenerationFor(key);
  return gens_[std::max(g, 0)].inputs;
}

void RecentInputs::AddSample(const twin::Sample& sample, absl::Time server_time) {
  const twin::InputKey key{sample.device_time, twin::InputRank::kSample, sample.seq};
  PumpHistory& h = InputsFor(key);
  h.samples.push_back(sample);
  h.sample_server_times.push_back(server_time);
  Note(key);
  last_sample_time_ = std::max(last_sample_time_, sample.device_time);
}

void RecentInputs::AddRecord(const StoredInput& input) {
  InputsFor(input.key).inputs.push_back(input);
  Note(input.key);
}

int RecentInputs::GenerationFor(const twin::InputKey& earliest) const {
  for (int g = static_cast<int>(gens_.size()) - 1; g >= 0; --g) {
    if (gens_[g].base_key < earliest) return g;
  }
  return -1;
}

bool RecentInputs::Covers(const twin::InputKey& earliest) const {
  return GenerationFor(earliest) >= 0;
}

RecentInputs::Start RecentInputs::From(
    const twin::InputKey& earliest, const std::shared_ptr<const twin::DrugLibrary>& library) const {
  const int first = GenerationFor(earliest);
  Start start{gens_[first].base, {}};
  for (size_t g = first; g < gens_.size(); ++g) {
    std::vector<twin::FoldInput> part = gens_[g].inputs.FoldInputs(library);
    start.inputs.insert(start.inputs.end(), std::make_move_iterator(part.begin()),
                        std::make_move_iterator(part.end()));
  }
  return start;
}

void RecentInputs::Rebase(const twin::InputKey& earliest, const twin::Twin* before,
                          const twin::InputKey& before_key, const twin::Twin* after,
                          const twin::InputKey& after_key) {
  const int first = GenerationFor(earliest);
  if (first < 0) return;
  Generation next{before != nullptr ? *before : std::move(gens_[first].base),
                  before != nullptr ? before_key : gens_[first].base_key,
                  {}};
  for (size_t g = first; g < gens_.size(); ++g) {
    PumpHistory& from = gens_[g].inputs;
    // Only the generation the fold started from can hold inputs before `earliest`.
    const bool split = before != nullptr && g == static_cast<size_t>(first);
    PumpHistory kept;
    for (size_t i = 0; i < from.samples.size(); ++i) {
      const bool stays =
          split && twin::InputKey{from.samples[i].device_time, twin::InputRank::kSample,
                                  from.samples[i].seq} < earliest;
      PumpHistory& into = stays ? kept : next.inputs;
      into.samples.push_back(std::move(from.samples[i]));
      into.sample_server_times.push_back(from.sample_server_times[i]);
    }
    for (StoredInput& in : from.inputs) {
      (split && in.key < earliest ? kept : next.inputs).inputs.push_back(std::move(in));
    }
    from = std::move(kept);
  }
  gens_.erase(gens_.begin() + first + (before != nullptr ? 1 : 0), gens_.end());
  if (after == nullptr) {
    gens_.push_back(std::move(next));
    return;
  }
  Generation last{*after, after_key, {}};
  PumpHistory& mid = next.inputs;
  PumpHistory kept;
  for (size_t i = 0; i < mid.samples.size(); ++i) {
    const bool stays = !(after_key < twin::InputKey{mid.samples[i].device_time,
                                                    twin::InputRank::kSample, mid.samples[i].seq});
    PumpHistory& into = stays ? kept : last.inputs;
    into.samples.push_back(std::move(mid.samples[i]));
    into.sample_server_times.push_back(mid.sample_server_times[i]);
  }
  for (StoredInput& in : mid.inputs) {
    (after_key < in.key ? last.inputs : kept).inputs.push_back(std::move(in));
  }
  mid = std::move(kept);
  gens_.push_back(std::move(next));
  gens_.push_back(std::move(last));
}

void RecentInputs::StartGeneration(const twin::Twin& live) {
  if (gens_.back().size() > 0) gens_.push_back({live, last_key_, {}});
}

void RecentInputs::Reset(const twin::Twin& live) {
  gens_.clear();
  gens_.push_back({live, last_key_, {}});
}

void RecentInputs::Maintain(const twin::Twin& live, size_t max_inputs) {
  if (gens_.back().size() >= std::max<size_t>(1, max_inputs / kGenerationsPerBound)) {
    gens_.push_back({live, last_key_, {}});
  }
  size_t held = size();
  while (gens_.size() > 1 && held > max_inputs) {
    held -= gens_.front().size();
    gens_.pop_front();
  }
  // Rewinds add generations: the two adjacent ones with the fewest inputs become one, the
  // newest excepted (the copy the next late input most likely starts from).
  while (gens_.size() > kMaxGenerations) {
    size_t best = 0;
    for (size_t g = 1; g + 2 < gens_.size(); ++g) {
      if (gens_[g].size() + gens_[g + 1].size() < gens_[best].size() + gens_[best + 1].size()) {
        best = g;
      }
    }
    PumpHistory& into = gens_[best].inputs;
    PumpHistory& from = gens_[best + 1].inputs;
    std::move(from.samples.begin(), from.samples.end(), std::back_inserter(into.samples));
    into.sample_server_times.insert(into.sample_server_times.end(),
                                    from.sample_server_times.begin(),
                                    from.sample_server_times.end());
    std::move(from.inputs.begin(), from.inputs.end(), std::back_inserter(into.inputs));
    gens_.erase(gens_.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
}

size_t RecentInputs::size() const {
  size_t n = 0;
  for (const Generation& g : gens_) n += g.size();
  return n;
}

}  // namespace pumptwin::server
