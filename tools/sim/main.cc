// pumpsim: fleet simulator for pumptwind (run) and detection-quality report (evaluate).
//   pumpsim --target=127.0.0.1:50051 --pumps=300 --days=30 --scenario=s.json
//   --ground_truth=gt.jsonl pumpsim evaluate --target=127.0.0.1:50051 --ground_truth=gt.jsonl
//   [--markdown_out=f.md]

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/help_flags.h"
#include "device_link/process_tuning.h"
#include "tools/sim/sim.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "pumptwind gRPC address");
ABSL_FLAG(uint32_t, pumps, 300, "pumps to simulate (every profile)");
ABSL_FLAG(double, days, 30, "simulated days");
ABSL_FLAG(std::string, scenario, "", "fault scenario JSON (docs/simulator.md); empty: no faults");
ABSL_FLAG(uint64_t, seed, 1, "random seed (same seed + scenario = same fleet and faults)");
ABSL_FLAG(std::string, ground_truth, "ground_truth.jsonl",
          "ground-truth JSON lines (written by run, read by evaluate)");
ABSL_FLAG(double, speed, 0, "simulated seconds per wall second (0: as fast as possible)");
ABSL_FLAG(bool, realtime, false,
          "real time from now (demo); same as --speed=1 with the run starting now");
ABSL_FLAG(std::string, pump_prefix, "sim",
          "pump ids are <prefix>-NNNNN (use a fresh prefix per run on one server)");
ABSL_FLAG(double, progress_every_s, 2, "seconds between progress lines");
ABSL_FLAG(double, idle_s, 3, "evaluate: stop reading alerts after this many idle seconds");
ABSL_FLAG(double, max_s, 60, "evaluate: hard bound on reading alerts");
ABSL_FLAG(std::string, markdown_out, "", "evaluate: append the markdown table to this file");
ABSL_FLAG(std::string, json_out, "", "evaluate: write the report as JSON to this file");

int main(int argc, char** argv) {
  pumptwin::device_link::TuneProcessForStreaming();
  pumptwin::tools::ListOwnFlagsInHelp();
  absl::SetProgramUsageMessage(
      "pumpsim: simulated pump fleet streaming into pumptwind, and its detection report.\n"
      "  pumpsim [flags]            run a fleet (see --pumps --days --scenario --speed)\n"
      "  pumpsim evaluate [flags]   ground truth + WatchAlerts -> recall / time to detect");
  std::vector<char*> args = pumptwin::tools::ParseFlagsOrExit(argc, argv);
  if (args.size() > 1 && std::string(args[1]) == "evaluate") {
    pumptwin::sim::EvalOptions e;
    e.target = absl::GetFlag(FLAGS_target);
    e.ground_truth_paths =
        absl::StrSplit(absl::GetFlag(FLAGS_ground_truth), ',', absl::SkipEmpty());
    e.idle_s = absl::GetFlag(FLAGS_idle_s);
    e.max_s = absl::GetFlag(FLAGS_max_s);
    e.markdown_out = absl::GetFlag(FLAGS_markdown_out);
    e.json_out = absl::GetFlag(FLAGS_json_out);
    std::vector<std::string> cmd(argv, argv + argc);
    e.command_line = absl::StrJoin(cmd, " ");
    auto st = pumptwin::sim::Evaluate(e);
    if (!st.ok()) {
      std::fprintf(stderr, "pumpsim evaluate: %s\n", st.ToString().c_str());
      return 1;
    }
    return 0;
  }
  if (args.size() > 1) {
    std::fprintf(stderr, "pumpsim: unknown command '%s' (see --help)\n", args[1]);
    return 2;
  }
  auto sc = pumptwin::sim::LoadScenario(absl::GetFlag(FLAGS_scenario));
  if (!sc.ok()) {
    std::fprintf(stderr, "pumpsim: %s\n", sc.status().ToString().c_str());
    return 2;
  }
  pumptwin::sim::RunOptions o;
  o.target = absl::GetFlag(FLAGS_target);
  o.pumps = absl::GetFlag(FLAGS_pumps);
  o.days = absl::GetFlag(FLAGS_days);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.ground_truth_path = absl::GetFlag(FLAGS_ground_truth);
  o.speed = absl::GetFlag(FLAGS_speed);
  o.realtime = absl::GetFlag(FLAGS_realtime);
  o.pump_prefix = absl::GetFlag(FLAGS_pump_prefix);
  o.progress_every_s = absl::GetFlag(FLAGS_progress_every_s);
  auto st = pumptwin::sim::Run(o, *sc);
  if (!st.ok()) {
    std::fprintf(stderr, "pumpsim: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}
