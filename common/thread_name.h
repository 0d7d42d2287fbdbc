// Names the calling thread (top, perf, /proc/PID/task/*/comm), e.g. "pt-shard-3".
// Linux keeps at most 15 characters; longer names are cut.
#ifndef PUMPTWIN_COMMON_THREAD_NAME_H_
#define PUMPTWIN_COMMON_THREAD_NAME_H_

#include <pthread.h>

#include <string>

#include "absl/strings/string_view.h"

namespace pumptwin::server {

inline void NameThisThread(absl::string_view name) {
  std::string cut(name.substr(0, 15));
  pthread_setname_np(pthread_self(), cut.c_str());
}

}  // namespace pumptwin::server

#endif  // PUMPTWIN_COMMON_THREAD_NAME_H_
