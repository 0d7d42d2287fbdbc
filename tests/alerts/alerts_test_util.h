// Helpers of the alerts integration tests: a real pumptwind with one motor pump whose
// telemetry alternates motor-stall / stall-recovery events (one MOTOR_STALL alert event
// per sample: raised, resolved, raised...), and a bounded WatchAlerts reader.
// Not thread-safe: one test thread drives one AlertsServer.
#ifndef PUMPTWIN_TESTS_ALERTS_ALERTS_TEST_UTIL_H_
#define PUMPTWIN_TESTS_ALERTS_ALERTS_TEST_UTIL_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "device_link/gateway_client.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "tests/support/server_process.h"
#include "twin/sample.h"

namespace pumptwin::alerts_test {

inline constexpr char kGateway[] = "gw-alerts";

inline std::chrono::system_clock::time_point In(int seconds) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

// Implant 30 days ago; sample seq s is at implant + s minutes.
inline absl::Time Implant() {
  static const absl::Time t =
      absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) / 60 * 60) - absl::Hours(24 * 30);
  return t;
}

// The registration of a programmable peristaltic pump implanted at Implant(), bound to
// kGateway.
inline v1::RegisterPumpRequest MotorPumpRequest(const std::string& id, const std::string& clinic) {
  v1::RegisterPumpRequest req;
  v1::Pump* p = req.mutable_pump();
  p->set_pump_id(id);
  p->set_profile(v1::PUMP_PROFILE_PROGRAMMABLE_PERISTALTIC);
  p->set_reservoir_capacity_ul(20000);
  p->set_catheter_length_cm(50);
  p->set_catheter_inner_diameter_mm(0.53);
  p->set_implant_time_ms(absl::ToUnixMillis(Implant()));
  p->set_clinic(clinic);
  p->add_gateway_ids(kGateway);
  req.set_initial_reservoir_ul(20000);
  v1::Prescription* rx = req.mutable_initial_prescription();
  rx->set_drug("morphine");
  rx->set_concentration_ug_per_ml(10000);
  rx->set_mode(v1::THERAPY_MODE_SIMPLE_CONTINUOUS);
  rx->set_rate_ul_per_day(500);
  req.set_reason("alerts test");
  return req;
}

inline grpc::Status RegisterMotorPump(v1::TwinService::Stub& stub, const std::string& id,
                                      const std::string& clinic) {
  v1::RegisterPumpRequest req = MotorPumpRequest(id, clinic);
  grpc::ClientContext ctx;
  ctx.set_deadline(In(30));
  ctx.set_wait_for_ready(true);
  v1::Pump out;
  grpc::Status s = stub.RegisterPump(&ctx, req, &out);
  EXPECT_TRUE(s.ok()) << "RegisterPump " << id << ": " << s.error_message();
  return s;
}

// Samples from_seq..to_seq: odd seqs carry a motor stall, even ones a stall recovery.
inline std::vector<twin::Sample> StallSamples(uint64_t from_seq, uint64_t to_seq) {
  std::vector<twin::Sample> out;
  for (uint64_t s = from_seq; s <= to_seq; ++s) {
    twin::Sample x;
    x.seq = s;
    x.device_time = Implant() + absl::Minutes(static_cast<int64_t>(s));
    twin::DeviceEvent e;
    e.type = s % 2 == 1 ? twin::DeviceEventType::kMotorStall
                        : twin::DeviceEventType::kMotorStallRecovery;
    e.device_time = x.device_time;
    x.events.push_back(e);
    out.push_back(std::move(x));
  }
  return out;
}

// Sends the samples through a fresh gateway session and waits (bounded) for the acks.
inline void Feed(const std::string& target, const std::string& pump, uint64_t from_seq,
                 uint64_t to_seq) {
  device_link::GatewayClientOptions o;
  o.target = target;
  o.credentials = grpc::InsecureChannelCredentials();
  o.gateway_id = kGateway;
  device_link::GatewayClient client(o);
  client.Start();
  for (uint64_t s = from_seq; s <= to_seq; s += 500) {
    auto id = client.SendTwin(pump, StallSamples(s, std::min(to_seq, s + 499)));
    ASSERT_TRUE(id.ok()) << id.status();
  }
  ASSERT_TRUE(client.WaitUntilAllDone(absl::Seconds(60)));
  auto st = client.stats();
  EXPECT_EQ(st.samples_nacked, 0u);
  client.Stop();
}

// Reads from a WatchAlerts stream until `want` events passed `stop_when` or the stream
// ends; bounded by `max_events` reads and the context deadline.
struct WatchResult {
  std::vector<v1::AlertEvent> events;
  grpc::Status status;  // set when the stream ended
  bool ended = false;
};

class Watcher {
 public:
  Watcher(v1::TwinService::Stub& stub, uint64_t from_cursor, int deadline_s = 60) {
    ctx_.set_deadline(In(deadline_s));
    v1::WatchAlertsRequest req;
    req.set_from_cursor(from_cursor);
    reader_ = stub.WatchAlerts(&ctx_, req);
  }
  ~Watcher() {
    if (!ended_) {
      ctx_.TryCancel();
      v1::AlertEvent ev;
      while (reader_->Read(&ev)) {
      }
      (void)reader_->Finish();
    }
  }
  // Reads until `count` events satisfying pred were seen (or the stream ended).
  template <typename Pred>
  void ReadUntil(size_t count, Pred pred, WatchResult* out, size_t max_events = 200000) {
    size_t matched = 0;
    for (const auto& e : out->events) matched += pred(e) ? 1 : 0;
    v1::AlertEvent ev;
    while (matched < count && out->events.size() < max_events) {
      if (!reader_->Read(&ev)) {
        ended_ = true;
        out->ended = true;
        out->status = reader_->Finish();
        return;
      }
      matched += pred(ev) ? 1 : 0;
      out->events.push_back(ev);
    }
  }
  grpc::Status FinishAfterCancel() {
    ctx_.TryCancel();
    v1::AlertEvent ev;
    while (reader_->Read(&ev)) {
    }
    ended_ = true;
    return reader_->Finish();
  }
  grpc::ClientContext& context() { return ctx_; }
  // Returns once the server sent the response headers (it does so once subscribed).
  void WaitForInitialMetadata() { reader_->WaitForInitialMetadata(); }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::AlertEvent>> reader_;
  bool ended_ = false;
};

inline bool IsStallOf(const v1::AlertEvent& e, const std::string& pump) {
  return e.alert().pump_id() == pump && e.alert().type() == v1::ALERT_TYPE_MOTOR_STALL;
}

// Cursors strictly consecutive from `first` (an unfiltered stream has no holes).
inline void ExpectConsecutive(const std::vector<v1::AlertEvent>& events, uint64_t first) {
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].cursor(), first + i) << "gap or duplicate at index " << i;
  }
}

}  // namespace pumptwin::alerts_test

#endif  // PUMPTWIN_TESTS_ALERTS_ALERTS_TEST_UTIL_H_
