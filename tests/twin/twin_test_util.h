// Helpers for the twin tests: standard configs and prescriptions, and a seeded pump
// simulator producing realistic telemetry (with optional injected faults).
#ifndef PUMPTWIN_TESTS_TWIN_TWIN_TEST_UTIL_H_
#define PUMPTWIN_TESTS_TWIN_TWIN_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "twin/integrator.h"
#include "twin/twin.h"

namespace pumptwin::twin::testing {

// 2026-01-05 00:00 UTC, a Monday.
inline absl::Time T0() {
  return absl::FromCivil(absl::CivilSecond(2026, 1, 5, 0, 0, 0), absl::UTCTimeZone());
}
inline absl::Time Day(double d) { return T0() + absl::Hours(24 * d); }

inline PumpConfig Config(PumpProfile p, double capacity_ml = 20) {
  PumpConfig c;
  c.pump_id = "P1";
  c.profile = p;
  c.reservoir_capacity = Milliliters(p == PumpProfile::kConstantFlow ? 30 : capacity_ml);
  c.catheter_length = Millimeters(500);
  c.catheter_inner_diameter = Millimeters(0.53);
  c.implant_time = T0();
  c.reporting_interval = absl::Hours(1);
  return c;
}

inline Prescription Morphine(double rate_ul_per_day, double conc_ug_per_ml = 10000) {
  Prescription rx;
  rx.drug = "morphine";
  rx.concentration = MicrogramsPerMilliliter(conc_ug_per_ml);
  rx.mode = TherapyMode::kSimpleContinuous;
  rx.rate = MicrolitersPerDay(rate_ul_per_day);
  rx.version = 1;
  return rx;
}

inline Twin MakeTwin(PumpProfile p, const Prescription& rx, double initial_ml = 20,
                     double capacity_ml = 20) {
  absl::StatusOr<Twin> t = Twin::Create(Config(p, capacity_ml), rx, Milliliters(initial_ml), T0());
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

// An empty sample (no signals) at `t`.
inline Sample At(uint64_t seq, absl::Time t) {
  Sample s;
  s.seq = seq;
  s.device_time = t;
  return s;
}

inline int Count(const std::vector<AlertTransition>& v, AlertType type, TransitionKind kind) {
  int n = 0;
  for (const AlertTransition& t : v) n += (t.type == type && t.kind == kind) ? 1 : 0;
  return n;
}
inline const AlertTransition* First(const std::vector<AlertTransition>& v, AlertType type,
                                    TransitionKind kind = TransitionKind::kRaised) {
  for (const AlertTransition& t : v) {
    if (t.type == type && t.kind == kind) return &t;
  }
  return nullptr;
}
inline const Evidence* FindEvidence(const AlertTransition& t, const std::string& signal) {
  for (const Evidence& e : t.evidence) {
    if (e.signal == signal) return &e;
  }
  return nullptr;
}

// Faults a simulated pump can carry from `start` on.
struct Faults {
  absl::Time start = absl::InfiniteFuture();
  double ratio = 1.0;               // true / programmed delivery
  double stroke_offset_mmhg = 0.0;  // added to the stroke peak (blockage > 0)
  double stroke_scale = 1.0;        // multiplies the stroke peak (leak < 1)
  bool pulsation_lost = false;
  double current_factor = 1.0;  // battery drain factor
  double clock_skew_min = 0.0;  // device clock minus true time
};

// Generates telemetry for one twin's pump: truth integrates the twin's prescription at
// the true ratio; sensors add seeded Gaussian noise at the profile's levels. Refills
// automatically when the calculated reservoir falls under `refill_below_ml`.
class PumpSim {
 public:
  PumpSim(Twin* twin, uint64_t seed, Faults faults = Faults())
      : twin_(twin),
        rng_(seed),
        faults_(faults),
        true_ul_(twin->estimated_reservoir().value()),
        calc_ul_(true_ul_),
        t_(twin->device_time()) {}

  double base_ratio = 1.0;  // true ratio before the fault (within label)
  // Physics unlike the profile's defaults (negative: the profile's value). The twin is
  // never told these: it has to learn them.
  double idle_current_ua = -1;   // battery current without the motor
  double current_noise = 0.05;   // relative sd of one current reading
  double reservoir_sd_ul = -1;   // measured-reservoir noise
  double stroke_base_mmhg = -1;  // healthy stroke peak (default: the twin's expectation)
  // A clinical session (refill) draws this much extra current for session_length; the
  // twin is told of refills, not of interrogations (session_every adds those, unrecorded).
  double session_current_ua = 0;
  absl::Duration session_length = absl::Minutes(15);
  absl::Duration session_every = absl::InfiniteDuration();
  double measured_step_ul = 0.0;  // quantisation of the measured reservoir (0: none)
  double refill_below_ml = 5.0;
  double refill_to_ml = 20.0;
  absl::Duration interval = absl::Hours(1);
  bool auto_refill = true;

  // Advances one interval, refills if due, and feeds a sample; returns Observe's status.
  absl::Status Step(std::vector<AlertTransition>* out) {
    const absl::Time next = t_ + interval;
    const double prog = BasalVolume(twin_->prescription(), ToNs(t_), ToNs(next)).value();
    const double ratio = next > faults_.start ? faults_.ratio : base_ratio;
    true_ul_ = std::max(0.0, true_ul_ - prog * ratio);
    calc_ul_ = std::max(0.0, calc_ul_ - prog);
    drive_ += prog;
    t_ = next;
    const PumpSpec& spec = twin_->spec();
    const bool faulty = t_ > faults_.start;
    Sample s;
    s.seq = ++seq_;
    s.device_time = t_ + (faulty ? absl::Minutes(faults_.clock_skew_min) : absl::ZeroDuration());
    const uint32_t sig = spec.signals;
    if (sig & kSigCalculatedReservoir) s.calculated_reservoir = Microliters(calc_ul_);
    if (sig & kSigDriveUnits) {
      s.cumulative_drive_units = static_cast<uint64_t>(drive_ / spec.stroke_volume.value());
    }
    const double res_sd =
        reservoir_sd_ul >= 0 ? reservoir_sd_ul : spec.measured_reservoir_sd.value();
    if (sig & kSigMeasuredReservoir) {
      s.measured_reservoir =
          Microliters(Quantise(std::max(0.0, true_ul_ + Noise(res_sd) + pocket_offset_)));
    }
    if (sig & kSigStrokePressure) {
      const double base =
          (stroke_base_mmhg >= 0 ? stroke_base_mmhg : twin_->expected_stroke_pressure().value()) +
          Noise(0.7);
      const double p = faulty ? base * faults_.stroke_scale + faults_.stroke_offset_mmhg : base;
      s.stroke_pressure_peak = Mmhg(p);
      s.csf_pulsation =
          Mmhg(faulty && faults_.pulsation_lost ? std::abs(Noise(0.05)) : 2.0 + Noise(0.3));
      s.outlet_pressure = Mmhg(10 + Noise(0.5));
    }
    if (sig & kSigBatteryVoltage) s.battery_voltage = Volts(3.0 + Noise(0.01));
    if (session_every != absl::InfiniteDuration() && t_ - last_session_ >= session_every) {
      last_session_ = t_;
    }
    if (sig & kSigBatteryCurrent) {
      const double idle = idle_current_ua >= 0 ? idle_current_ua : spec.idle_current_ua;
      const double model = idle + spec.motor_mah_per_ul *
                                      MeanDailyRate(twin_->prescription()).value() * 1000.0 / 24.0;
      const bool session = t_ - last_session_ < session_length;
      s.battery_current_ua =
          model * (faulty ? faults_.current_factor : 1.0) * (1 + Noise(current_noise)) +
          (session ? session_current_ua : 0.0);
    }
    if (sig & kSigTemperature) s.temperature_c = 37.0 + Noise(0.2);
    if (auto_refill && twin_->calculated_reservoir().value() < refill_below_ml * 1000) {
      Refill r;
      r.withdrawn = Microliters(std::max(0.0, true_ul_ + Noise(200)));
      r.added = Milliliters(refill_to_ml);
      r.device_time = t_ - absl::Minutes(1) +
                      (faulty ? absl::Minutes(faults_.clock_skew_min) : absl::ZeroDuration());
      if (r.device_time < twin_->device_time()) r.device_time = twin_->device_time();
      absl::StatusOr<RefillResult> res = twin_->RecordRefill(r, out);
      if (!res.ok()) return res.status();
      last_refill = *res;
      true_ul_ = calc_ul_ = r.added.value();
      if (s.measured_reservoir) s.measured_reservoir = Microliters(true_ul_ + Noise(res_sd));
      if (s.battery_current_ua) *s.battery_current_ua += session_current_ua;
      last_session_ = t_;
      ++refills;
    }
    const absl::Time server = t_ + absl::Milliseconds(200 + std::abs(Noise(100)));
    return twin_->Observe(s, server, out);
  }

  absl::Status Run(absl::Duration d, std::vector<AlertTransition>* out) {
    const absl::Time end = t_ + d;
    while (t_ < end) {
      if (absl::Status st = Step(out); !st.ok()) return st;
    }
    return absl::OkStatus();
  }

  double Noise(double sd) { return sd * normal_(rng_); }
  double Quantise(double ul) const {
    return measured_step_ul > 0 ? measured_step_ul * std::round(ul / measured_step_ul) : ul;
  }
  double true_reservoir_ul() const { return true_ul_; }
  void set_true_reservoir_ul(double v) { true_ul_ = v; }
  void set_calc_ul(double v) { calc_ul_ = v; }
  absl::Time time() const { return t_; }
  uint64_t seq() const { return seq_; }
  double pocket_offset_ = 0.0;
  int refills = 0;
  RefillResult last_refill;

 private:
  Twin* twin_;
  std::mt19937_64 rng_;
  std::normal_distribution<double> normal_{0.0, 1.0};
  Faults faults_;
  double true_ul_;
  double calc_ul_;
  double drive_ = 0;
  absl::Time t_;
  absl::Time last_session_ = absl::InfinitePast();
  uint64_t seq_ = 0;
};

}  // namespace pumptwin::twin::testing

#endif  // PUMPTWIN_TESTS_TWIN_TWIN_TEST_UTIL_H_
