// Clinic-scoped tokens against the real server, method by method as the role table test
// does: a viewer or clinician token with clinic=north never reads, lists, changes or
// receives alerts of clinic south's pumps, on any TwinService method; admins and unscoped
// tokens see both clinics; an expired token is refused. The method list comes from the
// service descriptor, so a method added to the contract fails until its scope is declared
// here. Requests are built from the descriptor (the field that names the pump or the
// clinic is set), so the walk needs no per-method code.
#include <sys/wait.h>

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "gtest/gtest.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "tests/alerts/alerts_test_util.h"
#include "tests/auth/auth_test_util.h"
#include "tests/support/server_process.h"

namespace pumptwin {
namespace {

using ::testing::HasSubstr;

// How a method's request meets the caller's clinic.
enum class Scope {
  kPump,          // names one pump (name / names): refused for another clinic's pump
  kPumpOrClinic,  // optional pump_id and clinic filters (ListAlerts)
  kClinic,        // a clinic filter (ListPumps, WatchAlerts): another clinic is refused
  kAdminOnly,     // admin methods: admins are global, a scoped token never holds the role
  kNoPump,        // nothing clinic-specific (ListDrugs)
};

const std::map<std::string, Scope>& ExpectedScopes() {
  static const auto* m = new std::map<std::string, Scope>{
      {"RegisterPump", Scope::kAdminOnly},
      {"GetPump", Scope::kPump},
      {"ListPumps", Scope::kClinic},
      {"DecommissionPump", Scope::kAdminOnly},
      {"SetPrescription", Scope::kPump},
      {"GetPrescriptionHistory", Scope::kPump},
      {"ReplayTwin", Scope::kPump},
      {"RecordRefill", Scope::kPump},
      {"RecordEvent", Scope::kPump},
      {"GetTwin", Scope::kPump},
      {"WatchTwin", Scope::kPump},
      {"GetTelemetry", Scope::kPump},
      {"ListAlerts", Scope::kPumpOrClinic},
      {"WatchAlerts", Scope::kClinic},
      {"AcknowledgeAlert", Scope::kPump},
      {"ListDrugs", Scope::kNoPump},
      {"ListAuditRecords", Scope::kAdminOnly},
      {"RecordTrialOutcome", Scope::kPump},
      {"ImplantAfterTrial", Scope::kAdminOnly},
      {"EndTrial", Scope::kAdminOnly},
  };
  return *m;
}

const google::protobuf::ServiceDescriptor* Service() {
  return google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
      v1::TwinService::service_full_name());
}

// A request of `method` naming `pump` (or `clinic`) in whichever field the request has.
std::string RequestFor(const google::protobuf::MethodDescriptor* method, const std::string& pump,
                       const std::string& clinic) {
  google::protobuf::DynamicMessageFactory factory;
  std::unique_ptr<google::protobuf::Message> req(factory.GetPrototype(method->input_type())->New());
  const auto* d = method->input_type();
  const auto* refl = req->GetReflection();
  if (!pump.empty()) {
    if (const auto* f = d->FindFieldByName("name")) {
      std::string name = absl::StrCat("pumps/", pump);
      if (method->name() == "AcknowledgeAlert") absl::StrAppend(&name, "/alerts/motor_stall-1");
      refl->SetString(req.get(), f, name);
    } else if (const auto* f = d->FindFieldByName("names")) {
      refl->AddString(req.get(), f, absl::StrCat("pumps/", pump));
    } else if (const auto* f = d->FindFieldByName("pump_id")) {
      refl->SetString(req.get(), f, pump);
    }
  }
  if (!clinic.empty()) {
    if (const auto* f = d->FindFieldByName("clinic")) refl->SetString(req.get(), f, clinic);
  }
  return req->SerializeAsString();
}

bool Refused(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
         s.error_code() == grpc::StatusCode::UNAUTHENTICATED;
}

class ClinicScopeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    struct Want {
      const char* name;
      const char* role;
      std::string args;
    };
    for (const Want& w : std::vector<Want>{
             {"admin", "admin", ""},
             {"north.clinician", "clinician", "--clinic north"},
             {"north.viewer", "viewer", "--clinic north"},
             {"fleet.viewer", "viewer", ""},
             {"north.expired", "clinician", "--clinic north --expires 2020-01-01T00:00:00Z"},
         }) {
      auto t = testing::IssueToken(w.name, w.role, w.args);
      ASSERT_TRUE(t.ok()) << t.status();
      tokens_[w.name] = *t;
      absl::StrAppend(&file_, t->line, "\n");
    }
    ASSERT_TRUE(testing::WriteTextFile(dir_.path() + "/tokens", file_).ok());
    server_ = std::make_unique<testing::ServerProcess>(testing::ServerProcessOptions{
        .data_dir = dir_.path() + "/data",
        .extra_args = {"--auth_tokens_file=" + dir_.path() + "/tokens", "--shutdown_grace=1s"}});
    ASSERT_TRUE(server_->Start().ok()) << server_->ReadLog();
    channel_ = grpc::CreateChannel(server_->grpc_target(), grpc::InsecureChannelCredentials());
    stub_ = v1::TwinService::NewStub(channel_);
    for (const auto& [pump, clinic] : {std::pair{"PN", "north"}, std::pair{"PS", "south"}}) {
      grpc::ClientContext ctx;
      Authorize(&ctx, "admin");
      ctx.set_wait_for_ready(true);
      v1::Pump out;
      grpc::Status s = stub_->RegisterPump(&ctx, alerts_test::MotorPumpRequest(pump, clinic), &out);
      ASSERT_TRUE(s.ok()) << pump << ": " << s.error_message();
    }
  }

  void Authorize(grpc::ClientContext* ctx, const std::string& who) {
    ctx->AddMetadata("authorization", "Bearer " + tokens_.at(who).token);
    ctx->set_deadline(alerts_test::In(30));
  }

  testing::GenericResult Call(const google::protobuf::MethodDescriptor* m, const std::string& who,
                              const std::string& pump, const std::string& clinic) {
    return testing::CallBytes(channel_, absl::StrCat("/", Service()->full_name(), "/", m->name()),
                              tokens_.at(who).token, RequestFor(m, pump, clinic),
                              m->server_streaming() ? absl::Seconds(3) : absl::Seconds(15));
  }

  testing::TempDir dir_;
  std::map<std::string, testing::IssuedToken> tokens_;
  std::string file_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::TwinService::Stub> stub_;
};

TEST(ClinicScope, ExpectedScopesCoverEveryMethod) {
  std::set<std::string> methods;
  for (int i = 0; i < Service()->method_count(); ++i) {
    methods.insert(Service()->method(i)->name());
    EXPECT_TRUE(ExpectedScopes().contains(Service()->method(i)->name()))
        << "TwinService." << Service()->method(i)->name()
        << " has no clinic scope in this test: declare how it meets a clinic-scoped token";
  }
  for (const auto& [m, scope] : ExpectedScopes()) EXPECT_TRUE(methods.contains(m)) << m;
}

TEST(ClinicScope, TokenToolWritesScopeAndExpiryAndRefusesAScopedAdmin) {
  auto t =
      testing::IssueToken("dr.n", "clinician", "--clinic north --expires 2027-06-30T00:00:00Z");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(t->line, ::testing::EndsWith(" clinic=north expires=2027-06-30T00:00:00Z"));
  for (const char* bad : {"--role admin --clinic north", "--role viewer --expires soon",
                          "--role viewer --clinic 'a b'"}) {
    std::string cmd = absl::StrCat(PUMPTWIN_TOKEN_BINARY, " new --name x ", bad, " 2>&1");
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[512];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    int rc = pclose(p);
    EXPECT_EQ(WEXITSTATUS(rc), 2) << bad << ": " << out;
    EXPECT_THAT(out, HasSubstr("pumptwin-token: --")) << bad;
  }
}

TEST_F(ClinicScopeTest, EveryMethodKeepsAScopedTokenToItsClinic) {
  int pump_methods = 0;
  for (int i = 0; i < Service()->method_count(); ++i) {
    const auto* m = Service()->method(i);
    SCOPED_TRACE("TwinService." + m->name());
    ASSERT_TRUE(ExpectedScopes().contains(m->name()));
    const Scope scope = ExpectedScopes().at(m->name());
    // The clinician token holds every role a scoped token can; the viewer the read role.
    for (const char* who : {"north.clinician", "north.viewer"}) {
      SCOPED_TRACE(who);
      auto own = Call(m, who, "PN", "");
      const bool role_allows = !(own.status.error_code() == grpc::StatusCode::PERMISSION_DENIED &&
                                 absl::StrContains(own.status.error_message(), "requires role"));
      if (scope == Scope::kAdminOnly) {
        EXPECT_EQ(own.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
        EXPECT_THAT(own.status.error_message(), HasSubstr("requires role admin"));
        continue;
      }
      if (!role_allows) continue;  // a viewer on a clinician method: the role table's case
      EXPECT_FALSE(Refused(own.status)) << "own clinic: " << own.status.error_message();
      if (scope == Scope::kPump || scope == Scope::kPumpOrClinic) {
        ++pump_methods;
        auto other = Call(m, who, "PS", "");
        EXPECT_EQ(other.status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << other.status.error_message();
        EXPECT_THAT(other.status.error_message(), HasSubstr("clinic 'north'"));
      }
      if (scope == Scope::kClinic || scope == Scope::kPumpOrClinic) {
        auto other = Call(m, who, "", "south");
        EXPECT_EQ(other.status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << other.status.error_message();
        EXPECT_THAT(other.status.error_message(), HasSubstr("clinic 'north' only"));
        EXPECT_FALSE(Refused(Call(m, who, "", "north").status));
      }
    }
    // Admins and unscoped tokens are global: the other clinic's pump is not refused.
    auto admin = Call(m, "admin", "PS", "south");
    EXPECT_FALSE(Refused(admin.status)) << "admin: " << admin.status.error_message();
    if (scope != Scope::kAdminOnly) {
      auto fleet = Call(m, "fleet.viewer", "PS", "south");
      EXPECT_FALSE(fleet.status.error_code() == grpc::StatusCode::PERMISSION_DENIED &&
                   absl::StrContains(fleet.status.error_message(), "may see"))
          << "fleet viewer: " << fleet.status.error_message();
    }
  }
  EXPECT_GE(pump_methods, 10);  // the walk is never vacuous
}

TEST_F(ClinicScopeTest, ListsAndStreamsShowOnlyTheTokensClinic) {
  // South's alerts first, so a stream that did not filter would show them before north's.
  ASSERT_NO_FATAL_FAILURE(alerts_test::Feed(server_->grpc_target(), "PS", 1, 20));
  ASSERT_NO_FATAL_FAILURE(alerts_test::Feed(server_->grpc_target(), "PN", 1, 20));

  auto list_pumps = [&](const std::string& who) {
    grpc::ClientContext ctx;
    Authorize(&ctx, who);
    v1::ListPumpsRequest req;
    v1::ListPumpsResponse resp;
    grpc::Status s = stub_->ListPumps(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> ids;
    for (const auto& p : resp.pumps()) ids.push_back(p.pump_id());
    return ids;
  };
  EXPECT_THAT(list_pumps("north.viewer"), ::testing::ElementsAre("PN"));
  EXPECT_THAT(list_pumps("admin"), ::testing::ElementsAre("PN", "PS"));
  EXPECT_THAT(list_pumps("fleet.viewer"), ::testing::ElementsAre("PN", "PS"));

  auto list_alerts = [&](const std::string& who) {
    grpc::ClientContext ctx;
    Authorize(&ctx, who);
    v1::ListAlertsRequest req;
    req.set_page_size(1000);
    v1::ListAlertsResponse resp;
    grpc::Status s = stub_->ListAlerts(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::map<std::string, int> per_clinic;
    for (const auto& a : resp.alerts()) ++per_clinic[a.clinic()];
    return per_clinic;
  };
  auto all = list_alerts("admin");
  ASSERT_GT(all["north"], 0);
  ASSERT_GT(all["south"], 0);
  auto north = list_alerts("north.viewer");
  EXPECT_EQ(north.size(), 1u);
  EXPECT_EQ(north["north"], all["north"]);

  // WatchAlerts from the start: the scoped stream carries north's events, none of south's.
  grpc::ClientContext ctx;
  Authorize(&ctx, "north.viewer");
  v1::WatchAlertsRequest req;
  auto reader = stub_->WatchAlerts(&ctx, req);
  v1::AlertEvent ev;
  int north_events = 0, south_events = 0;
  // At least one event (its raise) per north alert; south's came first.
  while (north_events < all["north"] && reader->Read(&ev)) {
    (ev.alert().clinic() == "north" ? north_events : south_events)++;
  }
  ctx.TryCancel();
  while (reader->Read(&ev)) {
  }
  (void)reader->Finish();
  EXPECT_EQ(north_events, all["north"]);
  EXPECT_EQ(south_events, 0);
}

TEST_F(ClinicScopeTest, ExpiredTokenIsUnauthenticated) {
  grpc::ClientContext ctx;
  Authorize(&ctx, "north.expired");
  v1::GetPumpRequest req;
  req.set_name("pumps/PN");
  v1::Pump out;
  grpc::Status s = stub_->GetPump(&ctx, req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("expired at 2020-01-01T00:00:00"));
}

}  // namespace
}  // namespace pumptwin
