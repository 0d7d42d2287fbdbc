// The lockstep integrator (model.md §3): advances a ModelState exactly, piece by piece,
// between rate edges (schedule steps, bolus ends, therapy switches, hour boundaries for
// dose bookkeeping). No fixed time step. Pure functions; thread-compatible.
#ifndef PUMPTWIN_TWIN_INTEGRATOR_H_
#define PUMPTWIN_TWIN_INTEGRATOR_H_

#include <memory>

#include "twin/model_state.h"

namespace pumptwin::twin {

// Integrates from s.t to `to` (>= s.t). When a pending therapy becomes effective, *setup
// is replaced by a new shared Setup (copy-on-write); otherwise it is untouched.
void Advance(ModelState& s, std::shared_ptr<const Setup>& setup, TimeNs to);

// Starts a bolus of `volume` over `duration` at s.t (on top of basal). A bolus still
// running is merged: its remaining volume joins the new one, ending at the later end.
// Zero duration delivers at once. `counts_as_dose` false for priming (fills the catheter).
void StartBolus(ModelState& s, const Setup& setup, Microliters volume, absl::Duration duration,
                bool counts_as_dose);

// True when the pump delivers nothing (stall, MRI stall, EOS).
bool Suspended(const ModelState& s);

// Estimated dose delivered in the 24 h ending at s.t (µg).
double Delivered24hUg(const ModelState& s);

// Rate the pump is programmed to deliver at s.t (basal + bolus, 0 when suspended).
MicrolitersPerDay ProgrammedRateNow(const ModelState& s, const Setup& setup);

// Battery charge fraction remaining (1 for pumps without battery).
double BatteryFraction(const ModelState& s, const PumpSpec& spec);
// This pump's idle battery drain, µA: the current it reports (learned baseline, less the
// programmed motor's share), else its mean drain since implant learned at enrolment, else
// the profile prior. docs/model.md "Battery".
double IdleDrainUa(const ModelState& s, const Setup& su);
// Whether IdleDrainUa comes from this pump's own data (its current, or its indicator at
// enrolment) rather than the profile prior.
bool DrainLearned(const ModelState& s);
// Its total drain at the programmed mean rate, mAh/day (idle + motor).
double DrainMahPerDay(const ModelState& s, const Setup& su);

}  // namespace pumptwin::twin

#endif  // PUMPTWIN_TWIN_INTEGRATOR_H_
