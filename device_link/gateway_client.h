// GatewayClient: the gateway side of DeviceGateway.Connect, used by real gateways, the fleet
// simulator and the load tool. Store-and-forward: Send() puts a frame into a bounded buffer;
// a background supervisor keeps one stream open (Hello -> Welcome -> frames), reconnects with
// exponential backoff + jitter, drops what the Welcome's resume points say is stored and
// resends the rest; a frame leaves the buffer once every sample is acked or permanently
// nacked. Thread-safe: every public method may be called from any thread. Hooks run on gRPC
// threads without internal locks held; they must not call Stop().
#ifndef PUMPTWIN_DEVICE_LINK_GATEWAY_CLIENT_H_
#define PUMPTWIN_DEVICE_LINK_GATEWAY_CLIENT_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "device_link/backoff.h"
#include "grpcpp/grpcpp.h"
#include "pumptwin/v1/gateway.grpc.pb.h"
#include "twin/sample.h"

namespace pumptwin::device_link {

struct GatewayClientOptions {
  std::string target;  // e.g. "127.0.0.1:50051"
  // Required: grpc::InsecureChannelCredentials() or grpc::SslCredentials({ca, key, cert}).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  grpc::ChannelArguments channel_args;  // e.g. SSL target-name override in tests
  std::string gateway_id;               // must equal the client certificate's CN under mTLS
  std::string software_version = "pumptwin-gateway-client/0.1";
  std::vector<std::string> hello_pump_ids;  // extra pumps to learn resume points for

  // Store-and-forward bound: frames buffered (unsent + unacknowledged). At the bound,
  // Send() fails RESOURCE_EXHAUSTED (kReject) or waits up to block_timeout (kBlock). Once
  // the buffer has filled, kBlock Sends wait until a quarter of it is free (or for the
  // timeout, then go if there is any room): one wake-up per burst of acks rather than one
  // per ack, while the unsent frames still queued keep the stream busy.
  size_t max_buffered_frames = 1024;
  enum class WhenFull { kReject, kBlock };
  WhenFull when_full = WhenFull::kReject;
  absl::Duration block_timeout = absl::InfiniteDuration();
  // Frames written and not yet acked on the stream (the Welcome may lower it).
  uint32_t max_unacked_frames = 32;
  // Frames larger than this are refused by Send (the Welcome may lower it).
  uint32_t max_samples_per_frame = 1000;

  BackoffPolicy backoff;
  std::function<absl::Time()> clock;  // default absl::Now
  std::function<double()> uniform01;  // jitter source in [0,1); default absl::BitGen
  std::shared_ptr<Sleeper> sleeper;   // default RealSleeper

  std::function<void(const pumptwin::v1::Nack&)> on_nack;
  // Every Welcome (each session's start), after this client applied it.
  std::function<void(const pumptwin::v1::Welcome&)> on_welcome;
  // Cluster mode: set, a NACK_REASON_MOVED sample leaves this client's buffer and is handed
  // here (with the nack naming its replica) to be sent there (ClusterGatewayClient does).
  // Unset, it stays buffered and is resent at the next session.
  std::function<void(const pumptwin::v1::Nack&, pumptwin::v1::TelemetrySample)> on_moved;
  // With on_moved: a sample nacked OUT_OF_ORDER (its pump's earlier seqs are still on their
  // way, through another session) is handed to on_moved too, to be sent again once they
  // arrived, instead of being dropped as a permanent refusal.
  bool hand_back_out_of_order = false;
  // A frame left the buffer: every sample acked or permanently nacked. Latency is measured
  // from its (last) write to the Ack.
  std::function<void(uint64_t frame_id, absl::Duration latency)> on_frame_done;
};

struct GatewayClientStats {
  uint64_t frames_sent = 0;    // writes, including resends
  uint64_t frames_resent = 0;  // writes of a frame already written in an earlier session
  uint64_t samples_sent = 0;
  uint64_t frames_done = 0;    // left the buffer
  uint64_t samples_acked = 0;  // samples covered by an ack when their frame left
  uint64_t samples_nacked = 0;
  std::map<int, uint64_t> nacks_by_reason;  // NackReason -> count
  uint64_t samples_dropped_by_resume = 0;   // already stored per the Welcome
  uint64_t connect_attempts = 0;
  uint64_t reconnects = 0;  // attempts after the first
  uint64_t sessions_welcomed = 0;
  size_t buffered_frames = 0;
  bool connected = false;           // a session has been welcomed and is open
  absl::Status last_stream_status;  // how the last session ended (Stop's cancel excluded)
};

class GatewayClient {
 public:
  explicit GatewayClient(GatewayClientOptions options);
  ~GatewayClient();  // Stop()
  GatewayClient(const GatewayClient&) = delete;
  GatewayClient& operator=(const GatewayClient&) = delete;

  // Starts the supervisor thread (connect, then reconnect forever until Stop).
  void Start();
  // Stops: cancels the stream, joins the supervisor. Buffered frames are kept (Send after
  // Stop still buffers) but nothing is transmitted. Idempotent.
  void Stop();

  // Buffers one frame (samples of one or several pumps, each pump's seqs increasing) and
  // returns its frame id. INVALID_ARGUMENT if larger than max_samples_per_frame;
  // RESOURCE_EXHAUSTED (kReject, or kBlock after block_timeout) when the buffer is full.
  absl::StatusOr<uint64_t> Send(std::vector<pumptwin::v1::TelemetrySample> samples);
  // Convenience for producers of twin samples (simulator): maps with sample_codec.
  absl::StatusOr<uint64_t> SendTwin(absl::string_view pump_id,
                                    const std::vector<twin::Sample>& samples);

  // Blocks until the buffer is empty (everything acked or nacked), or the timeout.
  bool WaitUntilAllDone(absl::Duration timeout);
  // Blocks until a session has been welcomed (stats().sessions_welcomed >= n).
  bool WaitUntilWelcomed(uint64_t n, absl::Duration timeout);

  // After Stop: removes every sample not yet settled from the buffer and returns them in
  // buffer order (to be sent through another session: a replica that died).
  std::vector<pumptwin::v1::TelemetrySample> TakeUnsettled();
  // Live: every sample of `pump_id` not yet settled is settled here (not resent, no longer
  // awaited) and returned in buffer order, to be sent through another session (the pump
  // moved to another replica).
  std::vector<pumptwin::v1::TelemetrySample> TakeUnsettled(absl::string_view pump_id);

  GatewayClientStats stats() const;
  // Highest seq the server reported durable for a pump (0 if unknown).
  uint64_t acked_seq(absl::string_view pump_id) const;

 private:
  class Stream;
  friend class Stream;
  struct PumpRange {
    std::string pump_id;
    uint64_t max_seq = 0;
  };
  struct Frame {
    std::shared_ptr<const pumptwin::v1::GatewayMessage> msg;
    std::vector<PumpRange> pumps;
    std::vector<std::pair<std::string, uint64_t>> nacked;  // permanently refused samples
    bool sent = false;                                     // written in the current session
    bool ever_sent = false;
    bool acked_in_session = false;
    absl::Time sent_at;
  };

  void SupervisorLoop();
  // Writes the next frame if the current stream can take it. Called outside mu_.
  void MaybeWrite();
  void HandleServerMessage(const pumptwin::v1::ServerMessage& m);
  // Counts the frame's samples not yet settled (acked or permanently nacked); with
  // `rebuild`, also rewrites the frame to hold only those.
  size_t SettleLocked(Frame& f, bool rebuild) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnWelcomeLocked(const pumptwin::v1::Welcome& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnAckLocked(const pumptwin::v1::Ack& a,
                   std::vector<std::pair<uint64_t, absl::Duration>>* done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  pumptwin::v1::GatewayMessage BuildHelloLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const GatewayClientOptions opts_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pumptwin::v1::DeviceGateway::Stub> stub_;
  std::thread supervisor_;
  absl::Notification stop_;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The buffer filled up: kBlock Sends wait for a quarter of it to be free (hysteresis).
  bool refilling_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_frame_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Frame> frames_ ABSL_GUARDED_BY(mu_);  // the store-and-forward buffer
  std::deque<uint64_t> send_queue_ ABSL_GUARDED_BY(mu_);   // frame ids to write, in order
  absl::flat_hash_map<std::string, uint64_t> acked_ ABSL_GUARDED_BY(mu_);
  Stream* session_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool session_done_ ABSL_GUARDED_BY(mu_) = false;
  bool welcomed_ ABSL_GUARDED_BY(mu_) = false;
  bool want_reconnect_ ABSL_GUARDED_BY(mu_) = false;  // e.g. after STORE_UNAVAILABLE
  uint32_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t window_ ABSL_GUARDED_BY(mu_);
  uint32_t max_samples_per_frame_ ABSL_GUARDED_BY(mu_);
  absl::Duration retry_hint_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  GatewayClientStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pumptwin::device_link

#endif  // PUMPTWIN_DEVICE_LINK_GATEWAY_CLIENT_H_
