// TwinService methods whose behaviour has not landed yet: each answers UNIMPLEMENTED with
// a message saying so (an honest answer; a fake one would not be). Replaced method by
// method as the TwinService work lands. Stateless; thread-safe.
#ifndef PUMPTWIN_SERVER_TWIN_SERVICE_STUB_H_
#define PUMPTWIN_SERVER_TWIN_SERVICE_STUB_H_

#include "pumptwin/v1/twin_service.grpc.pb.h"

namespace pumptwin::server {

class TwinServiceStub final : public pumptwin::v1::TwinService::CallbackService {
 public:
#define PUMPTWIN_NOT_YET_UNARY(Method, Req, Resp)                                    \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* ctx,                 \
                                   const pumptwin::v1::Req*, pumptwin::v1::Resp*) override;
#define PUMPTWIN_NOT_YET_STREAM(Method, Req, Resp)                                    \
  grpc::ServerWriteReactor<pumptwin::v1::Resp>* Method(grpc::CallbackServerContext* ctx, \
                                                       const pumptwin::v1::Req*) override;
#include "server/twin_service_methods.inc"
#undef PUMPTWIN_NOT_YET_UNARY
#undef PUMPTWIN_NOT_YET_STREAM
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_TWIN_SERVICE_STUB_H_
