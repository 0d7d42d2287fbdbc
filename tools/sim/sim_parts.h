// The parts of a pumpsim run (sim.h Run), each with one job:
//   fleet.cc          BuildFleet: draws every pump's physics, therapy, enrolment, reporting
//                     interval and gateway, and assigns the scenario's faults (no I/O);
//                     WriteGroundTruth: the run, pump and fault records, after the run.
//   registration.cc   RegisterFleet: one RegisterPump per pump (at implant, or mid-life
//                     with RegisterPumpRequest.enrolment).
//   clinic.cc         Clinic: the sessions due on a pump (refill with human error, missed
//                     refills, clinician bolus, programming, interrogation, MRI) and the
//                     fault events tied to them; physics first, then the record with the
//                     clinician's time rounded to 5 minutes.
//   time_loop.cc      TimeLoop: steps true time an hour at a time; pumps report through
//                     their gateway's GatewayClient; gateway outages and their backfill.
// All randomness comes from one std::mt19937_64 seeded with --seed, consumed in a fixed
// order, so a seed and a scenario give the same fleet, faults and telemetry.
#ifndef PUMPTWIN_TOOLS_SIM_SIM_PARTS_H_
#define PUMPTWIN_TOOLS_SIM_SIM_PARTS_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "tools/sim/sim.h"
#include "tools/sim/sim_pump.h"

namespace pumptwin::sim {

struct Fleet {
  int64_t start_ms = 0;  // true time of the run start (every pump's enrolment)
  int64_t end_ms = 0;
  int gateways = 0;
  std::vector<SimPump> pumps;
  // Per pump: true times of the refills the clinic did during the run.
  std::vector<std::vector<int64_t>> refills_true_ms;
};

FaultKind ParseFaultKind(absl::string_view kind);
std::string ProfileName(v1::PumpProfile p);
// Whether a fault can physically happen on a pump (a stall needs a motor, early depletion a
// battery); observable or not is the evaluation's question, not this one.
bool Applicable(FaultKind k, const SimPump& p);

// ---- fleet.cc ----
// Builds the fleet (pumps, physics, therapy, first visits, faults). Deterministic in `rng`.
Fleet BuildFleet(const RunOptions& o, const Scenario& sc, int64_t start_ms, std::mt19937_64& rng);
// Days until the next refill: 6 weeks..6 months, within drug stability and before the
// pump's own low-reservoir alarm.
int64_t RefillIntervalMs(const SimPump& p, std::mt19937_64& rng);
absl::Status WriteGroundTruth(const std::string& path, const RunOptions& o, const Scenario& sc,
                              const Fleet& fleet);

// ---- registration.cc ----
absl::Status RegisterFleet(v1::TwinService::Stub& stub, const Fleet& fleet,
                           const std::string& pump_prefix);
std::string GatewayId(const std::string& pump_prefix, int gateway);

// ---- clinic.cc ----
struct ClinicCounters {
  uint64_t refills = 0, missed_refills = 0, boluses = 0, mri = 0, interrogations = 0;
  uint64_t programming = 0, programming_refused = 0;
};

class Clinic {
 public:
  Clinic(v1::TwinService::Stub& stub, const Scenario& sc) : stub_(stub), sc_(sc) {}
  // True time of the next session due on `p` (kForever: none).
  static int64_t NextVisitMs(const SimPump& p);
  // Runs every session due on `p` at its current time p.t_ms (the caller advanced it there
  // and delivered its telemetry so far): physics, then the record over TwinService.
  absl::Status Visit(SimPump& p, std::vector<int64_t>& refills, std::mt19937_64& rng);
  // Fault events that are not visits (an empty reservoir brings the patient back).
  void AfterStep(SimPump& p, std::mt19937_64& rng);
  const ClinicCounters& counters() const { return counters_; }

 private:
  absl::Status Refill(SimPump& p, std::vector<int64_t>& refills, std::mt19937_64& rng);
  absl::Status Mri(SimPump& p, std::mt19937_64& rng);
  absl::Status Programming(SimPump& p, std::mt19937_64& rng);
  absl::Status Interrogation(SimPump& p, std::mt19937_64& rng);

  v1::TwinService::Stub& stub_;
  const Scenario& sc_;
  ClinicCounters counters_;
};

// When a clinic session at or after `true_ms` happens: a day's 08:00-18:00, any minute.
int64_t ClinicHours(int64_t true_ms, std::mt19937_64& rng);
// The time a clinician types for a session at true time `true_ms`: the wall clock rounded
// to 5 minutes (the pump's clock offset and drift are not in it).
int64_t ClinicianTime(int64_t true_ms);
// Ground truth for faults seen only at a refill: at a refill at `t`, records it as the first
// that shows the fault when the withdrawal differs from the pump's calculated reservoir by
// more than its labelled accuracy allows (14.5 % of the volume programmed since the last
// refill, at least 2 mL). `own`: the refill that is the fault itself (a pocket fill).
void NoteRefillShowsFault(SimPump& p, int64_t t, bool own);

// ---- time_loop.cc ----
absl::Status TimeLoop(const RunOptions& o, const Scenario& sc, Fleet& fleet,
                      v1::TwinService::Stub& stub, std::mt19937_64& rng);

// gRPC helpers shared by the parts.
absl::Status FromGrpc(const grpc::Status& st, absl::string_view what);
void SetDeadline(grpc::ClientContext& ctx);
// One TwinService call with the parts' deadline; `what` prefixes the error.
template <typename Req, typename Resp>
absl::Status Call(v1::TwinService::Stub& stub,
                  grpc::Status (v1::TwinService::Stub::*method)(grpc::ClientContext*, const Req&,
                                                                Resp*),
                  const Req& req, Resp* resp, absl::string_view what) {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  return FromGrpc((stub.*method)(&ctx, req, resp), what);
}

// Draws shared by the parts (one generator, so a seed fixes them all).
double Uniform(std::mt19937_64& rng, double lo, double hi);
// A gap of an event happening `per_year` times a year at random (Poisson).
int64_t ExponentialGapMs(std::mt19937_64& rng, double per_year);
// The next clinic session of a kind happening `per_year` times a year, at least a day after
// `true_ms`, in clinic hours.
int64_t NextSessionMs(int64_t true_ms, double per_year, std::mt19937_64& rng);

}  // namespace pumptwin::sim

#endif  // PUMPTWIN_TOOLS_SIM_SIM_PARTS_H_
