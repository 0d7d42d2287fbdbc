// Bad input against the real pumptwind, over a real channel: a prescription without a
// mode or taking effect years ahead, ids far over their limits (the answer must be a short
// INVALID_ARGUMENT, never the echoed value or RESOURCE_EXHAUSTED from the metadata limit), and
// requests that do not parse (INVALID_ARGUMENT on every TwinService method).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/generic/generic_stub.h"
#include "tests/therapy/therapy_fixture.h"

namespace pumptwin::therapy_test {
namespace {

using ::testing::HasSubstr;

constexpr size_t kShortMessage = 400;  // bytes: an error a person reads, not an echo

class HardeningTest : public ServerSuite {
 protected:
  grpc::Status Set(const std::string& id, const v1::Prescription& rx) {
    v1::SetPrescriptionRequest req;
    req.set_name("pumps/" + id);
    *req.mutable_prescription() = rx;
    req.set_expected_version(1);
    v1::SetPrescriptionResponse resp;
    auto ctx = Ctx();
    return twin().SetPrescription(ctx.get(), req, &resp);
  }
};

TEST_F(HardeningTest, PrescriptionNeedsAModeAndADateWithinAYear) {
  ASSERT_TRUE(RegisterPump(twin(), "hard-rx", "c").ok());
  v1::Prescription rx = Morphine(600);
  rx.set_mode(v1::THERAPY_MODE_UNSPECIFIED);
  grpc::Status s = Set("hard-rx", rx);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("prescription.mode is required"));

  rx = Morphine(600);
  rx.set_effective_time_ms(NowMs() + 2LL * 365 * 24 * 3600 * 1000);
  s = Set("hard-rx", rx);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("more than 366 days ahead"));

  // Nothing was changed by either: version 1 is still current, and a planned change a
  // month ahead is accepted.
  rx.set_effective_time_ms(NowMs() + 30LL * 24 * 3600 * 1000);
  s = Set("hard-rx", rx);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(HardeningTest, OversizedIdsAreRefusedWithAShortMessage) {
  // Far over the id limit and over gRPC's 8 kB metadata limit if echoed whole, but well
  // under any transport receive limit.
  const std::string huge(100000, 'x');
  auto expect_short_invalid = [](const grpc::Status& s, const char* what) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << what << ": " << s.error_message().size();
    EXPECT_LT(s.error_message().size(), kShortMessage) << what;
  };
  {
    v1::GetPumpRequest req;
    req.set_name("pumps/" + huge);
    v1::Pump resp;
    auto ctx = Ctx();
    grpc::Status s = twin().GetPump(ctx.get(), req, &resp);
    expect_short_invalid(s, "GetPump name");
    EXPECT_THAT(s.error_message(), HasSubstr("1 to 128 characters"));
  }
  {
    v1::GetTwinRequest req;
    req.set_name(huge);  // not even a pump name: echoed, but cut
    v1::TwinState resp;
    auto ctx = Ctx();
    grpc::Status s = twin().GetTwin(ctx.get(), req, &resp);
    expect_short_invalid(s, "GetTwin name");
    EXPECT_THAT(s.error_message(), HasSubstr("(100000 bytes)"));
  }
  {
    ASSERT_TRUE(RegisterPump(twin(), "hard-old", "c").ok());
    v1::DecommissionPumpRequest req;
    req.set_name("pumps/hard-old");
    req.set_replaced_by_pump_id(huge);
    v1::Pump resp;
    auto ctx = Ctx();
    expect_short_invalid(twin().DecommissionPump(ctx.get(), req, &resp), "successor id");
  }
  {
    v1::ListPumpsRequest req;
    req.set_page_token(huge);
    v1::ListPumpsResponse resp;
    auto ctx = Ctx();
    expect_short_invalid(twin().ListPumps(ctx.get(), req, &resp), "ListPumps page_token");
  }
  {
    v1::AcknowledgeAlertRequest req;
    req.set_name("pumps/" + huge + "/alerts/flow_drift_over-1");
    v1::Alert resp;
    auto ctx = Ctx();
    expect_short_invalid(twin().AcknowledgeAlert(ctx.get(), req, &resp), "alert name");
  }
  {
    v1::RegisterPumpRequest req;
    req.mutable_pump()->set_pump_id("hard-many-gw");
    for (int i = 0; i < 17; ++i) req.mutable_pump()->add_gateway_ids(absl::StrCat("gw", i));
    v1::Pump resp;
    auto ctx = Ctx();
    grpc::Status s = twin().RegisterPump(ctx.get(), req, &resp);
    expect_short_invalid(s, "17 gateway ids");
    EXPECT_THAT(s.error_message(), HasSubstr("at most 16"));
  }
}

TEST_F(HardeningTest, HelloWithAnOversizedPumpIdIsRefused) {
  auto ctx = Ctx();
  auto stream = server_->gateway->Connect(ctx.get());
  v1::GatewayMessage hello;
  hello.mutable_hello()->set_gateway_id("gw-therapy");
  hello.mutable_hello()->add_pump_ids(std::string(300, 'p'));
  ASSERT_TRUE(stream->Write(hello));
  stream->WritesDone();
  v1::ServerMessage msg;
  EXPECT_FALSE(stream->Read(&msg) && msg.has_welcome());
  grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message().size();
  EXPECT_LT(s.error_message().size(), kShortMessage);
  EXPECT_THAT(s.error_message(), HasSubstr("hello.pump_ids[]"));
}

// Raw bytes to every method of the service (taken from its descriptor, so a method added
// later is covered too): not a protobuf at all, and a string field 1 that is not UTF-8.
TEST_F(HardeningTest, EveryMethodAnswersUnparseableRequestsInvalidArgument) {
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          "pumptwin.v1.TwinService");
  ASSERT_NE(service, nullptr);
  grpc::GenericStub stub(server_->channel);
  const std::vector<std::string> bodies = {
      std::string("\xff\xff\xff\xff", 4),  // a field number out of range: no message
      std::string("\x0a\x02\xc3\x28", 4),  // field 1, length 2, invalid UTF-8 (if a string)
  };
  ASSERT_GE(service->method_count(), 17);
  for (int m = 0; m < service->method_count(); ++m) {
    const google::protobuf::MethodDescriptor* method = service->method(m);
    const google::protobuf::FieldDescriptor* f1 = method->input_type()->FindFieldByNumber(1);
    for (size_t b = 0; b < bodies.size(); ++b) {
      if (b == 1 &&
          (f1 == nullptr || f1->type() != google::protobuf::FieldDescriptor::TYPE_STRING)) {
        continue;
      }
      grpc::Slice slice(bodies[b]);
      grpc::ByteBuffer request(&slice, 1), response;
      auto ctx = Ctx();
      absl::Notification done;
      grpc::Status status;
      stub.UnaryCall(ctx.get(), absl::StrCat("/pumptwin.v1.TwinService/", method->name()),
                     grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
                       status = std::move(s);
                       done.Notify();
                     });
      done.WaitForNotification();
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << method->name() << " body " << b << ": " << status.error_message();
      EXPECT_THAT(status.error_message(), HasSubstr("could not parse request")) << method->name();
    }
  }
}

}  // namespace
}  // namespace pumptwin::therapy_test
