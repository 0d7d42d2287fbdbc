// What only PostgresStore has: a database server that crashes, stops and comes back, failed
// transactions, durability settings, schemas, connection options. The Store contract itself
// runs against PostgreSQL in store_contract_test.cc.
#include "server/store/postgres_store.h"

#include <libpq-fe.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "store_test_util.h"
#include "tests/store/postgres_test_server.h"

namespace pumptwin::store {
namespace {

using pumptwin::testing::NextTestSchema;
using pumptwin::testing::PostgresTestServer;
using pumptwin::testing::SharedPostgresTestServer;
using testing::NumberedGroup;

// Runs `sql` (simple protocol, several statements allowed); the error message, or "".
std::string ExecSql(const std::string& dsn, const std::string& sql) {
  PGconn* c = PQconnectdb(dsn.c_str());
  std::string error;
  if (PQstatus(c) != CONNECTION_OK) {
    error = PQerrorMessage(c);
  } else {
    PGresult* r = PQexec(c, sql.c_str());
    const ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) error = PQresultErrorMessage(r);
    PQclear(r);
  }
  PQfinish(c);
  return error;
}

PostgresTestServer* Shared() {
  absl::StatusOr<PostgresTestServer*> server = SharedPostgresTestServer();
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *server : nullptr;
}

std::unique_ptr<PostgresStore> OpenOrDie(const std::string& dsn, const std::string& schema) {
  auto opened = PostgresStore::Open({.dsn = dsn, .schema = schema});
  EXPECT_TRUE(opened.ok()) << opened.status();
  return opened.ok() ? *std::move(opened) : nullptr;
}

TEST(PostgresStore, AcknowledgedGroupsSurviveADatabaseCrashAndTheStoreReconnects) {
  auto server = PostgresTestServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  auto store = OpenOrDie((*server)->Dsn(), "pumptwin");
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(store->Commit(NumberedGroup(i)).ok());
  // Immediate shutdown: no checkpoint, the restart replays the WAL.
  ASSERT_TRUE((*server)->Crash().ok());
  ASSERT_TRUE((*server)->Restart().ok()) << (*server)->Log();
  EXPECT_NE((*server)->Log().find("database system was interrupted"), std::string::npos)
      << "the restart did not recover from a crash:\n"
      << (*server)->Log();
  const int64_t opened_before = store->connections_opened();
  // The same store, its pooled connections to the crashed server: the first call works.
  EXPECT_EQ(*store->LastAlertCursor(), 20u);
  EXPECT_GT(store->connections_opened(), opened_before);
  EXPECT_EQ(*store->GetSnapshot("p1"), "snapshot-after-group-19");
  EXPECT_EQ(store->GetPumpHead("p2")->last_seq, 70u - 10u);
  ASSERT_TRUE(store->Commit(NumberedGroup(20)).ok());
  auto reopened = OpenOrDie((*server)->Dsn(), "pumptwin");
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(*reopened->LastAlertCursor(), 21u);
  EXPECT_EQ(*reopened->LastAuditSeq(), 21u);
}

TEST(PostgresStore, CommitsWhileTheServerIsDownFailUnavailableAndStoreNothing) {
  auto server = PostgresTestServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  auto store = OpenOrDie((*server)->Dsn(), "pumptwin");
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit(NumberedGroup(0)).ok());
  ASSERT_TRUE((*server)->Stop().ok());
  absl::Status down = store->Commit(NumberedGroup(1));
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable) << down;
  EXPECT_EQ(store->GetPump("p0").status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE((*server)->Restart().ok()) << (*server)->Log();
  EXPECT_EQ(*store->LastAlertCursor(), 1u);
  EXPECT_EQ(store->GetPumpHead("p1").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store->Commit(NumberedGroup(1)).ok());  // the retry of the same group
  EXPECT_EQ(*store->LastAlertCursor(), 2u);
  EXPECT_EQ(store->GetPumpHead("p1")->last_seq, 10u);
}

TEST(PostgresStore, AStatementFailingMidGroupRollsBackTheWholeGroup) {
  PostgresTestServer* server = Shared();
  ASSERT_NE(server, nullptr);
  const std::string schema = NextTestSchema();
  auto store = OpenOrDie(server->Dsn(), schema);
  ASSERT_NE(store, nullptr);
  // Meta is written last in a commit: make it fail as a full disk would.
  ASSERT_EQ(
      ExecSql(server->Dsn(),
              absl::StrCat("CREATE FUNCTION ", schema,
                           ".fail_meta() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE "
                           "EXCEPTION 'no space left (test)' USING ERRCODE = 'disk_full'; "
                           "END $$; CREATE TRIGGER fail_meta BEFORE INSERT ON ",
                           schema, ".meta FOR EACH ROW EXECUTE FUNCTION ", schema, ".fail_meta()")),
      "");
  WriteGroup g = NumberedGroup(0);
  g.pumps.emplace_back("p0", "registration");
  g.meta.emplace_back("next_alert", "2");
  absl::Status failed = store->Commit(g);
  EXPECT_EQ(failed.code(), absl::StatusCode::kUnavailable) << failed;
  EXPECT_TRUE(absl::StrContains(failed.message(), "no space left (test)")) << failed;
  EXPECT_EQ(store->GetPump("p0").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->GetSnapshot("p0").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->GetPumpHead("p0").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*store->LastAlertCursor(), 0u);
  EXPECT_EQ(*store->LastAuditSeq(), 0u);
  ASSERT_EQ(ExecSql(server->Dsn(), absl::StrCat("DROP TRIGGER fail_meta ON ", schema, ".meta")),
            "");
  ASSERT_TRUE(store->Commit(g).ok());
  EXPECT_EQ(*store->GetPump("p0"), "registration");
  EXPECT_EQ(*store->GetMeta("next_alert"), "2");
  EXPECT_EQ(*store->LastAlertCursor(), 1u);
}

TEST(PostgresStore, RefusesAServerThatCouldLoseAcknowledgedCommits) {
  PostgresTestServer* server = Shared();
  ASSERT_NE(server, nullptr);
  auto opened = PostgresStore::Open(
      {.dsn = server->Dsn() + " options='-c synchronous_commit=off'", .schema = NextTestSchema()});
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition) << opened.status();
  EXPECT_TRUE(absl::StrContains(opened.status().message(), "synchronous_commit=off"))
      << opened.status();
  auto local = PostgresStore::Open({.dsn = server->Dsn() + " options='-c synchronous_commit=local'",
                                    .schema = NextTestSchema()});
  EXPECT_TRUE(local.ok()) << local.status();
}

TEST(PostgresStore, AReadOnlyServerIsUnavailableAndSaysSo) {
  PostgresTestServer* server = Shared();
  ASSERT_NE(server, nullptr);
  const std::string schema = NextTestSchema();
  ASSERT_NE(OpenOrDie(server->Dsn(), schema), nullptr);  // the schema exists
  // What a standby (or a primary demoted by failover) answers: read-only transactions.
  auto opened = PostgresStore::Open(
      {.dsn = server->Dsn() + " options='-c default_transaction_read_only=on'", .schema = schema});
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kUnavailable) << opened.status();
  EXPECT_TRUE(absl::StrContains(opened.status().message(), "read-only server")) << opened.status();
}

TEST(PostgresStore, BadOptionsAndAnUnreachableServerAreTold) {
  EXPECT_EQ(PostgresStore::Open({.dsn = ""}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PostgresStore::Open({.dsn = "host=127.0.0.1 port"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  for (const char* schema : {"", "Upper", "1abc", "a-b", "a\"b"}) {
    EXPECT_EQ(PostgresStore::Open({.dsn = "host=127.0.0.1", .schema = schema}).status().code(),
              absl::StatusCode::kInvalidArgument)
        << schema;
  }
  PostgresTestServer* server = Shared();
  ASSERT_NE(server, nullptr);
  auto missing = PostgresStore::Open({.dsn = server->Dsn("no_such_database")});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kUnavailable) << missing.status();
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "no_such_database"))
      << missing.status();
}

TEST(PostgresStore, UnknownFormatVersionIsRefused) {
  PostgresTestServer* server = Shared();
  ASSERT_NE(server, nullptr);
  const std::string schema = NextTestSchema();
  {
    auto store = OpenOrDie(server->Dsn(), schema);
    ASSERT_NE(store, nullptr);
    WriteGroup g;
    g.meta.emplace_back("pumptwin.store.format_version", "2");
    ASSERT_TRUE(store->Commit(g).ok());
  }
  auto store = PostgresStore::Open({.dsn = server->Dsn(), .schema = schema});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
}

TEST(PostgresStore, EachSchemaIsAStoreOfItsOwnWithKeyValueTables) {
  PostgresTestServer* server = Shared();
  ASSERT_NE(server, nullptr);
  const std::string a = NextTestSchema(), b = NextTestSchema();
  auto store_a = OpenOrDie(server->Dsn(), a);
  auto store_b = OpenOrDie(server->Dsn(), b);
  ASSERT_NE(store_a, nullptr);
  ASSERT_NE(store_b, nullptr);
  auto empty = store_a->ApproximateSizes();
  ASSERT_TRUE(empty.ok()) << empty.status();
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(store_a->Commit(NumberedGroup(i)).ok());
  EXPECT_EQ(*store_a->LastAlertCursor(), 30u);
  EXPECT_EQ(*store_b->LastAlertCursor(), 0u);
  auto grown = store_a->ApproximateSizes();
  ASSERT_TRUE(grown.ok()) << grown.status();
  EXPECT_GT(grown->live_data_bytes, empty->live_data_bytes);
  // The documented layout (docs/scaling.md): 7 tables, (k bytea primary key, v bytea).
  EXPECT_EQ(ExecSql(server->Dsn(),
                    absl::StrCat("DO $$ BEGIN IF (SELECT count(*) FROM information_schema.columns "
                                 "WHERE table_schema = '",
                                 a,
                                 "' AND data_type = 'bytea' AND column_name IN ('k', 'v')) <> 14 "
                                 "THEN RAISE EXCEPTION 'unexpected layout'; END IF; END $$")),
            "");
}

TEST(PostgresStore, ReplicasOpeningANewSchemaAtOnceShareIt) {
  PostgresTestServer* server = Shared();
  ASSERT_NE(server, nullptr);
  const std::string schema = NextTestSchema();
  constexpr int kOpeners = 4;
  std::vector<absl::StatusOr<std::unique_ptr<PostgresStore>>> opened(kOpeners);
  std::vector<std::thread> threads;
  for (int i = 0; i < kOpeners; ++i) {
    threads.emplace_back(
        [&, i] { opened[i] = PostgresStore::Open({.dsn = server->Dsn(), .schema = schema}); });
  }
  for (std::thread& t : threads) t.join();
  for (const auto& o : opened) ASSERT_TRUE(o.ok()) << o.status();
  ASSERT_TRUE((*opened[0])->Commit(NumberedGroup(0)).ok());
  for (const auto& o : opened) EXPECT_EQ(*(*o)->LastAlertCursor(), 1u);
}

TEST(PostgresTestServer, MissingServerBinariesFailAndNameThePackages) {
  testing::ScratchDir empty;
  ASSERT_EQ(::setenv("PUMPTWIN_POSTGRES_BIN_DIR", empty.path().c_str(), 1), 0);
  auto server = PostgresTestServer::Start();
  ::unsetenv("PUMPTWIN_POSTGRES_BIN_DIR");
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition) << server.status();
  EXPECT_TRUE(
      absl::StrContains(server.status().message(), "install the Debian packages postgresql"))
      << server.status();
}

}  // namespace
}  // namespace pumptwin::store
