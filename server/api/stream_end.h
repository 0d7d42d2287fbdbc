// StreamEnd: the end of a server write stream that may be asked for while a write is
// outstanding (gRPC allows one write at a time and one Finish). Request finishes at once
// when no write is outstanding; otherwise the reactor's OnWriteDone calls AfterWrite. The
// first request's status wins. Not thread-safe: the reactor guards it with its own mutex.
#ifndef PUMPTWIN_SERVER_API_STREAM_END_H_
#define PUMPTWIN_SERVER_API_STREAM_END_H_

#include <utility>

#include "grpcpp/grpcpp.h"

namespace pumptwin::server {

class StreamEnd {
 public:
  bool requested() const { return requested_; }

  // Asks to end the stream of `reactor` with `status`; `writing`: a write is outstanding.
  template <typename Reactor>
  void Request(Reactor* reactor, grpc::Status status, bool writing) {
    if (requested_) return;
    requested_ = true;
    status_ = std::move(status);
    if (!writing) FinishOnce(reactor);
  }
  // With no write outstanding: finishes when an end was requested (once). Returns whether
  // one was requested.
  template <typename Reactor>
  bool AfterWrite(Reactor* reactor) {
    if (requested_) FinishOnce(reactor);
    return requested_;
  }

 private:
  template <typename Reactor>
  void FinishOnce(Reactor* reactor) {
    if (finished_) return;
    finished_ = true;
    reactor->Finish(status_);
  }

  bool requested_ = false;
  bool finished_ = false;
  grpc::Status status_;
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_API_STREAM_END_H_
