// NullSink: the benchmark baseline "null sink". Frames arrive already decoded and validated
// by the service; the sink authorizes everything, stores nothing and acks at once (inline),
// reporting each pump's highest seq of the batch as durable. No sequencing, no memory per
// pump. Thread-safe (stateless apart from atomic counters).
#ifndef PUMPTWIN_DEVICE_LINK_NULL_SINK_H_
#define PUMPTWIN_DEVICE_LINK_NULL_SINK_H_

#include <atomic>
#include <cstdint>

#include "device_link/ingest_sink.h"

namespace pumptwin::device_link {

class NullSink final : public IngestSink {
 public:
  void Submit(IngestBatch batch, std::function<void(IngestResult)> done) override;
  absl::StatusOr<std::vector<ResumePoint>> ResumePoints(
      absl::string_view gateway_id, const std::vector<std::string>& pump_ids) override;
  absl::Status Authorize(absl::string_view gateway_id, absl::string_view pump_id) override;

  uint64_t samples() const { return samples_.load(std::memory_order_relaxed); }
  uint64_t batches() const { return batches_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> samples_{0};
  std::atomic<uint64_t> batches_{0};
};

}  // namespace pumptwin::device_link

#endif  // PUMPTWIN_DEVICE_LINK_NULL_SINK_H_
