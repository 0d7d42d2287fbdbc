// pumptwind on the PostgreSQL store (--store=postgres): a gateway streams, the server is
// killed with SIGKILL, restarted on the same database, and every acknowledged sample is in the
// recovered twins, which `pumptwind --verify --store=postgres` finds equal to a replay of the
// stored inputs. Also: the bad combinations of the store flags exit 2, and the DSN is logged
// with its password hidden. A private PostgreSQL on 127.0.0.1 (postgres_test_server.h).
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/process/server_app.h"
#include "tests/ingest/ingest_fixture.h"
#include "tests/store/postgres_test_server.h"
#include "tests/support/server_process.h"

namespace pumptwin::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kPumps = 3;
constexpr uint64_t kSamplesPerFrame = 10;
constexpr int kFrames = 30;

std::string PumpName(int i) { return absl::StrCat("pg-p", i); }

// Every stored sample of `pump` (one page: the test stores fewer than page_size).
absl::StatusOr<v1::GetTelemetryResponse> AllTelemetry(v1::TwinService::Stub& stub,
                                                      const std::string& pump) {
  v1::GetTelemetryRequest req;
  req.set_name("pumps/" + pump);
  req.set_start_device_time_ms(0);
  req.set_end_device_time_ms(kStartMs + int64_t{1000} * 24 * 3600 * 1000);
  req.set_page_size(10000);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::GetTelemetryResponse out;
  grpc::Status st = stub.GetTelemetry(&ctx, req, &out);
  if (!st.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(st.error_code()), st.error_message());
  }
  return out;
}

std::vector<std::string> PostgresArgs(const PostgresTestServer& pg, const std::string& schema) {
  return {"--store=postgres", "--postgres_dsn=" + pg.Dsn(), "--postgres_schema=" + schema,
          "--snapshot_every_samples=50"};
}

TEST(PostgresServerTest, KillNineAndRestartOnTheSameDatabaseLosesNothingAcknowledged) {
  auto pg = SharedPostgresTestServer();
  ASSERT_TRUE(pg.ok()) << pg.status();
  const std::string schema = NextTestSchema();
  TempDir dir;  // --data_dir is required by ServerProcess; the PostgreSQL store never uses it
  ServerProcessOptions options{.data_dir = dir.path() + "/unused",
                               .extra_args = PostgresArgs(**pg, schema)};
  std::map<std::string, v1::TwinState> before;
  std::map<std::string, std::string> telemetry_before;  // serialised GetTelemetry answers
  std::map<std::string, uint64_t> acked;
  {
    ServerProcess server(options);
    ASSERT_TRUE(server.Start().ok()) << server.ReadLog();
    EXPECT_THAT(server.ReadLog(), HasSubstr("store=postgres"));
    auto stub = v1::TwinService::NewStub(
        grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials()));
    for (int i = 0; i < kPumps; ++i) {
      ASSERT_TRUE(RegisterSensorizedPump(*stub, PumpName(i), "gw-pg").ok());
    }
    auto client = MakeGateway(server.grpc_target(), "gw-pg");
    client->Start();
    ASSERT_TRUE(client->WaitUntilWelcomed(1, absl::Seconds(20)));
    std::vector<uint64_t> next(kPumps, 1);
    for (int f = 0; f < kFrames; ++f) {
      int i = f % kPumps;
      auto st = client->Send(Samples(PumpName(i), next[i], next[i] + kSamplesPerFrame - 1));
      ASSERT_TRUE(st.ok()) << st.status();
      next[i] += kSamplesPerFrame;
    }
    ASSERT_TRUE(client->WaitUntilAllDone(absl::Seconds(60))) << server.ReadLog();
    EXPECT_EQ(client->stats().samples_nacked, 0u);
    for (int i = 0; i < kPumps; ++i) {
      acked[PumpName(i)] = client->acked_seq(PumpName(i));
      EXPECT_EQ(acked[PumpName(i)], next[i] - 1) << "not every sample was acknowledged";
      auto twin = GetTwin(*stub, PumpName(i));
      ASSERT_TRUE(twin.ok()) << twin.status();
      before[PumpName(i)] = *twin;
      auto telemetry = AllTelemetry(*stub, PumpName(i));
      ASSERT_TRUE(telemetry.ok()) << telemetry.status();
      EXPECT_EQ(static_cast<uint64_t>(telemetry->samples_size()), acked[PumpName(i)]);
      EXPECT_TRUE(telemetry->next_page_token().empty());
      telemetry_before[PumpName(i)] = telemetry->SerializeAsString();
    }
    client->Stop();
    server.Kill();  // SIGKILL: no flush, no final snapshot
  }
  {
    ServerProcess server(options);
    ASSERT_TRUE(server.Start().ok()) << server.ReadLog();
    auto stub = v1::TwinService::NewStub(
        grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials()));
    for (int i = 0; i < kPumps; ++i) {
      auto twin = GetTwin(*stub, PumpName(i));
      ASSERT_TRUE(twin.ok()) << twin.status();
      EXPECT_EQ(twin->last_seq(), acked[PumpName(i)])
          << "acknowledged samples of " << PumpName(i) << " were lost";
      EXPECT_EQ(twin->last_seq(), before[PumpName(i)].last_seq());
      auto telemetry = AllTelemetry(*stub, PumpName(i));
      ASSERT_TRUE(telemetry.ok()) << telemetry.status();
      EXPECT_EQ(telemetry->SerializeAsString(), telemetry_before[PumpName(i)])
          << "the stored telemetry of " << PumpName(i) << " changed across the restart";
    }
    server.Kill();
  }
  // Every twin recovery builds equals the twin rebuilt from its registration and all stored
  // telemetry, read from PostgreSQL.
  auto [code, out] = RunCommand(absl::StrCat(PUMPTWIND_BINARY, " --verify --store=postgres",
                                             " '--postgres_dsn=", (*pg)->Dsn(),
                                             "' --postgres_schema=", schema, " 2>&1"));
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr(absl::StrCat("pumps=", kPumps, " exact=", kPumps)));
}

TEST(PostgresServerTest, BadStoreFlagCombinationsExitTwo) {
  TempDir dir;
  const std::string base =
      absl::StrCat(PUMPTWIND_BINARY, " --data_dir=", dir.path(),
                   " --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --http_listen=127.0.0.1:0 ");
  struct Case {
    std::string args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"--store=sqlite", "--store must be"},
      {"--store=postgres", "needs --postgres_dsn"},
      {"--postgres_dsn=host=127.0.0.1", "only used with --store=postgres"},
      {"--store=postgres --postgres_dsn=host=127.0.0.1 --backup_dir=" + dir.path() + "/b",
       "pg_basebackup"},
  };
  for (const Case& c : cases) {
    auto [code, out] = RunCommand(base + c.args + " 2>&1");
    EXPECT_EQ(code, 2) << c.args << "\n" << out;
    EXPECT_THAT(out, HasSubstr(c.message)) << c.args;
  }
}

TEST(PostgresServerTest, RetentionIsLoggedAsNotAppliedAndThePasswordIsHidden) {
  auto pg = SharedPostgresTestServer();
  ASSERT_TRUE(pg.ok()) << pg.status();
  TempDir dir;
  // Trust authentication ignores the password: the server starts and must not log it.
  std::vector<std::string> args = {"--store=postgres",
                                   "--postgres_dsn=" + (*pg)->Dsn() + " password=s3cr3t-pw",
                                   "--postgres_schema=" + NextTestSchema(), "--retention=30d"};
  ServerProcess server({.data_dir = dir.path() + "/unused", .extra_args = args});
  ASSERT_TRUE(server.Start().ok()) << server.ReadLog();
  const std::string log = server.ReadLog();
  EXPECT_THAT(log, HasSubstr("store_option_not_applied"));
  EXPECT_THAT(log, HasSubstr("password=***"));
  EXPECT_THAT(log, Not(HasSubstr("s3cr3t-pw")));
  server.Kill();
}

TEST(RedactDsnTest, HidesEveryFormOfPassword) {
  using server::RedactDsn;
  EXPECT_EQ(RedactDsn("host=db port=5432 password=abc user=u"),
            "host=db port=5432 password=*** user=u");
  EXPECT_EQ(RedactDsn("host=db password = 'a b\\' c' user=u"), "host=db password=*** user=u");
  EXPECT_EQ(RedactDsn("postgresql://u:abc@db:5432/pt?sslmode=require&password=x"),
            "postgresql://u:***@db:5432/pt?sslmode=require&password=***");
  EXPECT_EQ(RedactDsn("postgres://u@db/pt"), "postgres://u@db/pt");
  EXPECT_EQ(RedactDsn("host=db user=u"), "host=db user=u");
}

}  // namespace
}  // namespace pumptwin::testing
