#include "tests/auth/auth_test_util.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "grpcpp/generic/generic_stub.h"

namespace pumptwin::testing {

absl::StatusOr<IssuedToken> IssueToken(const std::string& name, const std::string& role,
                                       const std::string& extra_args) {
  std::string cmd = absl::StrCat(PUMPTWIN_TOKEN_BINARY, " new --quiet --name ", name, " --role ",
                                 role, " ", extra_args);
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return absl::InternalError(absl::StrCat("cannot run ", cmd));
  std::string out;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int rc = pclose(p);
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  if (rc != 0 || lines.size() != 2) {
    return absl::InternalError(absl::StrCat(cmd, " exited ", rc, " printing: ", out));
  }
  return IssuedToken{lines[0], lines[1]};
}

absl::Status WriteTextFile(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

GenericResult CallEmpty(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                        const std::string& token, absl::Duration deadline) {
  return CallBytes(channel, method, token, "", deadline);
}

GenericResult CallBytes(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                        const std::string& token, const std::string& request_bytes,
                        absl::Duration deadline) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  grpc::CompletionQueue cq;
  GenericResult result;
  auto call = stub.PrepareCall(&ctx, method, &cq);
  // Each step waits for its own completion; tags are just distinct addresses.
  int tags[4];
  auto wait = [&cq](void* want) {
    void* tag = nullptr;
    bool ok = false;
    while (cq.Next(&tag, &ok)) {
      if (tag == want) return ok;
    }
    return false;
  };
  call->StartCall(&tags[0]);
  if (wait(&tags[0])) {
    grpc::Slice body(request_bytes);  // empty: every field at its default
    grpc::ByteBuffer request(&body, 1);
    call->WriteLast(request, grpc::WriteOptions(), &tags[1]);
    wait(&tags[1]);  // fails when the server already finished the call: fine
    grpc::ByteBuffer response;
    call->Read(&response, &tags[2]);
    if (wait(&tags[2])) {
      result.got_message = true;
      ctx.TryCancel();  // a stream may go on; the first message is enough
    }
  }
  call->Finish(&result.status, &tags[3]);
  wait(&tags[3]);
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
  return result;
}

pid_t FindServerChildPid() {
  pid_t self = getpid();
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return -1;
  pid_t found = -1;
  while (dirent* e = readdir(proc)) {
    int pid;
    if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
    auto stat = ReadTextFile(absl::StrCat("/proc/", pid, "/stat"));
    if (!stat.ok()) continue;
    // "pid (comm) state ppid ..."; comm may contain spaces: split after the last ')'.
    auto open = stat->find('(');
    auto close = stat->rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::string comm = stat->substr(open + 1, close - open - 1);
    std::vector<std::string> rest = absl::StrSplit(stat->substr(close + 2), ' ', absl::SkipEmpty());
    int ppid;
    if (rest.size() < 2 || !absl::SimpleAtoi(rest[1], &ppid)) continue;
    if (ppid == self && comm == "pumptwind") {
      found = pid;
      break;
    }
  }
  closedir(proc);
  return found;
}

absl::Status MakeTestCertificates(const std::string& dir) {
  auto run = [&dir](const std::string& cmd) -> absl::Status {
    std::string full = absl::StrCat("cd '", dir, "' && ", cmd, " >openssl.log 2>&1");
    if (std::system(full.c_str()) != 0) {
      auto log = ReadTextFile(dir + "/openssl.log");
      return absl::InternalError(absl::StrCat(cmd, " failed: ", log.ok() ? *log : ""));
    }
    return absl::OkStatus();
  };
  if (auto s = WriteTextFile(dir + "/server.ext",
                             "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                             "extendedKeyUsage=serverAuth\n");
      !s.ok()) {
    return s;
  }
  for (const std::string& cmd :
       {std::string("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                    "-nodes -keyout ca.key -out ca.pem -subj /CN=pumptwin-test-ca -days 2"),
        std::string("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                    "-keyout server.key -out server.csr -subj /CN=localhost"),
        std::string("openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
                    "-CAcreateserial -days 2 -out server.pem -extfile server.ext")}) {
    if (auto s = run(cmd); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace pumptwin::testing
