// Telemetry of a healthy sensorized test pump (40 mL reservoir, 0.25 µL per drive unit),
// shared by the integration tests that stream into a real server.
#ifndef PUMPTWIN_TESTS_SUPPORT_TELEMETRY_FIXTURES_H_
#define PUMPTWIN_TESTS_SUPPORT_TELEMETRY_FIXTURES_H_

#include <cstdint>
#include <string>

#include "pumptwin/v1/telemetry.pb.h"

namespace pumptwin::testing {

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
