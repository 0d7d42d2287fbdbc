// The simulator on its own (no server): a seed gives the same fleet and the same telemetry;
// per-pump physics spans the documented ranges; and tools/sim includes nothing from twin/,
// directly or through its own headers (device_link/gateway_client.h is the transport and is
// not followed).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tools/sim/sim_parts.h"

namespace pumptwin::sim {
namespace {

Scenario FleetScenario() {
  auto sc = LoadScenario(PUMPTWIN_SOURCE_ROOT "/tools/sim/scenarios/fleet.json");
  EXPECT_TRUE(sc.ok()) << sc.status();
  return *sc;
}

Fleet Build(uint64_t seed, uint32_t pumps) {
  RunOptions o;
  o.pumps = pumps;
  o.days = 365;
  o.seed = seed;
  std::mt19937_64 rng(seed);
  return BuildFleet(o, FleetScenario(), /*start_ms=*/1'700'000'000'000, rng);
}

// A pump's first day of reports, serialized, as a fingerprint of its physics and noise.
std::string FirstDay(SimPump p, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out;
  if (p.sample_interval_ms == 0) return out;
  const int64_t end_ms = p.t_ms + kDayMs;
  for (int64_t t = p.t_ms + p.sample_interval_ms; t <= end_ms; t += p.sample_interval_ms) {
    p.AdvanceTo(t, rng);
    out += p.TakeSample(rng).SerializeAsString();
  }
  return out;
}

TEST(SimFleetTest, SameSeedSameFleetAndTelemetry) {
  const Fleet a = Build(7, 300), b = Build(7, 300), c = Build(8, 300);
  ASSERT_EQ(a.pumps.size(), b.pumps.size());
  int differ_from_other_seed = 0;
  for (size_t i = 0; i < a.pumps.size(); ++i) {
    EXPECT_EQ(a.pumps[i].idle_ua, b.pumps[i].idle_ua);
    EXPECT_EQ(a.pumps[i].fault.kind, b.pumps[i].fault.kind);
    EXPECT_EQ(a.pumps[i].fault.start_true_ms, b.pumps[i].fault.start_true_ms);
    EXPECT_EQ(a.pumps[i].next_refill_ms, b.pumps[i].next_refill_ms);
    differ_from_other_seed += a.pumps[i].idle_ua != c.pumps[i].idle_ua ? 1 : 0;
  }
  EXPECT_GT(differ_from_other_seed, 290);
  for (size_t i = 0; i < 20; ++i) EXPECT_EQ(FirstDay(a.pumps[i], 1), FirstDay(b.pumps[i], 1));
}

TEST(SimFleetTest, PhysicsSpansWideRanges) {
  const Fleet f = Build(1, 2000);
  double idle_min = 1e9, idle_max = 0;
  std::set<int64_t> intervals;
  std::set<int> profiles;
  int mid_life = 0, faulty = 0;
  std::set<FaultKind> kinds_on_constant_flow;
  for (const SimPump& p : f.pumps) {
    profiles.insert(p.profile);
    if (p.has_battery) {
      idle_min = std::min(idle_min, p.idle_ua);
      idle_max = std::max(idle_max, p.idle_ua);
    }
    if (p.sample_interval_ms > 0) intervals.insert(p.sample_interval_ms);
    mid_life += p.mid_life ? 1 : 0;
    faulty += p.fault.kind != FaultKind::kNone ? 1 : 0;
    if (p.profile == v1::PUMP_PROFILE_CONSTANT_FLOW) kinds_on_constant_flow.insert(p.fault.kind);
  }
  EXPECT_EQ(profiles.size(), 4u);
  EXPECT_GE(idle_min, 8);
  EXPECT_LT(idle_min, 10);
  EXPECT_LE(idle_max, 40);
  EXPECT_GT(idle_max, 38);
  EXPECT_EQ(*intervals.begin(), kMinuteMs);
  EXPECT_EQ(*intervals.rbegin(), 60 * kMinuteMs);
  EXPECT_GT(mid_life, 800);  // fleet.json: half the pumps enrolled mid-life
  EXPECT_LT(mid_life, 1200);
  EXPECT_GT(faulty, 100);
  // Faults go to every profile, also where they cannot be seen (a catheter leak on a pump
  // that reports nothing), never where they cannot happen (a stall without a motor).
  EXPECT_TRUE(kinds_on_constant_flow.count(FaultKind::kCatheterLeak));
  EXPECT_FALSE(kinds_on_constant_flow.count(FaultKind::kMotorStall));
}

TEST(SimFleetTest, SessionChargeShowsInTheNextReadingAndClinicianTimesRound) {
  Fleet f = Build(3, 400);
  SimPump* p = nullptr;
  for (SimPump& q : f.pumps) {
    if (q.profile == v1::PUMP_PROFILE_SENSORIZED && q.fault.kind == FaultKind::kNone &&
        q.sample_interval_ms >= 15 * kMinuteMs) {
      p = &q;
      break;
    }
  }
  ASSERT_NE(p, nullptr);
  std::mt19937_64 rng(1);
  const int64_t t0 = p->t_ms;
  p->AdvanceTo(t0 + p->sample_interval_ms, rng);
  const double quiet_ua = p->TakeSample(rng).battery_current_ua();
  p->Session(/*charge_mah=*/0.5, /*duration_ms=*/10 * kMinuteMs, /*reservoir_offset_ul=*/400);
  p->AdvanceTo(t0 + 2 * p->sample_interval_ms, rng);
  const v1::TelemetrySample during = p->TakeSample(rng);
  EXPECT_GT(during.battery_current_ua(), quiet_ua + 100);
  ASSERT_EQ(during.events_size(), 1);
  EXPECT_EQ(during.events(0).type(), v1::DEVICE_EVENT_TELEMETRY_SESSION);
  constexpr int64_t kOnFive = 1'700'000'100'000;         // a whole 5 minutes of the epoch
  EXPECT_EQ(ClinicianTime(kOnFive + 149'999), kOnFive);  // 2 min 29.999 s past: down
  EXPECT_EQ(ClinicianTime(kOnFive + 150'000), kOnFive + 5 * kMinuteMs);  // 2 min 30 s: up
}

// Every "twin/..." include reachable from tools/sim sources through tools/sim headers.
std::vector<std::string> TwinIncludes(const std::filesystem::path& root,
                                      const std::filesystem::path& dir) {
  const std::regex include_re(R"re(^\s*#\s*include\s*[<"]([^">]+)[">])re");
  std::vector<std::string> found;
  std::set<std::string> seen;
  std::vector<std::filesystem::path> todo;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const auto ext = e.path().extension();
    if (ext == ".cc" || ext == ".h" || ext == ".proto") todo.push_back(e.path());
  }
  while (!todo.empty()) {
    const std::filesystem::path file = todo.back();
    todo.pop_back();
    if (!seen.insert(file.string()).second) continue;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
      std::smatch m;
      if (!std::regex_search(line, m, include_re)) continue;
      const std::string inc = m[1];
      if (inc.rfind("twin/", 0) == 0) found.push_back(file.filename().string() + ": " + inc);
      // Follow the simulator's own headers; other layers' headers are theirs.
      if (inc.rfind("tools/sim/", 0) == 0 && std::filesystem::exists(root / inc)) {
        todo.push_back(root / inc);
      }
    }
  }
  return found;
}

// A fault seen only at a refill counts as observable from the first refill whose withdrawal
// differs from the pump's calculated reservoir by more than its labelled accuracy allows.
TEST(SimFleetTest, ARefillShowsAFaultOnlyBeyondTheLabelledAccuracy) {
  SimPump p;
  p.fault.kind = FaultKind::kFlowDrift;
  p.fault.start_true_ms = 1000;
  p.last_refill_volume_ul = 40000;
  p.calc_reservoir_ul = 10000;  // 30 mL programmed: the label allows 4.35 mL
  p.true_reservoir_ul = 6000;   // 4 mL short: within it
  NoteRefillShowsFault(p, 2000, /*own=*/false);
  EXPECT_EQ(p.outcome.visible_refill_true_ms, 0);
  p.true_reservoir_ul = 5000;                   // 5 mL short
  NoteRefillShowsFault(p, 999, /*own=*/false);  // before the fault's start
  EXPECT_EQ(p.outcome.visible_refill_true_ms, 0);
  NoteRefillShowsFault(p, 3000, /*own=*/true);  // the fault's own refill (a pocket fill)
  EXPECT_EQ(p.outcome.visible_refill_true_ms, 0);
  NoteRefillShowsFault(p, 4000, /*own=*/false);
  EXPECT_EQ(p.outcome.visible_refill_true_ms, 4000);
  NoteRefillShowsFault(p, 5000, /*own=*/false);  // the first one stays
  EXPECT_EQ(p.outcome.visible_refill_true_ms, 4000);
  // Small fills: at least 2 mL (a syringe reading).
  SimPump q;
  q.fault.kind = FaultKind::kSeptumLeak;
  q.last_refill_volume_ul = 10000;
  q.calc_reservoir_ul = 5000;
  q.true_reservoir_ul = 3200;  // 1.8 mL short, more than 14.5 % of 5 mL
  NoteRefillShowsFault(q, 10, /*own=*/false);
  EXPECT_EQ(q.outcome.visible_refill_true_ms, 0);
}

TEST(SimFleetTest, SimulatorIncludesNothingFromTwin) {
  const auto found = TwinIncludes(PUMPTWIN_SOURCE_ROOT, PUMPSIM_SOURCE_DIR);
  EXPECT_TRUE(found.empty()) << found.front();
}

TEST(SimFleetTest, IncludeCheckFindsTwinThroughOwnHeader) {
  const auto root =
      std::filesystem::temp_directory_path() / ("sim_fleet_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(root / "tools/sim");
  std::ofstream(root / "tools/sim/a.cc") << "#include \"tools/sim/b.h\"\n"
                                         << "#include \"device_link/gateway_client.h\"\n";
  std::ofstream(root / "tools/sim/b.h") << "#include <vector>\n#include \"twin/units.h\"\n";
  const auto found = TwinIncludes(root, root / "tools/sim");
  std::filesystem::remove_all(root);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0], "b.h: twin/units.h");
}

}  // namespace
}  // namespace pumptwin::sim
