// deploy/drug_library.txt is the built-in default table in DrugLibrary::Format() text, and
// DrugLibraryHolder loads, versions and keeps the previous library on a bad reload.
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "server/core/drug_library_holder.h"
#include "tests/support/server_process.h"

namespace pumptwin::server {
namespace {

TEST(DrugLibraryFileTest, DeployFileEqualsTheBuiltInDefaults) {
  std::ifstream in(std::string(PUMPTWIN_SOURCE_DIR) + "/deploy/drug_library.txt");
  ASSERT_TRUE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  auto lib = twin::DrugLibrary::Parse(text.str());
  ASSERT_TRUE(lib.ok()) << lib.status();
  EXPECT_EQ(lib->drugs(), twin::DrugLibrary::Default().drugs());
  EXPECT_EQ(DrugLibraryHolder::VersionOf(*lib),
            DrugLibraryHolder::VersionOf(twin::DrugLibrary::Default()));
}

TEST(DrugLibraryHolderTest, LoadsVersionsAndKeepsPreviousOnBadReload) {
  DrugLibraryHolder holder;
  EXPECT_EQ(holder.Get()->source, "built-in defaults");
  const std::string defaults_version = holder.Get()->version;
  EXPECT_EQ(defaults_version.rfind("sha256:", 0), 0u);
  EXPECT_EQ(defaults_version.size(), 7u + 16u);

  pumptwin::testing::TempDir dir;
  const std::string path = dir.path() + "/lib.txt";
  { std::ofstream(path) << "morphine|Morphine|20000|15000|12000|0.3|90|300|test\n"; }
  ASSERT_TRUE(holder.Load(path).ok());
  auto first = holder.Get();
  EXPECT_EQ(first->library.drugs().size(), 1u);
  EXPECT_NE(first->version, defaults_version);

  { std::ofstream(path) << "morphine|Morphine|oops\n"; }
  absl::Status s = holder.Reload();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(holder.Get()->version, first->version);  // previous library kept

  EXPECT_EQ(holder.Load("/nonexistent/lib.txt").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(holder.Get()->version, first->version);
}

}  // namespace
}  // namespace pumptwin::server
