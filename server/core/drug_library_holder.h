// DrugLibraryHolder: the drug library the server validates prescriptions and refills
// against, loaded from a file (DrugLibrary::Format text, --drug_library) or the built-in
// defaults, versioned by the SHA-256 of its canonical text, and swappable at run time
// (SIGHUP reload). Readers take a shared_ptr snapshot and keep it for one call.
// Thread-safe: Get may race with Reload; a failed reload keeps the previous library.
#ifndef PUMPTWIN_SERVER_DRUG_LIBRARY_HOLDER_H_
#define PUMPTWIN_SERVER_DRUG_LIBRARY_HOLDER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "twin/drug_library.h"

namespace pumptwin::server {

struct DrugLibrarySnapshot {
  twin::DrugLibrary library;
  std::string version;  // "sha256:<16 hex>" of library.Format()
  std::string source;   // file path, or "built-in defaults"
};

class DrugLibraryHolder {
 public:
  // Starts with the built-in defaults (DrugLibrary::Default()).
  DrugLibraryHolder();
  DrugLibraryHolder(const DrugLibraryHolder&) = delete;
  DrugLibraryHolder& operator=(const DrugLibraryHolder&) = delete;

  // Loads `path` (empty: built-in defaults) and remembers it for Reload. On error
  // (NOT_FOUND unreadable file, INVALID_ARGUMENT naming line/field) nothing changes.
  absl::Status Load(const std::string& path);
  // Re-reads the remembered path. On error the previous library stays in force.
  absl::Status Reload();

  std::shared_ptr<const DrugLibrarySnapshot> Get() const;
  // The library in force for a call: `holder`'s, or the built-in defaults when null.
  static std::shared_ptr<const DrugLibrarySnapshot> Current(const DrugLibraryHolder* holder);

  // Version string of a library: "sha256:" + first 16 hex digits of SHA-256(Format()).
  static std::string VersionOf(const twin::DrugLibrary& library);

 private:
  mutable absl::Mutex mu_;
  std::string path_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const DrugLibrarySnapshot> current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_DRUG_LIBRARY_HOLDER_H_
