// Clinic sessions and the fault events tied to them (sim_parts.h).
#include <algorithm>
#include <cmath>

#include "tools/sim/sim_parts.h"

namespace pumptwin::sim {
namespace {

constexpr int64_t kRoundingMs = 5 * kMinuteMs;
// The pump's labelled accuracy (±14.5 % of the programmed volume) and the least difference a
// clinician's syringe reading shows (2 mL): a refill whose withdrawal differs from the pump's
// calculated reservoir by no more is what a healthy pump may show.
constexpr double kLabelAccuracy = 0.145;
constexpr double kSyringeReadingUl = 2000;

}  // namespace

void NoteRefillShowsFault(SimPump& p, int64_t t, bool own) {
  if (own || !p.FaultActive(t) || p.outcome.visible_refill_true_ms != 0) return;
  const double programmed = std::max(0.0, p.last_refill_volume_ul - p.calc_reservoir_ul);
  const double shown = std::abs(p.calc_reservoir_ul - std::max(0.0, p.true_reservoir_ul));
  if (shown > std::max(kSyringeReadingUl, kLabelAccuracy * programmed)) {
    p.outcome.visible_refill_true_ms = t;
  }
}

int64_t ClinicianTime(int64_t true_ms) {
  return (true_ms + kRoundingMs / 2) / kRoundingMs * kRoundingMs;
}

int64_t ClinicHours(int64_t true_ms, std::mt19937_64& rng) {
  const int64_t day0 = true_ms - (((true_ms % kDayMs) + kDayMs) % kDayMs);
  const int64_t in_day = true_ms - day0;
  int64_t t = day0 + std::clamp<int64_t>(in_day, 8 * kHourMs, 17 * kHourMs);
  if (in_day > 17 * kHourMs) t = day0 + kDayMs + 8 * kHourMs;
  return t + static_cast<int64_t>(Uniform(rng, 0, 60)) * kMinuteMs;
}

int64_t NextSessionMs(int64_t true_ms, double per_year, std::mt19937_64& rng) {
  return ClinicHours(true_ms + kDayMs + ExponentialGapMs(rng, per_year), rng);
}

int64_t Clinic::NextVisitMs(const SimPump& p) {
  return std::min(
      {p.next_refill_ms, p.next_mri_ms, p.next_programming_ms, p.next_interrogation_ms});
}

absl::Status Clinic::Visit(SimPump& p, std::vector<int64_t>& refills, std::mt19937_64& rng) {
  const int64_t t = p.t_ms;
  if (p.next_refill_ms <= t) {
    if (auto st = Refill(p, refills, rng); !st.ok()) return st;
  }
  if (p.next_mri_ms <= t) {
    if (auto st = Mri(p, rng); !st.ok()) return st;
  }
  if (p.next_programming_ms <= t) {
    if (auto st = Programming(p, rng); !st.ok()) return st;
  }
  if (p.next_interrogation_ms <= t) {
    if (auto st = Interrogation(p, rng); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status Clinic::Refill(SimPump& p, std::vector<int64_t>& refills, std::mt19937_64& rng) {
  const int64_t t = p.t_ms;
  if (p.fault.kind == FaultKind::kEmptyReservoir && p.FaultActive(t) &&
      p.outcome.missed_refill_true_ms == 0) {
    // The patient misses the appointment; the pump runs dry (AfterStep brings them back).
    p.outcome.missed_refill_true_ms = t;
    p.next_refill_ms = kForever;
    ++counters_.missed_refills;
    return absl::OkStatus();
  }
  std::normal_distribution<double> n01(0, 1);
  const std::string name = "pumps/" + p.pump_id;
  // Human error on the withdrawn volume (read to 0.1 mL); a refill fills to 90-100 %.
  const double withdrawn =
      std::max(0.0, std::round((p.true_reservoir_ul + 300 * n01(rng)) / 100) * 100);
  const double added = std::round(p.capacity_ul * Uniform(rng, 0.9, 1.0) / 500) * 500;
  // The fault's refill: the first at or after its start (a session of the same hour step
  // can run it a little late; the fault's start is then its real time).
  const bool pocket = p.fault.kind == FaultKind::kPocketFill && t >= p.fault.start_true_ms &&
                      p.last_refill_true_ms < p.fault.start_true_ms;
  if (pocket) p.fault.start_true_ms = t;
  NoteRefillShowsFault(p, t, pocket);
  // The refill session: 15-40 min of telemetry, the needle and syringe disturb the readings.
  p.Session(Uniform(rng, 0.3, 1.5), static_cast<int64_t>(Uniform(rng, 15, 40) * kMinuteMs),
            Uniform(rng, -500, 500));
  v1::RecordRefillRequest req;
  req.set_name(name);
  req.set_withdrawn_volume_ul(withdrawn);
  req.set_added_volume_ul(added);
  req.set_drug(p.rx.drug());
  req.set_concentration_ug_per_ml(p.rx.concentration_ug_per_ml());
  req.set_device_time_ms(ClinicianTime(t));
  req.set_reason("pumpsim refill");
  v1::RecordRefillResponse resp;
  if (auto st = Call(stub_, &v1::TwinService::Stub::RecordRefill, req, &resp,
                     "RecordRefill " + p.pump_id);
      !st.ok()) {
    return st;
  }
  p.Refill(withdrawn, added, pocket ? p.fault.magnitude : 0);
  refills.push_back(t);
  ++counters_.refills;
  p.next_refill_ms = ClinicHours(t + RefillIntervalMs(p, rng), rng);
  if (p.fault.kind == FaultKind::kPocketFill && p.fault.start_true_ms > t) {
    p.next_refill_ms = std::min(p.next_refill_ms, p.fault.start_true_ms);  // the bad refill
  }
  if (p.has_motor && Uniform(rng, 0, 1) < 0.15) {  // clinician bolus at the visit
    const double vol = std::round(Uniform(rng, 50, 150));
    const int64_t at = t + static_cast<int64_t>(Uniform(rng, 2, 10)) * kMinuteMs;
    v1::RecordEventRequest ev;
    ev.set_name(name);
    ev.set_type(v1::CLINICAL_EVENT_CLINICIAN_BOLUS);
    ev.set_device_time_ms(ClinicianTime(at));
    ev.set_volume_ul(vol);
    ev.set_duration_ms(kHourMs);
    v1::RecordEventResponse eresp;
    if (auto st =
            Call(stub_, &v1::TwinService::Stub::RecordEvent, ev, &eresp, "bolus " + p.pump_id);
        !st.ok()) {
      return st;
    }
    // The pump starts it now; the clinician notes the time a few minutes later, rounded.
    p.StartClinicianBolus(vol, kHourMs);
    ++counters_.boluses;
  }
  return absl::OkStatus();
}

absl::Status Clinic::Mri(SimPump& p, std::mt19937_64& rng) {
  const int64_t t = p.t_ms;
  // The scan that sticks: the first at or after the fault's start (see Refill).
  const bool stuck = p.fault.kind == FaultKind::kMriNoResumption && t >= p.fault.start_true_ms &&
                     p.outcome.expected_resume_true_ms == 0;
  if (stuck) p.fault.start_true_ms = t;
  v1::RecordEventRequest ev;
  ev.set_name("pumps/" + p.pump_id);
  ev.set_type(v1::CLINICAL_EVENT_MRI);
  ev.set_device_time_ms(ClinicianTime(t));
  ev.set_reason("pumpsim MRI visit");
  v1::RecordEventResponse eresp;
  if (auto st = Call(stub_, &v1::TwinService::Stub::RecordEvent, ev, &eresp, "MRI " + p.pump_id);
      !st.ok()) {
    return st;
  }
  // A healthy pump resumes 20-120 min after the scan; the window ends at 120 min.
  if (stuck) p.outcome.expected_resume_true_ms = t + 120 * kMinuteMs;
  p.Mri(stuck ? kForever : static_cast<int64_t>(Uniform(rng, 20, 120) * kMinuteMs));
  ++counters_.mri;
  p.next_mri_ms = stuck ? kForever : NextSessionMs(t, sc_.mri_per_pump_year(), rng);
  if (p.fault.kind == FaultKind::kMriNoResumption && p.fault.start_true_ms > t) {
    p.next_mri_ms = std::min(p.next_mri_ms, p.fault.start_true_ms);  // the scan that sticks
  }
  return absl::OkStatus();
}

absl::Status Clinic::Programming(SimPump& p, std::mt19937_64& rng) {
  const int64_t t = p.t_ms;
  p.next_programming_ms = NextSessionMs(t, sc_.programming_per_pump_year(), rng);
  p.Session(Uniform(rng, 0.1, 0.5), static_cast<int64_t>(Uniform(rng, 5, 15) * kMinuteMs), 0);
  if (p.rx.mode() != v1::THERAPY_MODE_SIMPLE_CONTINUOUS) return absl::OkStatus();
  // A titration of up to +-10 %.
  v1::SetPrescriptionRequest req;
  req.set_name("pumps/" + p.pump_id);
  *req.mutable_prescription() = p.rx;
  req.mutable_prescription()->set_rate_ul_per_day(
      std::max(50.0, std::round(p.rx.rate_ul_per_day() * Uniform(rng, 0.9, 1.1))));
  req.mutable_prescription()->set_effective_time_ms(ClinicianTime(t));
  req.mutable_prescription()->clear_version();
  req.mutable_prescription()->set_reason("pumpsim titration");
  req.set_expected_version(p.rx_version);
  v1::SetPrescriptionResponse resp;
  if (!Call(stub_, &v1::TwinService::Stub::SetPrescription, req, &resp, "").ok()) {
    // A refused titration (a soft limit that wants acknowledging, say) leaves the pump as
    // it was: the clinician would not program what the record refused.
    ++counters_.programming_refused;
    return absl::OkStatus();
  }
  p.rx.set_rate_ul_per_day(req.prescription().rate_ul_per_day());
  p.rx_version = resp.prescription().version();
  ++counters_.programming;
  return absl::OkStatus();
}

absl::Status Clinic::Interrogation(SimPump& p, std::mt19937_64& rng) {
  const int64_t t = p.t_ms;
  p.next_interrogation_ms = NextSessionMs(t, sc_.interrogations_per_pump_year(), rng);
  p.Session(Uniform(rng, 0.05, 0.3), static_cast<int64_t>(Uniform(rng, 2, 10) * kMinuteMs), 0);
  ++counters_.interrogations;
  return absl::OkStatus();
}

void Clinic::AfterStep(SimPump& p, std::mt19937_64& rng) {
  if (p.low_alarm_logged && p.outcome.missed_refill_true_ms == 0 &&
      p.next_refill_ms > p.t_ms + 3 * kDayMs) {
    // The pump's own low-reservoir alarm: the patient is seen within 1-3 days.
    p.next_refill_ms = ClinicHours(p.t_ms + static_cast<int64_t>(Uniform(rng, 1, 3) * kDayMs), rng);
  }
  if (p.fault.kind == FaultKind::kEmptyReservoir && p.outcome.dry_true_ms != 0 &&
      p.outcome.missed_refill_true_ms != 0 && p.next_refill_ms == kForever) {
    // Withdrawal symptoms bring the patient back 2-14 days after the pump ran dry.
    p.next_refill_ms = ClinicHours(
        p.outcome.dry_true_ms + static_cast<int64_t>(Uniform(rng, 2, 14) * kDayMs), rng);
  }
}

}  // namespace pumptwin::sim
