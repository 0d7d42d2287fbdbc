#include "server/store/gradual_delete_fs.h"

#include <unistd.h>

#include <utility>

#include "absl/strings/match.h"

namespace pumptwin::store {

GradualDeleteFileSystem::GradualDeleteFileSystem(const std::shared_ptr<rocksdb::FileSystem>& target,
                                                 uint64_t step_bytes, TruncateFn truncate)
    : rocksdb::FileSystemWrapper(target),
      step_bytes_(step_bytes > 0 ? step_bytes : 1),
      truncate_(truncate ? std::move(truncate) : [](const std::string& path, uint64_t size) {
        return ::truncate(path.c_str(), static_cast<off_t>(size)) == 0;
      }) {}

rocksdb::IOStatus GradualDeleteFileSystem::DeleteFile(const std::string& fname,
                                                      const rocksdb::IOOptions& options,
                                                      rocksdb::IODebugContext* dbg) {
  // Only the store's own data files, which RocksDB deletes once nothing reads them any more
  // (a live iterator pins its SSTs; a checkpoint holds its own link to them).
  if (absl::EndsWith(fname, ".log") || absl::EndsWith(fname, ".sst")) {
    uint64_t size = 0;
    uint64_t links = 0;
    if (target()->GetFileSize(fname, options, &size, dbg).ok() &&
        target()->NumFileLinks(fname, options, &links, dbg).ok() && links == 1) {
      // A failed step only means that the unlink below frees more at once.
      while (size > step_bytes_) {
        size -= step_bytes_;
        if (!truncate_(fname, size)) break;
      }
    }
  }
  return target()->DeleteFile(fname, options, dbg);
}

}  // namespace pumptwin::store
