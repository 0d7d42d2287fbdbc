// A minimal HTTP/1.1 client for the tests of pumptwind's HTTP/JSON API, over a plain socket
// to 127.0.0.1: one request per connection (Connection: close), and a reader of a
// Server-Sent Events stream. Every read is bounded by a deadline (poll), never by a sleep.
// Not thread-safe: one test thread per object.
#ifndef PUMPTWIN_TESTS_SUPPORT_HTTP_CLIENT_H_
#define PUMPTWIN_TESTS_SUPPORT_HTTP_CLIENT_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pumptwin::testing {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
};

// Sends `method path` with `headers` ("Name: value" each) and `body` to 127.0.0.1:port.
absl::StatusOr<HttpResponse> HttpCall(int port, const std::string& method, const std::string& path,
                                      const std::vector<std::string>& headers = {},
                                      const std::string& body = "",
                                      absl::Duration timeout = absl::Seconds(30));

struct SseEvent {
  std::string id;
  std::string event;
  std::string data;
};

// An open GET of an event stream.
class SseStream {
 public:
  ~SseStream();
  SseStream(const SseStream&) = delete;
  SseStream& operator=(const SseStream&) = delete;

  // Connects and reads the response head. The status is in status(); when it is not 200
  // the body (an error JSON) is in error_body().
  static absl::StatusOr<std::unique_ptr<SseStream>> Open(int port, const std::string& path,
                                                         const std::vector<std::string>& headers,
                                                         absl::Duration timeout);
  int status() const { return status_; }
  const std::string& content_type() const { return content_type_; }
  const std::string& error_body() const { return buffer_; }
  // The next event (comment lines skipped); nullopt when the stream ended or `timeout`
  // passed.
  std::optional<SseEvent> Next(absl::Duration timeout);

 private:
  SseStream() = default;
  bool Fill(absl::Time deadline);
  int fd_ = -1;
  int status_ = 0;
  std::string content_type_;
  std::string buffer_;
};

}  // namespace pumptwin::testing

#endif  // PUMPTWIN_TESTS_SUPPORT_HTTP_CLIENT_H_
