#include "server/core/event_inputs.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "server/core/convert.h"
#include "server/store/store_keys.h"
#include "server/store/telemetry_codec.h"

namespace pumptwin::server {
namespace {

constexpr uint8_t kInputVersion = 1;

// LoadPumpHistory reserves at most this many samples up front (~15 MB); a longer history
// grows from there.
constexpr uint64_t kMaxReservedSamples = 65536;

int64_t SaturatedNanos(absl::Time t) {
  if (t <= absl::FromUnixNanos(INT64_MIN)) return INT64_MIN;
  if (t >= absl::FromUnixNanos(INT64_MAX)) return INT64_MAX;
  return absl::ToUnixNanos(t);
}

}  // namespace

StoredInput MakeClinicalInput(InputKind kind, absl::Time time, absl::Time server_time,
                              std::string payload) {
  StoredInput in;
  in.kind = kind;
  in.server_time = server_time;
  in.payload = std::move(payload);
  // Records stated at the same time apply in arrival order (the shard keeps the tie strictly
  // increasing).
  in.key = {time, twin::InputRank::kClinical,
            static_cast<uint64_t>(SaturatedNanos(server_time)) ^ (uint64_t{1} << 63)};
  return in;
}

StoredInput MakeTickInput(absl::Time model_time, absl::Time server_time) {
  StoredInput in;
  in.kind = InputKind::kTick;
  in.server_time = server_time;
  in.key = {model_time, twin::InputRank::kTick,
            static_cast<uint64_t>(SaturatedNanos(server_time)) ^ (uint64_t{1} << 63)};
  return in;
}

std::string InputMetaKey(absl::string_view pump_id, const twin::InputKey& key) {
  return store::keys::InputMetaKey(pump_id, SaturatedNanos(key.time),
                                   static_cast<uint8_t>(key.rank), key.tie);
}

std::string InputValue(const StoredInput& in) {
  std::string v;
  v.push_back(static_cast<char>(kInputVersion));
  v.push_back(static_cast<char>(in.kind));
  store::keys::PutOrderedTime(&v, SaturatedNanos(in.server_time));
  v.append(in.payload);
  return v;
}

absl::StatusOr<StoredInput> ParseInput(absl::string_view key, absl::string_view value) {
  const size_t prefix = sizeof(store::keys::kInputMetaSpace) - 1;
  if (key.size() < prefix + 1) return absl::DataLossError("input key too short");
  const size_t len = static_cast<unsigned char>(key[prefix]);
  if (key.size() != prefix + 1 + len + 8 + 1 + 8) {
    return absl::DataLossError("input key has a bad length");
  }
  if (value.size() < 10 || static_cast<uint8_t>(value[0]) != kInputVersion) {
    return absl::DataLossError("input value has an unknown version or is truncated");
  }
  StoredInput in;
  const char* p = key.data() + prefix + 1 + len;
  in.key.time = absl::FromUnixNanos(store::keys::GetOrderedTime(p));
  const auto rank = static_cast<uint8_t>(p[8]);
  if (rank > static_cast<uint8_t>(twin::InputRank::kTick)) {
    return absl::DataLossError("input key has an unknown rank");
  }
  in.key.rank = static_cast<twin::InputRank>(rank);
  in.key.tie = store::keys::GetBigEndian64(p + 9);
  const auto kind = static_cast<uint8_t>(value[1]);
  if (kind < 1 || kind > static_cast<uint8_t>(InputKind::kTick)) {
    return absl::DataLossError("input value has an unknown kind");
  }
  in.kind = static_cast<InputKind>(kind);
  in.server_time = absl::FromUnixNanos(store::keys::GetOrderedTime(value.data() + 2));
  in.payload = std::string(value.substr(10));
  return in;
}

std::string CheckpointMetaKey(absl::string_view pump_id, absl::Time boundary) {
  return store::keys::CheckpointMetaKey(pump_id, SaturatedNanos(boundary));
}

std::pair<std::string, std::string> CheckpointRangeBefore(absl::string_view pump_id,
                                                          absl::Time before) {
  return {store::keys::PumpMetaPrefix(store::keys::kCheckpointMetaSpace, pump_id),
          CheckpointMetaKey(pump_id, before)};
}

twin::Refill RefillFromRequest(const v1::RecordRefillRequest& req) {
  twin::Refill r;
  r.withdrawn = twin::Microliters(req.withdrawn_volume_ul());
  r.added = twin::Microliters(req.added_volume_ul());
  r.drug = req.drug();
  r.concentration = twin::MicrogramsPerMilliliter(req.concentration_ug_per_ml());
  r.device_time = FromUnixMs(req.device_time_ms());
  return r;
}

twin::ClinicalEvent EventFromRequest(const v1::RecordEventRequest& req) {
  twin::ClinicalEvent e;
  e.type = static_cast<twin::ClinicalEventType>(req.type());
  e.device_time = FromUnixMs(req.device_time_ms());
  if (req.volume_ul() > 0) e.volume = twin::Microliters(req.volume_ul());
  if (req.dose_ug() > 0) e.dose = twin::Micrograms(req.dose_ug());
  e.duration = absl::Milliseconds(req.duration_ms());
  if (req.type() == v1::CLINICAL_EVENT_CATHETER_REVISION) {
    e.catheter_length = twin::Millimeters(req.catheter_length_cm() * 10.0);
    e.catheter_inner_diameter = twin::Millimeters(req.catheter_inner_diameter_mm());
  }
  return e;
}

absl::Status ApplyStoredInput(const StoredInput& in, twin::Twin& twin,
                              const twin::DrugLibrary& library,
                              std::vector<twin::AlertTransition>* out, twin::RefillResult* refill) {
  switch (in.kind) {
    case InputKind::kTick:
      twin.Tick(in.server_time, out);
      return absl::OkStatus();
    case InputKind::kRefill: {
      v1::RecordRefillRequest req;
      if (!req.ParseFromString(in.payload)) return absl::DataLossError("refill does not parse");
      auto res = twin.RecordRefill(RefillFromRequest(req), out, library);
      if (!res.ok()) return res.status();
      if (refill != nullptr) *refill = *res;
      return absl::OkStatus();
    }
    case InputKind::kEvent: {
      v1::RecordEventRequest req;
      if (!req.ParseFromString(in.payload)) return absl::DataLossError("event does not parse");
      absl::Status s = twin.RecordEvent(EventFromRequest(req), out);
      return s.ok() ? s : absl::InvalidArgumentError(s.message());
    }
    case InputKind::kPrescription: {
      v1::SetPrescriptionRequest req;
      if (!req.ParseFromString(in.payload)) {
        return absl::DataLossError("prescription does not parse");
      }
      auto rx = ToPrescription(req.prescription());
      if (!rx.ok()) return rx.status();
      // Soft limits were acknowledged when it was set; in its place in event time the
      // titration window may see another history, so every soft code is taken as seen.
      std::vector<std::string> acks(req.acknowledged_warnings().begin(),
                                    req.acknowledged_warnings().end());
      for (const twin::LimitViolation& v : twin.ValidatePrescription(*rx, library)) {
        if (!v.hard) acks.push_back(v.code);
      }
      // 0: at the model time it is applied at.
      const absl::Time eff = req.prescription().effective_time_ms() > 0
                                 ? FromUnixMs(req.prescription().effective_time_ms())
                                 : twin.device_time();
      auto set = twin.SetPrescription(*rx, eff, acks, out, library);
      return set.ok() ? absl::OkStatus() : set.status();
    }
  }
  return absl::DataLossError("unknown input kind");
}

void SortAppendedInputs(std::vector<twin::FoldInput>& inputs, size_t sorted_prefix) {
  auto by_key = [](const twin::FoldInput& a, const twin::FoldInput& b) { return a.key < b.key; };
  const auto mid = inputs.begin() + static_cast<std::ptrdiff_t>(sorted_prefix);
  if (sorted_prefix <= inputs.size() && std::is_sorted(inputs.begin(), mid, by_key) &&
      std::is_sorted(mid, inputs.end(), by_key)) {
    std::inplace_merge(inputs.begin(), mid, inputs.end(), by_key);  // stable
    return;
  }
  twin::SortInputs(inputs);
}

std::vector<twin::FoldInput> PumpHistory::FoldInputs(
    std::shared_ptr<const twin::DrugLibrary> library) const {
  std::vector<twin::FoldInput> v;
  v.reserve(samples.size() + inputs.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    twin::FoldInput f;
    f.key = {samples[i].device_time, twin::InputRank::kSample, samples[i].seq};
    f.server_time = sample_server_times[i];
    f.sample = &samples[i];
    v.push_back(std::move(f));
  }
  for (const StoredInput& in : inputs) {
    twin::FoldInput f;
    f.key = in.key;
    f.server_time = in.server_time;
    const StoredInput* p = &in;
    f.apply = [p, library](twin::Twin& t, std::vector<twin::AlertTransition>* out) {
      return ApplyStoredInput(*p, t, *library, out);
    };
    v.push_back(std::move(f));
  }
  SortAppendedInputs(v, samples.size());
  return v;
}

absl::Status LoadPumpHistory(const store::Store& store, absl::string_view pump_id, absl::Time from,
                             PumpHistory* out) {
  absl::Status inner;
  std::vector<twin::Sample> decoded;
  // The samples are reserved once, from the seqs the first chunk and the pump's head span
  // (an upper bound: seq gaps only make it larger), instead of growing by doubling: a week of
  // 1-minute samples is ~2.3 MB, and the doubling's copies and twice-too-large last buffer
  // made a rewind from the store page-fault its buffers in again whenever the heap had
  // returned them.
  const absl::StatusOr<store::PumpHead> head = store.GetPumpHead(pump_id);
  bool reserved = false;
  absl::Status scan = store.ScanTelemetry(
      pump_id, from, absl::InfiniteFuture(), [&](const store::TelemetryChunk& c) {
        if (!reserved && head.ok() && head->last_seq >= c.first_seq) {
          const uint64_t n =
              std::min<uint64_t>(head->last_seq - c.first_seq + 1, kMaxReservedSamples);
          out->samples.reserve(out->samples.size() + n);
          out->sample_server_times.reserve(out->sample_server_times.size() + n);
        }
        reserved = true;
        inner = store::DecodeSamples(c.encoded, &decoded);
        if (!inner.ok()) return false;
        for (twin::Sample& s : decoded) {
          if (s.device_time < from) continue;
          out->samples.push_back(std::move(s));
          out->sample_server_times.push_back(c.server_time);
        }
        return true;
      });
  if (!scan.ok()) return scan;
  if (!inner.ok()) return inner;
  const std::string begin = InputMetaKey(pump_id, {from, twin::InputRank::kSample, 0});
  std::string end = store::keys::PumpMetaPrefix(store::keys::kInputMetaSpace, pump_id);
  end.append(8 + 1 + 8, '\xff');
  end.push_back('\xff');
  scan = store.ScanMetaRange(begin, end, [&](absl::string_view k, absl::string_view v) {
    auto in = ParseInput(k, v);
    if (!in.ok()) {
      inner = in.status();
      return false;
    }
    out->inputs.push_back(*std::move(in));
    return true;
  });
  if (!scan.ok()) return scan;
  return inner;
}

std::string RefillLogMetaKey(absl::string_view pump_id, absl::Time device_time) {
  return store::keys::RefillLogMetaKey(pump_id, SaturatedNanos(device_time));
}

std::string RefillLogValue(uint64_t seq) {
  std::string v;
  store::keys::PutBigEndian64(&v, seq);
  return v;
}

std::pair<std::string, std::string> SingleKeyRange(std::string key) {
  std::string end = key;
  end.push_back('\0');
  return {std::move(key), std::move(end)};
}

absl::StatusOr<std::optional<RefillLogEntry>> FindRefillLogEntry(const store::Store& store,
                                                                 absl::string_view pump_id,
                                                                 absl::Time around) {
  const std::string prefix = store::keys::PumpMetaPrefix(store::keys::kRefillLogMetaSpace, pump_id);
  std::string end = RefillLogMetaKey(pump_id, around + kRefillLogTolerance);
  end.push_back('\0');
  std::optional<RefillLogEntry> best;
  absl::Status scan = store.ScanMetaRange(
      RefillLogMetaKey(pump_id, around - kRefillLogTolerance), end,
      [&](absl::string_view k, absl::string_view v) {
        if (k.size() != prefix.size() + 8 || v.size() != 8) return true;
        RefillLogEntry e;
        e.device_time = absl::FromUnixNanos(store::keys::GetOrderedTime(k.data() + prefix.size()));
        e.seq = store::keys::GetBigEndian64(v.data());
        if (!best || absl::AbsDuration(e.device_time - around) <
                         absl::AbsDuration(best->device_time - around)) {
          best = e;
        }
        return true;
      });
  if (!scan.ok()) return scan;
  return best;
}

bool IsApproximateRefill(const StoredInput& in) {
  if (in.kind != InputKind::kRefill) return false;
  v1::RecordRefillRequest req;
  return req.ParseFromString(in.payload) && req.time_approximate();
}

absl::StatusOr<std::optional<StoredInput>> FindApproximateRefill(const store::Store& store,
                                                                 absl::string_view pump_id,
                                                                 absl::Time around) {
  const std::string begin =
      InputMetaKey(pump_id, {around - kRefillLogTolerance, twin::InputRank::kSample, 0});
  std::string end =
      InputMetaKey(pump_id, {around + kRefillLogTolerance, twin::InputRank::kTick, ~uint64_t{0}});
  end.push_back('\0');
  std::optional<StoredInput> best;
  absl::Status inner;
  absl::Status scan =
      store.ScanMetaRange(begin, end, [&](absl::string_view k, absl::string_view v) {
        auto in = ParseInput(k, v);
        if (!in.ok()) {
          inner = in.status();
          return false;
        }
        if (!IsApproximateRefill(*in)) return true;
        if (!best ||
            absl::AbsDuration(in->key.time - around) < absl::AbsDuration(best->key.time - around)) {
          best = *std::move(in);
        }
        return true;
      });
  if (!scan.ok()) return scan;
  if (!inner.ok()) return inner;
  return best;
}

StoredInput RekeyRefill(const StoredInput& in, absl::Time exact) {
  StoredInput out = in;
  out.key.time = exact;
  v1::RecordRefillRequest req;
  if (req.ParseFromString(in.payload)) {
    req.set_device_time_ms(ToUnixMs(exact));
    req.clear_time_approximate();
    out.payload = req.SerializeAsString();
  }
  return out;
}

absl::StatusOr<std::pair<absl::Time, std::string>> FindCheckpoint(const store::Store& store,
                                                                  absl::string_view pump_id,
                                                                  absl::Time t) {
  const std::string begin = store::keys::PumpMetaPrefix(store::keys::kCheckpointMetaSpace, pump_id);
  // Keys up to and including t's own boundary value.
  std::string end = CheckpointMetaKey(pump_id, t);
  end.push_back('\0');
  std::optional<std::pair<absl::Time, std::string>> found;
  absl::Status scan =
      store.ScanMetaRange(begin, end, [&](absl::string_view k, absl::string_view v) {
        found.emplace(absl::FromUnixNanos(store::keys::GetOrderedTime(k.data() + begin.size())),
                      std::string(v));
        return true;
      });
  if (!scan.ok()) return scan;
  if (!found) return absl::NotFoundError("no checkpoint");
  return *std::move(found);
}

}  // namespace pumptwin::server
