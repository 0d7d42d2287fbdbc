// A 36 h gateway outage with a refill recorded during it, end to end against the real
// pumptwind (127.0.0.1, --clock=data so server-time checks follow the data): before the
// backlog the refill looks discrepant (the model has not seen the pump deliver faster than
// programmed) and a REFILL_DISCREPANCY alert is raised; the backlog is applied in its place
// (nothing nacked), the alert is WITHDRAWN with a readable correction as seen through
// WatchAlerts (read, disconnect, resume from the last cursor: no gap, no duplicate), the
// refill is in the audit trail, the twin equals that of a server fed in event-time order,
// and `pumptwind --verify` agrees with the stored inputs.
#include <signal.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "tests/alerts/alerts_test_util.h"

namespace pumptwin::alerts_test {
namespace {

constexpr uint64_t kLast = 2880;         // 2 days of 1-minute samples
constexpr uint64_t kOnlineUntil = 120;   // then the gateway goes offline ...
constexpr uint64_t kOutageEnd = 2280;    // ... for 36 h (samples 121..2280)
constexpr uint64_t kRefillAfter = 2160;  // the refill is recorded during the outage
constexpr char kPump[] = "PO";

// A sensorized pump whose measured reservoir falls 4x faster than programmed.
twin::Sample SampleAt(uint64_t seq) {
  twin::Sample s;
  s.seq = seq;
  s.device_time = Implant() + absl::Minutes(static_cast<int64_t>(seq));
  s.calculated_reservoir = twin::Microliters(40000 - 500.0 * seq / 1440.0);
  s.measured_reservoir = twin::Microliters(40000 - 2000.0 * seq / 1440.0);
  return s;
}

struct Server {
  explicit Server(testing::TempDir& dir)
      : data_dir(dir.path() + "/data"),
        proc({.data_dir = data_dir,
              .extra_args = {"--shutdown_grace=2s", "--shards=1", "--clock=data"}}) {}
  void Start() {
    ASSERT_TRUE(proc.Start().ok()) << proc.ReadLog();
    channel = grpc::CreateChannel(proc.grpc_target(), grpc::InsecureChannelCredentials());
    stub = v1::TwinService::NewStub(channel);
    v1::RegisterPumpRequest req;
    v1::Pump* p = req.mutable_pump();
    p->set_pump_id(kPump);
    p->set_profile(v1::PUMP_PROFILE_SENSORIZED);
    p->set_reservoir_capacity_ul(40000);
    p->set_catheter_length_cm(50);
    p->set_catheter_inner_diameter_mm(0.53);
    p->set_implant_time_ms(absl::ToUnixMillis(Implant()));
    p->set_clinic("north");
    p->add_gateway_ids(kGateway);
    req.set_initial_reservoir_ul(40000);
    v1::Prescription* rx = req.mutable_initial_prescription();
    rx->set_drug("morphine");
    rx->set_concentration_ug_per_ml(10000);
    rx->set_mode(v1::THERAPY_MODE_SIMPLE_CONTINUOUS);
    rx->set_rate_ul_per_day(500);
    req.set_reason("outage test");
    grpc::ClientContext ctx;
    ctx.set_deadline(In(30));
    ctx.set_wait_for_ready(true);
    v1::Pump out;
    grpc::Status s = stub->RegisterPump(&ctx, req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  // Samples from..to through one gateway session; every one acked, none nacked.
  void Feed(uint64_t from, uint64_t to) {
    device_link::GatewayClientOptions o;
    o.target = proc.grpc_target();
    o.credentials = grpc::InsecureChannelCredentials();
    o.gateway_id = kGateway;
    device_link::GatewayClient client(o);
    client.Start();
    for (uint64_t s = from; s <= to; s += 60) {
      std::vector<twin::Sample> v;
      for (uint64_t q = s; q <= std::min(to, s + 59); ++q) v.push_back(SampleAt(q));
      auto id = client.SendTwin(kPump, std::move(v));
      ASSERT_TRUE(id.ok()) << id.status();
    }
    ASSERT_TRUE(client.WaitUntilAllDone(absl::Seconds(120)));
    EXPECT_EQ(client.stats().samples_nacked, 0u) << "late telemetry was refused";
    client.Stop();
  }
  v1::RecordRefillResponse Refill() {
    v1::RecordRefillRequest req;
    req.set_name(absl::StrCat("pumps/", kPump));
    req.set_withdrawn_volume_ul(SampleAt(kRefillAfter).measured_reservoir->value());
    req.set_added_volume_ul(38000);
    req.set_device_time_ms(
        absl::ToUnixMillis(SampleAt(kRefillAfter).device_time + absl::Seconds(30)));
    req.set_reason("refill during a gateway outage");
    grpc::ClientContext ctx;
    ctx.set_deadline(In(60));
    v1::RecordRefillResponse resp;
    grpc::Status s = stub->RecordRefill(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }
  v1::TwinState Twin() {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(30));
    v1::GetTwinRequest req;
    req.set_name(absl::StrCat("pumps/", kPump));
    v1::TwinState t;
    grpc::Status s = stub->GetTwin(&ctx, req, &t);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return t;
  }
  std::vector<std::string> ActiveAlerts() {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(30));
    v1::ListAlertsRequest req;
    req.set_pump_id(kPump);
    req.set_active_only(true);
    req.set_page_size(1000);
    v1::ListAlertsResponse resp;
    grpc::Status s = stub->ListAlerts(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> out;
    for (const v1::Alert& a : resp.alerts()) {
      out.push_back(
          absl::StrCat(v1::AlertType_Name(a.type()), "/", v1::Severity_Name(a.severity())));
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string data_dir;
  testing::ServerProcess proc;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::TwinService::Stub> stub;
};

// The fields of the twin the data decides (server-time fields such as the clock skew
// differ between two servers).
void ExpectSameTwin(const v1::TwinState& a, const v1::TwinState& b) {
  EXPECT_EQ(a.device_time_ms(), b.device_time_ms());
  EXPECT_EQ(a.calculated_reservoir_ul(), b.calculated_reservoir_ul());
  EXPECT_EQ(a.estimated_reservoir_ul(), b.estimated_reservoir_ul());
  EXPECT_EQ(a.delivery_ratio(), b.delivery_ratio());
  EXPECT_EQ(a.delivery_ratio_stddev(), b.delivery_ratio_stddev());
  EXPECT_EQ(a.last_refill_time_ms(), b.last_refill_time_ms());
  EXPECT_EQ(a.concentration_ug_per_ml(), b.concentration_ug_per_ml());
}

bool IsDiscrepancy(const v1::AlertEvent& e) {
  return e.alert().pump_id() == kPump && e.alert().type() == v1::ALERT_TYPE_REFILL_DISCREPANCY;
}

TEST(OutageCorrectionTest, BackfillAfterA36HourOutageWithdrawsTheAlertThroughWatchAlerts) {
  // Reference: the same data in event-time order.
  v1::TwinState reference;
  std::vector<std::string> reference_alerts;
  {
    testing::TempDir dir;
    Server srv(dir);
    ASSERT_NO_FATAL_FAILURE(srv.Start());
    ASSERT_NO_FATAL_FAILURE(srv.Feed(1, kRefillAfter));
    v1::RecordRefillResponse r = srv.Refill();
    EXPECT_EQ(r.verdict(), v1::REFILL_VERDICT_OK) << r.discrepancy_ul();
    ASSERT_NO_FATAL_FAILURE(srv.Feed(kRefillAfter + 1, kLast));
    reference = srv.Twin();
    reference_alerts = srv.ActiveAlerts();
  }

  testing::TempDir dir;
  Server srv(dir);
  ASSERT_NO_FATAL_FAILURE(srv.Start());
  ASSERT_NO_FATAL_FAILURE(srv.Feed(1, kOnlineUntil));
  v1::RecordRefillResponse r = srv.Refill();
  ASSERT_EQ(r.verdict(), v1::REFILL_VERDICT_DISCREPANCY)
      << "the refill should look discrepant before the backlog arrives: " << r.discrepancy_ul();

  // A subscriber reads up to the raise and disconnects.
  WatchResult first;
  {
    Watcher w(*srv.stub, 0);
    w.ReadUntil(1, IsDiscrepancy, &first);
    ASSERT_FALSE(first.ended) << first.status.error_message();
  }
  ASSERT_NO_FATAL_FAILURE(ExpectConsecutive(first.events, 1));
  ASSERT_EQ(first.events.back().transition(), v1::ALERT_TRANSITION_RAISED);

  // The gateway comes back and uploads its 36 h backlog, then the rest.
  ASSERT_NO_FATAL_FAILURE(srv.Feed(kOnlineUntil + 1, kOutageEnd));
  ASSERT_NO_FATAL_FAILURE(srv.Feed(kOutageEnd + 1, kLast));

  // Resume from the last cursor: the withdrawal follows with no gap and no duplicate.
  const uint64_t last = first.events.back().cursor();
  WatchResult second;
  {
    Watcher w(*srv.stub, last);
    w.ReadUntil(1, IsDiscrepancy, &second);
    ASSERT_FALSE(second.ended) << second.status.error_message();
  }
  ASSERT_NO_FATAL_FAILURE(ExpectConsecutive(second.events, last + 1));
  const v1::AlertEvent& withdrawn = second.events.back();
  EXPECT_EQ(withdrawn.transition(), v1::ALERT_TRANSITION_WITHDRAWN);
  EXPECT_EQ(withdrawn.alert().state(), v1::ALERT_STATE_RESOLVED);
  EXPECT_THAT(withdrawn.alert().correction(),
              ::testing::HasSubstr(absl::StrCat("late telemetry from gateway ", kGateway)));
  EXPECT_THAT(withdrawn.alert().summary(), ::testing::HasSubstr("withdrawn:"));
  EXPECT_GT(withdrawn.alert().event_time_ms(), 0);

  ExpectSameTwin(srv.Twin(), reference);
  EXPECT_EQ(srv.ActiveAlerts(), reference_alerts);

  // The audit trail has the refill as entered.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(30));
    v1::ListAuditRecordsRequest req;
    req.set_resource(absl::StrCat("pumps/", kPump));
    req.set_page_size(100);
    v1::ListAuditRecordsResponse resp;
    grpc::Status s = srv.stub->ListAuditRecords(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    bool refill = false;
    for (const v1::AuditRecord& a : resp.records()) {
      refill = refill || absl::StrContains(a.method(), "RecordRefill");
    }
    EXPECT_TRUE(refill);
  }

  // The backlog behind the refill was applied in its place: rewinds, counted by source.
  auto metrics = testing::HttpGet(srv.proc.metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(*metrics,
              ::testing::ContainsRegex("pumptwin_late_inputs_total\\{path=\"rewind\"\\} [1-9]"));
  EXPECT_THAT(*metrics, ::testing::ContainsRegex(
                            "pumptwin_rewinds_total\\{source=\"(memory|store)\"\\} [1-9]"));

  // The stored inputs fold to the live twin.
  auto stopped = srv.proc.Stop(SIGTERM);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  auto [code, out] = testing::RunVerify(srv.data_dir);
  EXPECT_EQ(code, 0) << out;
}

}  // namespace
}  // namespace pumptwin::alerts_test
