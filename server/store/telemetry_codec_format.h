// The constants of chunk codec v1 (docs/storage.md, "Chunk encoding") that the encoder
// (telemetry_codec.cc) and the decoder (telemetry_decode.cc) must agree on, defined once.
// Internal to server/store/.
#ifndef PUMPTWIN_SERVER_STORE_TELEMETRY_CODEC_FORMAT_H_
#define PUMPTWIN_SERVER_STORE_TELEMETRY_CODEC_FORMAT_H_

#include <cstdint>

namespace pumptwin::store::codec_format {

// A double column is stored either as decimals: every value times 10^k is an exact integer
// (mode byte k, 0..kMaxDecimalDigits), or as XOR of consecutive bit patterns (kXorMode).
inline constexpr int kMaxDecimalDigits = 9;
inline constexpr double kPow10[kMaxDecimalDigits + 1] = {1e0, 1e1, 1e2, 1e3, 1e4,
                                                         1e5, 1e6, 1e7, 1e8, 1e9};
inline constexpr uint8_t kXorMode = 0xFF;
// A scaled decimal's magnitude is below 2^53, so it converts to double and back exactly.
inline constexpr int64_t kScaledLimit = int64_t{1} << 53;

}  // namespace pumptwin::store::codec_format

#endif  // PUMPTWIN_SERVER_STORE_TELEMETRY_CODEC_FORMAT_H_
