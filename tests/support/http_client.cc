#include "tests/support/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace pumptwin::testing {
namespace {

absl::StatusOr<int> Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot connect to 127.0.0.1:", port));
  }
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads what is available into `out`, waiting until `deadline`; false at EOF, error or
// deadline.
bool ReadSome(int fd, std::string* out, absl::Time deadline) {
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return false;
  pollfd p{fd, POLLIN, 0};
  int r = ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
  if (r <= 0) return false;
  char buf[65536];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n <= 0) return false;
  out->append(buf, static_cast<size_t>(n));
  return true;
}

std::string Request(const std::string& method, const std::string& path,
                    const std::vector<std::string>& headers, const std::string& body, bool close) {
  std::string req = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  for (const std::string& h : headers) absl::StrAppend(&req, h, "\r\n");
  if (!body.empty() || method == "POST") {
    absl::StrAppend(&req, "Content-Type: application/json\r\nContent-Length: ", body.size(),
                    "\r\n");
  }
  if (close) absl::StrAppend(&req, "Connection: close\r\n");
  absl::StrAppend(&req, "\r\n", body);
  return req;
}

// Parses "HTTP/1.1 200 OK\r\nName: v\r\n..." up to the blank line.
bool ParseHead(const std::string& head, int* status, std::map<std::string, std::string>* h) {
  std::vector<std::string> lines = absl::StrSplit(head, "\r\n");
  if (lines.empty()) return false;
  std::vector<std::string> first = absl::StrSplit(lines[0], ' ');
  if (first.size() < 2 || !absl::SimpleAtoi(first[1], status)) return false;
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    (*h)[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  return true;
}

}  // namespace

absl::StatusOr<HttpResponse> HttpCall(int port, const std::string& method, const std::string& path,
                                      const std::vector<std::string>& headers,
                                      const std::string& body, absl::Duration timeout) {
  auto fd = Connect(port);
  if (!fd.ok()) return fd.status();
  absl::Time deadline = absl::Now() + timeout;
  std::string data;
  bool sent = SendAll(*fd, Request(method, path, headers, body, /*close=*/true));
  while (ReadSome(*fd, &data, deadline)) {
  }
  ::close(*fd);
  if (!sent && data.empty()) return absl::UnavailableError("send failed");
  size_t end = data.find("\r\n\r\n");
  if (end == std::string::npos) {
    return absl::DeadlineExceededError(absl::StrCat("no complete response head: ", data));
  }
  HttpResponse r;
  if (!ParseHead(data.substr(0, end), &r.status, &r.headers)) {
    return absl::InternalError(absl::StrCat("bad response head: ", data.substr(0, end)));
  }
  r.body = data.substr(end + 4);
  return r;
}

SseStream::~SseStream() {
  if (fd_ >= 0) ::close(fd_);
}

absl::StatusOr<std::unique_ptr<SseStream>> SseStream::Open(int port, const std::string& path,
                                                           const std::vector<std::string>& headers,
                                                           absl::Duration timeout) {
  auto fd = Connect(port);
  if (!fd.ok()) return fd.status();
  std::unique_ptr<SseStream> s(new SseStream());
  s->fd_ = *fd;
  std::vector<std::string> h = headers;
  h.push_back("Accept: text/event-stream");
  if (!SendAll(s->fd_, Request("GET", path, h, "", /*close=*/false))) {
    return absl::UnavailableError("send failed");
  }
  absl::Time deadline = absl::Now() + timeout;
  size_t end;
  while ((end = s->buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (!ReadSome(s->fd_, &s->buffer_, deadline)) {
      return absl::DeadlineExceededError("no response head from the event stream");
    }
  }
  std::map<std::string, std::string> hs;
  if (!ParseHead(s->buffer_.substr(0, end), &s->status_, &hs)) {
    return absl::InternalError("bad response head");
  }
  s->content_type_ = hs["content-type"];
  s->buffer_.erase(0, end + 4);
  if (s->status_ != 200) {
    // An error answer: read its body whole (Content-Length).
    size_t want = 0;
    (void)absl::SimpleAtoi(hs["content-length"], &want);
    while (s->buffer_.size() < want && ReadSome(s->fd_, &s->buffer_, deadline)) {
    }
  }
  return s;
}

std::optional<SseEvent> SseStream::Next(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    size_t end = buffer_.find("\n\n");
    while (end != std::string::npos) {
      std::string block = buffer_.substr(0, end);
      buffer_.erase(0, end + 2);
      SseEvent e;
      bool any = false;
      for (absl::string_view line : absl::StrSplit(block, '\n')) {
        if (absl::ConsumePrefix(&line, "id: ")) {
          e.id = std::string(line);
          any = true;
        } else if (absl::ConsumePrefix(&line, "event: ")) {
          e.event = std::string(line);
          any = true;
        } else if (absl::ConsumePrefix(&line, "data: ")) {
          absl::StrAppend(&e.data, line);
          any = true;
        }
      }
      if (any) return e;  // a block of comments only is skipped
      end = buffer_.find("\n\n");
    }
    if (!ReadSome(fd_, &buffer_, deadline)) return std::nullopt;
  }
}

}  // namespace pumptwin::testing
