// The TwinService method/role table, walked against the real server with a token file
// holding a viewer, a clinician and an admin token (made by the real pumptwin-token).
// The method list comes from the service descriptor (pumptwin.v1.TwinService), so a method added to
// the contract fails ExpectedRolesCoverEveryMethod until its role is declared here, and the
// declared roles must match the role comments of proto/pumptwin/v1/twin_service.proto. For every
// method: no token and an unknown token -> UNAUTHENTICATED; each role below the required one ->
// PERMISSION_DENIED naming the required role; the required role and above -> anything but
// UNAUTHENTICATED/PERMISSION_DENIED (an empty request may well be INVALID_ARGUMENT or NOT_FOUND).
#include <signal.h>

#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "pumptwin/v1/twin_service.grpc.pb.h"
#include "tests/auth/auth_test_util.h"
#include "tests/support/server_process.h"

namespace pumptwin {
namespace {

using ::testing::HasSubstr;

enum Role { kViewer = 1, kClinician = 2, kAdmin = 3 };
const char* kRoleNames[] = {"", "viewer", "clinician", "admin"};

// The declared role of every TwinService method (docs/security.md has the same table).
const std::map<std::string, Role>& ExpectedRoles() {
  static const auto* m = new std::map<std::string, Role>{
      {"RegisterPump", kAdmin},         {"GetPump", kViewer},
      {"ListPumps", kViewer},           {"DecommissionPump", kAdmin},
      {"SetPrescription", kClinician},  {"GetPrescriptionHistory", kViewer},
      {"ReplayTwin", kViewer},          {"RecordRefill", kClinician},
      {"RecordEvent", kClinician},      {"GetTwin", kViewer},
      {"WatchTwin", kViewer},           {"GetTelemetry", kViewer},
      {"ListAlerts", kViewer},          {"WatchAlerts", kViewer},
      {"AcknowledgeAlert", kClinician}, {"ListDrugs", kViewer},
      {"ListAuditRecords", kAdmin},     {"RecordTrialOutcome", kClinician},
      {"ImplantAfterTrial", kAdmin},    {"EndTrial", kAdmin},
  };
  return *m;
}

// The service descriptor of the generated contract (grpc 1.51's generated class has no
// descriptor(): look it up in the generated pool by the service's full name).
const google::protobuf::ServiceDescriptor* Service() {
  const auto* svc = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
      v1::TwinService::service_full_name());
  EXPECT_NE(svc, nullptr);
  return svc;
}

std::vector<std::string> DescriptorMethods() {
  const google::protobuf::ServiceDescriptor* svc = Service();
  std::vector<std::string> out;
  for (int i = 0; i < svc->method_count(); ++i) out.push_back(svc->method(i)->name());
  return out;
}

TEST(MethodRoles, ExpectedRolesCoverEveryMethod) {
  std::set<std::string> declared;
  for (const std::string& m : DescriptorMethods()) {
    declared.insert(m);
    EXPECT_TRUE(ExpectedRoles().contains(m))
        << "TwinService." << m << " has no expected role in this test: declare it here, in "
        << "twin_service.proto's comment and in docs/security.md";
  }
  for (const auto& [m, role] : ExpectedRoles()) {
    EXPECT_TRUE(declared.contains(m)) << m << " is not a TwinService method any more";
  }
}

TEST(MethodRoles, ExpectedRolesMatchTheProtoComments) {
  auto proto = testing::ReadTextFile(PUMPTWIN_SOURCE_DIR "/proto/pumptwin/v1/twin_service.proto");
  ASSERT_TRUE(proto.ok()) << proto.status();
  // "rpc Name(Req) [newline] returns (Resp) {   // role" (the HTTP rule follows)
  std::map<std::string, std::string> commented;
  std::string pending_rpc;
  for (absl::string_view line : absl::StrSplit(*proto, '\n')) {
    absl::string_view code = absl::StripAsciiWhitespace(line);
    if (absl::StartsWith(code, "rpc ")) {
      code.remove_prefix(4);
      pending_rpc = std::string(code.substr(0, code.find('(')));
    }
    if (pending_rpc.empty() || !absl::StrContains(line, "returns")) continue;
    auto slash = line.find("//");
    std::string role = slash == absl::string_view::npos
                           ? ""
                           : std::string(absl::StripAsciiWhitespace(line.substr(slash + 2)));
    commented[pending_rpc] = role;
    pending_rpc.clear();
  }
  EXPECT_EQ(commented.size(), DescriptorMethods().size());
  for (const auto& [m, role] : ExpectedRoles()) {
    EXPECT_EQ(commented[m], kRoleNames[role]) << "role of " << m << " in twin_service.proto";
  }
}

class MethodRolesServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* role : {"viewer", "clinician", "admin"}) {
      auto t = testing::IssueToken(absl::StrCat("test.", role), role);
      ASSERT_TRUE(t.ok()) << t.status();
      tokens_[role] = *t;
    }
    auto unknown = testing::IssueToken("nobody", "admin");  // never written to the file
    ASSERT_TRUE(unknown.ok()) << unknown.status();
    unknown_ = unknown->token;
    token_file_ = dir_.path() + "/tokens";
    ASSERT_TRUE(testing::WriteTextFile(
                    token_file_, absl::StrCat("# test principals\n", tokens_["viewer"].line, "\n",
                                              tokens_["clinician"].line, "\n\n",
                                              tokens_["admin"].line, "   # trailing comment\n"))
                    .ok());
    server_ = std::make_unique<testing::ServerProcess>(testing::ServerProcessOptions{
        .data_dir = dir_.path() + "/data",
        .extra_args = {"--auth_tokens_file=" + token_file_, "--shutdown_grace=1s"}});
    ASSERT_TRUE(server_->Start().ok()) << server_->ReadLog();
    channel_ = grpc::CreateChannel(server_->grpc_target(), grpc::InsecureChannelCredentials());
    ASSERT_TRUE(channel_->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(10))));
  }

  testing::GenericResult Call(const std::string& method, const std::string& token) {
    bool streaming = Service()->FindMethodByName(method)->server_streaming();
    // A stream that is allowed may stay open (live): the deadline ends it.
    return testing::CallEmpty(channel_, "/pumptwin.v1.TwinService/" + method, token,
                              streaming ? absl::Seconds(3) : absl::Seconds(15));
  }

  testing::TempDir dir_;
  std::map<std::string, testing::IssuedToken> tokens_;
  std::string unknown_;
  std::string token_file_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(MethodRolesServerTest, EveryMethodEnforcesItsRole) {
  int strict = 0;
  for (const std::string& method : DescriptorMethods()) {
    SCOPED_TRACE("TwinService." + method);
    ASSERT_TRUE(ExpectedRoles().contains(method));
    Role required = ExpectedRoles().at(method);
    ++strict;
    auto none = Call(method, "");
    EXPECT_EQ(none.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << "no token: " << none.status.error_message();
    auto unknown = Call(method, unknown_);
    EXPECT_EQ(unknown.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << "unknown token: " << unknown.status.error_message();
    for (int r = kViewer; r <= kAdmin; ++r) {
      const char* role = kRoleNames[r];
      auto res = Call(method, tokens_[role].token);
      if (r < required) {
        EXPECT_EQ(res.status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << role << ": " << res.status.error_message();
        EXPECT_THAT(res.status.error_message(), HasSubstr(kRoleNames[required])) << role;
      } else {
        EXPECT_NE(res.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
            << role << ": " << res.status.error_message();
        EXPECT_NE(res.status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << role << ": " << res.status.error_message();
      }
    }
    std::cout << "[ checked  ] " << method << " requires " << kRoleNames[required] << "\n";
  }
  // RegisterPump, GetPump and GetTwin exist already: the walk is never vacuous.
  EXPECT_GE(strict, 3);
}

TEST_F(MethodRolesServerTest, MalformedAuthorizationIsUnauthenticated) {
  for (const std::string& value :
       {std::string("Basic dXNlcjpwYXNz"), std::string("Bearer"), std::string("Bearer "),
        "Token " + tokens_["admin"].token, tokens_["admin"].token}) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", value);
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(15)));
    auto stub = v1::TwinService::NewStub(channel_);
    v1::GetPumpRequest req;
    req.set_name("pumps/p1");
    v1::Pump pump;
    grpc::Status s = stub->GetPump(&ctx, req, &pump);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << "'" << value << "'";
  }
  // The scheme is case-insensitive (RFC 7235).
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "bearer " + tokens_["viewer"].token);
  auto stub = v1::TwinService::NewStub(channel_);
  v1::GetPumpRequest req;
  req.set_name("pumps/p1");
  v1::Pump pump;
  EXPECT_EQ(stub->GetPump(&ctx, req, &pump).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(MethodRolesServerTest, SighupReloadsTokensAndABadFileKeepsThePreviousOnes) {
  auto get_pump = [&](const std::string& token) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(15)));
    auto stub = v1::TwinService::NewStub(channel_);
    v1::GetPumpRequest req;
    req.set_name("pumps/p1");
    v1::Pump pump;
    return stub->GetPump(&ctx, req, &pump).error_code();
  };
  pid_t pid = testing::FindServerChildPid();
  ASSERT_GT(pid, 0);
  auto fresh = testing::IssueToken("rotated.viewer", "viewer");
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(get_pump(fresh->token), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(get_pump(tokens_["viewer"].token), grpc::StatusCode::NOT_FOUND);

  // Rotation: the old viewer token is replaced by a new one.
  ASSERT_TRUE(testing::WriteTextFile(token_file_,
                                     absl::StrCat(fresh->line, "\n", tokens_["admin"].line, "\n"))
                  .ok());
  ASSERT_EQ(kill(pid, SIGHUP), 0);
  auto wait_for = [&](const std::string& token, grpc::StatusCode want) {
    absl::Time end = absl::Now() + absl::Seconds(15);
    while (absl::Now() < end && get_pump(token) != want) absl::SleepFor(absl::Milliseconds(50));
    return get_pump(token);
  };
  EXPECT_EQ(wait_for(fresh->token, grpc::StatusCode::NOT_FOUND), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(get_pump(tokens_["viewer"].token), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(get_pump(tokens_["clinician"].token), grpc::StatusCode::UNAUTHENTICATED);

  // A malformed file is refused: the previous tokens stay in force.
  ASSERT_TRUE(testing::WriteTextFile(token_file_, "someone admin not-a-digest\n").ok());
  ASSERT_EQ(kill(pid, SIGHUP), 0);
  absl::Time end = absl::Now() + absl::Seconds(15);
  while (absl::Now() < end && !absl::StrContains(server_->ReadLog(), "auth_tokens_reload_failed")) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_THAT(server_->ReadLog(), HasSubstr("auth_tokens_reload_failed"));
  EXPECT_EQ(get_pump(fresh->token), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(get_pump(tokens_["admin"].token), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace pumptwin
