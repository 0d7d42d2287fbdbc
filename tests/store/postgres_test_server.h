// PostgresTestServer: a throwaway PostgreSQL server for tests and benchmarks. initdb into a
// fresh temporary directory, then `postgres` listening on 127.0.0.1 only, on a free port,
// with its Unix socket in that directory; stopped (bounded) and removed on destruction.
// PostgreSQL refuses to run as root: when this process is root, initdb and postgres run as
// the `postgres` system user (the Debian package creates it) and the directory is theirs.
// The directories live in /dev/shm when it is a RAM file system with 1 GiB free, else in
// $TMPDIR or /tmp ($PUMPTWIN_POSTGRES_TEST_DIR overrides). The data directory is a copy of a
// template initialised once (pumptwin_pg_template_<major> next to them, kept for later runs).
// Readiness is polled with libpq's PQping, bounded in time; the server gets PR_SET_PDEATHSIG so
// that it never outlives a crashed test. Not thread-safe: one thread drives one server.
#ifndef PUMPTWIN_TESTS_STORE_POSTGRES_TEST_SERVER_H_
#define PUMPTWIN_TESTS_STORE_POSTGRES_TEST_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pumptwin::testing {

class PostgresTestServer {
 public:
  // FAILED_PRECONDITION (message names the Debian package to install) when the server
  // binaries are missing; INTERNAL with the server's log when it does not come up.
  static absl::StatusOr<std::unique_ptr<PostgresTestServer>> Start();
  // A streaming standby of the running `primary` (pg_basebackup, then postgres in standby
  // mode, hot standby) connecting with application_name `name`, the name
  // synchronous_standby_names lists. Its own directory and port.
  static absl::StatusOr<std::unique_ptr<PostgresTestServer>> StartStandby(
      const PostgresTestServer& primary, absl::string_view name);
  ~PostgresTestServer();
  PostgresTestServer(const PostgresTestServer&) = delete;
  PostgresTestServer& operator=(const PostgresTestServer&) = delete;

  // libpq connection string for `dbname` as the superuser `postgres` (trust auth, loopback).
  std::string Dsn(absl::string_view dbname = "postgres") const;
  int port() const { return port_; }
  bool running() const { return pid_ > 0; }

  // Fast shutdown (SIGINT: checkpoint, clean stop); waits for the exit, bounded.
  absl::Status Stop();
  // Immediate shutdown (SIGQUIT): no checkpoint, the next start replays the WAL like after a
  // power cut of the database host.
  absl::Status Crash();
  // SIGKILL of the postmaster: what kill -9 of the database server does (no shutdown at all;
  // its backends exit when they notice).
  absl::Status Kill();
  // Promotes this standby to a primary (pg_promote, waiting until it is done).
  absl::Status Promote();
  // Runs `sql` as the superuser: the first column of the first row ("" when none).
  absl::StatusOr<std::string> Query(absl::string_view sql) const;
  // A standby (stopped or running) follows `primary` from its next start: a promoted standby
  // after a failover. Restarts it when running.
  absl::Status Follow(const PostgresTestServer& primary, absl::string_view name);
  // Starts the stopped server again on the same directory and port; waits until ready.
  absl::Status Restart();
  // Everything the server wrote to its log so far.
  std::string Log() const;
  // CPU time (user + system) used so far by the server and its live child processes
  // (backends, WAL writer, checkpointer...), from /proc: benchmarks' per-commit costs.
  absl::StatusOr<absl::Duration> CpuTime() const;

 private:
  PostgresTestServer() = default;
  // The binaries, the user to run as, a fresh temporary directory; nothing started.
  static absl::StatusOr<std::unique_ptr<PostgresTestServer>> Prepare();
  absl::Status LaunchOnFreePort();
  static std::vector<std::string> PrimaryConnInfo(const PostgresTestServer& primary,
                                                  absl::string_view name);
  absl::Status InitDb();
  // Runs a program (as the server's user) to completion, bounded; output to `log`.
  absl::Status RunToCompletion(std::vector<std::string> args, const std::string& log);
  absl::Status Launch();  // postgres on port_; waits until it answers
  absl::Status Signal(int sig, absl::Duration timeout);

  std::string bin_dir_;
  std::string dir_;  // temporary: data/, the socket, the logs
  uid_t uid_ = 0;    // the user the server runs as
  gid_t gid_ = 0;
  bool switch_user_ = false;
  int port_ = 0;
  pid_t pid_ = -1;
  std::vector<std::string> extra_args_;  // more postgres arguments (a standby's primary)
};

// One server for every test of this process, started on first use and stopped at exit;
// tests that share it keep apart with a schema each (NextTestSchema). The start error, every
// time, when it could not start.
absl::StatusOr<PostgresTestServer*> SharedPostgresTestServer();

// A TCP port on 127.0.0.1 free at the time of the call (0 if none could be bound).
int FreeLoopbackPort();
// "test_1", "test_2", ...: a schema name no other test of this process uses.
std::string NextTestSchema();

}  // namespace pumptwin::testing

#endif  // PUMPTWIN_TESTS_STORE_POSTGRES_TEST_SERVER_H_
