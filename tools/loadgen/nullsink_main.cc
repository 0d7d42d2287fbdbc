// pumptwin_nullsink: a DeviceGateway server whose sink only parses, validates and acks (the
// "null sink" baseline of docs/benchmarks.md). Listens on 127.0.0.1 only; runs until
// SIGINT/SIGTERM or --duration_s, then prints what it received.
#include <signal.h>

#include <cstdio>
#include <memory>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/help_flags.h"
#include "device_link/gateway_service.h"
#include "device_link/null_sink.h"
#include "device_link/process_tuning.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(int, port, 0, "TCP port on 127.0.0.1 (0: ephemeral, printed on stdout)");
ABSL_FLAG(uint32_t, max_unacked_frames, 32, "frames in flight per stream (Welcome)");
ABSL_FLAG(uint32_t, max_samples_per_frame, 1000, "largest frame accepted (Welcome)");
ABSL_FLAG(double, duration_s, 0, "exit after this many seconds (0: until SIGINT/SIGTERM)");

int main(int argc, char** argv) {
  pumptwin::tools::ListOwnFlagsInHelp();
  absl::SetProgramUsageMessage(
      "DeviceGateway null sink for benchmarks: parses, validates and acks, stores nothing.\n"
      "Usage: pumptwin_nullsink --port=50051");
  pumptwin::tools::ParseFlagsOrExit(argc, argv);
  // glibc returning freed receive buffers to the kernel costs 2-5x (docs/toolchain).
  pumptwin::device_link::TuneProcessForStreaming();

  // Block the stop signals before gRPC starts its threads; the main thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  pumptwin::device_link::NullSink sink;
  pumptwin::device_link::GatewayServiceOptions o;
  o.max_unacked_frames = absl::GetFlag(FLAGS_max_unacked_frames);
  o.frame_limits.max_samples_per_frame = absl::GetFlag(FLAGS_max_samples_per_frame);
  o.server_version = "pumptwin_nullsink";
  pumptwin::device_link::GatewayService service(&sink, o);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::StrCat("127.0.0.1:", absl::GetFlag(FLAGS_port)),
                           grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(64 * 1024 * 1024);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "cannot listen on 127.0.0.1:%d\n", absl::GetFlag(FLAGS_port));
    return 1;
  }
  std::printf("listening on 127.0.0.1:%d\n", port);
  std::fflush(stdout);

  const double duration_s = absl::GetFlag(FLAGS_duration_s);
  if (duration_s > 0) {
    timespec ts{static_cast<time_t>(duration_s),
                static_cast<long>((duration_s - static_cast<time_t>(duration_s)) * 1e9)};
    sigtimedwait(&stop_signals, nullptr, &ts);
  } else {
    int sig = 0;
    sigwait(&stop_signals, &sig);
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  std::printf("received %llu samples in %llu frames\n",
              static_cast<unsigned long long>(sink.samples()),
              static_cast<unsigned long long>(sink.batches()));
  return 0;
}
