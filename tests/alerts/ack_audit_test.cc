// AcknowledgeAlert + ListAlerts and the audit chain against the real pumptwind:
// acknowledge an active alert (event on the stream, state in lists), the error codes of
// bad names / resolved / unknown alerts, paging, ListAuditRecords filters, chain
// verification with the shared audit_hash library, and tamper detection after the stored
// bytes of one record were altered offline through the store API.
#include <signal.h>

#include <string>

#include "gmock/gmock.h"
#include "proto/audit_hash.h"
#include "server/store/rocksdb_store.h"
#include "tests/alerts/alerts_test_util.h"

namespace pumptwin::alerts_test {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<testing::ServerProcess> StartServer(testing::TempDir& dir) {
  auto p = std::make_unique<testing::ServerProcess>(testing::ServerProcessOptions{
      .data_dir = dir.path() + "/data", .extra_args = {"--shutdown_grace=2s", "--shards=2"}});
  EXPECT_TRUE(p->Start().ok()) << p->ReadLog();
  return p;
}

grpc::Status List(v1::TwinService::Stub& stub, const v1::ListAlertsRequest& req,
                  v1::ListAlertsResponse* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(In(30));
  return stub.ListAlerts(&ctx, req, resp);
}

grpc::Status Ack(v1::TwinService::Stub& stub, const std::string& name, v1::Alert* out) {
  grpc::ClientContext ctx;
  ctx.set_deadline(In(30));
  v1::AcknowledgeAlertRequest req;
  req.set_name(name);
  req.set_comment("seen, calling the patient");
  return stub.AcknowledgeAlert(&ctx, req, out);
}

std::vector<v1::AuditRecord> AllAudit(v1::TwinService::Stub& stub, const std::string& resource) {
  std::vector<v1::AuditRecord> out;
  std::string token;
  for (int page = 0; page < 1000; ++page) {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(30));
    v1::ListAuditRecordsRequest req;
    req.set_resource(resource);
    req.set_page_size(2);
    req.set_page_token(token);
    v1::ListAuditRecordsResponse resp;
    grpc::Status s = stub.ListAuditRecords(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (!s.ok()) break;
    for (const auto& r : resp.records()) out.push_back(r);
    token = resp.next_page_token();
    if (token.empty()) break;
  }
  return out;
}

TEST(AlertsApiTest, AcknowledgeListAndAuditChainWithTamperDetection) {
  testing::TempDir dir;
  auto server = StartServer(dir);
  auto stub = v1::TwinService::NewStub(
      grpc::CreateChannel(server->grpc_target(), grpc::InsecureChannelCredentials()));
  ASSERT_TRUE(RegisterMotorPump(*stub, "PK", "north").ok());
  ASSERT_TRUE(RegisterMotorPump(*stub, "PL", "south").ok());
  // PK: stall, recovery, stall -> one resolved and one active MOTOR_STALL alert.
  ASSERT_NO_FATAL_FAILURE(Feed(server->grpc_target(), "PK", 1, 3));

  v1::ListAlertsRequest active;
  active.set_pump_id("PK");
  active.set_active_only(true);
  active.set_type(v1::ALERT_TYPE_MOTOR_STALL);
  v1::ListAlertsResponse resp;
  ASSERT_TRUE(List(*stub, active, &resp).ok());
  ASSERT_EQ(resp.alerts_size(), 1);
  const v1::Alert live = resp.alerts(0);
  EXPECT_EQ(live.type(), v1::ALERT_TYPE_MOTOR_STALL);
  EXPECT_EQ(live.state(), v1::ALERT_STATE_RAISED);
  EXPECT_EQ(live.name(), "pumps/PK/alerts/" + live.alert_id());

  v1::ListAlertsRequest history;
  history.set_pump_id("PK");
  history.set_type(v1::ALERT_TYPE_MOTOR_STALL);
  resp.Clear();
  ASSERT_TRUE(List(*stub, history, &resp).ok());
  ASSERT_EQ(resp.alerts_size(), 2);
  EXPECT_EQ(resp.alerts(0).state(), v1::ALERT_STATE_RESOLVED);
  const std::string resolved_name = resp.alerts(0).name();
  // Paging: one per page, two pages, same alerts.
  history.set_page_size(1);
  v1::ListAlertsResponse p1, p2;
  ASSERT_TRUE(List(*stub, history, &p1).ok());
  ASSERT_EQ(p1.alerts_size(), 1);
  ASSERT_FALSE(p1.next_page_token().empty());
  history.set_page_token(p1.next_page_token());
  ASSERT_TRUE(List(*stub, history, &p2).ok());
  ASSERT_EQ(p2.alerts_size(), 1);
  EXPECT_EQ(p2.alerts(0).name(), live.name());
  EXPECT_TRUE(p2.next_page_token().empty());

  // Acknowledge: the answer, the book, the event on the stream.
  v1::Alert acked;
  grpc::Status s = Ack(*stub, live.name(), &acked);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(acked.state(), v1::ALERT_STATE_ACKNOWLEDGED);
  EXPECT_EQ(acked.acknowledged_by(), "anonymous");
  EXPECT_EQ(acked.acknowledge_comment(), "seen, calling the patient");
  v1::ListAlertsRequest by_state;
  by_state.set_state(v1::ALERT_STATE_ACKNOWLEDGED);
  resp.Clear();
  ASSERT_TRUE(List(*stub, by_state, &resp).ok());
  ASSERT_EQ(resp.alerts_size(), 1);
  EXPECT_EQ(resp.alerts(0).name(), live.name());
  {
    Watcher w(*stub, 0);
    WatchResult r;
    w.ReadUntil(
        1,
        [](const v1::AlertEvent& e) { return e.transition() == v1::ALERT_TRANSITION_ACKNOWLEDGED; },
        &r, 1000);
    ASSERT_FALSE(r.ended);
    EXPECT_EQ(r.events.back().alert().name(), live.name());
    EXPECT_EQ(r.events.back().alert().acknowledged_by(), "anonymous");
  }

  // Errors: resolved, unknown id, unknown pump, malformed name, bad page size.
  v1::Alert ignored;
  EXPECT_EQ(Ack(*stub, resolved_name, &ignored).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Ack(*stub, "pumps/PK/alerts/motor_stall-99999", &ignored).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Ack(*stub, "pumps/NOPE/alerts/motor_stall-1", &ignored).error_code(),
            grpc::StatusCode::NOT_FOUND);
  grpc::Status bad = Ack(*stub, "pumps/PK/motor_stall-1", &ignored);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.error_message(), HasSubstr("pumps/{pump_id}/alerts/{alert_id}"));
  v1::ListAlertsRequest big;
  big.set_page_size(5000);
  EXPECT_EQ(List(*stub, big, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // Audit: 2 registrations + 1 acknowledgement, chained from the genesis hash.
  auto all = AllAudit(*stub, "");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].previous_hash_hex(), audit::kGenesisPreviousHashHex);
  EXPECT_EQ(all[2].method(), "TwinService.AcknowledgeAlert");
  EXPECT_EQ(all[2].resource(), live.name());
  audit::ChainVerdict v = audit::VerifyAuditChain(all);
  EXPECT_TRUE(v.ok) << v.problem;
  auto pk = AllAudit(*stub, "pumps/PK");  // the pump and its sub-resources
  ASSERT_EQ(pk.size(), 2u);
  EXPECT_EQ(pk[1].sequence(), 3u);

  // Tamper offline: stop, rewrite record 2's after_json through the store API, restart.
  auto code = server->Stop(SIGTERM);
  ASSERT_TRUE(code.ok());
  ASSERT_EQ(*code, 0) << server->ReadLog();
  {
    store::RocksDbStoreOptions so;
    so.path = dir.path() + "/data";
    so.now = [] { return absl::Now(); };
    so.create_if_missing = false;
    auto st = store::RocksDbStore::Open(so);
    ASSERT_TRUE(st.ok()) << st.status();
    auto recs = (*st)->ScanAuditAfter(1, 1);
    ASSERT_TRUE(recs.ok());
    ASSERT_EQ(recs->size(), 1u);
    v1::AuditRecord r;
    ASSERT_TRUE(r.ParseFromString(recs->front().second));
    r.set_after_json(r.after_json() + " ");
    store::WriteGroup g;
    g.audit.emplace_back(2, r.SerializeAsString());
    ASSERT_TRUE((*st)->Commit(g).ok());
  }
  server = StartServer(dir);
  stub = v1::TwinService::NewStub(
      grpc::CreateChannel(server->grpc_target(), grpc::InsecureChannelCredentials()));
  all = AllAudit(*stub, "");
  ASSERT_EQ(all.size(), 3u);
  v = audit::VerifyAuditChain(all);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_sequence, 2u);
  EXPECT_THAT(v.problem, HasSubstr("altered"));
}

}  // namespace
}  // namespace pumptwin::alerts_test
