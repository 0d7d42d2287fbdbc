// Strong unit types for the pump model.
//
// A volume, a dose, a rate and a concentration are distinct types, so they cannot be
// mixed up by accident (unit confusion is the classic infusion-pump killer). Each is a
// thin wrapper around a double in one fixed base unit, named in the type. Only the
// physically meaningful cross-unit operations exist (rate x duration = volume,
// volume x concentration = dose). Header-only, constexpr, no allocation, thread-compatible.
#ifndef PUMPTWIN_TWIN_UNITS_H_
#define PUMPTWIN_TWIN_UNITS_H_

#include <compare>

#include "absl/time/time.h"

namespace pumptwin::twin {

// A quantity in one fixed unit, identified by Tag. Same-unit arithmetic and comparison
// only; scaling by a dimensionless double.
template <typename Tag>
class Quantity {
 public:
  constexpr Quantity() = default;
  constexpr explicit Quantity(double v) : v_(v) {}
  constexpr double value() const { return v_; }

  constexpr Quantity operator+(Quantity o) const { return Quantity(v_ + o.v_); }
  constexpr Quantity operator-(Quantity o) const { return Quantity(v_ - o.v_); }
  constexpr Quantity operator-() const { return Quantity(-v_); }
  constexpr Quantity operator*(double k) const { return Quantity(v_ * k); }
  constexpr Quantity operator/(double k) const { return Quantity(v_ / k); }
  constexpr double operator/(Quantity o) const { return v_ / o.v_; }  // ratio
  constexpr Quantity& operator+=(Quantity o) {
    v_ += o.v_;
    return *this;
  }
  constexpr Quantity& operator-=(Quantity o) {
    v_ -= o.v_;
    return *this;
  }
  constexpr auto operator<=>(const Quantity&) const = default;

 private:
  double v_ = 0.0;
};

template <typename Tag>
constexpr Quantity<Tag> operator*(double k, Quantity<Tag> q) {
  return q * k;
}

struct VolumeTag {};
struct DoseTag {};
struct RateTag {};
struct DoseRateTag {};
struct ConcentrationTag {};
struct PressureTag {};
struct VoltageTag {};
struct ChargeTag {};
struct LengthTag {};

using Microliters = Quantity<VolumeTag>;                     // µL
using Micrograms = Quantity<DoseTag>;                        // µg
using MicrolitersPerDay = Quantity<RateTag>;                 // µL/day
using MicrogramsPerDay = Quantity<DoseRateTag>;              // µg/day
using MicrogramsPerMilliliter = Quantity<ConcentrationTag>;  // µg/mL
using Mmhg = Quantity<PressureTag>;                          // mmHg
using Volts = Quantity<VoltageTag>;                          // V
using MilliampHours = Quantity<ChargeTag>;                   // mAh
using Millimeters = Quantity<LengthTag>;                     // mm

inline constexpr double kMicrolitersPerMilliliter = 1000.0;

constexpr Microliters Milliliters(double ml) { return Microliters(ml * kMicrolitersPerMilliliter); }
constexpr Micrograms Milligrams(double mg) { return Micrograms(mg * 1000.0); }

// Days as a double, for rate arithmetic (exact enough: absl::Duration has ns resolution).
inline double ToDays(absl::Duration d) { return absl::ToDoubleHours(d) / 24.0; }

// rate x duration = volume
inline Microliters operator*(MicrolitersPerDay r, absl::Duration d) {
  return Microliters(r.value() * ToDays(d));
}
inline Microliters operator*(absl::Duration d, MicrolitersPerDay r) { return r * d; }

// volume x concentration = dose   (µL x µg/mL / 1000 = µg)
constexpr Micrograms operator*(Microliters v, MicrogramsPerMilliliter c) {
  return Micrograms(v.value() * c.value() / kMicrolitersPerMilliliter);
}
constexpr Micrograms operator*(MicrogramsPerMilliliter c, Microliters v) { return v * c; }

// rate x concentration = dose rate
constexpr MicrogramsPerDay operator*(MicrolitersPerDay r, MicrogramsPerMilliliter c) {
  return MicrogramsPerDay(r.value() * c.value() / kMicrolitersPerMilliliter);
}

// dose / concentration = volume
constexpr Microliters operator/(Micrograms d, MicrogramsPerMilliliter c) {
  return Microliters(d.value() * kMicrolitersPerMilliliter / c.value());
}

// volume / duration = rate
inline MicrolitersPerDay operator/(Microliters v, absl::Duration d) {
  return MicrolitersPerDay(v.value() / ToDays(d));
}

}  // namespace pumptwin::twin

#endif  // PUMPTWIN_TWIN_UNITS_H_
