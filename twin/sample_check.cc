#include "twin/sample_check.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace pumptwin::twin {
namespace {

absl::Status RangeSlow(const char* field, double v, double lo, double hi, const char* unit) {
  if (std::isnan(v)) return absl::InvalidArgumentError(absl::StrCat(field, " is NaN"));
  if (!std::isfinite(v)) return absl::InvalidArgumentError(absl::StrCat(field, " is infinite"));
  if (v < lo) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " ", v, " ", unit, " below the limit ", lo, " ", unit));
  }
  if (v > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " ", v, " ", unit, " above the limit ", hi, " ", unit));
  }
  return absl::OkStatus();
}

// Fast path for the common, valid case (NaN fails both comparisons).
inline absl::Status Range(const char* field, double v, double lo, double hi, const char* unit) {
  if (v >= lo && v <= hi) [[likely]]
    return absl::OkStatus();
  return RangeSlow(field, v, lo, hi, unit);
}

#define PT_RETURN_IF_ERROR(expr) \
  do {                           \
    absl::Status _st = (expr);   \
    if (!_st.ok()) return _st;   \
  } while (0)

}  // namespace

bool TimeInRange(absl::Time t) {
  return t >= absl::UnixEpoch() && t < absl::FromUnixSeconds(7258118400);  // 2200-01-01
}

absl::Status CheckSample(const Sample& s, absl::Time server_time, const PumpConfig& cfg,
                         TimeNs model_time, const SampleLimits& lim) {
  if (!TimeInRange(s.device_time)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sample.device_time ", absl::FormatTime(s.device_time), " outside [1970, 2200)"));
  }
  if (!TimeInRange(server_time)) {
    return absl::InvalidArgumentError("server_time outside [1970, 2200)");
  }
  const TimeNs t = ToNs(s.device_time);
  if (t < model_time) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sample.device_time ", absl::FormatTime(s.device_time), " is before the model time ",
        absl::FormatTime(FromNs(model_time)), " (seq ", s.seq, ")"));
  }
  if (s.device_time - FromNs(model_time) > lim.max_gap) {
    return absl::InvalidArgumentError(absl::StrCat("sample.device_time jumps more than ",
                                                   absl::FormatDuration(lim.max_gap),
                                                   " past the model time"));
  }
  const double max_res = cfg.reservoir_capacity.value() * lim.reservoir_over_capacity;
  if (s.calculated_reservoir) {
    PT_RETURN_IF_ERROR(
        Range("sample.calculated_reservoir_ul", s.calculated_reservoir->value(), 0, max_res, "uL"));
  }
  if (s.measured_reservoir) {
    PT_RETURN_IF_ERROR(
        Range("sample.measured_reservoir_ul", s.measured_reservoir->value(), 0, max_res, "uL"));
  }
  const double plo = lim.min_pressure.value(), phi = lim.max_pressure.value();
  if (s.outlet_pressure) {
    PT_RETURN_IF_ERROR(
        Range("sample.outlet_pressure_mmhg", s.outlet_pressure->value(), plo, phi, "mmHg"));
  }
  if (s.stroke_pressure_peak) {
    PT_RETURN_IF_ERROR(Range("sample.stroke_pressure_peak_mmhg", s.stroke_pressure_peak->value(),
                             plo, phi, "mmHg"));
  }
  if (s.csf_pulsation) {
    PT_RETURN_IF_ERROR(Range("sample.csf_pulsation_mmhg", s.csf_pulsation->value(), 0,
                             lim.max_pulsation.value(), "mmHg"));
  }
  if (s.battery_voltage) {
    PT_RETURN_IF_ERROR(Range("sample.battery_voltage_v", s.battery_voltage->value(), 0,
                             lim.max_voltage.value(), "V"));
  }
  if (s.battery_current_ua) {
    PT_RETURN_IF_ERROR(Range("sample.battery_current_ua", *s.battery_current_ua, 0,
                             lim.max_battery_current_ua, "uA"));
  }
  if (s.motor_current_ma) {
    PT_RETURN_IF_ERROR(
        Range("sample.motor_current_ma", *s.motor_current_ma, 0, lim.max_motor_current_ma, "mA"));
  }
  if (s.temperature_c) {
    PT_RETURN_IF_ERROR(Range("sample.temperature_c", *s.temperature_c, lim.min_temperature_c,
                             lim.max_temperature_c, "C"));
  }
  if (s.alarm_flags >= (1u << 6)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample.alarm_flags ", s.alarm_flags, " has unknown bits (limit 0x3f)"));
  }
  if (s.events.size() > lim.max_events) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample.events has ", s.events.size(), " entries, limit ", lim.max_events));
  }
  for (size_t i = 0; i < s.events.size(); ++i) {
    const DeviceEvent& e = s.events[i];
    const int type = static_cast<int>(e.type);
    if (type <= 0 || type > kMaxDeviceEventType) {
      return absl::InvalidArgumentError(absl::StrCat("sample.events[", i, "].type ", type,
                                                     " outside [1, ", kMaxDeviceEventType, "]"));
    }
    if (!TimeInRange(e.device_time) || e.device_time > s.device_time) {
      return absl::InvalidArgumentError(
          absl::StrCat("sample.events[", i, "].device_time after the sample's device time"));
    }
    if (e.volume) {
      PT_RETURN_IF_ERROR(Range("sample.events[].value_ul", e.volume->value(), 0, max_res, "uL"));
    }
  }
  return absl::OkStatus();
}

}  // namespace pumptwin::twin
