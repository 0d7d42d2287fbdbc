// pumpsim Run: loads the scenario, then the four parts of a run in order (sim_parts.h):
// build the fleet, register it, the time loop with its clinic and fault events, and the
// ground truth.
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "tools/sim/sim.h"
#include "tools/sim/sim_parts.h"

namespace pumptwin::sim {

absl::StatusOr<Scenario> LoadScenario(const std::string& path) {
  Scenario sc;
  if (!path.empty()) {
    std::ifstream in(path);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read scenario ", path));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto st = google::protobuf::util::JsonStringToMessage(text, &sc);
    if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", st.ToString()));
  }
  for (const auto& f : sc.faults()) {
    if (ParseFaultKind(f.kind()) == FaultKind::kNone) {
      return absl::InvalidArgumentError(absl::StrCat("unknown fault kind '", f.kind(), "'"));
    }
  }
  if (sc.enrolment_fraction() < 0 || sc.enrolment_fraction() > 1) {
    return absl::InvalidArgumentError("enrolmentFraction must be within 0..1");
  }
  if (sc.pumps_per_gateway() == 0) sc.set_pumps_per_gateway(50);
  if (sc.gateway_outages_per_day() == 0) sc.set_gateway_outages_per_day(0.1);
  if (sc.outage_hours_min() == 0) sc.set_outage_hours_min(2);
  if (sc.outage_hours_max() == 0) sc.set_outage_hours_max(12);
  if (sc.mri_per_pump_year() == 0) sc.set_mri_per_pump_year(0.3);
  if (sc.enrolment_years_min() == 0) sc.set_enrolment_years_min(0.5);
  if (sc.enrolment_years_max() == 0) sc.set_enrolment_years_max(6);
  if (sc.interrogations_per_pump_year() == 0) sc.set_interrogations_per_pump_year(2);
  if (sc.programming_per_pump_year() == 0) sc.set_programming_per_pump_year(1);
  return sc;
}

absl::Status Run(const RunOptions& o, const Scenario& sc) {
  std::mt19937_64 rng(o.seed);
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  const int64_t span_ms = static_cast<int64_t>(o.days * kDayMs);
  // Accelerated: the whole run lies in the past (device times never ahead of the server).
  const int64_t start_ms = o.realtime ? now_ms : (now_ms - span_ms - kDayMs) / kDayMs * kDayMs;
  Fleet fleet = BuildFleet(o, sc, start_ms, rng);
  auto stub =
      v1::TwinService::NewStub(grpc::CreateChannel(o.target, grpc::InsecureChannelCredentials()));
  if (auto st = RegisterFleet(*stub, fleet, o.pump_prefix); !st.ok()) return st;
  if (auto st = TimeLoop(o, sc, fleet, *stub, rng); !st.ok()) return st;
  return WriteGroundTruth(o.ground_truth_path, o, sc, fleet);
}

}  // namespace pumptwin::sim
