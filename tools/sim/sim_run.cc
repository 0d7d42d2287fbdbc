// pumpsim Run: fleet construction, registration, the accelerated-time loop, clinic visits
// (refills with human error, clinician boluses, MRI) and fault injection + ground truth.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "device_link/gateway_client.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "tools/sim/sim.h"
#include "tools/sim/sim_pump.h"

namespace pumptwin::sim {
namespace {

constexpr int64_t kDayMs = 86400000;
constexpr int64_t kHourMs = 3600000;
constexpr int64_t kStepMs = kHourMs;  // loop step; visits happen on step boundaries
constexpr int64_t kForever = std::numeric_limits<int64_t>::max();

absl::Status FromGrpc(const grpc::Status& st, absl::string_view what) {
  if (st.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                      absl::StrCat(what, ": ", st.error_message()));
}

void Deadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  ctx.set_wait_for_ready(true);
}

FaultKind ParseKind(const std::string& k) {
  if (k == "flow_drift") return FaultKind::kFlowDrift;
  if (k == "occlusion_partial") return FaultKind::kOcclusionPartial;
  if (k == "occlusion_complete") return FaultKind::kOcclusionComplete;
  if (k == "catheter_leak") return FaultKind::kCatheterLeak;
  if (k == "battery_early_depletion") return FaultKind::kBatteryEarlyDepletion;
  if (k == "motor_stall") return FaultKind::kMotorStall;
  if (k == "mri_no_resumption") return FaultKind::kMriNoResumption;
  if (k == "pocket_fill") return FaultKind::kPocketFill;
  return FaultKind::kNone;
}

std::string ProfileName(v1::PumpProfile p) {
  switch (p) {
    case v1::PUMP_PROFILE_PROGRAMMABLE_PERISTALTIC: return "programmable_peristaltic";
    case v1::PUMP_PROFILE_PROGRAMMABLE_VALVE: return "programmable_valve";
    case v1::PUMP_PROFILE_CONSTANT_FLOW: return "constant_flow";
    case v1::PUMP_PROFILE_SENSORIZED: return "sensorized";
    default: return "unspecified";
  }
}

// Whether a fault kind can physically occur on a profile.
bool Applicable(FaultKind k, const SimPump& p) {
  switch (k) {
    case FaultKind::kBatteryEarlyDepletion: return p.has_battery;
    case FaultKind::kMotorStall:
    case FaultKind::kMriNoResumption: return p.has_motor;
    default: return true;
  }
}

// Draws one pump of `profile` with its therapy and true physics.
SimPump MakePump(int index, v1::PumpProfile profile, int64_t start_ms, const std::string& prefix,
                 uint32_t pumps_per_gateway, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u01(0, 1);
  std::normal_distribution<double> n01(0, 1);
  SimPump p;
  p.pump_id = absl::StrFormat("%s-%05d", prefix, index);
  p.profile = profile;
  p.gateway = index / static_cast<int>(std::max<uint32_t>(1, pumps_per_gateway));
  p.run_start_ms = start_ms;
  p.t_ms = start_ms;
  p.capacity_ul = u01(rng) < 0.5 ? 20000 : 40000;
  p.catheter_length_cm = 35 + 40 * u01(rng);
  p.catheter_id_mm = 0.53;
  p.true_id_mm = 0.53 * (1 + 0.02 * n01(rng));
  p.base_ratio = 1 + std::clamp(0.025 * n01(rng), -0.06, 0.06);
  p.csf_mmhg = std::clamp(10 + 2 * n01(rng), 6.0, 15.0);
  p.pulsation_mmhg = std::clamp(3 + 0.7 * n01(rng), 1.5, 5.0);
  p.clock_offset_ms = static_cast<int64_t>(20000 * n01(rng));
  p.clock_ppm = 15 * n01(rng);
  p.has_motor = profile != v1::PUMP_PROFILE_CONSTANT_FLOW;
  p.has_battery = p.has_motor;
  if (profile == v1::PUMP_PROFILE_PROGRAMMABLE_VALVE) {
    p.stroke_volume_ul = 2;
    p.idle_ua = 20;
    p.motor_mah_per_ul = 2e-5;
  } else if (profile == v1::PUMP_PROFILE_SENSORIZED) {
    p.battery_capacity_mah = 2400;
    p.idle_ua = 35;
  }
  p.battery_capacity_mah *= 1 + 0.03 * n01(rng);
  p.idle_ua *= 1 + 0.04 * n01(rng);
  p.sample_interval_ms = profile == v1::PUMP_PROFILE_CONSTANT_FLOW ? 0
                         : profile == v1::PUMP_PROFILE_SENSORIZED   ? 15 * 60000
                                                                    : kHourMs;
  // Therapy: drug, rate such that the reservoir lasts >= ~6 weeks.
  const double max_rate = (p.capacity_ul - 5000) / 45;
  const double u = u01(rng);
  auto* rx = &p.rx;
  rx->set_mode(v1::THERAPY_MODE_SIMPLE_CONTINUOUS);
  if (u < 0.4) { rx->set_drug("morphine"); rx->set_concentration_ug_per_ml(10000); }
  else if (u < 0.7) { rx->set_drug("baclofen"); rx->set_concentration_ug_per_ml(1000); }
  else if (u < 0.85) { rx->set_drug("hydromorphone"); rx->set_concentration_ug_per_ml(5000); }
  else { rx->set_drug("ziconotide"); rx->set_concentration_ug_per_ml(25); }
  double rate = std::round(std::max(100.0, max_rate * (0.3 + 0.6 * u01(rng))));
  if (rx->drug() == "ziconotide") rate = std::min(rate, 450.0);
  if (profile == v1::PUMP_PROFILE_CONSTANT_FLOW) rate = p.capacity_ul > 30000 ? 750 : 400;
  rx->set_rate_ul_per_day(rate);
  const bool programmable = profile != v1::PUMP_PROFILE_CONSTANT_FLOW;
  if (programmable && u01(rng) < 0.3) {  // flex: more by day, less at night
    rx->set_mode(v1::THERAPY_MODE_FLEX);
    p.flex_steps = {{0, std::round(rate * 0.8)}, {8 * kHourMs, std::round(rate * 1.2)},
                    {20 * kHourMs, std::round(rate * 0.9)}};
    for (const auto& [off, r] : p.flex_steps) {
      auto* st = rx->mutable_flex()->add_steps();
      st->set_start_offset_ms(off);
      st->set_rate_ul_per_day(r);
    }
  }
  if (programmable && rx->drug() == "morphine" && u01(rng) < 0.4) {
    p.ptm_volume_ul = std::round(10 + 15 * u01(rng));
    p.ptm_duration_ms = 10 * 60000;
    p.ptm_lockout_ms = 3 * kHourMs;
    p.ptm_max_per_24h = 4;
    p.ptm_activations_per_day = 1 + 2.5 * u01(rng);
    auto* pb = rx->mutable_patient_bolus();
    pb->set_bolus_volume_ul(p.ptm_volume_ul);
    pb->set_bolus_duration_ms(static_cast<int64_t>(p.ptm_duration_ms));
    pb->set_lockout_ms(static_cast<int64_t>(p.ptm_lockout_ms));
    pb->set_max_per_24h(4);
    p.next_ptm_ms = start_ms + static_cast<int64_t>(u01(rng) * kDayMs);
  }
  p.true_reservoir_ul = p.calc_reservoir_ul = p.capacity_ul;
  p.next_stall_ms = kForever;
  p.next_mri_ms = kForever;
  return p;
}

// Days until the next refill: 6 weeks..6 months, within drug stability and before the
// pump's own low-reservoir alarm (clinics refill with >= 4 mL left of what they put in:
// the volume actually in the reservoir now, not the nominal capacity).
int64_t RefillIntervalMs(const SimPump& p, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> days(42, 182);
  double d = days(rng);
  const double stability_days = p.rx.drug() == "baclofen" ? 180 : p.rx.drug() == "ziconotide" ? 60 : 90;
  d = std::min(d, stability_days - 7);
  double daily_ul = p.rx.rate_ul_per_day() * (p.flex_steps.empty() ? 1.0 : 1.2) +
                    p.ptm_volume_ul * p.ptm_max_per_24h;
  d = std::min(d, (std::min(p.capacity_ul, p.true_reservoir_ul) - 4000) / daily_ul);
  return static_cast<int64_t>(std::max(7.0, d) * kDayMs);
}

struct Gateway {
  std::unique_ptr<device_link::GatewayClient> client;
  std::vector<v1::TelemetrySample> pending;
  int64_t offline_until_ms = 0;
};

absl::Status Flush(Gateway& g, bool wait) {
  for (size_t i = 0; i < g.pending.size(); i += 1000) {
    std::vector<v1::TelemetrySample> frame(
        g.pending.begin() + static_cast<std::ptrdiff_t>(i),
        g.pending.begin() + static_cast<std::ptrdiff_t>(std::min(g.pending.size(), i + 1000)));
    auto id = g.client->Send(std::move(frame));
    if (!id.ok()) return id.status();
  }
  g.pending.clear();
  if (wait && !g.client->WaitUntilAllDone(absl::Seconds(120))) {
    return absl::DeadlineExceededError("gateway did not drain within 120 s");
  }
  return absl::OkStatus();
}

}  // namespace

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
    if (ParseKind(f.kind()) == FaultKind::kNone) {
      return absl::InvalidArgumentError(absl::StrCat("unknown fault kind '", f.kind(), "'"));
    }
  }
  if (sc.pumps_per_gateway() == 0) sc.set_pumps_per_gateway(50);
  if (sc.gateway_outages_per_day() == 0) sc.set_gateway_outages_per_day(0.1);
  if (sc.outage_hours_min() == 0) sc.set_outage_hours_min(2);
  if (sc.outage_hours_max() == 0) sc.set_outage_hours_max(12);
  if (sc.mri_per_pump_year() == 0) sc.set_mri_per_pump_year(0.3);
  return sc;
}


absl::Status Run(const RunOptions& o, const Scenario& sc) {
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> u01(0, 1);
  std::normal_distribution<double> n01(0, 1);
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  const int64_t span_ms = static_cast<int64_t>(o.days * kDayMs);
  // Accelerated: the whole run lies in the past (device times never ahead of the server).
  const int64_t start_ms = o.realtime ? now_ms : (now_ms - span_ms - kDayMs) / kDayMs * kDayMs;
  const int64_t end_ms = start_ms + span_ms;
  const double speed = o.realtime ? 1.0 : o.speed;

  std::vector<SimPump> pumps;
  for (uint32_t i = 0; i < o.pumps; ++i) {
    const double u = u01(rng);
    const v1::PumpProfile prof = u < 0.35   ? v1::PUMP_PROFILE_SENSORIZED
                                 : u < 0.75 ? v1::PUMP_PROFILE_PROGRAMMABLE_PERISTALTIC
                                 : u < 0.9  ? v1::PUMP_PROFILE_PROGRAMMABLE_VALVE
                                            : v1::PUMP_PROFILE_CONSTANT_FLOW;
    pumps.push_back(MakePump(static_cast<int>(i), prof, start_ms, o.pump_prefix,
                             sc.pumps_per_gateway(), rng));
    SimPump& p = pumps.back();
    const int64_t interval = RefillIntervalMs(p, rng);
    const double phase = 0.7 * u01(rng);
    p.true_reservoir_ul = p.calc_reservoir_ul =
        std::round(p.capacity_ul - phase * (p.capacity_ul - 4000) * 0.9);
    p.next_refill_ms = start_ms + std::max<int64_t>(
                                      kHourMs, static_cast<int64_t>((1 - phase) * interval)) /
                                      kHourMs * kHourMs;
    if (p.has_motor) {
      std::exponential_distribution<double> gap(sc.mri_per_pump_year() / (365.0 * kDayMs));
      p.next_mri_ms = start_ms + static_cast<int64_t>(gap(rng)) / kHourMs * kHourMs + kHourMs;
    }
  }
  // Faults on distinct pumps.
  std::vector<size_t> order(pumps.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<GroundTruth> truth;
  for (const Fault& f : sc.faults()) {
    const FaultKind kind = ParseKind(f.kind());
    for (uint32_t c = 0; c < f.count(); ++c) {
      SimPump* pick = nullptr;
      for (size_t idx : order) {
        SimPump& p = pumps[idx];
        if (p.fault.kind != FaultKind::kNone || !Applicable(kind, p)) continue;
        if (!f.profile().empty() && ProfileName(p.profile) != f.profile()) continue;
        pick = &p;
        break;
      }
      if (pick == nullptr) {
        std::fprintf(stderr, "pumpsim: no pump left for fault %s (%s)\n", f.kind().c_str(),
                     f.profile().c_str());
        break;
      }
      SimPump& p = *pick;
      p.fault.kind = kind;
      p.fault.magnitude = f.magnitude_min() + (f.magnitude_max() - f.magnitude_min()) * u01(rng);
      p.fault.gradual = f.gradual();
      p.fault.ramp_days = f.ramp_days();
      p.fault.intermittent = f.intermittent();
      const double day = f.start_day_min() + (f.start_day_max() - f.start_day_min()) * u01(rng);
      p.fault.start_true_ms = start_ms + static_cast<int64_t>(day * kDayMs) / kHourMs * kHourMs;
      if (kind == FaultKind::kMotorStall) p.next_stall_ms = p.fault.start_true_ms;
      if (kind == FaultKind::kMriNoResumption) p.next_mri_ms = p.fault.start_true_ms;
      if (kind == FaultKind::kPocketFill) p.next_refill_ms = p.fault.start_true_ms;
      GroundTruth g;
      g.set_record("fault");
      g.set_pump_id(p.pump_id);
      g.set_profile(ProfileName(p.profile));
      std::string k = f.kind();
      if (kind == FaultKind::kFlowDrift) {
        k += p.fault.magnitude >= 0 ? "_over" : "_under";
        if (std::abs(p.fault.magnitude) < 0.10) k += "_within_label";  // not a fault per §4
      }
      if (kind == FaultKind::kMotorStall) k += f.intermittent() ? "_intermittent" : "_permanent";
      g.set_kind(k);
      g.set_magnitude(p.fault.magnitude);
      g.set_gradual(f.gradual());
      g.set_start_true_ms(p.fault.start_true_ms);
      g.set_start_device_ms(p.DeviceTime(p.fault.start_true_ms));
      std::mt19937_64 copy = rng;
      int64_t next = p.next_refill_ms;
      while (next <= p.fault.start_true_ms) next += RefillIntervalMs(p, copy);
      g.set_next_refill_device_ms(p.DeviceTime(next));
      truth.push_back(g);
    }
  }
  // Ground truth file.
  std::ofstream gt;
  if (!o.ground_truth_path.empty()) {
    gt.open(o.ground_truth_path, std::ios::trunc);
    if (!gt) return absl::InternalError(absl::StrCat("cannot write ", o.ground_truth_path));
  }
  auto write_gt = [&](const GroundTruth& g) {
    if (!gt.is_open()) return;
    std::string line;
    (void)google::protobuf::util::MessageToJsonString(g, &line);
    gt << line << "\n";
  };
  {
    GroundTruth run;
    run.set_record("run");
    run.set_run_start_ms(start_ms);
    run.set_days(o.days);
    run.set_pumps(o.pumps);
    run.set_seed(o.seed);
    run.set_scenario(sc.name());
    write_gt(run);
    for (const SimPump& p : pumps) {
      GroundTruth g;
      g.set_record("pump");
      g.set_pump_id(p.pump_id);
      g.set_profile(ProfileName(p.profile));
      write_gt(g);
    }
    for (const GroundTruth& g : truth) write_gt(g);
    gt.flush();
  }
  // Registration.
  auto channel = grpc::CreateChannel(o.target, grpc::InsecureChannelCredentials());
  auto stub = v1::TwinService::NewStub(channel);
  auto gateway_id = [&](int g) { return absl::StrCat(o.pump_prefix, "-gw", g); };
  for (const SimPump& p : pumps) {
    v1::RegisterPumpRequest req;
    auto* pp = req.mutable_pump();
    pp->set_pump_id(p.pump_id);
    pp->set_profile(p.profile);
    pp->set_reservoir_capacity_ul(p.capacity_ul);
    pp->set_catheter_length_cm(p.catheter_length_cm);
    pp->set_catheter_inner_diameter_mm(p.catheter_id_mm);
    pp->set_implant_time_ms(p.DeviceTime(start_ms));
    pp->set_clinic(absl::StrCat("sim-clinic-", p.gateway % 5));
    pp->add_gateway_ids(gateway_id(p.gateway));
    pp->set_reporting_interval_ms(p.sample_interval_ms);
    *req.mutable_initial_prescription() = p.rx;
    req.mutable_initial_prescription()->set_effective_time_ms(0);
    req.set_initial_reservoir_ul(p.calc_reservoir_ul);
    req.set_reason("pumpsim");
    grpc::ClientContext ctx;
    Deadline(ctx);
    v1::Pump out;
    if (auto st = FromGrpc(stub->RegisterPump(&ctx, req, &out), "RegisterPump " + p.pump_id);
        !st.ok()) {
      return st;
    }
  }
  const int n_gw = pumps.empty() ? 0 : pumps.back().gateway + 1;
  std::vector<Gateway> gws(static_cast<size_t>(n_gw));
  for (int g = 0; g < n_gw; ++g) {
    device_link::GatewayClientOptions go;
    go.target = o.target;
    go.credentials = grpc::InsecureChannelCredentials();
    go.gateway_id = gateway_id(g);
    go.max_buffered_frames = 256;
    go.when_full = device_link::GatewayClientOptions::WhenFull::kBlock;
    go.block_timeout = absl::Seconds(120);
    go.backoff.initial = absl::Milliseconds(20);
    go.backoff.max = absl::Milliseconds(500);
    gws[static_cast<size_t>(g)].client = std::make_unique<device_link::GatewayClient>(std::move(go));
    gws[static_cast<size_t>(g)].client->Start();
  }
  // Live alert counter (WatchAlerts from the beginning).
  std::atomic<uint64_t> alerts_raised{0};
  grpc::ClientContext watch_ctx;
  std::thread watcher([&] {
    v1::WatchAlertsRequest req;
    auto reader = stub->WatchAlerts(&watch_ctx, req);
    v1::AlertEvent ev;
    while (reader->Read(&ev)) {
      if (ev.transition() == v1::ALERT_TRANSITION_RAISED &&
          absl::StartsWith(ev.alert().pump_id(), o.pump_prefix + "-")) {
        alerts_raised.fetch_add(1);
      }
    }
    (void)reader->Finish();
  });
  struct WatchStop {
    grpc::ClientContext* ctx;
    std::thread* t;
    ~WatchStop() { ctx->TryCancel(); t->join(); }
  } watch_stop{&watch_ctx, &watcher};

  uint64_t samples = 0;
  const absl::Time wall0 = absl::Now();
  absl::Time last_progress = wall0;
  auto progress = [&](int64_t t, bool force) {
    const absl::Time now = absl::Now();
    if (!force && now - last_progress < absl::Seconds(o.progress_every_s)) return;
    last_progress = now;
    uint64_t acked = 0;
    int offline = 0;
    for (const auto& g : gws) {
      acked += g.client->stats().samples_acked;
      if (g.offline_until_ms > t) ++offline;
    }
    std::printf("pumpsim: sim day %6.2f/%.0f (%s) | samples sent %llu | acked %llu | "
                "alerts raised %llu | gateways offline %d/%d | wall %.1fs\n",
                static_cast<double>(t - start_ms) / kDayMs, o.days,
                absl::FormatTime("%Y-%m-%d %H:%M", absl::FromUnixMillis(t), absl::UTCTimeZone()).c_str(),
                static_cast<unsigned long long>(samples), static_cast<unsigned long long>(acked),
                static_cast<unsigned long long>(alerts_raised.load()), offline, n_gw,
                absl::ToDoubleSeconds(now - wall0));
    std::fflush(stdout);
  };

  for (int64_t t = start_ms; t < end_ms; t += kStepMs) {
    // Clinic visits due now: upload the pumps' logs first (programmer session), then record.
    std::vector<SimPump*> visits;
    for (SimPump& p : pumps) {
      if (p.next_refill_ms <= t || p.next_mri_ms <= t) visits.push_back(&p);
    }
    std::vector<bool> flushed(gws.size(), false);
    for (SimPump* p : visits) {
      auto& g = gws[static_cast<size_t>(p->gateway)];
      if (!flushed[static_cast<size_t>(p->gateway)]) {
        if (auto st = Flush(g, true); !st.ok()) return st;
        flushed[static_cast<size_t>(p->gateway)] = true;
      }
    }
    for (SimPump* pp : visits) {
      SimPump& p = *pp;
      const std::string name = "pumps/" + p.pump_id;
      if (p.next_refill_ms <= t) {
        const double withdrawn = std::max(0.0, std::round((p.true_reservoir_ul + 300 * n01(rng)) / 100) * 100);
        const double added = std::round(p.capacity_ul * (0.9 + 0.1 * u01(rng)) / 500) * 500;
        const bool pocket = p.fault.kind == FaultKind::kPocketFill && p.fault.start_true_ms == t;
        v1::RecordRefillRequest req;
        req.set_name(name);
        req.set_withdrawn_volume_ul(withdrawn);
        req.set_added_volume_ul(added);
        req.set_drug(p.rx.drug());
        req.set_concentration_ug_per_ml(p.rx.concentration_ug_per_ml());
        req.set_device_time_ms(p.DeviceTime(t));
        req.set_reason("pumpsim refill");
        grpc::ClientContext ctx;
        Deadline(ctx);
        v1::RecordRefillResponse resp;
        if (auto st = FromGrpc(stub->RecordRefill(&ctx, req, &resp), "RecordRefill " + p.pump_id);
            !st.ok()) {
          return st;
        }
        p.Refill(added, pocket ? p.fault.magnitude : 0);
        p.next_refill_ms = t + RefillIntervalMs(p, rng) / kHourMs * kHourMs;
        if (p.has_motor && u01(rng) < 0.15) {  // clinician bolus at the visit
          const double vol = std::round(50 + 100 * u01(rng));
          v1::RecordEventRequest ev;
          ev.set_name(name);
          ev.set_type(v1::CLINICAL_EVENT_CLINICIAN_BOLUS);
          ev.set_device_time_ms(p.DeviceTime(t));
          ev.set_volume_ul(vol);
          ev.set_duration_ms(kHourMs);
          grpc::ClientContext ectx;
          Deadline(ectx);
          v1::RecordEventResponse eresp;
          if (auto st = FromGrpc(stub->RecordEvent(&ectx, ev, &eresp), "bolus " + p.pump_id);
              !st.ok()) {
            return st;
          }
          p.StartClinicianBolus(vol, kHourMs);
        }
      }
      if (p.next_mri_ms <= t) {
        const bool stuck = p.fault.kind == FaultKind::kMriNoResumption && p.FaultActive(t);
        v1::RecordEventRequest ev;
        ev.set_name(name);
        ev.set_type(v1::CLINICAL_EVENT_MRI);
        ev.set_device_time_ms(p.DeviceTime(t));
        ev.set_reason("pumpsim MRI visit");
        grpc::ClientContext ectx;
        Deadline(ectx);
        v1::RecordEventResponse eresp;
        if (auto st = FromGrpc(stub->RecordEvent(&ectx, ev, &eresp), "MRI " + p.pump_id);
            !st.ok()) {
          return st;
        }
        p.Mri(stuck ? kForever : static_cast<int64_t>((20 + 100 * u01(rng)) * 60000));
        std::exponential_distribution<double> gap(sc.mri_per_pump_year() / (365.0 * kDayMs));
        p.next_mri_ms = stuck ? kForever : t + kDayMs + static_cast<int64_t>(gap(rng)) / kHourMs * kHourMs;
      }
    }
    // Physics and telemetry up to the end of the step.
    const int64_t step_end = t + kStepMs;
    for (SimPump& p : pumps) {
      auto& g = gws[static_cast<size_t>(p.gateway)];
      if (p.sample_interval_ms == 0) {
        p.AdvanceTo(step_end, rng);
        continue;
      }
      for (int64_t ts = (p.t_ms / p.sample_interval_ms + 1) * p.sample_interval_ms;
           ts <= step_end; ts += p.sample_interval_ms) {
        p.AdvanceTo(ts, rng);
        g.pending.push_back(p.TakeSample(rng));
        ++samples;
      }
    }
    for (auto& g : gws) {
      if (g.offline_until_ms <= step_end &&
          u01(rng) < sc.gateway_outages_per_day() * kStepMs / kDayMs) {
        const double h = sc.outage_hours_min() +
                         (sc.outage_hours_max() - sc.outage_hours_min()) * u01(rng);
        g.offline_until_ms = step_end + static_cast<int64_t>(h * kHourMs);
      }
      if (g.offline_until_ms <= step_end) {  // online: send (backfills after an outage)
        if (auto st = Flush(g, false); !st.ok()) return st;
      }
    }
    if (speed > 0) {
      const absl::Time due = wall0 + absl::Milliseconds(static_cast<double>(step_end - start_ms) / speed);
      absl::SleepFor(due - absl::Now());  // pacing only, never synchronisation
    }
    progress(step_end, false);
  }
  for (auto& g : gws) {
    if (auto st = Flush(g, true); !st.ok()) return st;
  }
  progress(end_ms, true);
  uint64_t nacked = 0;
  for (const auto& g : gws) nacked += g.client->stats().samples_nacked;
  if (nacked > 0) std::printf("pumpsim: WARNING %llu samples nacked\n", static_cast<unsigned long long>(nacked));
  for (auto& g : gws) g.client->Stop();
  return absl::OkStatus();
}

}  // namespace pumptwin::sim
