// TwinService methods not implemented yet (listed in twin_service_methods.inc): each
// answers UNIMPLEMENTED with a message saying so, and changes nothing.
#include "absl/strings/str_cat.h"
#include "server/twin_service.h"

namespace pumptwin::server {
namespace {

[[maybe_unused]] grpc::Status NotYet(const char* method) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      absl::StrCat("TwinService.", method,
                                   " is not implemented in this build yet; nothing was changed"));
}

template <typename Resp>
class NotYetWriter final : public grpc::ServerWriteReactor<Resp> {
 public:
  explicit NotYetWriter(const char* method) { this->Finish(NotYet(method)); }
  void OnDone() override { delete this; }
};

}  // namespace

#define PUMPTWIN_NOT_YET_UNARY(Method, Req, Resp)                                        \
  grpc::ServerUnaryReactor* TwinServiceImpl::Method(                                     \
      grpc::CallbackServerContext* ctx, const pumptwin::v1::Req*, pumptwin::v1::Resp*) { \
    auto* reactor = ctx->DefaultReactor();                                               \
    reactor->Finish(NotYet(#Method));                                                    \
    return reactor;                                                                      \
  }
#define PUMPTWIN_NOT_YET_STREAM(Method, Req, Resp)                       \
  grpc::ServerWriteReactor<pumptwin::v1::Resp>* TwinServiceImpl::Method( \
      grpc::CallbackServerContext*, const pumptwin::v1::Req*) {          \
    return new NotYetWriter<pumptwin::v1::Resp>(#Method);                \
  }
#include "server/twin_service_methods.inc"
#undef PUMPTWIN_NOT_YET_UNARY
#undef PUMPTWIN_NOT_YET_STREAM

}  // namespace pumptwin::server
