// The one place mapping pumptwin.v1.TelemetrySample <-> twin::Sample, with validation of
// every field against a configurable set of plausibility limits (ValidationLimits).
// A rejected sample yields a SampleRejection: the Nack reason, its gRPC code and a message
// naming the field, the value and the limit. Pure functions; thread-safe; no I/O.
#ifndef PUMPTWIN_DEVICE_LINK_SAMPLE_CODEC_H_
#define PUMPTWIN_DEVICE_LINK_SAMPLE_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pumptwin/v1/gateway.pb.h"
#include "pumptwin/v1/telemetry.pb.h"
#include "twin/sample.h"

namespace pumptwin::device_link {

// Plausibility limits for incoming telemetry. Defaults are deliberately generous physical
// bounds (a value outside them is a broken sensor or a corrupted frame, not a clinical
// finding): clinical thresholds belong to the twin's detectors, not here.
struct ValidationLimits {
  // Pump ids: 1..max_pump_id_bytes printable ASCII characters without spaces.
  size_t max_pump_id_bytes = 64;
  // Reservoir volumes (calculated and measured): the largest implantable pumps hold 40 mL.
  double max_reservoir_ul = 100'000.0;
  // Rotor steps / valve cycles since implant: 10 years of maximum flow is ~1e9.
  uint64_t max_cumulative_drive_units = 1'000'000'000'000ULL;
  // Outlet and stroke peak pressures (gauge, may be slightly negative).
  double min_pressure_mmhg = -100.0;
  double max_pressure_mmhg = 3'000.0;
  // CSF pulsation amplitude.
  double max_csf_pulsation_mmhg = 300.0;
  // Implant batteries are ~3 V lithium cells.
  double min_battery_voltage_v = 0.0;
  double max_battery_voltage_v = 5.0;
  double min_battery_current_ua = 0.0;
  double max_battery_current_ua = 100'000.0;
  double min_motor_current_ma = 0.0;
  double max_motor_current_ma = 1'000.0;
  // Device temperature: implanted ~37 C; storage/transport before implant.
  double min_temperature_c = -20.0;
  double max_temperature_c = 60.0;
  // Only the AlarmFlag bits defined in telemetry.proto.
  uint32_t known_alarm_flags_mask = 0x3F;
  size_t max_events_per_sample = 64;
  // Volume attached to an event (bolus volumes).
  double max_event_volume_ul = 100'000.0;
  // Device time (of a sample or an event) vs server time. Gateways store-and-forward for
  // weeks while offline, so the past bound is wide; pump clocks drift by minutes, not days.
  absl::Duration max_device_time_in_past = absl::Hours(24 * 400);
  absl::Duration max_device_time_in_future = absl::Hours(24);
};

// Why one sample is rejected.
struct SampleRejection {
  pumptwin::v1::NackReason reason = pumptwin::v1::NACK_REASON_UNSPECIFIED;
  std::string message;  // e.g. "samples[3].battery_voltage_v=NaN is not a finite number"
  // Whether the sample's (pump, seq) slot is consumed: true when pump id and seq are
  // well-formed (the sequencer advances past it), false when they cannot be trusted.
  bool consumes_seq = false;
};

// The gRPC code a Nack reason maps to (also Nack.grpc_code); see docs/gateway_protocol.md.
absl::StatusCode NackReasonToCode(pumptwin::v1::NackReason reason);

// Checks the pump id alone (syntax, not registration). `index` locates the sample in
// its frame for the message.
std::optional<SampleRejection> ValidatePumpId(absl::string_view pump_id, int index,
                                              const ValidationLimits& limits);

// Checks every field of `in` (including the pump id). `server_now` bounds device time.
std::optional<SampleRejection> ValidateSample(const pumptwin::v1::TelemetrySample& in, int index,
                                              absl::Time server_now,
                                              const ValidationLimits& limits);

// Conversion of a sample that passed ValidateSample (unchecked otherwise).
twin::Sample ToTwinSample(const pumptwin::v1::TelemetrySample& in);

// Reverse mapping, used by gateways/simulators producing twin samples. Device times are
// truncated to milliseconds (the wire resolution).
void ToProtoSample(absl::string_view pump_id, const twin::Sample& in,
                   pumptwin::v1::TelemetrySample* out);

// Validate + convert in one call: the rejection, or the converted sample.
std::optional<SampleRejection> DecodeSample(const pumptwin::v1::TelemetrySample& in, int index,
                                            absl::Time server_now, const ValidationLimits& limits,
                                            twin::Sample* out);

}  // namespace pumptwin::device_link

#endif  // PUMPTWIN_DEVICE_LINK_SAMPLE_CODEC_H_
