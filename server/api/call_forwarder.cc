#include "server/api/call_forwarder.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"

namespace pumptwin::server {
namespace {

// The string field `field` of `m`, or "" when it has none.
std::string StringField(const google::protobuf::Message& m, const char* field) {
  const google::protobuf::FieldDescriptor* f = m.GetDescriptor()->FindFieldByName(field);
  if (f == nullptr || f->is_repeated() ||
      f->type() != google::protobuf::FieldDescriptor::TYPE_STRING)
    return "";
  return m.GetReflection()->GetString(m, f);
}

}  // namespace

std::string CallForwarder::PumpOf(const google::protobuf::Message& request) {
  const google::protobuf::FieldDescriptor* pump = request.GetDescriptor()->FindFieldByName("pump");
  if (pump != nullptr && StringField(request, "name").empty() &&
      pump->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE && !pump->is_repeated()) {
    return StringField(request.GetReflection()->GetMessage(request, pump), "pump_id");
  }
  absl::string_view name = StringField(request, "name");
  if (!absl::ConsumePrefix(&name, "pumps/")) return "";
  return std::string(name.substr(0, name.find('/')));
}

std::optional<std::string> CallForwarder::Destination(
    const grpc::CallbackServerContext& ctx, const google::protobuf::Message& request) const {
  if (!options_.owner_address) return std::nullopt;
  if (IsForwarded(ctx)) return std::nullopt;  // one hop
  const std::string pump = PumpOf(request);
  if (pump.empty()) return std::nullopt;
  return options_.owner_address(pump);
}

void CallForwarder::Prepare(const grpc::CallbackServerContext& in, grpc::ClientContext* out) const {
  for (const auto& [key, value] : in.client_metadata()) {
    if (key == "authorization") {
      out->AddMetadata(std::string(key.data(), key.size()),
                       std::string(value.data(), value.size()));
    }
  }
  out->AddMetadata(kForwardedByHeader, options_.replica);
  const auto deadline = in.deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) out->set_deadline(deadline);
}

std::shared_ptr<grpc::Channel> CallForwarder::ChannelTo(const std::string& address) {
  absl::MutexLock lock(&mu_);
  auto& channel = channels_[address];
  if (channel == nullptr) {
    channel = grpc::CreateChannel(address, options_.credentials != nullptr
                                               ? options_.credentials
                                               : grpc::InsecureChannelCredentials());
  }
  return channel;
}

}  // namespace pumptwin::server
