// Pieces shared by the load tools (pumptwin_loadgen, pumptwin_streamhold): registering the
// pumps they report for, the telemetry sample they send, ack-latency percentiles, and
// reading another process's resident memory from /proc. Talks to the server over gRPC only.
// LatencyRecorder is thread-safe; the rest are plain functions.
#ifndef PUMPTWIN_TOOLS_LOADGEN_LOADGEN_COMMON_H_
#define PUMPTWIN_TOOLS_LOADGEN_LOADGEN_COMMON_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "pumptwin/v1/telemetry.pb.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"

namespace pumptwin::loadgen {

// A pump to register and the one gateway allowed to report for it.
struct PumpBinding {
  std::string pump_id;
  std::string gateway_id;
};

// How the load tools register their pumps: a sensorized pump with morphine 10 mg/mL at
// 0.5 mL/day, implanted at `implant_time_ms`; `reporting_interval_ms` 0 = no silence check.
struct RegistrationTemplate {
  int64_t implant_time_ms = 0;
  int64_t reporting_interval_ms = 0;
  // Every pump its own basal rate (no two twins share a therapy plan: the memory worst
  // case); false: all on morphine 10 mg/mL at 0.5 mL/day.
  bool distinct_rates = false;
};

// Registers every pump with at most `concurrency` RegisterPump calls in flight (group commit
// merges them). ALREADY_EXISTS counts as success, so a rerun against the same data dir
// continues. Returns the first other error; stops issuing calls after it.
grpc::Status RegisterPumps(pumptwin::v1::TwinService::Stub& stub,
                           const std::vector<PumpBinding>& pumps, const RegistrationTemplate& tmpl,
                           int concurrency);

// Cluster mode (docs/scaling.md): registers every pump at the replica serving it. Each pump is
// first asked at one of `replicas` (round-robin). A replica that does not serve it either forwards
// the call to the owner (the answer is the owner's) or refuses it with FAILED_PRECONDITION "...
// served by replica R at <address>; ...", and then the pump is asked again there; "being taken
// over" is asked again a moment later, and a pump whose replica cannot be reached (UNAVAILABLE,
// DEADLINE_EXCEEDED) is asked at the next one in the list. At most `max_rounds` rounds and
// `timeout` in all. ALREADY_EXISTS counts as success. `redirected` (optional) counts the pumps
// asked again at their owner. Returns the first other error, or DEADLINE_EXCEEDED naming a pump
// still unregistered.
grpc::Status RegisterPumpsAtOwners(const std::vector<std::string>& replicas,
                                   const std::vector<PumpBinding>& pumps,
                                   const RegistrationTemplate& tmpl, int concurrency,
                                   absl::Duration timeout, int max_rounds = 20,
                                   int64_t* redirected = nullptr);

// The replica address a "not served here" answer names ("... at <address>; ..."), or "".
std::string OwnerAddressInMessage(absl::string_view message);

// A plausible sample of `pump` (seq and device time left for the caller to set).
pumptwin::v1::TelemetrySample SampleTemplate(const std::string& pump);

// Ack latencies of many streams, recorded from gRPC callback threads.
class LatencyRecorder {
 public:
  void Add(absl::Duration d);
  // Waits until at least `n` latencies were recorded, or until `deadline`; whether they were.
  bool WaitForCount(size_t n, absl::Time deadline) const;
  // Sorted copy of what was recorded, in nanoseconds.
  std::vector<int64_t> SortedNanos() const;

 private:
  mutable absl::Mutex mu_;
  std::vector<int64_t> ns_ ABSL_GUARDED_BY(mu_);
};

// The q-quantile (0..1) of sorted nanoseconds, in milliseconds; 0 when empty.
double PercentileMs(const std::vector<int64_t>& sorted_ns, double q);

// Resident memory (VmRSS), threads, open fds and CPU time of a process (pid 0: this one),
// from /proc/<pid>; nullopt if it cannot be read (no such process).
struct ProcessFootprint {
  int64_t rss_bytes = 0;
  int threads = 0;
  int open_fds = -1;       // entries of /proc/<pid>/fd; -1 if not readable
  double cpu_seconds = 0;  // user + system
};
std::optional<ProcessFootprint> ReadProcessFootprint(int pid);

// True for 127.x.y.z:port, localhost:port and [::1]:port: the load tools refuse anything
// else so that a typo never points 100 k streams at a real server.
bool IsLoopbackTarget(const std::string& target);

}  // namespace pumptwin::loadgen

#endif  // PUMPTWIN_TOOLS_LOADGEN_LOADGEN_COMMON_H_
