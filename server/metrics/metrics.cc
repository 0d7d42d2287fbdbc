#include "server/metrics/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/grpc_status.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/support/status.h"

namespace pumptwin::server {
namespace {

// Process metrics read from /proc at scrape time (prometheus-cpp 1.0 has no process
// collector). Names follow the Prometheus client conventions.
class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    long page = sysconf(_SC_PAGESIZE);
    long ticks = sysconf(_SC_CLK_TCK);
    std::ifstream statm("/proc/self/statm");
    long size_pages = 0, resident_pages = 0;
    statm >> size_pages >> resident_pages;
    out.push_back(Gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
                        static_cast<double>(resident_pages) * page));
    out.push_back(Gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                        static_cast<double>(size_pages) * page));
    std::ifstream stat("/proc/self/stat");
    std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    auto rparen = content.rfind(')');
    if (rparen != std::string::npos) {
      std::istringstream rest(content.substr(rparen + 2));
      std::string field;
      std::vector<std::string> fields;
      while (rest >> field) fields.push_back(field);
      // fields[0] is state (stat field 3); utime=14, stime=15, starttime=22 (1-based).
      if (fields.size() > 19) {
        double cpu = (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
        prometheus::MetricFamily f{"process_cpu_seconds_total",
                                   "Total user and system CPU time spent in seconds.",
                                   prometheus::MetricType::Counter,
                                   {}};
        prometheus::ClientMetric m;
        m.counter.value = cpu;
        f.metric.push_back(m);
        out.push_back(f);
      }
    }
    int fds = 0;
    if (DIR* d = opendir("/proc/self/fd")) {
      while (readdir(d) != nullptr) ++fds;
      closedir(d);
      fds -= 2;  // "." and ".."
    }
    out.push_back(Gauge("process_open_fds", "Number of open file descriptors.", fds));
    return out;
  }

 private:
  static prometheus::MetricFamily Gauge(const char* name, const char* help, double v) {
    prometheus::MetricFamily f{name, help, prometheus::MetricType::Gauge, {}};
    prometheus::ClientMetric m;
    m.gauge.value = v;
    f.metric.push_back(m);
    return f;
  }
};

class MetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(ServerMetrics* metrics, std::string method)
      : metrics_(metrics), method_(std::move(method)), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = methods->GetSendStatus();
      double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      metrics_->RecordRpc(method_, status.error_code(), seconds);
    }
    methods->Proceed();
  }

 private:
  ServerMetrics* metrics_;
  std::string method_;
  std::chrono::steady_clock::time_point start_;
};

class MetricsInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(ServerMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(metrics_, info->method() ? info->method() : "");
  }

 private:
  ServerMetrics* metrics_;
};

// Reads the first number of `path` (e.g. a cgroup limit file); 0 if absent or "max".
double ReadLimitFile(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word) || word == "max") return 0;
  try {
    return std::stod(word);
  } catch (const std::exception&) {
    return 0;
  }
}

// This process's cgroup path: cgroup v2 (`v2`, the "0::/path" line) or the v1 hierarchy
// whose controllers include "memory"; "" if unknown.
std::string CgroupPath(bool v2) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    auto a = line.find(':');
    auto b = line.find(':', a == std::string::npos ? a : a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    bool match = v2 ? (line.compare(0, a, "0") == 0 && controllers.empty())
                    : absl::StrContains(absl::StrCat(",", controllers, ","), ",memory,");
    if (match) return line.substr(b + 1);
  }
  return "";
}

// v1's "no limit" is a huge page-aligned number; treat anything above 2^60 as unlimited.
double Limited(double v) { return v > 1.1529215e18 ? 0 : v; }

}  // namespace

double MemoryLimitBytes() {
  // cgroup v2: the process's own cgroup, then the mount root (containers see "/").
  std::string v2 = CgroupPath(true);
  for (const std::string& dir : {"/sys/fs/cgroup" + v2, std::string("/sys/fs/cgroup")}) {
    if (double v = Limited(ReadLimitFile(dir + "/memory.max")); v > 0) return v;
  }
  std::string v1 = CgroupPath(false);
  for (const std::string& dir :
       {"/sys/fs/cgroup/memory" + v1, std::string("/sys/fs/cgroup/memory")}) {
    if (double v = Limited(ReadLimitFile(dir + "/memory.limit_in_bytes")); v > 0) return v;
  }
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  double kb = 0;
  while (meminfo >> key >> kb >> unit) {
    if (key == "MemTotal:") return kb * 1024;
  }
  return 0;
}

const prometheus::Histogram::BucketBoundaries& LatencyBucketsSeconds() {
  static const auto* kBuckets = new prometheus::Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};
  return *kBuckets;
}

std::string MethodLabel(const std::string& full_method) {
  // "/pkg.Service/Method" -> descriptor name "pkg.Service.Method".
  if (full_method.size() < 4 || full_method[0] != '/') return "unknown";
  std::string label = full_method.substr(1);
  std::string descriptor_name = absl::StrReplaceAll(label, {{"/", "."}});
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  if (pool->FindMethodByName(descriptor_name) == nullptr) return "unknown";
  return label;
}

ServerMetrics::ServerMetrics(const std::string& version)
    : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::BuildGauge()
      .Name("pumptwin_build_info")
      .Help("Build information; the value is always 1.")
      .Register(*registry_)
      .Add({{"version", version}})
      .Set(1);
  ready_ = &prometheus::BuildGauge()
                .Name("pumptwin_ready")
                .Help("1 once start-up (recovery) has finished and the server serves.")
                .Register(*registry_)
                .Add({});
  rpc_total_ = &prometheus::BuildCounter()
                    .Name("pumptwin_grpc_requests_total")
                    .Help("gRPC calls finished, by method and status code.")
                    .Register(*registry_);
  rpc_seconds_ = &prometheus::BuildHistogram()
                      .Name("pumptwin_grpc_request_duration_seconds")
                      .Help("gRPC call duration from start to status, by method.")
                      .Register(*registry_);
  prometheus::BuildGauge()
      .Name("pumptwin_memory_limit_bytes")
      .Help("Memory the process may use: cgroup limit, else physical RAM; 0 if unknown.")
      .Register(*registry_)
      .Add({})
      .Set(MemoryLimitBytes());
  // One series per compiled-in method (code OK) so that the families exist from the first
  // scrape; other codes appear when they happen.
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const char* service : {"pumptwin.v1.TwinService", "pumptwin.v1.DeviceGateway"}) {
    const google::protobuf::ServiceDescriptor* sd = pool->FindServiceByName(service);
    if (sd == nullptr) continue;
    for (int i = 0; i < sd->method_count(); ++i) {
      std::string method = absl::StrCat(service, "/", sd->method(i)->name());
      rpc_total_->Add({{"method", method}, {"code", "OK"}});
      rpc_seconds_->Add({{"method", method}}, LatencyBucketsSeconds());
    }
  }
  process_collector_ = std::make_shared<ProcessCollector>();
}

absl::StatusOr<int> ServerMetrics::StartExposer(const std::string& listen) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(listen, /*num_threads=*/1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve /metrics on ", listen, ": ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  exposer_->RegisterCollectable(process_collector_);
  auto ports = exposer_->GetListeningPorts();
  if (ports.empty()) return absl::UnavailableError("metrics exposer has no listening port");
  return ports.front();
}

void ServerMetrics::RecordRpc(const std::string& full_method, int grpc_code, double seconds) {
  std::string method = MethodLabel(full_method);
  rpc_total_->Add({{"method", method}, {"code", common::GrpcCodeName(grpc_code)}}).Increment();
  rpc_seconds_->Add({{"method", method}}, LatencyBucketsSeconds()).Observe(seconds);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ServerMetrics::InterceptorFactory() {
  return std::make_unique<MetricsInterceptorFactory>(this);
}

}  // namespace pumptwin::server
