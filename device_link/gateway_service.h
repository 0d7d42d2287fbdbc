// GatewayService: the server side of pumptwin.v1.DeviceGateway.Connect (gRPC callback API,
// one reactor per stream, no thread per stream). It checks the Hello (and the mTLS peer
// identity), decodes and validates frames, hands them to an IngestSink, and Acks each frame
// once the sink reports it durable. It borrows the sink, which must outlive the grpc::Server
// and every pending Submit callback. Thread-safe; see docs/gateway_protocol.md.
#ifndef PUMPTWIN_DEVICE_LINK_GATEWAY_SERVICE_H_
#define PUMPTWIN_DEVICE_LINK_GATEWAY_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "device_link/frame_decoder.h"
#include "device_link/ingest_sink.h"
#include "pumptwin/v1/gateway.grpc.pb.h"

namespace pumptwin::device_link {

// Metric hooks (all optional; unset = not counted). Called on gRPC or sink threads, so the
// callees must be thread-safe (prometheus-cpp counters are). No label explosion: reasons are
// the bounded NackReason enum.
struct GatewayMetrics {
  std::function<void()> stream_opened;
  std::function<void(absl::StatusCode)> stream_closed;     // the status the stream ended with
  std::function<void(uint64_t samples)> frame_received;    // per frame: its sample count
  std::function<void(uint64_t samples)> samples_accepted;  // valid samples in acked frames
  std::function<void(pumptwin::v1::NackReason)> nack;      // per Nack sent (NOT_BOUND included)
  std::function<void()> rate_limited;                      // a stream ended RESOURCE_EXHAUSTED
  std::function<void()> read_paused;                       // back-pressure engaged on a stream
  std::function<void(absl::Duration)> frame_ack_latency;   // frame read -> Ack queued
};

struct GatewayServiceOptions {
  FrameLimits frame_limits;
  // Frames of one stream handed to the sink and not yet answered. At the limit the reactor
  // stops reading (back-pressure through HTTP/2 flow control). Announced in Welcome.
  uint32_t max_unacked_frames = 32;
  // Server messages (Acks/Nacks) queued for writing on one stream before reading pauses.
  uint32_t max_queued_messages = 1024;
  // Per-gateway rate limit in samples per second (one token bucket per gateway id, shared
  // by its streams, so reconnecting does not refill it); 0 = unlimited. Over it, the stream
  // gets FlowControl{retry_after_ms} and ends RESOURCE_EXHAUSTED.
  double max_samples_per_second = 0;
  double rate_burst_samples = 0;  // bucket size; 0 = one second's worth
  // Refuse peers without an authenticated TLS identity (set whenever mTLS is on).
  bool require_peer_identity = false;
  // Cluster mode: announced in the Welcome (Welcome.virtual_shards); 0 outside it.
  uint32_t virtual_shards = 0;
  std::string server_version = "pumptwin";
  // Server time for device-time validation and rate limiting. Default: absl::Now.
  std::function<absl::Time()> clock;
  GatewayMetrics metrics;
};

// Connect is a raw method (ByteBuffer in and out): the stream parses each message itself, so
// a message that is not a valid GatewayMessage ends the stream with a status that says so
// (gRPC's typed reader would report it as a clean half-close: OK, and the rest unanswered).
class GatewayService final : public pumptwin::v1::DeviceGateway::WithRawCallbackMethod_Connect<
                                 pumptwin::v1::DeviceGateway::Service> {
 public:
  GatewayService(IngestSink* sink, GatewayServiceOptions options);
  GatewayService(const GatewayService&) = delete;
  GatewayService& operator=(const GatewayService&) = delete;
  ~GatewayService() override;

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Connect(
      grpc::CallbackServerContext* context) override;

  // Streams whose reactor has not yet finished (OnDone pending).
  int64_t active_streams() const { return active_streams_.load(); }

  const GatewayServiceOptions& options() const { return options_; }
  IngestSink* sink() const { return sink_; }
  absl::Time Now() const { return options_.clock(); }

  // Takes `samples` tokens from the gateway's bucket: zero if allowed, else how long the
  // gateway should wait before retrying.
  absl::Duration TakeRateTokens(const std::string& gateway_id, size_t samples);

 private:
  friend class GatewayStream;
  struct Bucket {
    double tokens = 0;
    absl::Time last_refill;
  };
  IngestSink* const sink_;
  const GatewayServiceOptions options_;
  std::atomic<int64_t> active_streams_{0};
  absl::Mutex rate_mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(rate_mu_);
};

// The gateway id a TLS peer is allowed to claim: the x509 common name of its client
// certificate; empty when the peer is not authenticated (insecure channel).
std::string PeerGatewayIdentity(const grpc::CallbackServerContext& context);

// The largest GatewayMessage the protocol allows: a frame of `max_samples_per_frame` samples
// with every field at its limit (64-byte pump id, every optional field, the most events),
// plus slack. A Hello shares this budget (about 30 000 pump ids at the default limits). The
// server sets its transport receive limit from it, so a larger message is refused
// RESOURCE_EXHAUSTED before it is parsed.
size_t MaxGatewayMessageBytes(const FrameLimits& limits);

// Appends `ack` to a stream's queue of messages not yet written. With `batches` (the
// gateway's Hello set accepts_ack_batches), an Ack or AckBatch at the tail of the queue
// absorbs it (becoming an AckBatch), so acks that are ready together go out as one message;
// anything else at the tail (a Nack, a Welcome) is never merged across, so the order of
// messages is what one-by-one sending would give. Exposed for tests.
void AppendAck(std::list<pumptwin::v1::ServerMessage>& queue, pumptwin::v1::Ack ack, bool batches);

}  // namespace pumptwin::device_link

#endif  // PUMPTWIN_DEVICE_LINK_GATEWAY_SERVICE_H_
