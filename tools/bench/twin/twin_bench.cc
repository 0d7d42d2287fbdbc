// Google Benchmark kernels of the twin model: Advance+Observe per sample for each pump
// profile, Serialize/Deserialize, and the state size per twin (reported as counters).
// Results and the command: docs/benchmarks.md, "Twin model kernels".
#include <random>
#include <vector>

#include "absl/time/civil_time.h"
#include "benchmark/benchmark.h"
#include "twin/twin.h"

namespace pumptwin::twin {
namespace {

absl::Time T0() {
  return absl::FromCivil(absl::CivilSecond(2026, 1, 5, 0, 0, 0), absl::UTCTimeZone());
}

Twin NewTwin(PumpProfile p) {
  PumpConfig c;
  c.pump_id = "bench-pump-000001";
  c.profile = p;
  c.reservoir_capacity = Milliliters(p == PumpProfile::kConstantFlow ? 30 : 40);
  c.catheter_length = Millimeters(500);
  c.catheter_inner_diameter = Millimeters(0.53);
  c.implant_time = T0();
  Prescription rx;
  rx.drug = "morphine";
  rx.concentration = MicrogramsPerMilliliter(10000);
  if (p == PumpProfile::kConstantFlow) {
    rx.mode = TherapyMode::kSimpleContinuous;
    rx.rate = MicrolitersPerDay(500);
  } else {  // a 4-step daily flex schedule: the common case exercises step edges
    rx.mode = TherapyMode::kFlex;
    rx.flex.steps = {{absl::ZeroDuration(), MicrolitersPerDay(400)},
                     {absl::Hours(7), MicrolitersPerDay(600)},
                     {absl::Hours(13), MicrolitersPerDay(500)},
                     {absl::Hours(22), MicrolitersPerDay(450)}};
  }
  return *Twin::Create(c, rx, c.reservoir_capacity, T0());
}

// One year of hourly samples with seeded noise and the signals the profile reports.
std::vector<Sample> Samples(const Twin& twin, int n) {
  std::mt19937_64 rng(1);
  std::normal_distribution<double> z(0, 1);
  const PumpSpec& spec = twin.spec();
  std::vector<Sample> out;
  double prog = 0;
  for (int i = 1; i <= n; ++i) {
    const absl::Time t = T0() + absl::Hours(i);
    prog += BasalVolume(twin.prescription(), ToNs(t - absl::Hours(1)), ToNs(t)).value();
    Sample s;
    s.seq = static_cast<uint64_t>(i);
    s.device_time = t;
    const double left = std::max(0.0, twin.config().reservoir_capacity.value() - prog);
    if (spec.signals & kSigCalculatedReservoir) s.calculated_reservoir = Microliters(left);
    if (spec.signals & kSigDriveUnits)
      s.cumulative_drive_units = static_cast<uint64_t>(prog / spec.stroke_volume.value());
    if (spec.signals & kSigMeasuredReservoir)
      s.measured_reservoir = Microliters(std::max(0.0, left + 50 * z(rng)));
    if (spec.signals & kSigStrokePressure) {
      s.stroke_pressure_peak = Mmhg(twin.expected_stroke_pressure().value() + 0.7 * z(rng));
      s.csf_pulsation = Mmhg(2 + 0.3 * z(rng));
      s.outlet_pressure = Mmhg(10 + 0.5 * z(rng));
    }
    if (spec.signals & kSigBatteryVoltage) s.battery_voltage = Volts(3.0 + 0.01 * z(rng));
    if (spec.signals & kSigBatteryCurrent) s.battery_current_ua = 36 * (1 + 0.05 * z(rng));
    if (spec.signals & kSigTemperature) s.temperature_c = 37 + 0.2 * z(rng);
    out.push_back(std::move(s));
  }
  return out;
}

void BM_ObserveSample(benchmark::State& state) {
  const auto profile = static_cast<PumpProfile>(state.range(0));
  const Twin fresh = NewTwin(profile);
  const std::vector<Sample> samples = Samples(fresh, 24 * 60);  // 60 days, no refill needed
  Twin twin = fresh;
  std::vector<AlertTransition> out;
  size_t i = 0;
  for (auto _ : state) {
    if (i == samples.size()) {
      state.PauseTiming();
      twin = fresh;
      i = 0;
      state.ResumeTiming();
    }
    const Sample& s = samples[i++];
    out.clear();
    benchmark::DoNotOptimize(twin.Observe(s, s.device_time + absl::Milliseconds(200), &out));
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(std::string(PumpProfileName(profile)));
  state.counters["state_bytes"] = static_cast<double>(twin.StateBytes());
  state.counters["shared_bytes"] = static_cast<double>(twin.SharedBytes());
  state.counters["serialized_bytes"] = static_cast<double>(twin.Serialize().size());
}
BENCHMARK(BM_ObserveSample)->DenseRange(1, 4);

Twin WarmTwin() {
  Twin twin = NewTwin(PumpProfile::kSensorized);
  for (const Sample& s : Samples(twin, 24 * 10)) (void)twin.Observe(s, s.device_time, nullptr);
  return twin;
}

void BM_Serialize(benchmark::State& state) {
  const Twin twin = WarmTwin();
  for (auto _ : state) benchmark::DoNotOptimize(twin.Serialize());
  state.counters["bytes"] = static_cast<double>(twin.Serialize().size());
}
BENCHMARK(BM_Serialize);

void BM_Deserialize(benchmark::State& state) {
  const std::string bytes = WarmTwin().Serialize();
  for (auto _ : state) benchmark::DoNotOptimize(Twin::Deserialize(bytes));
  state.counters["bytes"] = static_cast<double>(bytes.size());
}
BENCHMARK(BM_Deserialize);

void BM_Forecast(benchmark::State& state) {
  const Twin twin = WarmTwin();
  for (auto _ : state) benchmark::DoNotOptimize(twin.ForecastAt(twin.device_time()));
}
BENCHMARK(BM_Forecast);

}  // namespace
}  // namespace pumptwin::twin

BENCHMARK_MAIN();
