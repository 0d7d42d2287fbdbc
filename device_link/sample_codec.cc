#include "device_link/sample_codec.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace pumptwin::device_link {
namespace {

using v1::NackReason;

std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return absl::StrCat(v);
}

SampleRejection Reject(NackReason reason, bool consumes_seq, std::string message) {
  return SampleRejection{reason, std::move(message), consumes_seq};
}

std::string Field(int index, absl::string_view name) {
  return absl::StrCat("samples[", index, "].", name);
}

// The rejection of a value outside [lo, hi] or not finite (out of line: the hot path only
// compares).
[[gnu::noinline]] SampleRejection RangeRejection(int index, absl::string_view name, double v,
                                                 double lo, double hi, absl::string_view lo_name,
                                                 absl::string_view hi_name) {
  if (!std::isfinite(v)) {
    return Reject(
        v1::NACK_REASON_INVALID_FIELD, true,
        absl::StrCat(Field(index, name), "=", FormatDouble(v), " is not a finite number"));
  }
  if (v < lo) {
    return Reject(v1::NACK_REASON_INVALID_FIELD, true,
                  absl::StrCat(Field(index, name), "=", FormatDouble(v), " is below minimum ",
                               FormatDouble(lo), " (", lo_name, ")"));
  }
  return Reject(v1::NACK_REASON_INVALID_FIELD, true,
                absl::StrCat(Field(index, name), "=", FormatDouble(v), " exceeds maximum ",
                             FormatDouble(hi), " (", hi_name, ")"));
}

// A finite double within [lo, hi]; `lo_name`/`hi_name` name the ValidationLimits members.
inline std::optional<SampleRejection> CheckRange(int index, absl::string_view name, double v,
                                                 double lo, double hi, absl::string_view lo_name,
                                                 absl::string_view hi_name) {
  if (std::isfinite(v) && v >= lo && v <= hi) [[likely]]
    return std::nullopt;
  return RangeRejection(index, name, v, lo, hi, lo_name, hi_name);
}

// `field` is only called to build a rejection message (the hot path allocates nothing).
template <typename FieldName>
std::optional<SampleRejection> CheckTime(const FieldName& field, int64_t device_time_ms,
                                         absl::Time server_now, const ValidationLimits& limits) {
  const absl::Time t = absl::FromUnixMillis(device_time_ms);
  const absl::Time earliest = server_now - limits.max_device_time_in_past;
  const absl::Time latest = server_now + limits.max_device_time_in_future;
  if (t >= earliest && t <= latest) return std::nullopt;
  if (t < earliest) {
    return Reject(
        v1::NACK_REASON_TIME_ABSURD, true,
        absl::StrCat(field(), "=", device_time_ms, " (", absl::FormatTime(t), ") is more than ",
                     absl::FormatDuration(limits.max_device_time_in_past), " before server time ",
                     absl::FormatTime(server_now), " (max_device_time_in_past)"));
  }
  if (t > latest) {
    return Reject(
        v1::NACK_REASON_TIME_ABSURD, true,
        absl::StrCat(field(), "=", device_time_ms, " (", absl::FormatTime(t), ") is more than ",
                     absl::FormatDuration(limits.max_device_time_in_future), " after server time ",
                     absl::FormatTime(server_now), " (max_device_time_in_future)"));
  }
  return std::nullopt;
}

bool IsPumpIdChar(char c) { return c > 0x20 && c < 0x7f; }

}  // namespace

absl::StatusCode NackReasonToCode(NackReason reason) {
  switch (reason) {
    case v1::NACK_REASON_UNKNOWN_PUMP:
      return absl::StatusCode::kNotFound;
    case v1::NACK_REASON_NOT_BOUND:
      return absl::StatusCode::kPermissionDenied;
    case v1::NACK_REASON_INVALID_FIELD:
    case v1::NACK_REASON_TIME_ABSURD:
      return absl::StatusCode::kInvalidArgument;
    case v1::NACK_REASON_OUT_OF_ORDER:
      return absl::StatusCode::kOutOfRange;
    case v1::NACK_REASON_DECOMMISSIONED:
      return absl::StatusCode::kFailedPrecondition;
    case v1::NACK_REASON_STORE_UNAVAILABLE:
    case v1::NACK_REASON_MOVED:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kUnknown;
  }
}

std::optional<SampleRejection> ValidatePumpId(absl::string_view pump_id, int index,
                                              const ValidationLimits& limits) {
  if (pump_id.empty()) {
    return Reject(v1::NACK_REASON_INVALID_FIELD, false,
                  absl::StrCat(Field(index, "pump_id"), " is empty"));
  }
  if (pump_id.size() > limits.max_pump_id_bytes) {
    return Reject(
        v1::NACK_REASON_INVALID_FIELD, false,
        absl::StrCat(Field(index, "pump_id"), " has ", pump_id.size(), " bytes, exceeds maximum ",
                     limits.max_pump_id_bytes, " (max_pump_id_bytes)"));
  }
  for (char c : pump_id) {
    if (!IsPumpIdChar(c)) {
      return Reject(
          v1::NACK_REASON_INVALID_FIELD, false,
          absl::StrCat(Field(index, "pump_id"), " contains a byte that is not printable ASCII (0x",
                       absl::Hex(static_cast<unsigned char>(c)), ")"));
    }
  }
  return std::nullopt;
}

std::optional<SampleRejection> ValidateSample(const v1::TelemetrySample& in, int index,
                                              absl::Time server_now,
                                              const ValidationLimits& limits) {
  const ValidationLimits& l = limits;
  if (auto r = ValidatePumpId(in.pump_id(), index, l)) return r;
  if (in.seq() < 1) {
    return Reject(v1::NACK_REASON_INVALID_FIELD, false,
                  absl::StrCat(Field(index, "seq"), "=0 is invalid: seqs start at 1"));
  }
  if (auto r = CheckTime([&] { return Field(index, "device_time_ms"); }, in.device_time_ms(),
                         server_now, l)) {
    return r;
  }
  if (in.has_calculated_reservoir_ul()) {
    if (auto r = CheckRange(index, "calculated_reservoir_ul", in.calculated_reservoir_ul(), 0.0,
                            l.max_reservoir_ul, "volumes are non-negative", "max_reservoir_ul")) {
      return r;
    }
  }
  if (in.has_measured_reservoir_ul()) {
    if (auto r = CheckRange(index, "measured_reservoir_ul", in.measured_reservoir_ul(), 0.0,
                            l.max_reservoir_ul, "volumes are non-negative", "max_reservoir_ul")) {
      return r;
    }
  }
  if (in.has_cumulative_drive_units() &&
      in.cumulative_drive_units() > l.max_cumulative_drive_units) {
    return Reject(v1::NACK_REASON_INVALID_FIELD, true,
                  absl::StrCat(Field(index, "cumulative_drive_units"), "=",
                               in.cumulative_drive_units(), " exceeds maximum ",
                               l.max_cumulative_drive_units, " (max_cumulative_drive_units)"));
  }
  if (in.has_outlet_pressure_mmhg()) {
    if (auto r = CheckRange(index, "outlet_pressure_mmhg", in.outlet_pressure_mmhg(),
                            l.min_pressure_mmhg, l.max_pressure_mmhg, "min_pressure_mmhg",
                            "max_pressure_mmhg")) {
      return r;
    }
  }
  if (in.has_stroke_pressure_peak_mmhg()) {
    if (auto r = CheckRange(index, "stroke_pressure_peak_mmhg", in.stroke_pressure_peak_mmhg(),
                            l.min_pressure_mmhg, l.max_pressure_mmhg, "min_pressure_mmhg",
                            "max_pressure_mmhg")) {
      return r;
    }
  }
  if (in.has_csf_pulsation_mmhg()) {
    if (auto r = CheckRange(index, "csf_pulsation_mmhg", in.csf_pulsation_mmhg(), 0.0,
                            l.max_csf_pulsation_mmhg, "amplitudes are non-negative",
                            "max_csf_pulsation_mmhg")) {
      return r;
    }
  }
  if (in.has_battery_voltage_v()) {
    if (auto r =
            CheckRange(index, "battery_voltage_v", in.battery_voltage_v(), l.min_battery_voltage_v,
                       l.max_battery_voltage_v, "min_battery_voltage_v", "max_battery_voltage_v")) {
      return r;
    }
  }
  if (in.has_battery_current_ua()) {
    if (auto r = CheckRange(index, "battery_current_ua", in.battery_current_ua(),
                            l.min_battery_current_ua, l.max_battery_current_ua,
                            "min_battery_current_ua", "max_battery_current_ua")) {
      return r;
    }
  }
  if (in.has_motor_current_ma()) {
    if (auto r =
            CheckRange(index, "motor_current_ma", in.motor_current_ma(), l.min_motor_current_ma,
                       l.max_motor_current_ma, "min_motor_current_ma", "max_motor_current_ma")) {
      return r;
    }
  }
  if (in.has_temperature_c()) {
    if (auto r = CheckRange(index, "temperature_c", in.temperature_c(), l.min_temperature_c,
                            l.max_temperature_c, "min_temperature_c", "max_temperature_c")) {
      return r;
    }
  }
  if ((in.alarm_flags() & ~l.known_alarm_flags_mask) != 0) {
    return Reject(v1::NACK_REASON_INVALID_FIELD, true,
                  absl::StrCat(Field(index, "alarm_flags"), "=0x", absl::Hex(in.alarm_flags()),
                               " has bits outside the known mask 0x",
                               absl::Hex(l.known_alarm_flags_mask), " (known_alarm_flags_mask)"));
  }
  if (static_cast<size_t>(in.events_size()) > l.max_events_per_sample) {
    return Reject(v1::NACK_REASON_INVALID_FIELD, true,
                  absl::StrCat(Field(index, "events"), " has ", in.events_size(),
                               " entries, exceeds maximum ", l.max_events_per_sample,
                               " (max_events_per_sample)"));
  }
  for (int e = 0; e < in.events_size(); ++e) {
    const v1::DeviceEvent& ev = in.events(e);
    auto name = [e] { return absl::StrCat("events[", e, "]"); };
    if (ev.type() <= 0 || ev.type() > twin::kMaxDeviceEventType) {
      return Reject(
          v1::NACK_REASON_INVALID_FIELD, true,
          absl::StrCat(Field(index, name()), ".type=", static_cast<int>(ev.type()),
                       " is not a known DeviceEventType (1..", twin::kMaxDeviceEventType, ")"));
    }
    if (auto r = CheckTime([&] { return Field(index, absl::StrCat(name(), ".device_time_ms")); },
                           ev.device_time_ms(), server_now, l)) {
      return r;
    }
    if (ev.has_value_ul()) {
      if (auto r = CheckRange(index, absl::StrCat(name(), ".value_ul"), ev.value_ul(), 0.0,
                              l.max_event_volume_ul, "volumes are non-negative",
                              "max_event_volume_ul")) {
        return r;
      }
    }
  }
  return std::nullopt;
}

twin::Sample ToTwinSample(const v1::TelemetrySample& in) {
  twin::Sample s;
  s.seq = in.seq();
  s.device_time = absl::FromUnixMillis(in.device_time_ms());
  if (in.has_calculated_reservoir_ul()) {
    s.calculated_reservoir = twin::Microliters(in.calculated_reservoir_ul());
  }
  if (in.has_measured_reservoir_ul()) {
    s.measured_reservoir = twin::Microliters(in.measured_reservoir_ul());
  }
  if (in.has_cumulative_drive_units()) s.cumulative_drive_units = in.cumulative_drive_units();
  if (in.has_outlet_pressure_mmhg()) s.outlet_pressure = twin::Mmhg(in.outlet_pressure_mmhg());
  if (in.has_stroke_pressure_peak_mmhg()) {
    s.stroke_pressure_peak = twin::Mmhg(in.stroke_pressure_peak_mmhg());
  }
  if (in.has_csf_pulsation_mmhg()) s.csf_pulsation = twin::Mmhg(in.csf_pulsation_mmhg());
  if (in.has_battery_voltage_v()) s.battery_voltage = twin::Volts(in.battery_voltage_v());
  if (in.has_battery_current_ua()) s.battery_current_ua = in.battery_current_ua();
  if (in.has_motor_current_ma()) s.motor_current_ma = in.motor_current_ma();
  if (in.has_temperature_c()) s.temperature_c = in.temperature_c();
  s.alarm_flags = in.alarm_flags();
  s.events.reserve(in.events_size());
  for (const v1::DeviceEvent& ev : in.events()) {
    twin::DeviceEvent out;
    out.type = static_cast<twin::DeviceEventType>(ev.type());
    out.device_time = absl::FromUnixMillis(ev.device_time_ms());
    if (ev.has_value_ul()) out.volume = twin::Microliters(ev.value_ul());
    s.events.push_back(out);
  }
  return s;
}

void ToProtoSample(absl::string_view pump_id, const twin::Sample& in, v1::TelemetrySample* out) {
  out->Clear();
  out->set_pump_id(std::string(pump_id));
  out->set_seq(in.seq);
  out->set_device_time_ms(absl::ToUnixMillis(in.device_time));
  if (in.calculated_reservoir) out->set_calculated_reservoir_ul(in.calculated_reservoir->value());
  if (in.measured_reservoir) out->set_measured_reservoir_ul(in.measured_reservoir->value());
  if (in.cumulative_drive_units) out->set_cumulative_drive_units(*in.cumulative_drive_units);
  if (in.outlet_pressure) out->set_outlet_pressure_mmhg(in.outlet_pressure->value());
  if (in.stroke_pressure_peak) {
    out->set_stroke_pressure_peak_mmhg(in.stroke_pressure_peak->value());
  }
  if (in.csf_pulsation) out->set_csf_pulsation_mmhg(in.csf_pulsation->value());
  if (in.battery_voltage) out->set_battery_voltage_v(in.battery_voltage->value());
  if (in.battery_current_ua) out->set_battery_current_ua(*in.battery_current_ua);
  if (in.motor_current_ma) out->set_motor_current_ma(*in.motor_current_ma);
  if (in.temperature_c) out->set_temperature_c(*in.temperature_c);
  out->set_alarm_flags(in.alarm_flags);
  for (const twin::DeviceEvent& ev : in.events) {
    v1::DeviceEvent* e = out->add_events();
    e->set_type(static_cast<v1::DeviceEventType>(ev.type));
    e->set_device_time_ms(absl::ToUnixMillis(ev.device_time));
    if (ev.volume) e->set_value_ul(ev.volume->value());
  }
}

std::optional<SampleRejection> DecodeSample(const v1::TelemetrySample& in, int index,
                                            absl::Time server_now, const ValidationLimits& limits,
                                            twin::Sample* out) {
  if (auto r = ValidateSample(in, index, server_now, limits)) return r;
  *out = ToTwinSample(in);
  return std::nullopt;
}

}  // namespace pumptwin::device_link
