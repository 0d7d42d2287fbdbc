// Limits on identifiers the server accepts (pump ids, gateway ids) and the one way an
// error message repeats a value a client sent: Echo() quotes at most kMaxEchoBytes of it,
// escaped, with its full length. Identifiers over their limit are refused before anything
// else looks at them, so a status message never carries a client's megabyte back.
// Shared by DeviceGateway (device_link/) and TwinService (server/). Header-only, pure.
#ifndef PUMPTWIN_DEVICE_LINK_INPUT_LIMITS_H_
#define PUMPTWIN_DEVICE_LINK_INPUT_LIMITS_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace pumptwin::device_link {

inline constexpr size_t kMaxIdBytes = 128;        // pump ids and gateway ids
inline constexpr size_t kMaxEchoBytes = 64;       // of one value, in an error message
inline constexpr int kMaxGatewayIdsPerPump = 16;  // Pump.gateway_ids
inline constexpr int kMaxHelloPumpIds = 100000;   // Hello.pump_ids

// `value` for an error message: 'value' when short, else its first kMaxEchoBytes bytes and
// its length ('abc...' (1048576 bytes)); non-printable bytes are C-escaped.
inline std::string Echo(absl::string_view value) {
  if (value.size() <= kMaxEchoBytes) return absl::StrCat("'", absl::CHexEscape(value), "'");
  return absl::StrCat("'", absl::CHexEscape(value.substr(0, kMaxEchoBytes)), "...' (", value.size(),
                      " bytes)");
}

// A pump or gateway id: 1 to kMaxIdBytes of letters, digits, '-', '_' and '.'.
// INVALID_ARGUMENT naming `field` otherwise.
inline absl::Status ValidateId(absl::string_view id, absl::string_view field) {
  if (id.empty() || id.size() > kMaxIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " is ", id.size(), " bytes; ids are 1 to ", kMaxIdBytes, " characters"));
  }
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return absl::InvalidArgumentError(absl::StrCat(
          field, "=", Echo(id), " may contain only letters, digits, '-', '_' and '.'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace pumptwin::device_link

#endif  // PUMPTWIN_DEVICE_LINK_INPUT_LIMITS_H_
