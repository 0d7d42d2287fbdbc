// `pumptwind --verify`: opens the store in `data_dir`, runs VerifyStore, prints a report
// (one line per mismatch, then a summary line) and returns the process exit code.
#ifndef PUMPTWIN_SERVER_VERIFY_MAIN_H_
#define PUMPTWIN_SERVER_VERIFY_MAIN_H_

#include <string>

namespace pumptwin::server {

int RunVerify(const std::string& data_dir);

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_VERIFY_MAIN_H_
