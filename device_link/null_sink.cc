#include "device_link/null_sink.h"

#include <algorithm>
#include <utility>

namespace pumptwin::device_link {

void NullSink::Submit(IngestBatch batch, std::function<void(IngestResult)> done) {
  IngestResult r;
  r.durable.reserve(batch.pumps.size());
  uint64_t n = 0;
  for (PumpSamples& p : batch.pumps) {
    uint64_t highest = 0;
    for (const twin::Sample& s : p.samples) highest = std::max(highest, s.seq);
    for (uint64_t seq : p.rejected_seqs) highest = std::max(highest, seq);
    n += p.samples.size();
    r.durable.push_back(ResumePoint{std::move(p.pump_id), highest});
  }
  samples_.fetch_add(n, std::memory_order_relaxed);
  batches_.fetch_add(1, std::memory_order_relaxed);
  done(std::move(r));
}

absl::StatusOr<std::vector<ResumePoint>> NullSink::ResumePoints(
    absl::string_view /*gateway_id*/, const std::vector<std::string>& /*pump_ids*/) {
  return std::vector<ResumePoint>{};  // stores nothing: the gateway resends what it holds
}

absl::Status NullSink::Authorize(absl::string_view /*gateway_id*/, absl::string_view /*pump_id*/) {
  return absl::OkStatus();
}

}  // namespace pumptwin::device_link
