#include "device_link/fake_sink.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace pumptwin::device_link {

FakeSink::~FakeSink() { ReleaseHeld(); }

void FakeSink::RegisterPump(const std::string& pump_id, std::vector<std::string> gateways) {
  absl::MutexLock l(&mu_);
  Pump& p = pumps_[pump_id];
  p.gateways.insert(gateways.begin(), gateways.end());
}

void FakeSink::Decommission(const std::string& pump_id) {
  absl::MutexLock l(&mu_);
  pumps_[pump_id].decommissioned = true;
}

void FakeSink::SetHoldCompletions(bool hold) {
  absl::MutexLock l(&mu_);
  hold_ = hold;
}

size_t FakeSink::ReleaseHeld(size_t max) {
  std::vector<Held> run;
  {
    absl::MutexLock l(&mu_);
    const size_t n = std::min(max, held_.size());
    for (size_t i = 0; i < n; ++i) run.push_back(std::move(held_[i]));
    held_.erase(held_.begin(), held_.begin() + static_cast<std::ptrdiff_t>(n));
    outstanding_ -= n;
  }
  for (Held& h : run) h.done(std::move(h.result));
  return run.size();
}

void FakeSink::FailNextSubmits(int n, absl::Status status) {
  absl::MutexLock l(&mu_);
  fail_next_ = n;
  fail_status_ = std::move(status);
}

std::vector<uint64_t> FakeSink::AppliedSeqs(const std::string& pump_id) const {
  absl::MutexLock l(&mu_);
  auto it = pumps_.find(pump_id);
  return it == pumps_.end() ? std::vector<uint64_t>{} : it->second.applied;
}

uint64_t FakeSink::HighestDurableSeq(const std::string& pump_id) const {
  absl::MutexLock l(&mu_);
  auto it = pumps_.find(pump_id);
  return it == pumps_.end() ? 0 : it->second.sequencer.applied_seq();
}

size_t FakeSink::held() const {
  absl::MutexLock l(&mu_);
  return held_.size();
}

size_t FakeSink::max_outstanding() const {
  absl::MutexLock l(&mu_);
  return max_outstanding_;
}

uint64_t FakeSink::submits() const {
  absl::MutexLock l(&mu_);
  return submits_;
}

bool FakeSink::AwaitAppliedCount(const std::string& pump_id, size_t count,
                                 absl::Duration timeout) const {
  absl::MutexLock l(&mu_);
  auto cond = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    auto it = pumps_.find(pump_id);
    return it != pumps_.end() && it->second.applied.size() >= count;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&cond), timeout);
}

bool FakeSink::AwaitHeld(size_t count, absl::Duration timeout) const {
  absl::MutexLock l(&mu_);
  auto cond = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return held_.size() >= count; };
  return mu_.AwaitWithTimeout(absl::Condition(&cond), timeout);
}

void FakeSink::Submit(IngestBatch batch, std::function<void(IngestResult)> done) {
  IngestResult r;
  bool run_now;
  {
    absl::MutexLock l(&mu_);
    ++submits_;
    if (fail_next_ > 0) {
      --fail_next_;
      r.status = fail_status_;
    } else {
      std::vector<SequencedEntry> released;
      for (PumpSamples& ps : batch.pumps) {
        auto it = pumps_.find(ps.pump_id);
        if (it == pumps_.end()) {  // Authorize said OK earlier but the pump vanished
          for (const twin::Sample& s : ps.samples) {
            r.nacks.push_back(SinkNack{ps.pump_id, s.seq, v1::NACK_REASON_UNKNOWN_PUMP,
                                       absl::StrCat("pump ", ps.pump_id, " not registered")});
          }
          continue;
        }
        Pump& p = it->second;
        auto offer = [&](SequencedEntry e) {
          const uint64_t seq = e.seq;
          released.clear();
          SeqVerdict v = p.sequencer.Offer(config_, std::move(e), &released);
          if (v == SeqVerdict::kBeyondWindow) {
            r.nacks.push_back(
                SinkNack{ps.pump_id, seq, v1::NACK_REASON_OUT_OF_ORDER,
                         BeyondWindowMessage(ps.pump_id, seq, p.sequencer.applied_seq(), config_)});
          }
          for (const SequencedEntry& rel : released) {
            if (rel.sample) p.applied.push_back(rel.seq);
          }
        };
        for (twin::Sample& s : ps.samples) {
          const uint64_t seq = s.seq;
          offer(SequencedEntry{seq, std::move(s)});
        }
        for (uint64_t seq : ps.rejected_seqs) offer(SequencedEntry{seq, std::nullopt});
        r.durable.push_back(ResumePoint{ps.pump_id, p.sequencer.applied_seq()});
      }
    }
    ++outstanding_;
    max_outstanding_ = std::max(max_outstanding_, outstanding_);
    run_now = !hold_;
    if (!run_now) held_.push_back(Held{std::move(done), std::move(r)});
    if (run_now) --outstanding_;
  }
  if (run_now) done(std::move(r));
}

absl::StatusOr<std::vector<ResumePoint>> FakeSink::ResumePoints(
    absl::string_view gateway_id, const std::vector<std::string>& pump_ids) {
  absl::MutexLock l(&mu_);
  std::vector<ResumePoint> out;
  if (pump_ids.empty()) {
    for (const auto& [id, p] : pumps_) {
      if (p.gateways.contains(gateway_id)) {
        out.push_back(ResumePoint{id, p.sequencer.applied_seq()});
      }
    }
  } else {
    for (const std::string& id : pump_ids) {
      auto it = pumps_.find(id);
      if (it != pumps_.end() && it->second.gateways.contains(gateway_id)) {
        out.push_back(ResumePoint{id, it->second.sequencer.applied_seq()});
      }
    }
  }
  return out;
}

absl::Status FakeSink::Authorize(absl::string_view gateway_id, absl::string_view pump_id) {
  absl::MutexLock l(&mu_);
  auto it = pumps_.find(pump_id);
  if (it == pumps_.end()) {
    return absl::NotFoundError(absl::StrCat("pump ", pump_id, " is not registered"));
  }
  if (it->second.decommissioned) {
    return absl::FailedPreconditionError(absl::StrCat("pump ", pump_id, " is decommissioned"));
  }
  if (!it->second.gateways.contains(gateway_id)) {
    return absl::PermissionDeniedError(
        absl::StrCat("pump ", pump_id, " is not bound to gateway ", gateway_id));
  }
  return absl::OkStatus();
}

}  // namespace pumptwin::device_link
