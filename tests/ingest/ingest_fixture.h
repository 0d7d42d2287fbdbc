// Helpers of the ingest integration tests: register pumps over TwinService, generate
// deterministic telemetry (the sample of a given seq is always the same bytes, so a
// resend is an exact duplicate), read twins back. Single-threaded test use.
#ifndef PUMPTWIN_TESTS_INGEST_INGEST_FIXTURE_H_
#define PUMPTWIN_TESTS_INGEST_INGEST_FIXTURE_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "device_link/gateway_client.h"
#include "grpcpp/grpcpp.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "tests/support/telemetry_fixtures.h"

namespace pumptwin::testing {

inline constexpr int64_t kStartMs = 1767225600000;  // 2026-01-01T00:00:00Z
inline constexpr int64_t kIntervalMs = 60000;       // one sample a minute
inline constexpr double kRateUlPerDay = 500;

inline grpc::Status RegisterSensorizedPump(v1::TwinService::Stub& stub, const std::string& pump,
                                           const std::string& gateway) {
  static_assert(kRateUlPerDay == 500, "RegisterHealthyPump prescribes 500 uL/day");
  // Reporting every 24 h: no silence alerts within a test.
  return RegisterHealthyPump(stub, pump, gateway, "test-clinic", kStartMs, 24 * 3600 * 1000);
}

// The telemetry of `pump` at `seq`: a healthy pump delivering as programmed.
inline v1::TelemetrySample SampleAt(const std::string& pump, uint64_t seq) {
  const int64_t t = kStartMs + static_cast<int64_t>(seq) * kIntervalMs;
  return HealthySample(pump, seq, t, kRateUlPerDay * (t - kStartMs) / 86400000.0);
}

inline std::vector<v1::TelemetrySample> Samples(const std::string& pump, uint64_t from,
                                                uint64_t to_inclusive) {
  std::vector<v1::TelemetrySample> out;
  for (uint64_t s = from; s <= to_inclusive; ++s) out.push_back(SampleAt(pump, s));
  return out;
}

inline absl::StatusOr<v1::TwinState> GetTwin(v1::TwinService::Stub& stub, const std::string& pump) {
  v1::GetTwinRequest req;
  req.set_name("pumps/" + pump);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  ctx.set_wait_for_ready(true);
  v1::TwinState out;
  grpc::Status st = stub.GetTwin(&ctx, req, &out);
  if (!st.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(st.error_code()), st.error_message());
  }
  return out;
}

inline std::unique_ptr<device_link::GatewayClient> MakeGateway(const std::string& target,
                                                               const std::string& gateway) {
  device_link::GatewayClientOptions o;
  o.target = target;
  o.credentials = grpc::InsecureChannelCredentials();
  o.gateway_id = gateway;
  o.max_unacked_frames = 8;
  o.max_buffered_frames = 4096;
  o.backoff.initial = absl::Milliseconds(20);
  o.backoff.max = absl::Milliseconds(200);
  return std::make_unique<device_link::GatewayClient>(std::move(o));
}

}  // namespace pumptwin::testing

#endif  // PUMPTWIN_TESTS_INGEST_INGEST_FIXTURE_H_
