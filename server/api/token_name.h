// The name rule of bearer tokens (docs/security.md), shared by the server's token file
// parser and the pumptwin-token tool. Header-only: the tool links no server library.
#ifndef PUMPTWIN_SERVER_TOKEN_NAME_H_
#define PUMPTWIN_SERVER_TOKEN_NAME_H_

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"

namespace pumptwin::server {

// 1-128 characters of [A-Za-z0-9._@-].
inline bool IsValidTokenName(absl::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-' &&
        c != '@') {
      return false;
    }
  }
  return true;
}

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_TOKEN_NAME_H_
