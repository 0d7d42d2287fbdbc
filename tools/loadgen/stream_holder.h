// StreamHolder: opens N concurrent DeviceGateway.Connect streams with the gRPC callback API
// (one ClientBidiReactor per stream, no thread per stream), spread over
// ceil(N / streams_per_channel) channels, each its own HTTP/2 connection. Every stream sends
// a Hello for its own pump; once all are established (or the connect phase times out) they
// are held for `hold`, each sending one one-sample frame every `frame_interval` (phases
// spread evenly) and waiting for its Ack; then the tool waits for outstanding Acks,
// half-closes every stream and collects each final status. Every phase is bounded in time,
// and every RPC has a deadline of `max_total`. Run() is called once, from one thread.
#ifndef PUMPTWIN_TOOLS_LOADGEN_STREAM_HOLDER_H_
#define PUMPTWIN_TOOLS_LOADGEN_STREAM_HOLDER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "pumptwin/v1/gateway.grpc.pb.h"
#include "tools/loadgen/loadgen_common.h"

namespace pumptwin::loadgen {

struct HoldOptions {
  std::string target;  // loopback host:port of a DeviceGateway server
  int streams = 100;
  int streams_per_channel = 100;   // HTTP/2 streams multiplexed on one connection
  int connect_concurrency = 1000;  // Hellos awaiting their Welcome at once (ramp-up)
  absl::Duration connect_timeout = absl::Seconds(120);  // every stream welcomed by then
  absl::Duration hold = absl::Seconds(10);
  absl::Duration frame_interval = absl::Seconds(5);   // per stream; must be <= hold
  absl::Duration drain_timeout = absl::Seconds(30);   // for the last Acks after the hold
  absl::Duration close_timeout = absl::Seconds(120);  // half-close -> every final status
  absl::Duration max_total = absl::Seconds(600);      // hard bound of the whole run
  std::string gateway_prefix = "holdgw";              // stream i is gateway <prefix>-<i> ...
  std::string pump_prefix = "hold";                   // ... reporting for pump <prefix>-<i>
  // Hello.pump_ids = [own pump]; false sends none ("every pump bound to me"), which makes
  // the server look the gateway's pumps up itself.
  bool hello_lists_pump = true;
  int server_pid = 0;  // > 0: sample its VmRSS, threads and fds
  absl::Duration progress_interval = absl::Seconds(5);
  std::function<void(const std::string&)> progress;  // one line per interval; may be empty
};

std::string HoldGatewayId(const HoldOptions& o, int stream);
std::string HoldPumpId(const HoldOptions& o, int stream);

struct HoldReport {
  int requested = 0;
  int started = 0;  // Connect calls issued (fewer if the connect phase timed out)
  int channels = 0;
  int established = 0;                      // got their Welcome
  int failed = 0;                           // requested and never welcomed (not started included)
  std::map<std::string, int> failed_codes;  // final status of those, by code name
  int dropped = 0;                          // welcomed, then ended before the tool closed them
  std::map<std::string, int> dropped_codes;
  int closed_ok = 0;                       // welcomed and ended OK after the half-close
  std::map<std::string, int> close_codes;  // the other final statuses of welcomed streams
  int abandoned = 0;              // no final status within the bounds (their memory is leaked)
  absl::Duration establish_time;  // first Connect -> last Welcome
  double handshake_ms_p50 = 0, handshake_ms_p99 = 0;  // Hello -> Welcome, per stream
  absl::Duration held_for;                            // length of the hold phase
  int64_t frames_sent = 0, acks = 0, nacks = 0, flow_controls = 0;
  int64_t skipped_busy = 0;  // a due frame skipped: previous not yet acked
  int streams_acked = 0;     // welcomed streams with at least one Ack
  double ack_ms_p50 = 0, ack_ms_p99 = 0, ack_ms_max = 0;  // frame write -> Ack, while held
  std::optional<ProcessFootprint> server_before, server_held, server_end;
  std::optional<ProcessFootprint> client_before, client_held, client_end;

  // All requested streams established and closed OK, each acked at least once, no Nack.
  bool Success() const;
  // Why Success() is false (empty if it is true).
  std::string FailureReason() const;
};

class StreamHolder {
 public:
  explicit StreamHolder(HoldOptions options);
  ~StreamHolder();
  StreamHolder(const StreamHolder&) = delete;
  StreamHolder& operator=(const StreamHolder&) = delete;

  // Runs every phase and reports. If report.abandoned > 0 some reactor never finished:
  // the caller must then exit without destroying this object.
  HoldReport Run();

 private:
  class Stream;
  friend class Stream;
  // Counters the phases wait on; updated under mu_ by the streams' callbacks.
  struct Counts {
    int established = 0;
    int connect_failed = 0;  // stream ended before its Welcome
    int dropped = 0;
    int done = 0;  // OnDone ran
    int frames_in_flight = 0;
    int writes_in_flight = 0;
  };

  // Waits until `cond` holds or `deadline`, printing progress lines meanwhile.
  bool WaitFor(const char* phase, const std::function<bool(const Counts&)>& cond,
               absl::Time deadline);
  void Progress(const char* phase);
  void SleepUntil(absl::Time t);  // hold phase, with progress lines
  void ConnectPhase(absl::Time deadline);
  void HoldPhase(absl::Time end, absl::Time hard_end);
  void ClosePhase(absl::Time hard_end);
  HoldReport Summarize();
  std::optional<ProcessFootprint> ServerFootprint() const;

  const HoldOptions opts_;
  const absl::Time t0_;
  absl::Time next_progress_;
  std::atomic<bool> closing_{false};
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<pumptwin::v1::DeviceGateway::Stub>> stubs_;
  std::vector<std::unique_ptr<Stream>> streams_;
  LatencyRecorder handshake_, ack_;
  std::atomic<int64_t> frames_sent_{0}, acks_{0}, nacks_{0}, flow_controls_{0}, skipped_{0};
  absl::Time first_start_, hold_start_, hold_end_;
  HoldReport report_;

  mutable absl::Mutex mu_;
  Counts counts_ ABSL_GUARDED_BY(mu_);
  int64_t last_welcome_ns_ ABSL_GUARDED_BY(mu_) = 0;  // unix ns of the latest Welcome
};

}  // namespace pumptwin::loadgen

#endif  // PUMPTWIN_TOOLS_LOADGEN_STREAM_HOLDER_H_
