// pumptwin_streamhold: how many concurrent DeviceGateway streams a server holds. Opens
// --streams gateway streams (callback API, a few threads in all) over
// ceil(streams / streams_per_channel) HTTP/2 connections, holds them for --hold_s while each
// sends a one-sample frame every --frame_interval_s and waits for its Ack, then closes them.
// Prints progress lines on stderr and one summary line on stdout; exit 0 only if every
// stream was established, acked without Nacks and closed OK. Results: docs/benchmarks.md.
#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/help_flags.h"
#include "device_link/process_tuning.h"
#include "grpcpp/grpcpp.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "tools/loadgen/loadgen_common.h"
#include "tools/loadgen/stream_holder.h"

ABSL_FLAG(std::string, target, "", "server address on loopback, e.g. 127.0.0.1:50051 (required)");
ABSL_FLAG(int, streams, 1000, "concurrent gateway streams to open and hold");
ABSL_FLAG(int, streams_per_channel, 100,
          "streams multiplexed on one HTTP/2 connection (1 = a connection per stream, like "
          "real gateways; the fd limit of both processes then bounds --streams)");
ABSL_FLAG(int, connect_concurrency, 1000, "Hellos awaiting their Welcome at once (ramp-up)");
ABSL_FLAG(double, connect_timeout_s, 120, "every stream must be welcomed within this");
ABSL_FLAG(double, hold_s, 10, "how long all streams are held open after the connect phase");
ABSL_FLAG(double, frame_interval_s, 5,
          "each stream sends a one-sample frame this often while held (<= --hold_s)");
ABSL_FLAG(double, drain_timeout_s, 30, "after the hold: bound for the last Acks");
ABSL_FLAG(double, close_timeout_s, 120,
          "after the half-close: bound for every stream's final status (then they are "
          "cancelled)");
ABSL_FLAG(double, max_s, 600, "hard bound of the whole run (also every stream's deadline)");
ABSL_FLAG(double, progress_s, 5, "seconds between progress lines on stderr (0 = none)");
ABSL_FLAG(int, server_pid, 0,
          "pid of the server on this machine: report its VmRSS, threads and open fds from "
          "/proc (the per-stream memory figure needs it)");
ABSL_FLAG(std::string, gateway_prefix, "holdgw", "stream i is gateway <prefix>-<i> ...");
ABSL_FLAG(std::string, pump_prefix, "hold", "... and reports for pump <prefix>-<i>");
ABSL_FLAG(bool, hello_lists_pump, true,
          "each Hello names its pump; false: Hello.pump_ids is empty (\"every pump bound to "
          "me\"), so the server looks the gateway's pumps up itself (docs/gateway_protocol.md)");
ABSL_FLAG(bool, register_pumps, false,
          "first register pump <pump_prefix>-<i> bound to gateway <gateway_prefix>-<i> for "
          "every stream via TwinService.RegisterPump (ALREADY_EXISTS is fine)");
ABSL_FLAG(int, register_concurrency, 128, "RegisterPump calls in flight");

namespace {

using pumptwin::loadgen::HoldOptions;
using pumptwin::loadgen::HoldReport;
using pumptwin::loadgen::ProcessFootprint;

absl::Duration Secs(double s) { return absl::Seconds(s); }

// This process's soft limit on open files (one per connection).
int64_t OpenFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return INT64_MAX;
  return static_cast<int64_t>(rl.rlim_cur);
}

std::string Codes(const std::map<std::string, int>& codes) {
  return codes.empty() ? "-" : absl::StrJoin(codes, ",", absl::PairFormatter(":"));
}

// RSS delta per stream in bytes; 0 when unknown.
double PerStream(const std::optional<ProcessFootprint>& before,
                 const std::optional<ProcessFootprint>& after, int streams) {
  if (!before || !after || streams == 0) return 0;
  return static_cast<double>(after->rss_bytes - before->rss_bytes) / streams;
}

std::string Footprint(const char* who, const std::optional<ProcessFootprint>& before,
                      const std::optional<ProcessFootprint>& held,
                      const std::optional<ProcessFootprint>& end, int streams, int64_t acks) {
  if (!before || !held) return "";
  std::string s = absl::StrFormat(
      " %s_rss_mb_before=%.1f %s_rss_mb_held=%.1f %s_bytes_per_stream=%.0f %s_threads=%d "
      "%s_cpu_s_connect=%.2f",
      who, before->rss_bytes / 1e6, who, held->rss_bytes / 1e6, who,
      PerStream(before, held, streams), who, held->threads, who,
      held->cpu_seconds - before->cpu_seconds);
  if (held->open_fds >= 0) absl::StrAppend(&s, " ", who, "_fds=", held->open_fds);
  if (end) {
    // CPU of the hold phase: with few frames per stream, per Ack it is the cost of one
    // frame round trip plus whatever holding the other streams costs meanwhile.
    const double cpu = end->cpu_seconds - held->cpu_seconds;
    absl::StrAppendFormat(&s, " %s_rss_mb_end=%.1f %s_cpu_s_hold=%.2f %s_cpu_us_per_ack=%.0f", who,
                          end->rss_bytes / 1e6, who, cpu, who,
                          acks > 0 ? cpu * 1e6 / static_cast<double>(acks) : 0.0);
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  pumptwin::tools::ListOwnFlagsInHelp();
  absl::SetProgramUsageMessage(
      "Holds N concurrent DeviceGateway.Connect streams against a pumptwin server and reports\n"
      "how many were established, time to establish, ack latency while held and the server's\n"
      "memory per stream.\n"
      "Usage: pumptwin_streamhold --target=127.0.0.1:50051 --streams=100000 --register_pumps\n"
      "         --server_pid=$(pidof pumptwind) --hold_s=60 --frame_interval_s=30");
  pumptwin::tools::ParseFlagsOrExit(argc, argv);
  pumptwin::device_link::TuneProcessForStreaming();
  // As in pumptwind (server/process/main.cc): no debug lock-order graph over every stream's
  // mutexes.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  HoldOptions o;
  o.target = absl::GetFlag(FLAGS_target);
  o.streams = absl::GetFlag(FLAGS_streams);
  o.streams_per_channel = absl::GetFlag(FLAGS_streams_per_channel);
  o.connect_concurrency = absl::GetFlag(FLAGS_connect_concurrency);
  o.connect_timeout = Secs(absl::GetFlag(FLAGS_connect_timeout_s));
  o.hold = Secs(absl::GetFlag(FLAGS_hold_s));
  o.frame_interval = Secs(absl::GetFlag(FLAGS_frame_interval_s));
  o.drain_timeout = Secs(absl::GetFlag(FLAGS_drain_timeout_s));
  o.close_timeout = Secs(absl::GetFlag(FLAGS_close_timeout_s));
  o.max_total = Secs(absl::GetFlag(FLAGS_max_s));
  o.gateway_prefix = absl::GetFlag(FLAGS_gateway_prefix);
  o.pump_prefix = absl::GetFlag(FLAGS_pump_prefix);
  o.server_pid = absl::GetFlag(FLAGS_server_pid);
  o.hello_lists_pump = absl::GetFlag(FLAGS_hello_lists_pump);
  std::string error;
  if (o.target.empty()) {
    error = "--target is required";
  } else if (!pumptwin::loadgen::IsLoopbackTarget(o.target)) {
    error = absl::StrCat("--target=", o.target,
                         " is not a loopback host:port (127.x.y.z, "
                         "localhost or [::1]): this tool only loads a server on this machine");
  } else if (o.streams < 1 || o.streams_per_channel < 1 || o.connect_concurrency < 1) {
    error = "--streams, --streams_per_channel and --connect_concurrency must be >= 1";
  } else if (o.frame_interval <= absl::ZeroDuration() || o.frame_interval > o.hold) {
    error = "--frame_interval_s must be > 0 and <= --hold_s, so that every stream sends a frame";
  } else if (o.max_total < o.hold || o.connect_timeout <= absl::ZeroDuration()) {
    error = "--max_s must be >= --hold_s and --connect_timeout_s > 0";
  } else if (const int64_t need =
                 (o.streams + o.streams_per_channel - 1) / o.streams_per_channel + 64;
             need > OpenFileLimit()) {
    error =
        absl::StrCat("--streams=", o.streams, " over --streams_per_channel=", o.streams_per_channel,
                     " needs about ", need, " open files; the limit is ", OpenFileLimit(),
                     " (raise it with ulimit -n, up to ulimit -Hn, or put "
                     "more streams on each connection)");
  } else if (o.server_pid > 0 && !pumptwin::loadgen::ReadProcessFootprint(o.server_pid)) {
    error = absl::StrCat("--server_pid=", o.server_pid, ": no such process (/proc/", o.server_pid,
                         "/status)");
  }
  if (!error.empty()) {
    std::fprintf(stderr, "pumptwin_streamhold: %s (see --help)\n", error.c_str());
    return 2;
  }
  if (const double p = absl::GetFlag(FLAGS_progress_s); p > 0) {
    o.progress_interval = Secs(p);
    o.progress = [](const std::string& line) {
      std::fprintf(stderr, "[streamhold] %s\n", line.c_str());
    };
  }

  if (absl::GetFlag(FLAGS_register_pumps)) {
    std::vector<pumptwin::loadgen::PumpBinding> pumps;
    pumps.reserve(o.streams);
    for (int i = 0; i < o.streams; ++i) {
      pumps.push_back(
          {pumptwin::loadgen::HoldPumpId(o, i), pumptwin::loadgen::HoldGatewayId(o, i)});
    }
    auto stub = pumptwin::v1::TwinService::NewStub(
        grpc::CreateChannel(o.target, grpc::InsecureChannelCredentials()));
    const absl::Time t0 = absl::Now();
    // Implanted a day ago: the frames carry the current time as device time.
    grpc::Status st = pumptwin::loadgen::RegisterPumps(
        *stub, pumps,
        {.implant_time_ms = absl::ToUnixMillis(t0 - absl::Hours(24)), .reporting_interval_ms = 0},
        absl::GetFlag(FLAGS_register_concurrency));
    if (!st.ok()) {
      std::fprintf(stderr, "pumptwin_streamhold: registering pumps failed: %s: %s\n",
                   absl::StatusCodeToString(static_cast<absl::StatusCode>(st.error_code())).c_str(),
                   st.error_message().c_str());
      return 1;
    }
    std::fprintf(stderr, "[streamhold] registered %d pumps in %.1f s\n", o.streams,
                 absl::ToDoubleSeconds(absl::Now() - t0));
  }

  auto holder = std::make_unique<pumptwin::loadgen::StreamHolder>(o);
  const HoldReport r = holder->Run();
  std::printf(
      "requested=%d established=%d failed=%d failed_codes=%s channels=%d "
      "establish_s=%.2f handshake_ms_p50=%.2f handshake_ms_p99=%.2f held_s=%.1f frames_sent=%lld "
      "acks=%lld nacks=%lld skipped_busy=%lld streams_acked=%d ack_ms_p50=%.2f ack_ms_p99=%.2f "
      "ack_ms_max=%.2f dropped=%d dropped_codes=%s closed_ok=%d close_codes=%s abandoned=%d%s%s\n",
      r.requested, r.established, r.failed, Codes(r.failed_codes).c_str(), r.channels,
      absl::ToDoubleSeconds(r.establish_time), r.handshake_ms_p50, r.handshake_ms_p99,
      absl::ToDoubleSeconds(r.held_for), static_cast<long long>(r.frames_sent),
      static_cast<long long>(r.acks), static_cast<long long>(r.nacks),
      static_cast<long long>(r.skipped_busy), r.streams_acked, r.ack_ms_p50, r.ack_ms_p99,
      r.ack_ms_max, r.dropped, Codes(r.dropped_codes).c_str(), r.closed_ok,
      Codes(r.close_codes).c_str(), r.abandoned,
      Footprint("server", r.server_before, r.server_held, r.server_end, r.established, r.acks)
          .c_str(),
      Footprint("client", r.client_before, r.client_held, r.client_end, r.established, r.acks)
          .c_str());
  std::fflush(stdout);
  if (!r.Success()) {
    std::fprintf(stderr, "pumptwin_streamhold: FAILED: %s\n", r.FailureReason().c_str());
  }
  if (r.abandoned > 0) {
    (void)holder.release();  // reactors still reference it
    std::_Exit(1);
  }
  return r.Success() ? 0 : 1;
}
