// RawBidiStream: a bidirectional gRPC stream of raw bytes (grpc::ByteBuffer both ways), to
// send what a typed stub cannot: bytes that are not a valid protobuf message, or one larger
// than the client would normally build. Test-only; one thread per stream.
#ifndef PUMPTWIN_TESTS_SUPPORT_RAW_STREAM_H_
#define PUMPTWIN_TESTS_SUPPORT_RAW_STREAM_H_

#include <chrono>
#include <memory>
#include <string>

#include "google/protobuf/message_lite.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/codegen/rpc_method.h"
#include "grpcpp/support/byte_buffer.h"

namespace pumptwin::testing {

class RawBidiStream {
 public:
  // `method` is the full name, e.g. "/pumptwin.v1.DeviceGateway/Connect".
  RawBidiStream(std::shared_ptr<grpc::Channel> channel, const std::string& method,
                std::chrono::seconds deadline = std::chrono::seconds(20))
      : channel_(std::move(channel)),
        method_(method),
        rpc_(method_.c_str(), grpc::internal::RpcMethod::BIDI_STREAMING) {
    ctx_.set_deadline(std::chrono::system_clock::now() + deadline);
    rw_.reset(grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
        channel_.get(), rpc_, &ctx_));
  }

  bool WriteBytes(const std::string& bytes) {
    grpc::Slice slice(bytes);
    grpc::ByteBuffer buffer(&slice, 1);
    return rw_->Write(buffer);
  }
  bool WriteMessage(const google::protobuf::MessageLite& m) {
    return WriteBytes(m.SerializeAsString());
  }
  // Reads one message and parses it into `m`; false at the end of the stream.
  bool Read(google::protobuf::MessageLite* m) {
    grpc::ByteBuffer buffer;
    if (!rw_->Read(&buffer)) return false;
    std::string bytes;
    std::vector<grpc::Slice> slices;
    if (!buffer.Dump(&slices).ok()) return false;
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    return m->ParseFromString(bytes);
  }
  // Half-closes, drains what the server still sends (into `drained`, if given), and
  // returns the final status.
  template <typename M>
  grpc::Status Finish(std::vector<M>* drained = nullptr) {
    rw_->WritesDone();
    M m;
    for (int i = 0; i < 100'000 && Read(&m); ++i) {
      if (drained != nullptr) drained->push_back(m);
    }
    return rw_->Finish();
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::string method_;
  grpc::internal::RpcMethod rpc_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> rw_;
};

}  // namespace pumptwin::testing

#endif  // PUMPTWIN_TESTS_SUPPORT_RAW_STREAM_H_
