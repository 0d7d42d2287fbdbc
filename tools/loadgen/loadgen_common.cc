#include "tools/loadgen/loadgen_common.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace pumptwin::loadgen {
namespace {

void FillRegistration(const PumpBinding& b, const RegistrationTemplate& t, int64_t index,
                      pumptwin::v1::RegisterPumpRequest* req) {
  auto* p = req->mutable_pump();
  p->set_pump_id(b.pump_id);
  p->set_profile(pumptwin::v1::PUMP_PROFILE_SENSORIZED);
  p->set_reservoir_capacity_ul(40000);
  p->set_catheter_length_cm(50);
  p->set_catheter_inner_diameter_mm(0.5);
  p->set_implant_time_ms(t.implant_time_ms);
  p->set_clinic("loadgen");
  p->add_gateway_ids(b.gateway_id);
  p->set_reporting_interval_ms(t.reporting_interval_ms);
  auto* rx = req->mutable_initial_prescription();
  rx->set_drug("morphine");
  rx->set_concentration_ug_per_ml(10000);
  rx->set_mode(pumptwin::v1::THERAPY_MODE_SIMPLE_CONTINUOUS);
  rx->set_rate_ul_per_day(t.distinct_rates ? 100.0 + 0.001 * static_cast<double>(index) : 500.0);
  req->set_initial_reservoir_ul(40000);
  req->set_reason("loadgen");
}

}  // namespace

grpc::Status RegisterPumps(pumptwin::v1::TwinService::Stub& stub,
                           const std::vector<PumpBinding>& pumps, const RegistrationTemplate& tmpl,
                           int concurrency) {
  concurrency = std::max(1, concurrency);
  struct Call {
    grpc::ClientContext ctx;
    pumptwin::v1::RegisterPumpRequest req;
    pumptwin::v1::Pump resp;
  };
  // One slot per call in flight. Calls are created and destroyed on this thread only: a
  // ClientContext holds a reference to its channel, and dropping the channel's last
  // reference inside a callback tears down gRPC's shared callback completion queue from
  // one of its own threads (gRPC 1.51), which then crashes.
  std::vector<std::unique_ptr<Call>> slots(concurrency);
  absl::Mutex mu;
  std::vector<int> free_slots;
  for (int i = concurrency - 1; i >= 0; --i) free_slots.push_back(i);
  grpc::Status first_error;
  int64_t index = 0;
  for (const PumpBinding& b : pumps) {
    int slot;
    {
      absl::MutexLock l(&mu);
      auto room = [&] { return !free_slots.empty(); };
      mu.Await(absl::Condition(&room));
      if (!first_error.ok()) break;
      slot = free_slots.back();
      free_slots.pop_back();
    }
    slots[slot] = std::make_unique<Call>();
    Call* call = slots[slot].get();
    FillRegistration(b, tmpl, index++, &call->req);
    call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    stub.async()->RegisterPump(
        &call->ctx, &call->req, &call->resp,
        [&mu, &free_slots, &first_error, call, slot](grpc::Status st) {
          absl::MutexLock l(&mu);
          if (!st.ok() && st.error_code() != grpc::StatusCode::ALREADY_EXISTS && first_error.ok()) {
            first_error = grpc::Status(
                st.error_code(), absl::StrCat("RegisterPump ", call->req.pump().pump_id(), ": ",
                                              st.error_message()));
          }
          free_slots.push_back(slot);
        });
  }
  absl::MutexLock l(&mu);
  auto idle = [&] { return free_slots.size() == slots.size(); };
  mu.Await(absl::Condition(&idle));
  return first_error;
}

pumptwin::v1::TelemetrySample SampleTemplate(const std::string& pump) {
  pumptwin::v1::TelemetrySample s;
  s.set_pump_id(pump);
  s.set_calculated_reservoir_ul(18'000.0);
  s.set_measured_reservoir_ul(17'950.0);
  s.set_cumulative_drive_units(123'456);
  s.set_outlet_pressure_mmhg(12.5);
  s.set_stroke_pressure_peak_mmhg(40.0);
  s.set_csf_pulsation_mmhg(3.0);
  s.set_battery_voltage_v(3.1);
  s.set_battery_current_ua(15.0);
  s.set_motor_current_ma(20.0);
  s.set_temperature_c(37.0);
  return s;
}

void LatencyRecorder::Add(absl::Duration d) {
  absl::MutexLock l(&mu_);
  ns_.push_back(absl::ToInt64Nanoseconds(d));
}

std::vector<int64_t> LatencyRecorder::SortedNanos() const {
  std::vector<int64_t> out;
  {
    absl::MutexLock l(&mu_);
    out = ns_;
  }
  std::sort(out.begin(), out.end());
  return out;
}

double PercentileMs(const std::vector<int64_t>& sorted_ns, double q) {
  if (sorted_ns.empty()) return 0;
  const size_t i = std::min(sorted_ns.size() - 1, static_cast<size_t>(q * sorted_ns.size()));
  return static_cast<double>(sorted_ns[i]) / 1e6;
}

std::optional<ProcessFootprint> ReadProcessFootprint(int pid) {
  const std::string dir = pid > 0 ? absl::StrCat("/proc/", pid) : "/proc/self";
  std::ifstream in(dir + "/status");
  if (!in) return std::nullopt;
  ProcessFootprint f;
  bool have_rss = false;
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v = line;
    if (absl::ConsumePrefix(&v, "VmRSS:")) {
      // "VmRSS:	  123456 kB"
      int64_t kb = 0;
      if (absl::SimpleAtoi(absl::StripSuffix(absl::StripAsciiWhitespace(v), " kB"), &kb)) {
        f.rss_bytes = kb * 1024;
        have_rss = true;
      }
    } else if (absl::ConsumePrefix(&v, "Threads:")) {
      (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(v), &f.threads);
    }
  }
  if (!have_rss) return std::nullopt;
  {
    // utime and stime are fields 14 and 15; the name (field 2) may contain spaces, so
    // count from the ')' that closes it: the field after it is field 3.
    std::ifstream stat(dir + "/stat");
    const std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const size_t close = all.rfind(')');
    if (close != std::string::npos) {
      const std::vector<absl::string_view> fields =
          absl::StrSplit(absl::string_view(all).substr(close + 1), ' ', absl::SkipEmpty());
      int64_t utime = 0, stime = 0;
      if (fields.size() > 12 && absl::SimpleAtoi(fields[11], &utime) &&
          absl::SimpleAtoi(fields[12], &stime)) {
        f.cpu_seconds =
            static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
      }
    }
  }
  if (DIR* d = ::opendir((dir + "/fd").c_str())) {
    f.open_fds = 0;
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++f.open_fds;
    }
    ::closedir(d);
  }
  return f;
}

bool IsLoopbackTarget(const std::string& target) {
  absl::string_view t = target;
  absl::ConsumePrefix(&t, "ipv4:");
  absl::ConsumePrefix(&t, "ipv6:");
  if (absl::StartsWith(t, "[::1]:") || absl::StartsWith(t, "localhost:")) return true;
  std::vector<absl::string_view> hp = absl::StrSplit(t, ':');
  if (hp.size() != 2) return false;
  std::vector<absl::string_view> quad = absl::StrSplit(hp[0], '.');
  if (quad.size() != 4 || quad[0] != "127") return false;
  for (absl::string_view q : quad) {
    int v;
    if (!absl::SimpleAtoi(q, &v) || v < 0 || v > 255) return false;
  }
  return true;
}

}  // namespace pumptwin::loadgen
