// libFuzzer target: arbitrary bytes as a GatewayMessage through frame decode + validation +
// sequencing. Invariants checked (abort on violation): a sample that validates survives the
// twin round trip unchanged and still validates; accepted + nacked samples == frame size;
// the sequencer never releases a seq twice or out of order.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "device_link/frame_decoder.h"
#include "device_link/sample_codec.h"
#include "device_link/sequencer.h"
#include "google/protobuf/util/message_differencer.h"
#include "pumptwin/v1/gateway.pb.h"

using namespace pumptwin;               // NOLINT: fuzz harness
using namespace pumptwin::device_link;  // NOLINT

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

absl::Status Authorize(absl::string_view pump) {
  // Deterministic mix of verdicts so every Nack path is reachable.
  const size_t h = std::hash<std::string_view>{}(std::string_view(pump.data(), pump.size()));
  switch (h % 8) {
    case 0:
      return absl::NotFoundError("unknown");
    case 1:
      return absl::PermissionDeniedError("not bound");
    case 2:
      return absl::FailedPreconditionError("decommissioned");
    default:
      return absl::OkStatus();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  v1::GatewayMessage msg;
  if (!msg.ParseFromArray(data, static_cast<int>(size)) || !msg.has_frame()) return 0;
  msg.DiscardUnknownFields();
  const v1::TelemetryFrame& frame = msg.frame();
  const absl::Time now = absl::FromUnixSeconds(1795305600);
  FrameLimits limits;
  limits.max_samples_per_frame = 256;
  DecodedFrame out;
  absl::Status st = DecodeFrame(frame, "gw", now, limits, Authorize, &out);
  if (!st.ok()) {
    Check(frame.samples_size() > 256);
    return 0;
  }
  Check(out.accepted_samples + out.nacks.size() == static_cast<size_t>(frame.samples_size()));
  for (const v1::Nack& n : out.nacks) {
    Check(n.reason() != v1::NACK_REASON_UNSPECIFIED && !n.message().empty());
  }
  // Round trip of every valid sample.
  for (int i = 0; i < frame.samples_size(); ++i) {
    const v1::TelemetrySample& s = frame.samples(i);
    if (ValidateSample(s, i, now, limits.sample).has_value()) continue;
    v1::TelemetrySample back;
    ToProtoSample(s.pump_id(), ToTwinSample(s), &back);
    Check(google::protobuf::util::MessageDifferencer::Equals(s, back));
    Check(!ValidateSample(back, i, now, limits.sample).has_value());
  }
  // Sequencing: releases are strictly consecutive per pump.
  SequencerConfig cfg;
  cfg.reorder_window_seqs = 16;
  for (PumpSamples& ps : out.batch.pumps) {
    PumpSequencer seq;
    std::vector<SequencedEntry> released;
    uint64_t last = 0;
    auto offer = [&](SequencedEntry e) {
      released.clear();
      seq.Offer(cfg, std::move(e), &released);
      for (const SequencedEntry& r : released) {
        Check(r.seq == last + 1);
        last = r.seq;
      }
      Check(seq.applied_seq() == last);
      Check(seq.buffered_count() <= cfg.reorder_window_seqs);
    };
    for (twin::Sample& s : ps.samples) offer(SequencedEntry{s.seq, std::move(s)});
    for (uint64_t r : ps.rejected_seqs) offer(SequencedEntry{r, std::nullopt});
  }
  return 0;
}
