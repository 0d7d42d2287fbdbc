#include "tests/store/postgres_test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace pumptwin::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kInstallHint[] =
    "install the Debian packages postgresql and libpq-dev (tools/scripts/common.sh installs "
    "them)";

bool HasServerBinaries(const fs::path& bin) {
  std::error_code ec;
  return fs::exists(bin / "initdb", ec) && fs::exists(bin / "postgres", ec);
}

// PUMPTWIN_POSTGRES_BIN_DIR, else the newest /usr/lib/postgresql/<major>/bin (Debian's
// layout); "" when that directory lacks initdb or postgres.
std::string FindBinDir() {
  if (const char* env = std::getenv("PUMPTWIN_POSTGRES_BIN_DIR"); env != nullptr && *env) {
    return HasServerBinaries(env) ? env : "";
  }
  std::string best;
  int best_major = -1;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    int major = 0;
    if (!absl::SimpleAtoi(e.path().filename().string(), &major)) continue;
    if (!HasServerBinaries(e.path() / "bin")) continue;
    if (major > best_major) {
      best_major = major;
      best = (e.path() / "bin").string();
    }
  }
  return best;
}

// True when every directory from / down to `dir` lets others through (o+x): a server run as
// another user can reach its data directory below it.
bool TraversableByOthers(const fs::path& dir) {
  fs::path p;
  for (const fs::path& part : fs::absolute(dir)) {
    p /= part;
    struct stat st;
    if (::stat(p.c_str(), &st) != 0 || (st.st_mode & S_IXOTH) == 0) return false;
  }
  return true;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct SpawnSpec {
  std::vector<std::string> args;
  std::string log_path;
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  int death_signal = SIGKILL;  // sent to the child when this thread exits
};

// fork + exec with stdout/stderr appended to the log, as another user when asked. Only
// async-signal-safe calls between fork and exec.
absl::StatusOr<pid_t> Spawn(const SpawnSpec& spec) {
  std::vector<char*> argv;
  std::vector<std::string> args = spec.args;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int log_fd = ::open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError(absl::StrCat("cannot open ", spec.log_path));
  if (spec.switch_user && ::fchown(log_fd, spec.uid, spec.gid) != 0) {
    ::close(log_fd);
    return absl::InternalError(absl::StrCat("cannot chown ", spec.log_path));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return absl::InternalError("fork failed");
  }
  if (pid == 0) {
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    if (spec.switch_user) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(spec.gid) != 0 || ::setuid(spec.uid) != 0) {
        ::_exit(126);
      }
    }
    // After the user switch (which clears it): never outlive the test.
    ::prctl(PR_SET_PDEATHSIG, spec.death_signal);
    if (::getppid() != parent) ::_exit(125);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  return pid;
}

// Waits for `pid` to exit, polling with a growing interval up to `timeout`. Returns the
// wait status, or nullopt-like -1 on timeout.
int WaitExit(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration pause = absl::Milliseconds(1);
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return 0;  // not our child any more
    if (absl::Now() >= deadline) return -1;
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Milliseconds(50));
  }
}

}  // namespace

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

absl::StatusOr<std::unique_ptr<PostgresTestServer>> PostgresTestServer::Start() {
  absl::StatusOr<std::unique_ptr<PostgresTestServer>> server = Prepare();
  if (!server.ok()) return server.status();
  if (absl::Status s = (*server)->InitDb(); !s.ok()) return s;
  if (absl::Status s = (*server)->LaunchOnFreePort(); !s.ok()) return s;
  return server;
}

absl::StatusOr<std::unique_ptr<PostgresTestServer>> PostgresTestServer::StartStandby(
    const PostgresTestServer& primary, absl::string_view name) {
  absl::StatusOr<std::unique_ptr<PostgresTestServer>> standby = Prepare();
  if (!standby.ok()) return standby.status();
  PostgresTestServer& s = **standby;
  // A copy of the running primary, with standby.signal (-R); WAL streamed during the copy.
  absl::Status copied = s.RunToCompletion(
      {s.bin_dir_ + "/pg_basebackup", "-h", "127.0.0.1", "-p", absl::StrCat(primary.port_), "-U",
       "postgres", "-D", s.dir_ + "/data", "-X", "stream", "-R", "--no-sync", "--checkpoint=fast"},
      s.dir_ + "/basebackup.log");
  if (!copied.ok()) return copied;
  s.extra_args_ = PrimaryConnInfo(primary, name);
  if (absl::Status l = s.LaunchOnFreePort(); !l.ok()) return l;
  return standby;
}

std::vector<std::string> PostgresTestServer::PrimaryConnInfo(const PostgresTestServer& primary,
                                                             absl::string_view name) {
  return {"-c", absl::StrCat("primary_conninfo=host=127.0.0.1 port=", primary.port_,
                             " user=postgres application_name=", name)};
}

absl::Status PostgresTestServer::Follow(const PostgresTestServer& primary, absl::string_view name) {
  if (pid_ > 0) {
    if (absl::Status s = Stop(); !s.ok()) return s;
  }
  extra_args_ = PrimaryConnInfo(primary, name);
  return Launch();
}

absl::Status PostgresTestServer::LaunchOnFreePort() {
  // A port found free can be taken before postgres binds it: try a few.
  absl::Status launched;
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = FreeLoopbackPort();
    launched = Launch();
    if (launched.ok() || !absl::StrContains(launched.message(), "could not bind")) break;
  }
  return launched;
}

absl::StatusOr<std::unique_ptr<PostgresTestServer>> PostgresTestServer::Prepare() {
  auto server = std::unique_ptr<PostgresTestServer>(new PostgresTestServer());
  server->bin_dir_ = FindBinDir();
  if (server->bin_dir_.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no PostgreSQL server binaries (initdb, postgres) in $PUMPTWIN_POSTGRES_BIN_DIR or "
        "else /usr/lib/postgresql/*/bin: ",
        kInstallHint));
  }
  if (::geteuid() == 0) {
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "running as root, and PostgreSQL refuses root: there is no `postgres` user to run "
          "it as; ",
          kInstallHint));
    }
    server->switch_user_ = true;
    server->uid_ = pw->pw_uid;
    server->gid_ = pw->pw_gid;
  }
  fs::path base = "/tmp";
  if (const char* tmp = std::getenv("TMPDIR"); tmp != nullptr && *tmp != '\0') {
    if (!server->switch_user_ || TraversableByOthers(tmp)) base = tmp;
  }
  // A RAM file system when there is one with room: no disk traffic for the server's files
  // and fsyncs (the tests check transactions and WAL recovery, not the disk).
  struct statvfs shm;
  if (::statvfs("/dev/shm", &shm) == 0 &&
      static_cast<uint64_t>(shm.f_bavail) * shm.f_frsize >= (uint64_t{1} << 30) &&
      TraversableByOthers("/dev/shm")) {
    base = "/dev/shm";
  }
  if (const char* dir = std::getenv("PUMPTWIN_POSTGRES_TEST_DIR"); dir != nullptr && *dir) {
    base = dir;
  }
  std::string pattern = (base / "pumptwin_pg_XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", pattern, " failed"));
  }
  server->dir_ = pattern;
  if (server->switch_user_ && ::chown(server->dir_.c_str(), server->uid_, server->gid_) != 0) {
    return absl::InternalError(absl::StrCat("cannot chown ", server->dir_, " to postgres"));
  }
  return server;
}

PostgresTestServer::~PostgresTestServer() {
  // Immediate shutdown: the directory is removed anyway, a checkpoint would only cost fsyncs.
  if (pid_ > 0) (void)Crash();
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

absl::Status PostgresTestServer::RunToCompletion(std::vector<std::string> args,
                                                 const std::string& log) {
  SpawnSpec spec{
      .args = std::move(args),
      .log_path = log,
      .switch_user = switch_user_,
      .uid = uid_,
      .gid = gid_,
  };
  absl::StatusOr<pid_t> pid = Spawn(spec);
  if (!pid.ok()) return pid.status();
  const int status = WaitExit(*pid, absl::Minutes(2));
  if (status == -1) {
    ::kill(*pid, SIGKILL);
    ::waitpid(*pid, nullptr, 0);
    return absl::InternalError(
        absl::StrCat(spec.args[0], " did not finish in 2 min; log:\n", ReadFile(log)));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat(spec.args[0], " failed (wait status ", status, "); log:\n", ReadFile(log)));
  }
  return absl::OkStatus();
}

// initdb costs seconds on a loaded machine: the first server initialises a template
// directory next to the servers' directories (pumptwin_pg_template_<major>, published by an
// atomic rename, kept for later runs); every server starts from a copy of it.
absl::Status PostgresTestServer::InitDb() {
  const fs::path bin(bin_dir_);
  const std::string major = bin.parent_path().filename().string();
  const fs::path base = fs::path(dir_).parent_path();
  const fs::path tmpl = base / absl::StrCat("pumptwin_pg_template_", major);
  const std::string log = dir_ + "/initdb.log";
  std::error_code ec;
  if (!fs::exists(tmpl / "PG_VERSION", ec)) {
    const std::string fresh = dir_ + "/template";
    absl::Status made =
        RunToCompletion({bin_dir_ + "/initdb", "-D", fresh, "-U", "postgres", "-A", "trust",
                         "--no-locale", "-E", "UTF8", "--no-sync", "--no-instructions"},
                        log);
    if (!made.ok()) return made;
    fs::rename(fresh, tmpl, ec);  // fails when another test published one first: use that
    if (ec) fs::remove_all(fresh, ec);
  }
  return RunToCompletion({"/bin/cp", "-a", tmpl.string(), dir_ + "/data"}, log);
}

absl::Status PostgresTestServer::Launch() {
  SpawnSpec spec{
      .args = {bin_dir_ + "/postgres", "-D", dir_ + "/data", "-h", "127.0.0.1", "-p",
               absl::StrCat(port_), "-k", dir_, "-c", "shared_buffers=16MB", "-c",
               "max_connections=50", "-c", "logging_collector=off"},
      .log_path = dir_ + "/postgres.log",
      .switch_user = switch_user_,
      .uid = uid_,
      .gid = gid_,
      .death_signal = SIGQUIT,  // immediate shutdown: postgres stops its backends too
  };
  spec.args.insert(spec.args.end(), extra_args_.begin(), extra_args_.end());
  const std::string log_before = Log();
  absl::StatusOr<pid_t> pid = Spawn(spec);
  if (!pid.ok()) return pid.status();
  pid_ = *pid;
  const std::string dsn = Dsn();
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  absl::Duration pause = absl::Milliseconds(1);
  while (true) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      const std::string log = Log().substr(log_before.size());
      return absl::InternalError(
          absl::StrCat("postgres exited while starting (wait status ", status, "); log:\n", log));
    }
    if (PQping(dsn.c_str()) == PQPING_OK) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      (void)Signal(SIGQUIT, absl::Seconds(10));
      return absl::InternalError(absl::StrCat("postgres did not accept connections in 60 s; log:\n",
                                              Log().substr(log_before.size())));
    }
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Milliseconds(50));
  }
}

std::string PostgresTestServer::Dsn(absl::string_view dbname) const {
  return absl::StrCat("host=127.0.0.1 port=", port_, " user=postgres dbname=", dbname,
                      " connect_timeout=10 gssencmode=disable sslmode=disable");
}

absl::Status PostgresTestServer::Signal(int sig, absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("postgres is not running");
  ::kill(pid_, sig);
  const int status = WaitExit(pid_, timeout);
  if (status == -1) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return absl::DeadlineExceededError(absl::StrCat("postgres did not stop on signal ", sig,
                                                    " within ", absl::FormatDuration(timeout),
                                                    "; killed"));
  }
  pid_ = -1;
  return absl::OkStatus();
}

absl::Status PostgresTestServer::Stop() { return Signal(SIGINT, absl::Seconds(30)); }
absl::Status PostgresTestServer::Crash() { return Signal(SIGQUIT, absl::Seconds(30)); }

absl::Status PostgresTestServer::Kill() { return Signal(SIGKILL, absl::Seconds(30)); }

absl::StatusOr<std::string> PostgresTestServer::Query(absl::string_view sql) const {
  PGconn* c = PQconnectdb(Dsn().c_str());
  absl::StatusOr<std::string> out;
  if (PQstatus(c) != CONNECTION_OK) {
    out = absl::UnavailableError(PQerrorMessage(c));
  } else {
    PGresult* r = PQexec(c, std::string(sql).c_str());
    const ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK && PQntuples(r) > 0) {
      out = std::string(PQgetvalue(r, 0, 0));
    } else if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
      out = std::string();
    } else {
      out = absl::InternalError(absl::StrCat(sql, ": ", PQresultErrorMessage(r)));
    }
    PQclear(r);
  }
  PQfinish(c);
  return out;
}

absl::Status PostgresTestServer::Promote() {
  absl::StatusOr<std::string> done = Query("SELECT pg_promote(true, 60)");
  if (!done.ok()) return done.status();
  if (*done != "t") return absl::InternalError("pg_promote did not finish within 60 s");
  return absl::OkStatus();
}

absl::Status PostgresTestServer::Restart() {
  if (pid_ > 0) return absl::FailedPreconditionError("postgres is still running");
  return Launch();
}

std::string PostgresTestServer::Log() const { return ReadFile(dir_ + "/postgres.log"); }

absl::StatusOr<absl::Duration> PostgresTestServer::CpuTime() const {
  if (pid_ <= 0) return absl::FailedPreconditionError("postgres is not running");
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  double seconds = 0;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator("/proc", ec)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e.path().filename().string(), &pid)) continue;
    // /proc/<pid>/stat: "pid (comm) state ppid ... utime(14) stime(15)"; comm may hold spaces.
    const std::string stat = ReadFile(e.path().string() + "/stat");
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
    int ppid = 0;
    double utime = 0, stime = 0;
    if (fields.size() < 13 || !absl::SimpleAtoi(fields[1], &ppid) ||
        !absl::SimpleAtod(fields[11], &utime) || !absl::SimpleAtod(fields[12], &stime)) {
      continue;
    }
    if (pid == pid_ || ppid == pid_) seconds += (utime + stime) / tick;
  }
  return absl::Seconds(seconds);
}

absl::StatusOr<PostgresTestServer*> SharedPostgresTestServer() {
  static absl::StatusOr<std::unique_ptr<PostgresTestServer>>* const shared =
      new absl::StatusOr<std::unique_ptr<PostgresTestServer>>(PostgresTestServer::Start());
  // Stopped at exit (fast shutdown, directory removed).
  static const int stop_at_exit = std::atexit([] { delete shared; });
  (void)stop_at_exit;
  if (!shared->ok()) return shared->status();
  return shared->value().get();
}

std::string NextTestSchema() {
  static int next = 0;
  return absl::StrCat("test_", ++next);
}

}  // namespace pumptwin::testing
