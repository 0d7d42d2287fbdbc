#include "device_link/frame_decoder.h"

#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace pumptwin::device_link {

v1::Nack MakeNack(uint64_t frame_id, absl::string_view pump_id, uint64_t seq, v1::NackReason reason,
                  absl::string_view message) {
  v1::Nack n;
  n.set_frame_id(frame_id);
  n.set_pump_id(std::string(pump_id));
  n.set_seq(seq);
  n.set_reason(reason);
  n.set_grpc_code(static_cast<int32_t>(NackReasonToCode(reason)));
  n.set_message(std::string(message));
  return n;
}

absl::Status MovedError(absl::string_view pump_id, absl::string_view owner_replica,
                        absl::string_view owner_address) {
  absl::Status s = absl::UnavailableError(
      owner_address.empty()
          ? absl::StrCat("pump ", pump_id,
                         " is being taken over by another replica; resend in a few seconds")
          : absl::StrCat("pump ", pump_id, " is served by replica ", owner_replica, " at ",
                         owner_address, "; send its telemetry there"));
  s.SetPayload(kMovedPayloadUrl, absl::Cord(owner_address));
  return s;
}

v1::NackReason AuthorizeStatusToNackReason(const absl::Status& status) {
  if (status.GetPayload(kMovedPayloadUrl).has_value()) return v1::NACK_REASON_MOVED;
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return v1::NACK_REASON_UNKNOWN_PUMP;
    case absl::StatusCode::kPermissionDenied:
      return v1::NACK_REASON_NOT_BOUND;
    case absl::StatusCode::kFailedPrecondition:
      return v1::NACK_REASON_DECOMMISSIONED;
    case absl::StatusCode::kUnavailable:
      return v1::NACK_REASON_STORE_UNAVAILABLE;
    default:
      return v1::NACK_REASON_NOT_BOUND;  // deny by default
  }
}

absl::Status DecodeFrame(const v1::TelemetryFrame& frame, absl::string_view gateway_id,
                         absl::Time server_now, const FrameLimits& limits,
                         absl::FunctionRef<absl::Status(absl::string_view pump_id)> authorize,
                         DecodedFrame* out) {
  const uint64_t frame_id = frame.frame_id();
  if (static_cast<uint64_t>(frame.samples_size()) > limits.max_samples_per_frame) {
    return absl::InvalidArgumentError(
        absl::StrCat("frame ", frame_id, " has ", frame.samples_size(),
                     " samples, exceeds max_samples_per_frame ", limits.max_samples_per_frame,
                     " announced in Welcome"));
  }
  out->batch.gateway_id = std::string(gateway_id);
  out->batch.frame_id = frame_id;
  out->batch.pumps.clear();
  out->nacks.clear();
  out->accepted_samples = 0;

  // Per distinct pump of the frame: index into batch.pumps, or -1 when refused.
  struct PumpSlot {
    int index = -1;
    v1::NackReason reason = v1::NACK_REASON_UNSPECIFIED;
    std::string message;
    std::string owner_address;  // NACK_REASON_MOVED
  };
  absl::flat_hash_map<absl::string_view, PumpSlot> slots;  // keys point into `frame`
  PumpSlot* last_slot = nullptr;
  absl::string_view last_pump;
  bool last_inserted = false;
  for (int i = 0; i < frame.samples_size(); ++i) {
    const v1::TelemetrySample& s = frame.samples(i);
    if (auto r = ValidatePumpId(s.pump_id(), i, limits.sample)) {
      out->nacks.push_back(MakeNack(frame_id, s.pump_id(), s.seq(), r->reason, r->message));
      continue;
    }
    // Frames usually carry runs of one pump: skip the hash lookup within a run.
    if (last_slot == nullptr || last_pump != s.pump_id()) {
      auto [it, inserted] = slots.try_emplace(s.pump_id());
      last_slot = &it->second;
      last_pump = s.pump_id();
      last_inserted = inserted;
    } else {
      last_inserted = false;
    }
    PumpSlot& slot = *last_slot;
    if (last_inserted) {
      absl::Status auth = authorize(s.pump_id());
      if (auth.ok()) {
        slot.index = static_cast<int>(out->batch.pumps.size());
        PumpSamples& ps = out->batch.pumps.emplace_back();
        ps.pump_id = s.pump_id();
        // Typical frames carry one pump: size its vector once (not every pump: memory).
        if (slot.index == 0) ps.samples.reserve(frame.samples_size() - i);
      } else {
        slot.reason = AuthorizeStatusToNackReason(auth);
        slot.message = absl::StrCat("samples[", i, "].pump_id=", s.pump_id(), ": ", auth.message());
        if (auto owner = auth.GetPayload(kMovedPayloadUrl))
          slot.owner_address = std::string(*owner);
      }
    }
    if (slot.index < 0) {
      out->nacks.push_back(MakeNack(frame_id, s.pump_id(), s.seq(), slot.reason, slot.message));
      if (!slot.owner_address.empty()) out->nacks.back().set_owner_address(slot.owner_address);
      continue;
    }
    PumpSamples& ps = out->batch.pumps[slot.index];
    if (auto r = ValidateSample(s, i, server_now, limits.sample)) {
      out->nacks.push_back(MakeNack(frame_id, s.pump_id(), s.seq(), r->reason, r->message));
      if (r->consumes_seq) ps.rejected_seqs.push_back(s.seq());
      continue;
    }
    ps.samples.push_back(ToTwinSample(s));
    ++out->accepted_samples;
  }
  return absl::OkStatus();
}

}  // namespace pumptwin::device_link
