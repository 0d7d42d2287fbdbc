// Server reflection end to end against the real pumptwind: every listed service (TwinService,
// DeviceGateway, grpc.health.v1.Health, reflection itself) can be described, with its
// methods, from the file descriptors the server sends.
#include <set>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/descriptor_database.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/server_process.h"

namespace pumptwin {
namespace {

using grpc::reflection::v1alpha::ServerReflection;
using grpc::reflection::v1alpha::ServerReflectionRequest;
using grpc::reflection::v1alpha::ServerReflectionResponse;
using ::testing::IsSupersetOf;

TEST(ReflectionTest, ListsAndDescribesEveryService) {
  testing::TempDir dir;
  testing::ServerProcess server(
      {.data_dir = dir.path() + "/data", .extra_args = {"--shutdown_grace=1s"}});
  ASSERT_TRUE(server.Start().ok()) << server.ReadLog();
  auto channel = grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials());
  auto stub = ServerReflection::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto stream = stub->ServerReflectionInfo(&ctx);

  ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_TRUE(resp.has_list_services_response()) << resp.DebugString();
  std::set<std::string> services;
  for (const auto& s : resp.list_services_response().service()) services.insert(s.name());
  EXPECT_THAT(services,
              IsSupersetOf({"pumptwin.v1.TwinService", "pumptwin.v1.DeviceGateway",
                            "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}));

  // Describe each: the server sends the file defining it and the files it imports (each
  // file once per stream); a pool built from them must resolve the service.
  google::protobuf::SimpleDescriptorDatabase db;
  for (const std::string& name : services) {
    SCOPED_TRACE(name);
    ServerReflectionRequest req;
    req.set_file_containing_symbol(name);
    ASSERT_TRUE(stream->Write(req));
    ASSERT_TRUE(stream->Read(&resp));
    ASSERT_FALSE(resp.has_error_response()) << resp.error_response().error_message();
    ASSERT_TRUE(resp.has_file_descriptor_response());
    for (const std::string& bytes : resp.file_descriptor_response().file_descriptor_proto()) {
      google::protobuf::FileDescriptorProto file;
      ASSERT_TRUE(file.ParseFromString(bytes));
      db.Add(file);
    }
  }
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());

  google::protobuf::DescriptorPool pool(&db);
  for (const std::string& name : services) {
    const google::protobuf::ServiceDescriptor* service = pool.FindServiceByName(name);
    ASSERT_NE(service, nullptr) << name;
    EXPECT_GT(service->method_count(), 0) << name;
  }
  const auto* health = pool.FindServiceByName("grpc.health.v1.Health");
  ASSERT_NE(health, nullptr);
  EXPECT_NE(health->FindMethodByName("Check"), nullptr);
  EXPECT_NE(health->FindMethodByName("Watch"), nullptr);
}

}  // namespace
}  // namespace pumptwin
