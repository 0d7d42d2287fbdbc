// TwinCodec: the byte format of a Twin (used by Twin::Serialize/Deserialize).
// Layout (format version 4; versions 1-3 lack the VisitV2 / VisitV3 / VisitV4 fields and
// the time zone and still decode: what they lack is learnt again; their Visit fields
// skew_cur_ms, skew_prev_ms are doubles and n_stalls, n_mri uint32, narrowed on reading),
// all integers and IEEE-754 doubles/floats little-endian:
//   u8 version | setup (config, current plan, optional pending plan, titration base,
//   phase) | model state fields in ModelState::Visit, VisitV2, VisitV3, VisitV4 order |
//   v3+: time zone name (empty: UTC; resolved through LocalZone's loader) | u32 CRC-32 of
//   all before.
// Strings are u32 length + bytes. Deterministic: equal twins give equal bytes.
// Stateless; thread-safe.
#ifndef PUMPTWIN_TWIN_CODEC_H_
#define PUMPTWIN_TWIN_CODEC_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "twin/twin.h"

namespace pumptwin::twin {

inline constexpr uint8_t kTwinFormatVersion = 4;

class TwinCodec {
 public:
  static std::string Encode(const Twin& twin);
  static absl::StatusOr<Twin> Decode(absl::string_view bytes);
};

// CRC-32 (IEEE 802.3 polynomial, reflected). Hand-written: this Abseil release has no
// CRC and the twin library must not pull in zlib for four lines.
uint32_t Crc32(absl::string_view data);

}  // namespace pumptwin::twin

#endif  // PUMPTWIN_TWIN_CODEC_H_
