// A healthy sensorized test pump (40 mL reservoir, 0.25 µL per drive unit, morphine
// 10 mg/mL at 500 µL/day): its registration and its telemetry, shared by the integration
// tests that stream into a real server.
#ifndef PUMPTWIN_TESTS_SUPPORT_TELEMETRY_FIXTURES_H_
#define PUMPTWIN_TESTS_SUPPORT_TELEMETRY_FIXTURES_H_

#include <chrono>
#include <cstdint>
#include <string>

#include "grpcpp/grpcpp.h"
#include "pumptwin/v1/telemetry.pb.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"

namespace pumptwin::testing {

// Registers the pump, bound to `gateway` (waits for the server to be ready, 20 s at most).
inline grpc::Status RegisterHealthyPump(v1::TwinService::Stub& stub, const std::string& pump,
                                        const std::string& gateway, const std::string& clinic,
                                        int64_t implant_time_ms, int64_t reporting_interval_ms) {
  v1::RegisterPumpRequest req;
  auto* p = req.mutable_pump();
  p->set_pump_id(pump);
  p->set_profile(v1::PUMP_PROFILE_SENSORIZED);
  p->set_reservoir_capacity_ul(40000);
  p->set_catheter_length_cm(50);
  p->set_catheter_inner_diameter_mm(0.5);
  p->set_implant_time_ms(implant_time_ms);
  p->set_clinic(clinic);
  p->add_gateway_ids(gateway);
  p->set_reporting_interval_ms(reporting_interval_ms);
  auto* rx = req.mutable_initial_prescription();
  rx->set_drug("morphine");
  rx->set_concentration_ug_per_ml(10000);
  rx->set_mode(v1::THERAPY_MODE_SIMPLE_CONTINUOUS);
  rx->set_rate_ul_per_day(500);
  req.set_initial_reservoir_ul(40000);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  ctx.set_wait_for_ready(true);
  v1::Pump out;
  return stub.RegisterPump(&ctx, req, &out);
}

// Sample `seq` of `pump` at `device_time_ms`, `delivered_ul` after a full reservoir.
inline v1::TelemetrySample HealthySample(const std::string& pump, uint64_t seq,
                                         int64_t device_time_ms, double delivered_ul) {
  v1::TelemetrySample s;
  s.set_pump_id(pump);
  s.set_seq(seq);
  s.set_device_time_ms(device_time_ms);
  s.set_calculated_reservoir_ul(40000 - delivered_ul);
  s.set_measured_reservoir_ul(40000 - delivered_ul);
  s.set_cumulative_drive_units(static_cast<uint64_t>(delivered_ul / 0.25));
  s.set_outlet_pressure_mmhg(10.0);
  s.set_stroke_pressure_peak_mmhg(10.5);
  s.set_csf_pulsation_mmhg(3.0);
  s.set_battery_voltage_v(3.2);
  s.set_temperature_c(37.0);
  return s;
}

}  // namespace pumptwin::testing

#endif  // PUMPTWIN_TESTS_SUPPORT_TELEMETRY_FIXTURES_H_
