// GradualDeleteFileSystem: deletes a large store file (an obsolete WAL or SST) by truncating
// it a step at a time before the unlink. On ext4, freeing a file's blocks happens inside a
// journal transaction, and with online discard (the `discard` mount option, common on cloud
// VMs) the commit of that transaction also waits for the device to discard every freed
// block. Each WAL fdatasync of a group commit needs such a commit: one unlink of a 50 MB WAL
// held the group commit for 20-40 ms (docs/storage.md, "Deleting files"). Freed a step at a
// time, each journal commit carries at most a step. Only files with a single link are
// truncated: a hard-linked SST (a checkpoint shares its inode) is unlinked as is.
#ifndef PUMPTWIN_SERVER_STORE_GRADUAL_DELETE_FS_H_
#define PUMPTWIN_SERVER_STORE_GRADUAL_DELETE_FS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "rocksdb/file_system.h"

namespace pumptwin::store {

class GradualDeleteFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  // Shortens `path` to `size` bytes; false on failure. Default: truncate(2).
  using TruncateFn = std::function<bool(const std::string& path, uint64_t size)>;

  // `step_bytes` > 0: the most freed at once.
  GradualDeleteFileSystem(const std::shared_ptr<rocksdb::FileSystem>& target, uint64_t step_bytes,
                          TruncateFn truncate = nullptr);

  static const char* kClassName() { return "pumptwin.GradualDeleteFileSystem"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus DeleteFile(const std::string& fname, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;

 private:
  const uint64_t step_bytes_;
  const TruncateFn truncate_;
};

}  // namespace pumptwin::store

#endif  // PUMPTWIN_SERVER_STORE_GRADUAL_DELETE_FS_H_
