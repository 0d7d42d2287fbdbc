// Fault injection, recovery and corruption tests for RocksDbStore, after LevelDB's
// fault_injection_test / recovery_test / corruption_test: an injected FileSystem fails writes
// on demand; corruption tests damage a copy of a closed store and reopen it.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "gtest/gtest.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "server/store/rocksdb_store.h"
#include "store_test_util.h"

namespace pumptwin::store {
namespace {

namespace fs = std::filesystem;
using testing::NumberedGroup;
using testing::ScratchDir;

// Fails every write, sync and file creation with the armed status while armed.
class FaultFs final : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultFs(std::shared_ptr<rocksdb::FileSystem> base) : FileSystemWrapper(base) {}
  const char* Name() const override { return "pumptwin.FaultFs"; }

  void Arm(rocksdb::IOStatus error) {
    absl::MutexLock lock(&mu_);
    error_ = std::move(error);
  }
  void Heal() { Arm(rocksdb::IOStatus::OK()); }
  rocksdb::IOStatus Check() {
    absl::MutexLock lock(&mu_);
    return error_;
  }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* d) override {
    if (rocksdb::IOStatus s = Check(); !s.ok()) return s;
    std::unique_ptr<rocksdb::FSWritableFile> base;
    rocksdb::IOStatus s = target()->NewWritableFile(f, o, &base, d);
    if (s.ok()) *r = std::make_unique<File>(std::move(base), this);
    return s;
  }

 private:
  class File final : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> base, FaultFs* fs)
        : FSWritableFileOwnerWrapper(std::move(base)), fs_(fs) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* g) override {
      if (rocksdb::IOStatus s = fs_->Check(); !s.ok()) return s;
      return FSWritableFileOwnerWrapper::Append(d, o, g);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o,
                             const rocksdb::DataVerificationInfo& v,
                             rocksdb::IODebugContext* g) override {
      if (rocksdb::IOStatus s = fs_->Check(); !s.ok()) return s;
      return FSWritableFileOwnerWrapper::Append(d, o, v, g);
    }
    rocksdb::IOStatus Flush(const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
      if (rocksdb::IOStatus s = fs_->Check(); !s.ok()) return s;
      return FSWritableFileOwnerWrapper::Flush(o, g);
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
      if (rocksdb::IOStatus s = fs_->Check(); !s.ok()) return s;
      return FSWritableFileOwnerWrapper::Sync(o, g);
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
      if (rocksdb::IOStatus s = fs_->Check(); !s.ok()) return s;
      return FSWritableFileOwnerWrapper::Fsync(o, g);
    }

   private:
    FaultFs* const fs_;
  };

  absl::Mutex mu_;
  rocksdb::IOStatus error_ ABSL_GUARDED_BY(mu_);
};

// Checks the store holds exactly groups [0, n) of NumberedGroup(i) (3 pumps), each complete.
void ExpectExactlyGroups(const Store& store, int n) {
  EXPECT_EQ(*store.LastAlertCursor(), static_cast<uint64_t>(n));
  EXPECT_EQ(*store.LastAuditSeq(), static_cast<uint64_t>(n));
  EXPECT_EQ(store.ScanAlertsAfter(0, 1000)->size(), static_cast<size_t>(n));
  for (int p = 0; p < 3; ++p) {
    const std::string pump = absl::StrCat("p", p);
    const int groups_of_pump = n > p ? (n - p + 2) / 3 : 0;
    uint64_t chunks = 0, last = 0;
    ASSERT_TRUE(store
                    .ScanTelemetryAfterSeq(pump, 0,
                                           [&](const TelemetryChunk& c) {
                                             ++chunks;
                                             last = c.last_seq;
                                             return true;
                                           })
                    .ok());
    EXPECT_EQ(chunks, static_cast<uint64_t>(groups_of_pump)) << pump;
    if (groups_of_pump == 0) {
      EXPECT_EQ(store.GetPumpHead(pump).status().code(), absl::StatusCode::kNotFound);
      EXPECT_EQ(store.GetSnapshot(pump).status().code(), absl::StatusCode::kNotFound);
      continue;
    }
    EXPECT_EQ(last, 10u * groups_of_pump);
    EXPECT_EQ(store.GetPumpHead(pump)->last_seq, last) << pump;
    EXPECT_EQ(*store.GetSnapshot(pump),
              absl::StrCat("snapshot-after-group-", p + 3 * (groups_of_pump - 1)));
  }
}

// Returns how the store recovered: "resume" or "reopen".
std::string ExpectFailureThenRecovery(rocksdb::IOStatus error) {
  std::string how;
  ScratchDir dir;
  auto fault_fs = std::make_shared<FaultFs>(rocksdb::FileSystem::Default());
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fault_fs);
  {
    auto opened = RocksDbStore::Open({.path = dir.Sub("db"), .env = env.get()});
    EXPECT_TRUE(opened.ok()) << opened.status();
    if (!opened.ok()) return "open failed";
    RocksDbStore& store = **opened;
    EXPECT_TRUE(store.Commit(NumberedGroup(0)).ok());

    fault_fs->Arm(error);
    absl::Status failed = store.Commit(NumberedGroup(1));
    EXPECT_EQ(failed.code(), absl::StatusCode::kUnavailable) << failed;
    EXPECT_EQ(store.Commit(NumberedGroup(1)).code(), absl::StatusCode::kUnavailable);
    ExpectExactlyGroups(store, 1);  // reads keep working; nothing of group 1 is visible

    fault_fs->Heal();
    absl::Status resumed = store.Commit(NumberedGroup(1));
    EXPECT_TRUE(resumed.ok()) << resumed;
    EXPECT_TRUE(store.Commit(NumberedGroup(2)).ok());
    ExpectExactlyGroups(store, 3);
    how = store.resume_count() == 1 ? "resume" : store.reopen_count() == 1 ? "reopen" : "?";
  }
  auto reopened = RocksDbStore::Open({.path = dir.Sub("db")});
  EXPECT_TRUE(reopened.ok()) << reopened.status();
  if (reopened.ok()) ExpectExactlyGroups(**reopened, 3);
  return how;
}

TEST(RocksDbStoreFaults, DiskFullIsUnavailableAndTheStoreRecoversWhenSpaceReturns) {
  // ENOSPC is a recoverable ("hard") error for RocksDB: DB::Resume() brings it back.
  EXPECT_EQ(ExpectFailureThenRecovery(rocksdb::IOStatus::NoSpace("injected ENOSPC")), "resume");
}

TEST(RocksDbStoreFaults, IoErrorIsUnavailableAndTheStoreRecoversWhenItStops) {
  // EIO on the WAL is fatal for RocksDB (Resume refuses): the store closes and reopens itself.
  EXPECT_EQ(ExpectFailureThenRecovery(rocksdb::IOStatus::IOError("injected EIO")), "reopen");
}

// ---- corruption of a closed store ---------------------------------------------------------

std::vector<fs::path> FilesWithExtension(const fs::path& dir, const std::string& ext) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ext) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void FlipByte(const fs::path& file, uintmax_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

// A closed store with `groups` groups, all still in the WAL (compact = false) or in SSTs.
std::string MakeStore(const ScratchDir& dir, int groups, bool compact) {
  const std::string path = dir.Sub("original");
  // No flush at close when the groups must stay in the WAL: like a crash.
  auto store = RocksDbStore::Open({.path = path, .flush_on_close = compact});
  EXPECT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < groups; ++i) EXPECT_TRUE((*store)->Commit(NumberedGroup(i)).ok());
  if (compact) {
    EXPECT_TRUE((*store)->CompactAll().ok());
  }
  return path;
}

std::string CopyOf(const ScratchDir& dir, const std::string& original, absl::string_view name) {
  const std::string copy = dir.Sub(name);
  fs::copy(original, copy, fs::copy_options::recursive);
  return copy;
}

TEST(RocksDbStoreCorruption, TruncatedWalTailOpensWithOnlyCompleteGroups) {
  ScratchDir dir;
  const std::string original = MakeStore(dir, 12, /*compact=*/false);
  const std::vector<fs::path> wals = FilesWithExtension(original, ".log");
  ASSERT_FALSE(wals.empty());
  const uintmax_t size = fs::file_size(wals.back());
  for (uintmax_t cut : {uintmax_t{1}, uintmax_t{9}, uintmax_t{100}, size / 2, size - 20}) {
    SCOPED_TRACE(absl::StrCat("cut ", cut, " of ", size));
    const std::string copy = CopyOf(dir, original, absl::StrCat("cut", cut));
    fs::resize_file(fs::path(copy) / wals.back().filename(), size - cut);
    auto store = RocksDbStore::Open({.path = copy});
    ASSERT_TRUE(store.ok()) << store.status();
    const int visible = static_cast<int>(*(*store)->LastAlertCursor());
    EXPECT_LT(visible, 12);
    ExpectExactlyGroups(**store, visible);
  }
}

TEST(RocksDbStoreCorruption, DamagedWalBodyIsRefusedOrKeepsOnlyCompleteGroups) {
  ScratchDir dir;
  const std::string original = MakeStore(dir, 12, /*compact=*/false);
  const fs::path wal = FilesWithExtension(original, ".log").back();
  const uintmax_t size = fs::file_size(wal);
  for (uintmax_t offset : {size / 4, size / 2}) {
    SCOPED_TRACE(absl::StrCat("flip at ", offset, " of ", size));
    const std::string copy = CopyOf(dir, original, absl::StrCat("flip", offset));
    FlipByte(fs::path(copy) / wal.filename(), offset);
    auto store = RocksDbStore::Open({.path = copy});
    std::cout << "  [flip at " << offset << "/" << size << "] open: " << store.status() << "\n";
    if (store.ok()) {
      ExpectExactlyGroups(**store, static_cast<int>(*(*store)->LastAlertCursor()));
    } else {
      EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
    }
  }
}

TEST(RocksDbStoreCorruption, TruncatedSstIsRefusedWithDataLoss) {
  ScratchDir dir;
  const std::string original = MakeStore(dir, 30, /*compact=*/true);
  const std::vector<fs::path> ssts = FilesWithExtension(original, ".sst");
  ASSERT_FALSE(ssts.empty());
  for (const fs::path& sst : ssts) {
    SCOPED_TRACE(sst.filename().string());
    const std::string copy = CopyOf(dir, original, absl::StrCat("trunc_", sst.stem().string()));
    fs::resize_file(fs::path(copy) / sst.filename(), fs::file_size(sst) - 10);
    auto store = RocksDbStore::Open({.path = copy});
    EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
    EXPECT_NE(store.status().message().find(".sst"), absl::string_view::npos) << store.status();
  }
}

TEST(RocksDbStoreCorruption, FlippedSstBlockIsDataLossNeverWrongData) {
  ScratchDir dir;
  const std::string original = MakeStore(dir, 30, /*compact=*/true);
  for (const fs::path& sst : FilesWithExtension(original, ".sst")) {
    SCOPED_TRACE(sst.filename().string());
    const std::string copy = CopyOf(dir, original, absl::StrCat("flip_", sst.stem().string()));
    FlipByte(fs::path(copy) / sst.filename(), 20);  // inside the first data block
    // A thorough open finds it at once.
    auto checked = RocksDbStore::Open({.path = copy, .verify_checksums_on_open = true});
    EXPECT_EQ(checked.status().code(), absl::StatusCode::kDataLoss) << checked.status();
    // A fast open finds it when the block is read: the read fails, never returns other bytes.
    auto store = RocksDbStore::Open({.path = copy});
    if (!store.ok()) {  // the damaged block was one Open itself reads (format version)
      EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
      continue;
    }
    std::vector<absl::Status> reads;
    const KeyValueFn ignore = [](absl::string_view, absl::string_view) { return true; };
    reads.push_back((*store)->ScanPumps(ignore));
    reads.push_back((*store)->ScanAllSnapshots(ignore));
    reads.push_back((*store)->ScanPumpHeads([](const PumpHead&) { return true; }));
    reads.push_back((*store)->ScanAlertsAfter(0, 1000).status());
    reads.push_back((*store)->ScanAuditAfter(0, 1000).status());
    reads.push_back((*store)->GetMeta("pumptwin.store.format_version").status());
    for (const char* pump : {"p0", "p1", "p2"}) {
      reads.push_back(
          (*store)->ScanTelemetryAfterSeq(pump, 0, [](const TelemetryChunk&) { return true; }));
    }
    int data_loss = 0;
    for (const absl::Status& s : reads) {
      if (absl::IsDataLoss(s))
        ++data_loss;
      else
        EXPECT_TRUE(s.ok()) << s;
    }
    EXPECT_GE(data_loss, 1);
  }
}

}  // namespace
}  // namespace pumptwin::store
