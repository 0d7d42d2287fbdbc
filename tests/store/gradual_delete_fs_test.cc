// GradualDeleteFileSystem: large WAL/SST files are freed a step at a time before the unlink;
// hard-linked files (a checkpoint's SSTs) and other files are unlinked untouched.
#include "server/store/gradual_delete_fs.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "store_test_util.h"

namespace pumptwin::store {
namespace {

using testing::ScratchDir;

constexpr uint64_t kMiB = uint64_t{1} << 20;

void WriteFile(const std::string& path, uint64_t size) {
  std::ofstream out(path, std::ios::binary);
  out << std::string(size, 'w');
}

struct Recorder {
  std::vector<uint64_t> sizes;
  GradualDeleteFileSystem::TruncateFn fn() {
    return [this](const std::string& path, uint64_t size) {
      sizes.push_back(size);
      std::filesystem::resize_file(path, size);
      return std::filesystem::file_size(path) == size;
    };
  }
};

rocksdb::IOStatus Delete(GradualDeleteFileSystem& fs, const std::string& path) {
  return fs.DeleteFile(path, rocksdb::IOOptions(), nullptr);
}

TEST(GradualDeleteFileSystem, ALargeWalIsShortenedStepByStepThenUnlinked) {
  ScratchDir dir;
  const std::string wal = dir.Sub("000012.log");
  WriteFile(wal, 5 * kMiB / 2);
  Recorder rec;
  GradualDeleteFileSystem fs(rocksdb::FileSystem::Default(), kMiB, rec.fn());
  ASSERT_TRUE(Delete(fs, wal).ok());
  EXPECT_EQ(rec.sizes, (std::vector<uint64_t>{3 * kMiB / 2, kMiB / 2}));
  EXPECT_FALSE(std::filesystem::exists(wal));
}

TEST(GradualDeleteFileSystem, AnSstIsShortenedTooButASmallFileIsUnlinkedAtOnce) {
  ScratchDir dir;
  const std::string sst = dir.Sub("000013.sst");
  const std::string small = dir.Sub("000014.sst");
  WriteFile(sst, 2 * kMiB + 1);
  WriteFile(small, kMiB);
  Recorder rec;
  GradualDeleteFileSystem fs(rocksdb::FileSystem::Default(), kMiB, rec.fn());
  ASSERT_TRUE(Delete(fs, sst).ok());
  EXPECT_EQ(rec.sizes, (std::vector<uint64_t>{kMiB + 1, 1}));
  rec.sizes.clear();
  ASSERT_TRUE(Delete(fs, small).ok());
  EXPECT_TRUE(rec.sizes.empty());
  EXPECT_FALSE(std::filesystem::exists(sst));
  EXPECT_FALSE(std::filesystem::exists(small));
}

TEST(GradualDeleteFileSystem, AHardLinkedSstKeepsEveryByteForItsOtherLink) {
  ScratchDir dir;
  const std::string sst = dir.Sub("000015.sst");
  const std::string checkpoint_link = dir.Sub("checkpoint-000015.sst");
  WriteFile(sst, 3 * kMiB);
  std::filesystem::create_hard_link(sst, checkpoint_link);
  Recorder rec;
  GradualDeleteFileSystem fs(rocksdb::FileSystem::Default(), kMiB, rec.fn());
  ASSERT_TRUE(Delete(fs, sst).ok());
  EXPECT_TRUE(rec.sizes.empty());
  EXPECT_FALSE(std::filesystem::exists(sst));
  EXPECT_EQ(std::filesystem::file_size(checkpoint_link), 3 * kMiB);
}

TEST(GradualDeleteFileSystem, OtherFilesAreUnlinkedUntouched) {
  ScratchDir dir;
  const std::string manifest = dir.Sub("MANIFEST-000001");
  WriteFile(manifest, 3 * kMiB);
  Recorder rec;
  GradualDeleteFileSystem fs(rocksdb::FileSystem::Default(), kMiB, rec.fn());
  ASSERT_TRUE(Delete(fs, manifest).ok());
  EXPECT_TRUE(rec.sizes.empty());
  EXPECT_FALSE(std::filesystem::exists(manifest));
}

TEST(GradualDeleteFileSystem, AFailedStepStillUnlinksTheFile) {
  ScratchDir dir;
  const std::string wal = dir.Sub("000016.log");
  WriteFile(wal, 3 * kMiB);
  int calls = 0;
  GradualDeleteFileSystem fs(rocksdb::FileSystem::Default(), kMiB,
                             [&calls](const std::string&, uint64_t) {
                               ++calls;
                               return false;
                             });
  ASSERT_TRUE(Delete(fs, wal).ok());
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(std::filesystem::exists(wal));
}

TEST(GradualDeleteFileSystem, AMissingFileIsReportedAsRocksDbExpects) {
  ScratchDir dir;
  GradualDeleteFileSystem fs(rocksdb::FileSystem::Default(), kMiB);
  EXPECT_TRUE(Delete(fs, dir.Sub("000017.log")).IsPathNotFound());
}

}  // namespace
}  // namespace pumptwin::store
