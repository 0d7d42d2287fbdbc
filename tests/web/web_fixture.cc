// The server side of the browser test (web_test.mjs): starts the real pumptwind on
// 127.0.0.1 (ephemeral ports, a temporary data directory and token file), registers three
// pumps and acts as their gateway. It talks to the test over stdio, one JSON line each way:
//
//   out: {"event":"ready","http_port":N,"tokens":{"nurse":..,"admin":..,"south":..}}
//   in:  stall <seq>   sends sample <seq> of pump PN-2 (odd: a motor stall, which raises a
//                      MOTOR_STALL alert; even: its recovery, which resolves it)
//   out: {"event":"acked","seq":S,"ack_ms":T}   T: wall time (ms) the gateway had the ack
//   in:  quit          stops the server (SIGTERM) and exits 0 when it exited cleanly
//
// Pumps: PN-1 (clinic north, sensorized, 20 days of healthy samples every 30 min, for the
// charts), PN-2 (north, peristaltic, the stall pump), PS-1 (south). Tokens: nurse
// (clinician of north), south (clinician of south), admin.
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "device_link/gateway_client.h"
#include "grpcpp/grpcpp.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "server/api/token_auth.h"
#include "server/http/web_session.h"
#include "tests/support/server_process.h"
#include "tests/support/telemetry_fixtures.h"

namespace pumptwin {
namespace {

constexpr char kGateway[] = "gw-web";

int Fail(const std::string& what) {
  std::cerr << "web_fixture: " << what << std::endl;
  return 1;
}

// Waits (bounded) for every frame sent so far to be acknowledged.
bool Drain(device_link::GatewayClient& client) {
  return client.WaitUntilAllDone(absl::Seconds(60)) && client.stats().samples_nacked == 0;
}

int Run() {
  testing::TempDir dir;
  std::map<std::string, std::string> tokens;
  std::string file;
  struct Want {
    const char* name;
    const char* role;
    const char* clinic;
  };
  for (const Want& w : {Want{"nurse", "clinician", "north"}, Want{"south", "clinician", "south"},
                        Want{"admin", "admin", ""}}) {
    std::string token = "ptw_" + server::http::RandomId();
    tokens[w.name] = token;
    absl::StrAppend(&file, w.name, " ", w.role, " ", server::DigestHex(server::HashToken(token)),
                    *w.clinic ? absl::StrCat(" clinic=", w.clinic) : "", "\n");
  }
  {
    std::ofstream out(dir.path() + "/tokens");
    out << file;
    if (!out) return Fail("cannot write the token file");
  }
  testing::ServerProcess server(testing::ServerProcessOptions{
      .data_dir = dir.path() + "/data",
      // At most 3 alert streams: web_test.mjs fills them to see a refused tab wait.
      .extra_args = {"--auth_tokens_file=" + dir.path() + "/tokens", "--shutdown_grace=1s",
                     "--watch_alerts_max_subscribers=3"}});
  if (absl::Status s = server.Start(); !s.ok()) {
    return Fail(absl::StrCat(s.ToString(), "\n", server.ReadLog()));
  }
  auto channel = grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials());
  auto stub = v1::TwinService::NewStub(channel);
  const absl::Time now = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) / 60 * 60);

  auto reg = [&](v1::RegisterPumpRequest req) -> grpc::Status {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + tokens["admin"]);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    ctx.set_wait_for_ready(true);
    req.set_reason("browser test");
    v1::Pump out;
    return stub->RegisterPump(&ctx, req, &out);
  };
  // PN-1 and PS-1: healthy sensorized pumps (40 mL, morphine 10 mg/mL at 500 uL/day, as
  // tests/support/telemetry_fixtures.h) with 20 days of samples.
  const absl::Time implant = now - absl::Hours(24 * 20);
  for (const auto& [pump, clinic] :
       std::vector<std::pair<std::string, std::string>>{{"PN-1", "north"}, {"PS-1", "south"}}) {
    v1::RegisterPumpRequest req;
    auto* p = req.mutable_pump();
    p->set_pump_id(pump);
    p->set_profile(v1::PUMP_PROFILE_SENSORIZED);
    p->set_reservoir_capacity_ul(40000);
    p->set_catheter_length_cm(50);
    p->set_catheter_inner_diameter_mm(0.5);
    p->set_implant_time_ms(absl::ToUnixMillis(implant));
    p->set_clinic(clinic);
    p->set_time_zone(clinic == "north" ? "Europe/Oslo" : "America/Chicago");
    p->add_gateway_ids(kGateway);
    p->set_reporting_interval_ms(30 * 60 * 1000);
    auto* rx = req.mutable_initial_prescription();
    rx->set_drug("morphine");
    rx->set_concentration_ug_per_ml(10000);
    rx->set_mode(v1::THERAPY_MODE_SIMPLE_CONTINUOUS);
    rx->set_rate_ul_per_day(500);
    req.set_initial_reservoir_ul(40000);
    if (grpc::Status s = reg(req); !s.ok())
      return Fail("RegisterPump " + pump + ": " + s.error_message());
  }
  // PN-2: a peristaltic pump implanted 30 days ago; sample seq s at implant + s minutes.
  const absl::Time stall_implant = now - absl::Hours(24 * 30);
  {
    v1::RegisterPumpRequest req;
    v1::Pump* p = req.mutable_pump();
    p->set_pump_id("PN-2");
    p->set_profile(v1::PUMP_PROFILE_PROGRAMMABLE_PERISTALTIC);
    p->set_reservoir_capacity_ul(20000);
    p->set_catheter_length_cm(50);
    p->set_catheter_inner_diameter_mm(0.53);
    p->set_implant_time_ms(absl::ToUnixMillis(stall_implant));
    p->set_clinic("north");
    p->set_time_zone("Europe/Oslo");
    p->add_gateway_ids(kGateway);
    req.set_initial_reservoir_ul(20000);
    v1::Prescription* rx = req.mutable_initial_prescription();
    rx->set_drug("baclofen");
    rx->set_concentration_ug_per_ml(2000);
    rx->set_mode(v1::THERAPY_MODE_SIMPLE_CONTINUOUS);
    rx->set_rate_ul_per_day(250);
    if (grpc::Status s = reg(req); !s.ok()) return Fail("RegisterPump PN-2: " + s.error_message());
  }

  absl::Mutex mu;
  std::map<uint64_t, absl::Time> done_at;  // frame id -> when its ack arrived
  device_link::GatewayClientOptions o;
  o.target = server.grpc_target();
  o.credentials = grpc::InsecureChannelCredentials();
  o.gateway_id = kGateway;
  o.on_frame_done = [&](uint64_t frame, absl::Duration) {
    absl::MutexLock lock(&mu);
    done_at[frame] = absl::Now();
  };
  device_link::GatewayClient client(o);
  client.Start();
  for (const char* pump : {"PN-1", "PS-1"}) {
    std::vector<v1::TelemetrySample> batch;
    const int n = 20 * 48;
    for (int i = 1; i <= n; ++i) {
      const int64_t t = absl::ToUnixMillis(implant + absl::Minutes(30) * i);
      batch.push_back(testing::HealthySample(pump, i, t, 500.0 * i / 48.0));
      if (batch.size() == 500 || i == n) {
        if (auto id = client.Send(std::move(batch)); !id.ok()) return Fail(id.status().ToString());
        batch.clear();
      }
    }
  }
  if (!Drain(client)) return Fail("the healthy samples were not all acknowledged");

  std::cout << "{\"event\":\"ready\",\"http_port\":" << server.http_port()
            << ",\"grpc_port\":" << server.grpc_port() << ",\"tokens\":{\"nurse\":\""
            << tokens["nurse"] << "\",\"south\":\"" << tokens["south"] << "\",\"admin\":\""
            << tokens["admin"] << "\"}}" << std::endl;

  std::string line;
  while (std::getline(std::cin, line)) {
    std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (words.empty()) continue;
    if (words[0] == "quit") break;
    uint64_t seq = 0;
    if (words[0] != "stall" || words.size() != 2 || !absl::SimpleAtoi(words[1], &seq) || seq == 0) {
      return Fail("unknown command: " + line);
    }
    v1::TelemetrySample s;
    s.set_pump_id("PN-2");
    s.set_seq(seq);
    const int64_t t = absl::ToUnixMillis(stall_implant + absl::Minutes(static_cast<int64_t>(seq)));
    s.set_device_time_ms(t);
    v1::DeviceEvent* e = s.add_events();
    e->set_type(seq % 2 == 1 ? v1::DEVICE_EVENT_MOTOR_STALL
                             : v1::DEVICE_EVENT_MOTOR_STALL_RECOVERY);
    e->set_device_time_ms(t);
    auto id = client.Send({s});
    if (!id.ok()) return Fail(id.status().ToString());
    if (!Drain(client)) return Fail(absl::StrCat("sample ", seq, " was not acknowledged"));
    // The frame's done callback may run just after the wait above returned.
    absl::Time acked;
    const uint64_t frame = *id;
    auto recorded = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return done_at.count(frame) > 0; };
    if (!mu.LockWhenWithTimeout(absl::Condition(&recorded), absl::Seconds(30))) {
      mu.Unlock();
      return Fail(absl::StrCat("no ack time for sample ", seq));
    }
    acked = done_at[frame];
    mu.Unlock();
    std::cout << "{\"event\":\"acked\",\"seq\":" << seq
              << ",\"ack_ms\":" << absl::ToUnixMillis(acked) << "}" << std::endl;
  }
  client.Stop();
  auto code = server.Stop(SIGTERM);
  if (!code.ok() || *code != 0) {
    return Fail(absl::StrCat("pumptwind did not exit cleanly: ",
                             code.ok() ? absl::StrCat(*code) : code.status().ToString(), "\n",
                             server.ReadLog()));
  }
  return 0;
}

}  // namespace
}  // namespace pumptwin

int main() { return pumptwin::Run(); }
