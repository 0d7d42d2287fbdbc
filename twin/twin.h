// Twin: the digital twin of one implanted intrathecal pump - the lockstep model of
// model.md (integrator, detectors, forecasts, refills, clinical events) behind one facade.
// A value type (copyable, movable): the per-pump numbers live inline; the pump config and
// therapy plan sit in one immutable shared object (copy-on-write). Thread-compatible: one
// owner (a shard worker) mutates it; distinct Twins may be used on distinct threads.
// Decision support for clinicians; NOT a medical device.
#ifndef PUMPTWIN_TWIN_TWIN_H_
#define PUMPTWIN_TWIN_TWIN_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "twin/alert_types.h"
#include "twin/drug_library.h"
#include "twin/forecast.h"
#include "twin/model_state.h"  // internal layout, inline for a heap-free twin
#include "twin/pump_profile.h"
#include "twin/sample.h"
#include "twin/therapy.h"
#include "twin/units.h"

namespace pumptwin::twin {

// Mirrors pumptwin.v1.RefillVerdict.
enum class RefillVerdict : uint8_t { kUnspecified = 0, kOk = 1, kDiscrepancy = 2 };

struct Refill {
  Microliters withdrawn;  // aspirated before filling
  Microliters added;
  std::string drug;                       // empty: unchanged
  MicrogramsPerMilliliter concentration;  // 0: unchanged
  absl::Time device_time = absl::UnixEpoch();
};

struct RefillResult {
  Microliters expected_remaining;    // twin's estimate before the refill
  Microliters calculated_remaining;  // the pump's own calculation before the refill
  Microliters discrepancy;           // withdrawn - expected
  Microliters threshold;             // max(2 mL, 14.5 % of volume since last refill)
  RefillVerdict verdict = RefillVerdict::kUnspecified;
  std::optional<double> observed_ratio;  // delivery ratio implied by the withdrawal
};

// What the clinician programmer showed at the last interrogation of a pump implanted
// earlier (pumptwin.v1.Enrolment): the twin starts there instead of at implant.
struct Enrolment {
  absl::Time interrogation_time = absl::UnixEpoch();
  Microliters calculated_reservoir;                  // the pump's own calculation
  std::optional<absl::Time> last_refill_time;        // unknown: the drug age starts here
  std::optional<Microliters> last_refill_volume;     // unknown: the reservoir at enrolment
  std::optional<double> battery_indicator_fraction;  // unknown: modelled from implant
  bool battery_eri_shown = false;
};

// Mirrors pumptwin.v1.ClinicalEventType.
enum class ClinicalEventType : uint8_t {
  kUnspecified = 0,
  kClinicianBolus = 1,    // volume, or dose at the current concentration, over duration
  kPrimingBolus = 2,      // volume, default tubing + catheter volume; no patient dose
  kBridgeBolus = 3,       // volume, default tubing + catheter volume
  kMri = 4,               // motor pumps stall until delivery evidence
  kCatheterRevision = 5,  // new catheter geometry; pressure baseline relearnt
  kAccessPortAspiration = 6,
  kPumpReplacement = 7,  // new pump, same patient history: battery and drive reset
  kTrialStart = 8,
  kTrialEnd = 9,
};

struct ClinicalEvent {
  ClinicalEventType type = ClinicalEventType::kUnspecified;
  absl::Time device_time = absl::UnixEpoch();
  std::optional<Microliters> volume;
  std::optional<Micrograms> dose;
  absl::Duration duration;
  std::optional<Millimeters> catheter_length;
  std::optional<Millimeters> catheter_inner_diameter;
};

// What the pump should do with a patient activation at a given time.
enum class PatientBolusDecision : uint8_t { kNotConfigured, kGrant, kDenyLockout, kDenyDailyMax };

// A point of a predicted trajectory (ReplayTwin).
struct TrajectoryPoint {
  absl::Time device_time;
  Microliters calculated_reservoir;
  Microliters estimated_reservoir;
  Micrograms delivered_24h;
  double battery_charge_fraction = 1.0;
};

class Twin {
 public:
  // INVALID_ARGUMENT on a bad config, initial reservoir outside [0, capacity], a start
  // time outside [1970, 2200), or a prescription with hard violations.
  static absl::StatusOr<Twin> Create(const PumpConfig& cfg, const Prescription& rx,
                                     Microliters initial_reservoir, absl::Time start_device_time,
                                     const DrugLibrary& library = DrugLibrary::Default());
  // A twin of a pump implanted at cfg.implant_time, starting at the enrolment's
  // interrogation with the prescription `rx` in force there (model.md "Enrolment"): the
  // reservoir from the pump's calculation, the battery from its indicator (or modelled
  // from implant), the delivery ratio with a wide prior, the detectors warming up.
  // INVALID_ARGUMENT naming the enrolment field and its limit.
  static absl::StatusOr<Twin> Enrol(const PumpConfig& cfg, const Prescription& rx,
                                    const Enrolment& enrolment, const DrugLibrary& library);

  // The server time of registration: until the first sample, silence counts from here
  // (no-op once a sample was observed).
  void SetRegistered(absl::Time server_time);
  // Resolves every active alert with `summary` (the twin is being replaced or retired).
  void ResolveAll(absl::string_view summary, std::vector<AlertTransition>* out);
  // A twin that replaces another of the same pump id (trial -> implant) continues its
  // telemetry numbering: samples up to `last_seq` belong to the one it replaces.
  void ContinueSequence(uint64_t last_seq);

  Twin(const Twin&) = default;
  Twin(Twin&&) noexcept = default;
  Twin& operator=(const Twin&) = default;
  Twin& operator=(Twin&&) noexcept = default;

  // Applies one sample: validates it (INVALID_ARGUMENT naming field and limit; sample
  // device time before the model time: FAILED_PRECONDITION), advances the model exactly to
  // its device time (event-log entries applied at their own times), runs the detectors and
  // appends alert transitions to `out` (may be null). On error nothing changes.
  absl::Status Observe(const Sample& s, absl::Time server_time, std::vector<AlertTransition>* out);

  // Server-time checks without a sample: silent pump (detectors go to UNKNOWN; before the
  // first sample silence counts from registration), and the time-driven rules (MRI
  // resumption, long stall, drug stability, patient-bolus clear) at the estimated device
  // time. Does not advance the model of a pump that reports telemetry; a pump that reports
  // nothing by design (no telemetry signals: constant flow) has no other clock, so its model
  // runs to the server time and every check runs there (low reservoir, runs dry, dose).
  void Tick(absl::Time server_time, std::vector<AlertTransition>* out);

  // Integrates the model to `device_time` without a sample and without running
  // detectors (predictions, tests). FAILED_PRECONDITION if before the model time.
  absl::Status Advance(absl::Time device_time);

  // Every violation of `rx` against `library` and the pump profile, including the
  // titration guard against the dose in force at the start of the 24 h window.
  std::vector<LimitViolation> ValidatePrescription(
      const Prescription& rx, const DrugLibrary& library = DrugLibrary::Default()) const;

  // Sets the prescription from `effective_device_time` (at or before the model time: now;
  // later: pending until then, replacing any earlier pending one). INVALID_ARGUMENT with
  // every hard violation in the message; FAILED_PRECONDITION if a soft violation's code is
  // not in `acknowledged`. Returns the acknowledged soft violations.
  absl::StatusOr<std::vector<LimitViolation>> SetPrescription(
      const Prescription& rx, absl::Time effective_device_time,
      absl::Span<const std::string> acknowledged, std::vector<AlertTransition>* out,
      const DrugLibrary& library = DrugLibrary::Default());

  // Records a refill at r.device_time (later than the model time: the model advances;
  // earlier: applied at the model time). Computes the discrepancy verdict, learns the
  // delivery ratio from the withdrawal, resets both reservoirs to `added`, arms the
  // pocket-fill check. INVALID_ARGUMENT on bad volumes or an unknown/over-limit drug.
  absl::StatusOr<RefillResult> RecordRefill(const Refill& r, std::vector<AlertTransition>* out,
                                            const DrugLibrary& library = DrugLibrary::Default());

  // Records a clinical event (same time rule as RecordRefill).
  absl::Status RecordEvent(const ClinicalEvent& e, std::vector<AlertTransition>* out);

  // What the pump should answer to a patient activation at `device_time` (>= model time).
  PatientBolusDecision CheckPatientBolus(absl::Time device_time) const;

  // Forecast as of max(device_time, model time): a copy is advanced, this twin untouched.
  Forecast ForecastAt(absl::Time device_time) const;
  // Trajectory from the model time to `until`, one point per `step` (at most 100000),
  // under `proposed` (nullptr: the current therapy). INVALID_ARGUMENT on a bad range or a
  // proposed prescription with hard violations.
  absl::StatusOr<std::vector<TrajectoryPoint>> Predict(
      absl::Time until, absl::Duration step, const Prescription* proposed = nullptr,
      const DrugLibrary& library = DrugLibrary::Default()) const;

  // Lossless, deterministic bytes: byte 0 = format version, CRC-32 trailer.
  std::string Serialize() const;
  // DATA_LOSS on truncation / checksum mismatch; INVALID_ARGUMENT on an unknown version
  // or values out of range.
  static absl::StatusOr<Twin> Deserialize(absl::string_view bytes);

  // Bytes owned by this twin alone (sizeof + per-twin heap; 0 of the latter today) and the
  // bytes of its per-pump setup (config, plan references); the interned therapy plans and
  // drug limits it points to are shared between pumps and not counted (twin/plan_pool.h).
  size_t StateBytes() const;
  size_t SharedBytes() const;

  // ---- accessors (TwinState of resources.proto) ----
  const PumpConfig& config() const;
  const PumpSpec& spec() const;
  const Prescription& prescription() const;
  const DrugLimits& drug() const;
  std::optional<Prescription> pending_prescription() const;
  absl::Time device_time() const;
  std::optional<absl::Time> last_sample_server_time() const;
  uint64_t last_seq() const;
  Microliters calculated_reservoir() const;
  Microliters estimated_reservoir() const;
  double delivery_ratio() const;
  double delivery_ratio_stddev() const;
  Micrograms delivered_today() const;
  Micrograms delivered_24h() const;
  Microliters delivered_total() const;     // estimated (physical) volume, lifetime
  Microliters programmed_total() const;    // programmed volume, lifetime
  double battery_charge_fraction() const;  // 1 for pumps without battery
  Mmhg expected_stroke_pressure() const;
  Mmhg pressure_baseline() const;     // learned; expected until the first sample
  absl::Duration clock_skew() const;  // device minus server
  std::optional<Microliters> last_measured_reservoir() const;
  std::optional<Microliters> reservoir_residual() const;  // measured - estimated
  std::optional<Mmhg> last_stroke_pressure() const;
  std::optional<Mmhg> pressure_residual() const;  // measured - baseline
  std::optional<Volts> last_battery_voltage() const;
  absl::Time last_refill_time() const;
  bool delivery_suspended() const;  // stall, MRI stall or end of service
  uint32_t patient_boluses_granted() const;
  uint32_t patient_boluses_denied() const;
  uint32_t motor_stalls() const;
  // One entry per AlertType 1..16, in type order.
  std::vector<DetectorStatus> detectors() const;
  // Active alerts: severity per type (kUnspecified: none).
  Severity active_alert(AlertType type) const;
  // Whether the pump's profile reports any telemetry at all.
  bool ReportsTelemetry() const;
  // Whether the twin started at an enrolment interrogation (false: at implant).
  bool enrolled() const;

 private:
  Twin(std::shared_ptr<const Setup> setup, const ModelState& state)
      : setup_(std::move(setup)), s_(state) {}
  // Create and Enrol: validation of config, start time and prescription, and the twin at
  // `start` with `reservoir_ul` in both reservoirs.
  static absl::StatusOr<Twin> Start(const PumpConfig& cfg, const Prescription& rx,
                                    double reservoir_ul, absl::Time start,
                                    const DrugLibrary& library);
  // Advances to `t` if later than the model time (clinical calls); earlier: stays.
  void CatchUp(TimeNs t);
  // `prev_t`: the model time before this sample (time-weighted averages).
  void ApplySignals(const Sample& sample, TimeNs prev_t, std::vector<AlertTransition>* out);
  friend class TwinCodec;

  std::shared_ptr<const Setup> setup_;
  ModelState s_;
};

}  // namespace pumptwin::twin

#endif  // PUMPTWIN_TWIN_TWIN_H_
