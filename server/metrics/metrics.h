// Prometheus metrics of the server process: the registry, the HTTP exposer, build info,
// per-method gRPC request/latency metrics (via a server interceptor) and process metrics.
//
// Label cardinality is bounded: method labels come only from the compiled-in service
// descriptors (anything else is "unknown"), codes from the 17 gRPC codes; never a pump id.
// Thread-safe after construction.
#ifndef PUMPTWIN_SERVER_METRICS_H_
#define PUMPTWIN_SERVER_METRICS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/support/server_interceptor.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace pumptwin::server {

// Latency buckets in seconds shared by the server's histograms (100 µs .. 10 s).
const prometheus::Histogram::BucketBoundaries& LatencyBucketsSeconds();

class ServerMetrics {
 public:
  explicit ServerMetrics(const std::string& version);
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> shared_registry() { return registry_; }

  // Starts the HTTP exposer on `listen` ("127.0.0.1:9464", port 0 = ephemeral) and
  // returns the bound port.
  absl::StatusOr<int> StartExposer(const std::string& listen);

  // Records one finished RPC. `full_method` is gRPC's "/pkg.Service/Method".
  void RecordRpc(const std::string& full_method, int grpc_code, double seconds);

  // Interceptor factory to install on the grpc::ServerBuilder.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

  prometheus::Gauge& ready() { return *ready_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> process_collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Family<prometheus::Counter>* rpc_total_;
  prometheus::Family<prometheus::Histogram>* rpc_seconds_;
  prometheus::Gauge* ready_;
};

// Memory this process may use: cgroup v2 memory.max or v1 memory.limit_in_bytes, else
// MemTotal; 0 if unknown. Exported as pumptwin_memory_limit_bytes (read at start).
double MemoryLimitBytes();

// "/pumptwin.v1.TwinService/GetPump" -> "pumptwin.v1.TwinService/GetPump" when the method
// exists in the generated descriptor pool, else "unknown". Exposed for tests.
std::string MethodLabel(const std::string& full_method);

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_METRICS_H_
