// One telemetry sample as the model sees it: the protobuf-free twin of
// pumptwin.v1.TelemetrySample (device_link/sample_codec.* is the only place mapping the two).
//
// Optional signals are std::optional: absent means "not reported", never zero.
// Plain value type; thread-compatible.
#ifndef PUMPTWIN_TWIN_SAMPLE_H_
#define PUMPTWIN_TWIN_SAMPLE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "twin/units.h"

namespace pumptwin::twin {

// Mirrors pumptwin.v1.DeviceEventType (same numeric values).
enum class DeviceEventType : uint8_t {
  kUnspecified = 0,
  kBolusStart = 1,
  kBolusEnd = 2,
  kPatientBolusGranted = 3,
  kPatientBolusDenied = 4,
  kMotorStall = 5,
  kMotorStallRecovery = 6,
  kElectiveReplacement = 7,
  kEndOfService = 8,
  kMemoryError = 9,
  kMagneticField = 10,
  kTelemetrySession = 11,
  kLowReservoirAlarm = 12,
  kDeliveryResumed = 13,
  kReservoirRefill = 14,
};
inline constexpr int kMaxDeviceEventType = 14;

// Mirrors pumptwin.v1.AlarmFlag bits.
enum AlarmBits : uint32_t {
  kAlarmLowReservoir = 1u << 0,
  kAlarmCritical = 1u << 1,
  kAlarmMotorStall = 1u << 2,
  kAlarmEri = 1u << 3,
  kAlarmEos = 1u << 4,
  kAlarmMemoryError = 1u << 5,
};

struct DeviceEvent {
  DeviceEventType type = DeviceEventType::kUnspecified;
  absl::Time device_time = absl::UnixEpoch();
  std::optional<Microliters> volume;

  bool operator==(const DeviceEvent&) const = default;
};

struct Sample {
  uint64_t seq = 0;  // per-pump, strictly increasing, from 1
  absl::Time device_time = absl::UnixEpoch();
  std::optional<Microliters> calculated_reservoir;
  std::optional<Microliters> measured_reservoir;
  std::optional<uint64_t> cumulative_drive_units;  // rotor steps or valve cycles
  std::optional<Mmhg> outlet_pressure;
  std::optional<Mmhg> stroke_pressure_peak;
  std::optional<Mmhg> csf_pulsation;
  std::optional<Volts> battery_voltage;
  std::optional<double> battery_current_ua;
  std::optional<double> motor_current_ma;
  std::optional<double> temperature_c;
  uint32_t alarm_flags = 0;
  std::vector<DeviceEvent> events;

  bool operator==(const Sample&) const = default;
};

}  // namespace pumptwin::twin

#endif  // PUMPTWIN_TWIN_SAMPLE_H_
