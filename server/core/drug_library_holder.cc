#include "server/core/drug_library_holder.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"

namespace pumptwin::server {

std::string DrugLibraryHolder::VersionOf(const twin::DrugLibrary& library) {
  return absl::StrCat("sha256:", common::Sha256Hex(library.Format()).substr(0, 16));
}

std::shared_ptr<const DrugLibrarySnapshot> DrugLibraryHolder::Current(
    const DrugLibraryHolder* holder) {
  static const DrugLibraryHolder* defaults = new DrugLibraryHolder();
  return (holder != nullptr ? holder : defaults)->Get();
}

DrugLibraryHolder::DrugLibraryHolder() {
  const twin::DrugLibrary& lib = twin::DrugLibrary::Default();
  current_ = std::make_shared<const DrugLibrarySnapshot>(
      DrugLibrarySnapshot{lib, VersionOf(lib), "built-in defaults"});
}

absl::Status DrugLibraryHolder::Load(const std::string& path) {
  std::shared_ptr<const DrugLibrarySnapshot> next;
  if (path.empty()) {
    const twin::DrugLibrary& lib = twin::DrugLibrary::Default();
    next = std::make_shared<const DrugLibrarySnapshot>(
        DrugLibrarySnapshot{lib, VersionOf(lib), "built-in defaults"});
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      return absl::NotFoundError(
          absl::StrCat("--drug_library='", path, "' cannot be opened for reading"));
    }
    std::stringstream text;
    text << in.rdbuf();
    auto lib = twin::DrugLibrary::Parse(text.str());
    if (!lib.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--drug_library='", path, "': ", lib.status().message()));
    }
    std::string version = VersionOf(*lib);
    next = std::make_shared<const DrugLibrarySnapshot>(
        DrugLibrarySnapshot{*std::move(lib), std::move(version), path});
  }
  absl::MutexLock lock(&mu_);
  path_ = path;
  current_ = std::move(next);
  return absl::OkStatus();
}

absl::Status DrugLibraryHolder::Reload() {
  std::string path;
  {
    absl::MutexLock lock(&mu_);
    path = path_;
  }
  return Load(path);
}

std::shared_ptr<const DrugLibrarySnapshot> DrugLibraryHolder::Get() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

}  // namespace pumptwin::server
