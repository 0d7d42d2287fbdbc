// Telemetry chunk codec: a run of samples of one pump <-> compact bytes (format v1 in
// docs/storage.md, "Chunk encoding"). Lossless: Decode(Encode(x)) == x bit for bit, which the
// crash test relies on. Stateless free functions; thread-safe.
// Helpers at the bottom read samples back out of a Store (they own nothing).
#ifndef PUMPTWIN_SERVER_STORE_TELEMETRY_CODEC_H_
#define PUMPTWIN_SERVER_STORE_TELEMETRY_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/store/store.h"
#include "twin/sample.h"

namespace pumptwin::store {

inline constexpr uint8_t kChunkCodecVersion = 1;
inline constexpr size_t kMaxSamplesPerChunk = 65536;

// INVALID_ARGUMENT: empty input, more than kMaxSamplesPerChunk samples, seq 0 or not strictly
// increasing, a time that is infinite or not a whole int64 nanosecond, unknown event type.
absl::StatusOr<std::string> EncodeSamples(absl::Span<const twin::Sample> samples);

// DATA_LOSS on any malformed input (version, CRC, structure, ranges, trailing bytes).
// `out` is cleared first; on error its content is unspecified.
absl::Status DecodeSamples(absl::string_view bytes, std::vector<twin::Sample>* out);
absl::StatusOr<std::vector<twin::Sample>> DecodeSamples(absl::string_view bytes);

// Encodes `samples` into a chunk ready for WriteGroup::telemetry.
absl::StatusOr<TelemetryChunk> MakeChunk(absl::string_view pump_id,
                                         absl::Span<const twin::Sample> samples);

using SampleFn = std::function<bool(const twin::Sample& sample)>;

// Samples of `pump_id` with device_time in [from, to), in stored order. fn returns false to stop.
absl::Status ScanSamples(const Store& store, absl::string_view pump_id, absl::Time from,
                         absl::Time to, const SampleFn& fn);

// Samples of `pump_id` with seq > after_seq, in seq order: the recovery replay.
absl::Status ScanSamplesAfterSeq(const Store& store, absl::string_view pump_id, uint64_t after_seq,
                                 const SampleFn& fn);

}  // namespace pumptwin::store

#endif  // PUMPTWIN_SERVER_STORE_TELEMETRY_CODEC_H_
