// pumpsim entry points: Run (build a fleet, register it over TwinService, stream its
// telemetry through GatewayClient, record refills/MRI visits, write ground truth) and
// Evaluate (ground truth + WatchAlerts from cursor 0 -> detection-quality table).
#ifndef PUMPTWIN_TOOLS_SIM_SIM_H_
#define PUMPTWIN_TOOLS_SIM_SIM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "scenario.pb.h"  // generated from tools/sim/scenario.proto

namespace pumptwin::sim {

struct RunOptions {
  std::string target;
  uint32_t pumps = 300;
  double days = 30;
  uint64_t seed = 1;
  std::string ground_truth_path;
  std::string pump_prefix = "sim";
  double speed = 0;       // simulated seconds per wall second; 0: as fast as possible
  bool realtime = false;  // speed 1, run start = now
  double progress_every_s = 2;
};

absl::StatusOr<Scenario> LoadScenario(const std::string& path);  // empty path: no faults
absl::Status Run(const RunOptions& opts, const Scenario& scenario);

struct EvalOptions {
  std::string target;
  std::vector<std::string> ground_truth_paths;  // one per run (distinct pump prefixes)
  double idle_s = 3;         // stop reading WatchAlerts after this long without an event
  double max_s = 60;         // hard bound on reading alerts
  std::string markdown_out;  // empty: stdout only
  std::string json_out;      // empty: no JSON
  std::string command_line;  // written into the markdown
};

absl::Status Evaluate(const EvalOptions& opts);

}  // namespace pumptwin::sim

#endif  // PUMPTWIN_TOOLS_SIM_SIM_H_
