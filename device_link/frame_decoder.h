// Decodes one TelemetryFrame into an IngestBatch: validates every sample (sample_codec),
// authorizes each distinct pump once per frame, groups samples by pump, and produces the
// Nacks for what was refused. Shared by the gateway service and the fuzz target.
// Pure function of its inputs (authorization is a callback); thread-safe.
#ifndef PUMPTWIN_DEVICE_LINK_FRAME_DECODER_H_
#define PUMPTWIN_DEVICE_LINK_FRAME_DECODER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "device_link/ingest_sink.h"
#include "device_link/sample_codec.h"
#include "pumptwin/v1/gateway.pb.h"

namespace pumptwin::device_link {

struct FrameLimits {
  ValidationLimits sample;
  // Announced in Welcome; a larger frame is a protocol violation (stream ends with
  // INVALID_ARGUMENT) because it breaks the per-stream memory bound.
  uint32_t max_samples_per_frame = 1000;
};

struct DecodedFrame {
  IngestBatch batch;
  std::vector<pumptwin::v1::Nack> nacks;  // validation and authorization rejections
  size_t accepted_samples = 0;            // samples placed into batch (valid ones)
};

// Non-OK (INVALID_ARGUMENT) only for a frame-level violation (too many samples); per-sample
// problems become Nacks in out->nacks.
absl::Status DecodeFrame(const pumptwin::v1::TelemetryFrame& frame, absl::string_view gateway_id,
                         absl::Time server_now, const FrameLimits& limits,
                         absl::FunctionRef<absl::Status(absl::string_view pump_id)> authorize,
                         DecodedFrame* out);

// Builds the wire Nack (grpc_code from NackReasonToCode).
pumptwin::v1::Nack MakeNack(uint64_t frame_id, absl::string_view pump_id, uint64_t seq,
                            pumptwin::v1::NackReason reason, absl::string_view message);

}  // namespace pumptwin::device_link

#endif  // PUMPTWIN_DEVICE_LINK_FRAME_DECODER_H_
