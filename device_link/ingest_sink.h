// IngestSink: what the gateway service hands validated telemetry to. The server implements
// it (sharded registry + durable store); device_link ships NullSink (benchmark baseline)
// and FakeSink (tests). The service never includes server/: this interface is the seam.
// Implementations must be thread-safe: every method is called from many gRPC threads.
#ifndef PUMPTWIN_DEVICE_LINK_INGEST_SINK_H_
#define PUMPTWIN_DEVICE_LINK_INGEST_SINK_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pumptwin/v1/gateway.pb.h"
#include "twin/sample.h"

namespace pumptwin::device_link {

// The validated part of one frame for one pump, in frame order (not necessarily seq order;
// the sink sequences with PumpSequencer).
struct PumpSamples {
  std::string pump_id;
  std::vector<twin::Sample> samples;
  // Seqs of this pump's samples that validation rejected (already Nack'd to the gateway):
  // the sink must consume these slots (SequencedEntry without sample) so the pump's
  // sequence advances past them and the ack can cover them.
  std::vector<uint64_t> rejected_seqs;
};

// One frame after decoding, validation and authorization.
struct IngestBatch {
  std::string gateway_id;
  uint64_t frame_id = 0;
  std::vector<PumpSamples> pumps;  // each pump at most once
};

// A sample the sink refused (unknown pump, decommissioned, beyond the reorder window, store
// unavailable for just this sample...). Forwarded to the gateway as a Nack.
struct SinkNack {
  std::string pump_id;
  uint64_t seq = 0;
  pumptwin::v1::NackReason reason = pumptwin::v1::NACK_REASON_UNSPECIFIED;
  std::string message;
};

struct ResumePoint {
  std::string pump_id;
  uint64_t highest_durable_seq = 0;  // 0: nothing stored yet
  // Cluster mode: another replica serves the pump (Welcome.moved); the seq is then unknown.
  bool moved = false;
  std::string owner_replica, owner_address;  // "" while no replica holds it
};

// Cluster mode: Authorize's answer for a pump another replica serves is UNAVAILABLE with this
// payload (the owner's address, "" while none holds it); it becomes NACK_REASON_MOVED.
inline constexpr char kMovedPayloadUrl[] = "type.pumptwin.dev/moved";
absl::Status MovedError(absl::string_view pump_id, absl::string_view owner_replica,
                        absl::string_view owner_address);

struct IngestResult {
  // Non-OK: nothing of the batch is durable (e.g. UNAVAILABLE on disk full / I/O error).
  // The service ends the stream with this status; the gateway resends after backoff.
  absl::Status status;
  // For each pump of the batch: highest seq such that it and every earlier seq are durable
  // (applied or consumed). Becomes the frame's Ack.
  std::vector<ResumePoint> durable;
  std::vector<SinkNack> nacks;
};

class IngestSink {
 public:
  virtual ~IngestSink() = default;

  // Hands over one batch. `done` is called exactly once, from any thread (possibly inline,
  // before Submit returns), only when every entry of the batch is durable (or nacked).
  // The service bounds the batches in flight per stream (back-pressure), so a sink may
  // simply delay `done` when busy. The sink must call every `done` before it is destroyed.
  virtual void Submit(IngestBatch batch, std::function<void(IngestResult)> done) = 0;

  // Resume points for the Welcome. `pump_ids` empty: every pump bound to the gateway.
  // Called on a gRPC thread at Hello: must not block for long.
  virtual absl::StatusOr<std::vector<ResumePoint>> ResumePoints(
      absl::string_view gateway_id, const std::vector<std::string>& pump_ids) = 0;

  // May `gateway_id` report for `pump_id`? OK, or NOT_FOUND (unregistered pump),
  // PERMISSION_DENIED (not bound to this gateway), FAILED_PRECONDITION (decommissioned),
  // MovedError (cluster mode: another replica serves it).
  // Called for each distinct pump of each frame on a gRPC thread: must be cheap.
  virtual absl::Status Authorize(absl::string_view gateway_id, absl::string_view pump_id) = 0;
};

// Nack reason for an Authorize status (NOT_FOUND -> UNKNOWN_PUMP, ...).
pumptwin::v1::NackReason AuthorizeStatusToNackReason(const absl::Status& status);

}  // namespace pumptwin::device_link

#endif  // PUMPTWIN_DEVICE_LINK_INGEST_SINK_H_
