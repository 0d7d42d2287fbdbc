#include "tools/sim/eval_inputs.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "tools/sim/eval_goals.h"

namespace pumptwin::sim {
namespace {

// The twin's own statement of what a pump's readings can show of a flow drift within the
// goal's window: its flow-drift detector's detail "detectable within 72 h: >= X %"
// (docs/detection.md, "How it is scored"), as a fraction; NaN when it states none.
double TwinDriftBound(const v1::TwinState& t) {
  const std::string key = absl::StrFormat("detectable within %.0f h: >= ", kGoalDriftHours);
  for (const auto& d : t.detectors()) {
    if (d.type() != v1::ALERT_TYPE_FLOW_DRIFT_OVER) continue;
    const size_t at = d.detail().find(key);
    double percent = 0;
    if (at != std::string::npos &&
        std::sscanf(d.detail().c_str() + at + key.size(), "%lf", &percent) == 1) {
      return percent / 100.0;
    }
  }
  return std::nan("");
}

}  // namespace

absl::StatusOr<EvalInputs> ReadEvalInputs(const EvalOptions& o) {
  EvalInputs r;
  std::vector<GroundTruth>& runs = r.runs;
  std::vector<GroundTruth>& faults = r.faults;
  std::map<std::string, PumpInfo>& pumps = r.pumps;
  for (const std::string& path : o.ground_truth_paths) {
    std::ifstream in(path);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
    double days = 0;
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      GroundTruth g;
      auto st = google::protobuf::util::JsonStringToMessage(line, &g);
      if (!st.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": ground truth: ", st.ToString()));
      }
      if (g.record() == "run") {
        runs.push_back(g);
        days = g.days();
      }
      if (g.record() == "pump") {
        pumps[g.pump_id()] = {g.profile(), g.enrolment_device_ms(), days, g.dry_before_alarm(),
                              g.battery_eri_device_ms()};
      }
      if (g.record() == "fault") faults.push_back(g);
    }
  }
  if (runs.empty()) return absl::InvalidArgumentError("ground truth holds no run record");
  // Alerts: WatchAlerts from cursor 0 until idle_s without an event (or max_s), from each
  // target in turn (one server per run, or one for all).
  std::vector<std::string> targets = absl::StrSplit(o.target, ',', absl::SkipEmpty());
  if (targets.size() != 1 && targets.size() != o.ground_truth_paths.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--target names ", targets.size(), " servers for ", o.ground_truth_paths.size(),
        " ground-truth files: give one server, or one per file in the same order"));
  }
  std::mutex mu;
  std::vector<v1::AlertEvent>& events = r.events;
  if (targets.size() > 1) {  // one server per run: each run's pumps from its own server
    std::sort(targets.begin(), targets.end());
    targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  }
  for (const std::string& target : targets) {
    auto stub =
        v1::TwinService::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
    std::atomic<int64_t> last_event_ms{absl::ToUnixMillis(absl::Now())};
    std::atomic<bool> finished{false};
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    std::thread reader_thread([&] {
      v1::WatchAlertsRequest req;
      req.set_from_cursor(0);
      auto reader = stub->WatchAlerts(&ctx, req);
      v1::AlertEvent ev;
      while (reader->Read(&ev)) {
        {
          std::lock_guard<std::mutex> l(mu);
          if (pumps.count(ev.alert().pump_id()) > 0) events.push_back(ev);
        }
        last_event_ms = absl::ToUnixMillis(absl::Now());
      }
      (void)reader->Finish();
      finished = true;
    });
    const absl::Time t0 = absl::Now();
    while (!finished && absl::Now() - t0 < absl::Seconds(o.max_s) &&
           absl::ToUnixMillis(absl::Now()) - last_event_ms.load() < o.idle_s * 1000) {
      absl::SleepFor(absl::Milliseconds(100));  // bounded polling of the reader's progress
    }
    ctx.TryCancel();
    reader_thread.join();
  }

  // The twin's bound for each sensorized pump with a flow drift, read after the run (the
  // pump's own noise, reporting interval and programmed rate; docs/detection.md).
  std::map<std::string, double>& drift_bound = r.drift_bound;
  for (const auto& f : faults) {
    if (f.profile() != "sensorized" || f.kind().rfind("flow_drift", 0) != 0) continue;
    for (const std::string& target : targets) {
      auto stub =
          v1::TwinService::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      v1::GetTwinRequest req;
      req.set_name("pumps/" + f.pump_id());
      v1::TwinState t;
      if (stub->GetTwin(&ctx, req, &t).ok()) {
        drift_bound[f.pump_id()] = TwinDriftBound(t);
        break;
      }
    }
  }
  return r;
}

}  // namespace pumptwin::sim
