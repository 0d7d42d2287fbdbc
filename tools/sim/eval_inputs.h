// What pumpsim evaluate scores (sim_eval.cc), read in one place: the ground-truth records
// of every run, the alerts each server streams from cursor 0 (WatchAlerts, bounded by
// idle/max time), and the twin's own flow-drift bound for each sensorized pump with a
// flow-drift fault (GetTwin after the run).
#ifndef PUMPTWIN_TOOLS_SIM_EVAL_INPUTS_H_
#define PUMPTWIN_TOOLS_SIM_EVAL_INPUTS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "pumptwin/v1/twin_service.pb.h"
#include "tools/sim/sim.h"

namespace pumptwin::sim {

struct PumpInfo {
  std::string profile;
  int64_t enrolment_ms = 0;
  double days = 0;
  bool dry_before_alarm = false;
  int64_t battery_eri_ms = 0;  // the pump's true ERI (device time); 0: no battery
};

struct EvalInputs {
  std::vector<GroundTruth> runs;    // "run" records, one per ground-truth file
  std::vector<GroundTruth> faults;  // "fault" records
  std::map<std::string, PumpInfo> pumps;
  std::vector<v1::AlertEvent> events;  // alerts about the ground truth's pumps
  // Per sensorized flow-drift pump: the smallest drift its twin states it can show within
  // the goal's window, as a fraction; NaN when it states none; absent if unreadable.
  std::map<std::string, double> drift_bound;
};

// NOT_FOUND for an unreadable ground-truth file; INVALID_ARGUMENT for a bad record, no
// run record, or a --target list that is neither one server nor one per file.
absl::StatusOr<EvalInputs> ReadEvalInputs(const EvalOptions& o);

}  // namespace pumptwin::sim

#endif  // PUMPTWIN_TOOLS_SIM_EVAL_INPUTS_H_
