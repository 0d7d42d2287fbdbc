// TwinService pump, telemetry and drug-library methods against the real pumptwind:
// ListPumps (filters, order, paging, bad input), DecommissionPump (successor link,
// ingest refused afterwards, hidden from List), GetTelemetry (range, down-sampling,
// paging, bad input), ListDrugs (file, version, SIGHUP reload).
#include <dirent.h>
#include <signal.h>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "tests/therapy/therapy_fixture.h"

namespace pumptwin::therapy_test {
namespace {

using ::testing::HasSubstr;

class PumpsTest : public ServerSuite {
 protected:
  grpc::Status List(const v1::ListPumpsRequest& req, v1::ListPumpsResponse* resp) {
    auto ctx = Ctx();
    return twin().ListPumps(ctx.get(), req, resp);
  }
};

TEST_F(PumpsTest, ListFiltersByClinicAndPagesInIdOrder) {
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(RegisterPump(twin(), absl::StrCat("lp-", i), "clinic-list").ok());
  }
  ASSERT_TRUE(RegisterPump(twin(), "lp-other", "clinic-elsewhere").ok());
  v1::ListPumpsRequest req;
  req.set_clinic("clinic-list");
  req.set_page_size(3);
  std::vector<std::string> seen;
  int pages = 0;
  for (; pages < 10; ++pages) {
    v1::ListPumpsResponse resp;
    grpc::Status s = List(req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    for (const auto& p : resp.pumps()) {
      seen.push_back(p.pump_id());
      EXPECT_EQ(p.clinic(), "clinic-list");
      EXPECT_EQ(p.reservoir_capacity_ul(), 20000);  // the full registration
    }
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  EXPECT_EQ(pages, 2);  // 3 + 3 + 1
  EXPECT_THAT(seen, ::testing::ElementsAre("lp-0", "lp-1", "lp-2", "lp-3", "lp-4", "lp-5", "lp-6"));
}

TEST_F(PumpsTest, ListRejectsBadInputPrecisely) {
  v1::ListPumpsResponse resp;
  v1::ListPumpsRequest bad;
  bad.set_page_size(-1);
  grpc::Status s = List(bad, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_size=-1"));

  bad = {};
  bad.set_page_token("garbage!");
  s = List(bad, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_token"));

  bad = {};
  bad.set_min_severity(static_cast<v1::Severity>(9));
  s = List(bad, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("min_severity=9"));

  bad = {};
  bad.set_refill_due_before_ms(-5);
  s = List(bad, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("refill_due_before_ms=-5"));

  bad = {};
  bad.set_order(static_cast<v1::PumpOrder>(4));
  s = List(bad, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // A token of one query is refused for another.
  ASSERT_TRUE(RegisterPump(twin(), "tok-a", "clinic-tok").ok());
  ASSERT_TRUE(RegisterPump(twin(), "tok-b", "clinic-tok").ok());
  v1::ListPumpsRequest req;
  req.set_clinic("clinic-tok");
  req.set_page_size(1);
  ASSERT_TRUE(List(req, &resp).ok());
  ASSERT_FALSE(resp.next_page_token().empty());
  req.set_clinic("clinic-other");
  req.set_page_token(resp.next_page_token());
  s = List(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("different filters"));
}

TEST_F(PumpsTest, ListFiltersOnDueDatesAndUrgencyOrderCoversEveryPump) {
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(RegisterPump(twin(), absl::StrCat("urg-", i), "clinic-urg").ok());
  }
  // Refill due within ~36 days at 500 uL/day of 18 mL: due-before far future keeps all,
  // due-before 1970 keeps none.
  v1::ListPumpsRequest req;
  req.set_clinic("clinic-urg");
  req.set_refill_due_before_ms(NowMs() + 3650LL * 24 * 3600 * 1000);
  v1::ListPumpsResponse resp;
  ASSERT_TRUE(List(req, &resp).ok());
  EXPECT_EQ(resp.pumps_size(), 4);
  req.set_refill_due_before_ms(1);
  resp.Clear();
  ASSERT_TRUE(List(req, &resp).ok());
  EXPECT_EQ(resp.pumps_size(), 0);

  req = {};
  req.set_clinic("clinic-urg");
  req.set_stale_only(true);
  resp.Clear();
  ASSERT_TRUE(List(req, &resp).ok());
  EXPECT_EQ(resp.pumps_size(), 0);  // just registered: not silent
  req.set_stale_only(false);
  req.set_alerting_only(true);
  resp.Clear();
  ASSERT_TRUE(List(req, &resp).ok());
  EXPECT_EQ(resp.pumps_size(), 0);

  req = {};
  req.set_clinic("clinic-urg");
  req.set_order(v1::PUMP_ORDER_URGENCY);
  req.set_page_size(3);
  std::set<std::string> seen;
  for (int page = 0; page < 5; ++page) {
    resp.Clear();
    ASSERT_TRUE(List(req, &resp).ok());
    for (const auto& p : resp.pumps()) EXPECT_TRUE(seen.insert(p.pump_id()).second) << p.pump_id();
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  EXPECT_EQ(seen.size(), 4u);
}

TEST_F(PumpsTest, AlertingOnlyMinSeverityAndUrgencyPutTheAlertingPumpFirst) {
  for (const char* id : {"al-a", "al-b", "al-c"}) {
    ASSERT_TRUE(RegisterPump(twin(), id, "clinic-alert").ok());
  }
  // A refill discrepancy (18 mL expected, 1 mL withdrawn) raises an alert on al-c.
  v1::RecordRefillRequest refill;
  refill.set_name("pumps/al-c");
  refill.set_withdrawn_volume_ul(1000);
  refill.set_added_volume_ul(19000);
  v1::RecordRefillResponse rr;
  auto ctx = Ctx();
  ASSERT_TRUE(twin().RecordRefill(ctx.get(), refill, &rr).ok());
  ASSERT_EQ(rr.verdict(), v1::REFILL_VERDICT_DISCREPANCY);

  v1::ListPumpsRequest req;
  req.set_clinic("clinic-alert");
  req.set_alerting_only(true);
  v1::ListPumpsResponse resp;
  ASSERT_TRUE(List(req, &resp).ok());
  ASSERT_EQ(resp.pumps_size(), 1);
  EXPECT_EQ(resp.pumps(0).pump_id(), "al-c");
  req.set_min_severity(v1::SEVERITY_INFO);
  resp.Clear();
  ASSERT_TRUE(List(req, &resp).ok());
  EXPECT_EQ(resp.pumps_size(), 1);

  req = {};
  req.set_clinic("clinic-alert");
  req.set_order(v1::PUMP_ORDER_URGENCY);
  resp.Clear();
  ASSERT_TRUE(List(req, &resp).ok());
  ASSERT_EQ(resp.pumps_size(), 3);
  EXPECT_EQ(resp.pumps(0).pump_id(), "al-c");
}

TEST_F(PumpsTest, DecommissionArchivesLinksSuccessorAndRefusesIngest) {
  ASSERT_TRUE(RegisterPump(twin(), "dec-old", "clinic-dec").ok());
  ASSERT_TRUE(RegisterPump(twin(), "dec-new", "clinic-dec").ok());
  v1::DecommissionPumpRequest req;
  req.set_name("pumps/dec-old");
  req.set_reason("replacement");
  req.set_replaced_by_pump_id("dec-missing");
  v1::Pump out;
  auto ctx = Ctx();
  grpc::Status s = twin().DecommissionPump(ctx.get(), req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("'dec-missing' is not registered"));

  req.set_replaced_by_pump_id("dec-old");
  ctx = Ctx();
  s = twin().DecommissionPump(ctx.get(), req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  req.set_name("pumps/nope");
  req.clear_replaced_by_pump_id();
  ctx = Ctx();
  s = twin().DecommissionPump(ctx.get(), req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);

  req.set_name("pumps/dec-old");
  req.set_replaced_by_pump_id("dec-new");
  ctx = Ctx();
  s = twin().DecommissionPump(ctx.get(), req, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.lifecycle(), v1::PUMP_LIFECYCLE_DECOMMISSIONED);
  EXPECT_EQ(out.replaced_by_pump_id(), "dec-new");
  // Two audit records, the old pump's first, each with its registration before and after.
  v1::ListAuditRecordsRequest audit;
  audit.set_page_size(100);
  v1::ListAuditRecordsResponse ar;
  ctx = Ctx();
  ASSERT_TRUE(twin().ListAuditRecords(ctx.get(), audit, &ar).ok());
  std::vector<const v1::AuditRecord*> dec;
  for (const v1::AuditRecord& r : ar.records()) {
    if (absl::StrContains(r.method(), "DecommissionPump")) dec.push_back(&r);
  }
  ASSERT_EQ(dec.size(), 2u);
  EXPECT_EQ(dec[0]->resource(), "pumps/dec-old");
  EXPECT_EQ(dec[1]->resource(), "pumps/dec-new");
  EXPECT_LT(dec[0]->sequence(), dec[1]->sequence());
  EXPECT_THAT(dec[0]->after_json(), HasSubstr("PUMP_LIFECYCLE_DECOMMISSIONED"));
  EXPECT_THAT(dec[0]->after_json(), HasSubstr("dec-new"));
  EXPECT_THAT(dec[1]->after_json(), HasSubstr("dec-old"));
  EXPECT_THAT(dec[1]->before_json(), ::testing::Not(HasSubstr("dec-old")));
  EXPECT_EQ(dec[0]->reason(), "replacement");

  // Twice: FAILED_PRECONDITION.
  ctx = Ctx();
  s = twin().DecommissionPump(ctx.get(), req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("already decommissioned"));

  v1::GetPumpRequest get;
  get.set_name("pumps/dec-old");
  v1::Pump got;
  ctx = Ctx();
  ASSERT_TRUE(twin().GetPump(ctx.get(), get, &got).ok());
  EXPECT_EQ(got.lifecycle(), v1::PUMP_LIFECYCLE_DECOMMISSIONED);
  get.set_name("pumps/dec-new");
  ctx = Ctx();
  ASSERT_TRUE(twin().GetPump(ctx.get(), get, &got).ok());
  EXPECT_EQ(got.replaces_pump_id(), "dec-old");

  v1::ListPumpsRequest list;
  list.set_clinic("clinic-dec");
  v1::ListPumpsResponse lr;
  ASSERT_TRUE(List(list, &lr).ok());
  ASSERT_EQ(lr.pumps_size(), 1);
  EXPECT_EQ(lr.pumps(0).pump_id(), "dec-new");
  list.set_include_decommissioned(true);
  lr.Clear();
  ASSERT_TRUE(List(list, &lr).ok());
  EXPECT_EQ(lr.pumps_size(), 2);

  // Archived, read-only: clinical calls and ingest are refused.
  v1::RecordEventRequest ev;
  ev.set_name("pumps/dec-old");
  ev.set_type(v1::CLINICAL_EVENT_MRI);
  v1::RecordEventResponse er;
  ctx = Ctx();
  s = twin().RecordEvent(ctx.get(), ev, &er);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("decommissioned"));
  std::vector<v1::Nack> nacks;
  ASSERT_TRUE(Ingest(*server_->gateway, {MakeSample("dec-old", 1, NowMs() - 1000)}, &nacks));
  ASSERT_EQ(nacks.size(), 1u);
  EXPECT_EQ(nacks[0].reason(), v1::NACK_REASON_DECOMMISSIONED);
}

TEST_F(PumpsTest, TelemetryRangeDownsampleAndPaging) {
  ASSERT_TRUE(RegisterPump(twin(), "tm-1", "clinic-tm").ok());
  const int64_t t0 = (NowMs() - 3600 * 1000) / 1000 * 1000;
  std::vector<v1::TelemetrySample> samples;
  for (int i = 1; i <= 60; ++i) {
    samples.push_back(MakeSample("tm-1", i, t0 + i * 10000));
    if (i == 9 || i == 20 || i == 21) {  // pump event-log entries: kept when downsampled
      v1::DeviceEvent* e = samples.back().add_events();
      e->set_type(v1::DEVICE_EVENT_TELEMETRY_SESSION);
      e->set_device_time_ms(t0 + i * 10000 - 1000);
    }
  }
  std::vector<v1::Nack> nacks;
  ASSERT_TRUE(Ingest(*server_->gateway, samples, &nacks));
  ASSERT_TRUE(nacks.empty()) << nacks[0].message();

  v1::GetTelemetryRequest req;
  req.set_name("pumps/tm-1");
  req.set_start_device_time_ms(t0 + 10000);     // seq 1
  req.set_end_device_time_ms(t0 + 50 * 10000);  // excludes seq 50
  req.set_page_size(20);
  std::vector<uint64_t> seqs;
  int pages = 0;
  for (; pages < 10; ++pages) {
    v1::GetTelemetryResponse resp;
    auto ctx = Ctx();
    grpc::Status s = twin().GetTelemetry(ctx.get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    for (const auto& x : resp.samples()) seqs.push_back(x.seq());
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  ASSERT_EQ(seqs.size(), 49u);
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i + 1);
  EXPECT_EQ(pages, 2);

  // At most one per minute: samples every 10 s -> 1 per 6.
  req.clear_page_token();
  req.set_start_device_time_ms(t0);
  req.set_end_device_time_ms(0);
  req.set_downsample_interval_ms(60000);
  req.set_page_size(4);
  seqs.clear();
  for (pages = 0; pages < 10; ++pages) {
    v1::GetTelemetryResponse resp;
    auto ctx = Ctx();
    ASSERT_TRUE(twin().GetTelemetry(ctx.get(), req, &resp).ok());
    for (const auto& x : resp.samples()) seqs.push_back(x.seq());
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  // Samples 9, 20 and 21 carry event-log entries: kept although their minutes are taken;
  // a page ending on 20 resumes at 21, inside the same minute.
  EXPECT_THAT(seqs, ::testing::ElementsAre(1, 6, 9, 12, 18, 20, 21, 24, 30, 36, 42, 48, 54, 60));

  auto bad = [&](auto mutate, const char* needle, grpc::StatusCode code) {
    v1::GetTelemetryRequest r;
    r.set_name("pumps/tm-1");
    r.set_start_device_time_ms(t0);
    mutate(r);
    v1::GetTelemetryResponse resp;
    auto ctx = Ctx();
    grpc::Status s = twin().GetTelemetry(ctx.get(), r, &resp);
    EXPECT_EQ(s.error_code(), code) << needle;
    EXPECT_THAT(s.error_message(), HasSubstr(needle));
  };
  bad([&](auto& r) { r.set_end_device_time_ms(t0); }, "must be > start_device_time_ms",
      grpc::StatusCode::INVALID_ARGUMENT);
  bad([](auto& r) { r.set_downsample_interval_ms(-1); }, "downsample_interval_ms=-1",
      grpc::StatusCode::INVALID_ARGUMENT);
  bad([](auto& r) { r.set_page_size(-3); }, "page_size=-3", grpc::StatusCode::INVALID_ARGUMENT);
  bad([](auto& r) { r.set_page_token("x"); }, "page_token", grpc::StatusCode::INVALID_ARGUMENT);
  bad([](auto& r) { r.set_name("pumps/ghost"); }, "not registered", grpc::StatusCode::NOT_FOUND);
  bad([](auto& r) { r.set_name("ghost"); }, "pumps/{pump_id}", grpc::StatusCode::INVALID_ARGUMENT);
}

// Our own child: the process whose command line names this suite's data dir.
int FindServerPid(const std::string& data_dir) {
  DIR* d = opendir("/proc");
  int found = -1;
  for (dirent* e = d ? readdir(d) : nullptr; e != nullptr; e = readdir(d)) {
    int pid = atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream in(absl::StrCat("/proc/", pid, "/cmdline"));
    std::stringstream ss;
    ss << in.rdbuf();
    if (absl::StrContains(ss.str(), data_dir) && absl::StrContains(ss.str(), "pumptwind")) {
      found = pid;
      break;
    }
  }
  if (d) closedir(d);
  return found;
}

TEST(DrugLibraryTest, ListsTheFileVersionsItAndReloadsOnSighup) {
  testing::TempDir lib_dir;
  const std::string path = lib_dir.path() + "/drugs.txt";
  {
    std::ofstream out(path);
    out << "# test library\n"
           "morphine|Morphine|20000|15000|12000|0.3|90|300|test\n";
  }
  Server server({"--drug_library=" + path});
  ASSERT_TRUE(server.Start().ok()) << server.process->ReadLog();
  v1::ListDrugsResponse first;
  auto ctx = Ctx();
  ASSERT_TRUE(server.twin->ListDrugs(ctx.get(), {}, &first).ok());
  ASSERT_EQ(first.drugs_size(), 1);
  EXPECT_EQ(first.drugs(0).key(), "morphine");
  EXPECT_EQ(first.drugs(0).max_daily_dose_ug(), 15000);
  EXPECT_EQ(first.drugs(0).stability_days(), 90);
  EXPECT_THAT(first.library_version(), ::testing::StartsWith("sha256:"));

  {
    std::ofstream out(path);
    out << "morphine|Morphine|20000|15000|12000|0.3|90|300|test\n"
           "baclofen|Baclofen|2000|2000|1600|0.2|180|0|test\n";
  }
  const int pid = FindServerPid(server.dir.path());
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGHUP), 0);
  v1::ListDrugsResponse second;
  for (int i = 0; i < 200 && second.drugs_size() != 2; ++i) {  // reload is asynchronous
    second.Clear();
    ctx = Ctx();
    ASSERT_TRUE(server.twin->ListDrugs(ctx.get(), {}, &second).ok());
    if (second.drugs_size() != 2) absl::SleepFor(absl::Milliseconds(25));
  }
  ASSERT_EQ(second.drugs_size(), 2);
  EXPECT_NE(second.library_version(), first.library_version());

  // A broken file keeps the previous library.
  { std::ofstream(path) << "not|a|library\n"; }
  ASSERT_EQ(kill(pid, SIGHUP), 0);
  bool logged = false;
  for (int i = 0; i < 200 && !logged; ++i) {
    logged = absl::StrContains(server.process->ReadLog(), "drug_library_reload_failed");
    if (!logged) absl::SleepFor(absl::Milliseconds(25));
  }
  EXPECT_TRUE(logged);
  v1::ListDrugsResponse third;
  ctx = Ctx();
  ASSERT_TRUE(server.twin->ListDrugs(ctx.get(), {}, &third).ok());
  EXPECT_EQ(third.library_version(), second.library_version());
}

TEST(DrugLibraryTest, UnreadableFileRefusesToStart) {
  Server server({"--drug_library=/nonexistent/drugs.txt"});
  EXPECT_FALSE(server.Start().ok());
}

}  // namespace
}  // namespace pumptwin::therapy_test
