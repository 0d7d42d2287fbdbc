#include "tools/loadgen/loadgen_common.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
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

// Registers pumps[k] for every k in `which` (index `which[k]` into the template's rates) with
// at most `concurrency` calls in flight and hands each answer to `done(k, status)` (under a
// lock: one at a time). Stops issuing calls once `done` returns false.
void RegisterEach(pumptwin::v1::TwinService::Stub& stub, const std::vector<PumpBinding>& pumps,
                  const std::vector<size_t>& which, const RegistrationTemplate& tmpl,
                  int concurrency, const std::function<bool(size_t, const grpc::Status&)>& done) {
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
  bool go_on = true;
  for (size_t k : which) {
    int slot;
    {
      absl::MutexLock l(&mu);
      auto room = [&] { return !free_slots.empty(); };
      mu.Await(absl::Condition(&room));
      if (!go_on) break;
      slot = free_slots.back();
      free_slots.pop_back();
    }
    slots[slot] = std::make_unique<Call>();
    Call* call = slots[slot].get();
    FillRegistration(pumps[k], tmpl, static_cast<int64_t>(k), &call->req);
    call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    stub.async()->RegisterPump(&call->ctx, &call->req, &call->resp,
                               [&mu, &free_slots, &go_on, &done, k, slot](grpc::Status st) {
                                 absl::MutexLock l(&mu);
                                 if (!done(k, st)) go_on = false;
                                 free_slots.push_back(slot);
                               });
  }
  absl::MutexLock l(&mu);
  auto idle = [&] { return free_slots.size() == slots.size(); };
  mu.Await(absl::Condition(&idle));
}

grpc::Status Named(const PumpBinding& b, const grpc::Status& st) {
  return grpc::Status(st.error_code(),
                      absl::StrCat("RegisterPump ", b.pump_id, ": ", st.error_message()));
}

}  // namespace

grpc::Status RegisterPumps(pumptwin::v1::TwinService::Stub& stub,
                           const std::vector<PumpBinding>& pumps, const RegistrationTemplate& tmpl,
                           int concurrency) {
  std::vector<size_t> all(pumps.size());
  for (size_t k = 0; k < pumps.size(); ++k) all[k] = k;
  grpc::Status first_error;
  RegisterEach(stub, pumps, all, tmpl, concurrency, [&](size_t k, const grpc::Status& st) {
    if (!st.ok() && st.error_code() != grpc::StatusCode::ALREADY_EXISTS && first_error.ok()) {
      first_error = Named(pumps[k], st);
    }
    return first_error.ok();
  });
  return first_error;
}

std::string OwnerAddressInMessage(absl::string_view message) {
  // "pump P is served by replica R at 127.0.0.1:50052; send its telemetry there"
  const size_t by = message.find(" served by replica ");
  if (by == absl::string_view::npos) return "";
  const size_t at = message.find(" at ", by);
  if (at == absl::string_view::npos) return "";
  absl::string_view rest = message.substr(at + 4);
  return std::string(rest.substr(0, rest.find_first_of("; ")));
}

grpc::Status RegisterPumpsAtOwners(const std::vector<std::string>& replicas,
                                   const std::vector<PumpBinding>& pumps,
                                   const RegistrationTemplate& tmpl, int concurrency,
                                   absl::Duration timeout, int max_rounds, int64_t* redirected) {
  if (replicas.empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no replicas");
  const absl::Time deadline = absl::Now() + timeout;
  std::map<std::string, std::unique_ptr<pumptwin::v1::TwinService::Stub>> stubs;
  // Per address, the pumps to ask there this round.
  std::map<std::string, std::vector<size_t>> ask;
  for (size_t k = 0; k < pumps.size(); ++k) ask[replicas[k % replicas.size()]].push_back(k);
  int64_t moved = 0;
  for (int round = 0; !ask.empty(); ++round) {
    if (round >= max_rounds || absl::Now() >= deadline) {
      const size_t k = ask.begin()->second.front();
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                          absl::StrCat("RegisterPump ", pumps[k].pump_id, ": not registered after ",
                                       round, " rounds (its shard without an owner?)"));
    }
    std::map<std::string, std::vector<size_t>> next;
    size_t retry_later = 0;
    grpc::Status first_error;
    for (const auto& [address, which] : ask) {
      auto& stub = stubs[address];
      if (stub == nullptr) {
        stub = pumptwin::v1::TwinService::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
      }
      RegisterEach(*stub, pumps, which, tmpl, concurrency, [&](size_t k, const grpc::Status& st) {
        if (st.ok() || st.error_code() == grpc::StatusCode::ALREADY_EXISTS) return true;
        const std::string owner = OwnerAddressInMessage(st.error_message());
        if (!owner.empty() && owner != address) {
          next[owner].push_back(k);
          ++moved;
        } else if (absl::StrContains(st.error_message(), "being taken over") ||
                   st.error_code() == grpc::StatusCode::ABORTED) {
          // No owner yet, or the commit lost a race for the cluster's shared audit chain
          // (ABORTED: nothing was written, retry): ask again a moment later.
          next[address].push_back(k);
          ++retry_later;
        } else if (st.error_code() == grpc::StatusCode::UNAVAILABLE ||
                   st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
          // The replica is down (or starting): ask the next one, a moment later.
          auto it = std::find(replicas.begin(), replicas.end(), address);
          const size_t at = it == replicas.end() ? 0 : (it - replicas.begin() + 1);
          next[replicas[at % replicas.size()]].push_back(k);
          ++retry_later;
        } else if (first_error.ok()) {
          first_error = Named(pumps[k], st);
        }
        return first_error.ok();
      });
      if (!first_error.ok()) break;
    }
    if (!first_error.ok()) {
      if (redirected != nullptr) *redirected = moved;
      return first_error;
    }
    // A shard without an owner gets one within the lease TTL: ask again a moment later.
    if (retry_later > 0) absl::SleepFor(std::min(absl::Milliseconds(200), deadline - absl::Now()));
    ask = std::move(next);
  }
  if (redirected != nullptr) *redirected = moved;
  return grpc::Status::OK;
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

bool LatencyRecorder::WaitForCount(size_t n, absl::Time deadline) const {
  absl::MutexLock l(&mu_);
  auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ns_.size() >= n; };
  return mu_.AwaitWithDeadline(absl::Condition(&enough), deadline);
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
