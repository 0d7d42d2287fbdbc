// Helpers for device_link tests: valid samples, an in-process DeviceGateway server on an
// ephemeral 127.0.0.1 port, a fake clock and a fake sleeper. Test-only; thread-safe where
// noted.
#ifndef PUMPTWIN_TESTS_DEVICE_LINK_TEST_UTIL_H_
#define PUMPTWIN_TESTS_DEVICE_LINK_TEST_UTIL_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "device_link/backoff.h"
#include "device_link/gateway_service.h"
#include "grpcpp/grpcpp.h"
#include "pumptwin/v1/telemetry.pb.h"

namespace pumptwin::device_link::testing {

// Server time used by tests: 2026-11-22 00:00 UTC.
inline absl::Time TestNow() { return absl::FromUnixSeconds(1795305600); }

// A sample that passes every default validation rule: every signal set to a plausible
// value, this seq, a device time just before `now`, and a reservoir and drive count that
// move with the seq. (Built here, not by tools/: tests of device_link/ use no tool code.)
inline v1::TelemetrySample MakeSample(const std::string& pump_id, uint64_t seq,
                                      absl::Time now = TestNow()) {
  v1::TelemetrySample s;
  s.set_pump_id(pump_id);
  s.set_measured_reservoir_ul(17'950.0);
  s.set_outlet_pressure_mmhg(12.5);
  s.set_stroke_pressure_peak_mmhg(40.0);
  s.set_csf_pulsation_mmhg(3.0);
  s.set_battery_voltage_v(3.1);
  s.set_battery_current_ua(15.0);
  s.set_motor_current_ma(20.0);
  s.set_temperature_c(37.0);
  s.set_seq(seq);
  s.set_device_time_ms(absl::ToUnixMillis(now) - 60'000 + static_cast<int64_t>(seq));
  s.set_calculated_reservoir_ul(18'000.0 - static_cast<double>(seq));
  s.set_cumulative_drive_units(1'000 + seq);
  s.set_alarm_flags(0);
  return s;
}

inline std::vector<v1::TelemetrySample> MakeSamples(const std::string& pump, uint64_t first_seq,
                                                    int n, absl::Time now = TestNow()) {
  std::vector<v1::TelemetrySample> out;
  for (int i = 0; i < n; ++i) out.push_back(MakeSample(pump, first_seq + i, now));
  return out;
}

// Manually advanced clock. Thread-safe.
class FakeClock {
 public:
  explicit FakeClock(absl::Time t = TestNow()) : now_(t) {}
  absl::Time Now() const {
    absl::MutexLock l(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock l(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

// Records requested sleeps and returns at once (optionally advancing a FakeClock).
class FakeSleeper final : public Sleeper {
 public:
  explicit FakeSleeper(FakeClock* clock = nullptr) : clock_(clock) {}
  void SleepFor(absl::Duration d, absl::Notification* /*interrupt*/) override {
    if (clock_ != nullptr) clock_->Advance(d);
    absl::MutexLock l(&mu_);
    sleeps_.push_back(d);
  }
  std::vector<absl::Duration> sleeps() const {
    absl::MutexLock l(&mu_);
    return sleeps_;
  }
  bool AwaitCount(size_t n, absl::Duration timeout) const {
    absl::MutexLock l(&mu_);
    auto cond = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return sleeps_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&cond), timeout);
  }

 private:
  FakeClock* const clock_;
  mutable absl::Mutex mu_;
  std::vector<absl::Duration> sleeps_ ABSL_GUARDED_BY(mu_);
};

// A DeviceGateway server on 127.0.0.1 (port 0 = ephemeral). Kill() is the "crash":
// Shutdown with a short deadline cancels the open streams.
class TestServer {
 public:
  static std::unique_ptr<TestServer> Start(
      IngestSink* sink, GatewayServiceOptions options, int port = 0,
      std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials()) {
    auto t = std::unique_ptr<TestServer>(new TestServer);
    if (!options.clock) options.clock = [] { return TestNow(); };
    t->service_ = std::make_unique<GatewayService>(sink, std::move(options));
    grpc::ServerBuilder b;
    b.AddListeningPort(absl::StrCat("127.0.0.1:", port), creds, &t->port_);
    b.RegisterService(t->service_.get());
    t->server_ = b.BuildAndStart();
    if (t->server_ == nullptr || t->port_ == 0) return nullptr;
    return t;
  }
  ~TestServer() { Kill(); }

  void Kill() {
    if (server_ == nullptr) return;
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(50));
    server_->Wait();
    server_.reset();
  }
  int port() const { return port_; }
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }
  GatewayService* service() const { return service_.get(); }

 private:
  TestServer() = default;
  std::unique_ptr<GatewayService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace pumptwin::device_link::testing

#endif  // PUMPTWIN_TESTS_DEVICE_LINK_TEST_UTIL_H_
