// Alert-subscriber load for pumptwin_loadgen: AlertWatchers opens N TwinService.WatchAlerts
// streams (callback API, no thread per stream) over ceil(N / per_channel) HTTP/2
// connections; the first `stalled` of them never read (a stuck dashboard: the server's
// writes to them stop at the flow-control window), the others read every event. Stalled
// and reading streams never share a connection. AlertProbe raises and resolves a motor-stall
// alert on its own pump (the pump's alarm flag, then a stall-recovery event) and records
// when each raising sample was handed to the gateway client; every reading watcher that
// receives the RAISED event of the k-th raise records (receipt - send of raise k): the
// sample-to-alert latency. Thread-safe as documented per method; every wait is bounded.
#ifndef PUMPTWIN_TOOLS_LOADGEN_ALERT_WATCHERS_H_
#define PUMPTWIN_TOOLS_LOADGEN_ALERT_WATCHERS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "device_link/gateway_client.h"
#include "grpcpp/grpcpp.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "tools/loadgen/loadgen_common.h"

namespace pumptwin::loadgen {

// Send times of the probe's raising samples, in order (raise k at index k).
class RaiseLog {
 public:
  void Add(absl::Time sent);
  // The send time of raise `k`, or InfinitePast if not sent (yet).
  absl::Time Get(size_t k) const;

 private:
  mutable absl::Mutex mu_;
  std::vector<absl::Time> sent_ ABSL_GUARDED_BY(mu_);
};

struct WatchOptions {
  std::string target;
  int watchers = 0;
  int stalled = 0;         // of them, never reading
  int per_channel = 100;   // streams per HTTP/2 connection
  std::string probe_pump;  // RAISED events of this pump are timed against the RaiseLog
  absl::Duration max_total = absl::Minutes(10);  // every stream's deadline
};

class AlertWatchers {
 public:
  AlertWatchers(WatchOptions options, const RaiseLog* raises);
  ~AlertWatchers();  // cancels every stream and waits (bounded) for them to end
  AlertWatchers(const AlertWatchers&) = delete;
  AlertWatchers& operator=(const AlertWatchers&) = delete;

  // Starts every stream; true once each has had its initial metadata (the server has
  // subscribed it) or was refused RESOURCE_EXHAUSTED (the server's subscriber maximum)
  // within `timeout`. Stalled and reading streams are opened alternately, one
  // connection's streams at a time, each connection's answered before the next opens: a
  // server at its maximum holds the first streams in that order (with per_channel at most
  // half the maximum, both kinds).
  bool Start(absl::Duration timeout);
  int started() const;
  int refused() const;          // refused RESOURCE_EXHAUSTED by the server's subscriber maximum
  int refused_reading() const;  // of those, reading streams (the rest were stalled ones)
  int64_t events_read() const { return events_.load(); }
  int ended_early() const;  // streams the server ended before the tool cancelled them
  const LatencyRecorder& latency() const { return latency_; }

 private:
  class Stream;
  friend class Stream;
  void OnStarted();
  void OnDone(bool early, bool refused, bool reads);

  const WatchOptions opts_;
  const RaiseLog* const raises_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<pumptwin::v1::TwinService::Stub>> stubs_;
  std::vector<std::unique_ptr<Stream>> streams_;
  LatencyRecorder latency_;
  std::atomic<int64_t> events_{0};
  mutable absl::Mutex mu_;
  int started_ ABSL_GUARDED_BY(mu_) = 0;
  int done_ ABSL_GUARDED_BY(mu_) = 0;
  int ended_early_ ABSL_GUARDED_BY(mu_) = 0;
  int refused_ ABSL_GUARDED_BY(mu_) = 0;
  int refused_reading_ ABSL_GUARDED_BY(mu_) = 0;
};

struct ProbeOptions {
  std::string target;
  std::string pump_id = "alertprobe";
  std::string gateway_id = "alertprobe-gw";
  absl::Duration interval = absl::Milliseconds(50);  // between a raise and its resolve
};

// Sends raise / resolve samples of its pump every `interval` from its own thread until
// Stop(). Register the pump first (RegisterProbe).
class AlertProbe {
 public:
  AlertProbe(ProbeOptions options, RaiseLog* raises);
  ~AlertProbe();  // Stop()
  grpc::Status RegisterProbe(pumptwin::v1::TwinService::Stub& stub);
  bool Start();  // connects; false if the gateway client is not welcomed within 10 s
  void Begin();  // starts raising (after Start), one sample every `interval`
  void Stop();
  int64_t raises() const { return raises_sent_.load(); }

 private:
  void Run();

  const ProbeOptions opts_;
  RaiseLog* const raises_;
  const int64_t start_ms_;
  std::unique_ptr<device_link::GatewayClient> client_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> raises_sent_{0};
  std::thread thread_;
};

// The alert side of one pumptwin_loadgen run: the subscribers and the probe, set up before
// any telemetry flows; the probe raising while the ingest runs at full speed; the summary.
struct AlertLoadOptions {
  std::string target;  // must be loopback (the probe's send times and the reads share a clock)
  int watchers = 0;    // WatchAlerts subscribers
  int stalled = 0;     // of them, how many never read
  int per_channel = 100;
  absl::Duration probe_interval = absl::ZeroDuration();  // zero: no probe
  absl::Duration max_total = absl::Minutes(10);          // every subscriber stream's deadline
};

class AlertLoad {
 public:
  explicit AlertLoad(AlertLoadOptions options) : options_(std::move(options)) {}

  // Registers the probe's pump, opens the subscribers (up to 120 s) and connects the probe.
  // INVALID_ARGUMENT for a target that is not loopback; another error when a step failed.
  // Does nothing when there are neither subscribers nor a probe.
  absl::Status Start();
  bool probing() const { return probe_ != nullptr; }
  void Begin();  // the probe starts raising
  // Stops the probe, then waits (at most 5 s) until every reading subscriber has timed every
  // raise.
  void Finish();
  // The summary line ("watchers=... alert_latency_ms_p50=..."), or "" without alert load.
  std::string Summary() const;

 private:
  // Reading subscribers the server holds: requested minus stalled minus refused readers.
  int held_readers() const;
  const AlertLoadOptions options_;
  RaiseLog raises_;
  std::unique_ptr<AlertWatchers> watchers_;
  std::unique_ptr<AlertProbe> probe_;
};

}  // namespace pumptwin::loadgen

#endif  // PUMPTWIN_TOOLS_LOADGEN_ALERT_WATCHERS_H_
