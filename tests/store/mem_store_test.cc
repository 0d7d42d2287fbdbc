// MemStore's test switches: injected failures apply nothing; the commit hook runs per commit.
#include "server/store/mem_store.h"

#include "gtest/gtest.h"
#include "store_test_util.h"

namespace pumptwin::store {
namespace {

TEST(MemStore, InjectedFailureAppliesNothingUntilCleared) {
  MemStore store;
  ASSERT_TRUE(store.Commit(testing::NumberedGroup(0)).ok());
  store.FailCommits(absl::UnavailableError("disk full (injected)"));
  EXPECT_EQ(store.Commit(testing::NumberedGroup(1)).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(*store.LastAlertCursor(), 1u);
  EXPECT_EQ(store.GetPumpHead("p1").status().code(), absl::StatusCode::kNotFound);
  store.ClearFailure();
  ASSERT_TRUE(store.Commit(testing::NumberedGroup(1)).ok());
  EXPECT_EQ(*store.LastAlertCursor(), 2u);
  EXPECT_EQ(store.commit_count(), 2);
}

TEST(MemStore, CommitHookRunsOncePerCommit) {
  MemStore store;
  int calls = 0;
  store.SetCommitHook([&] { ++calls; });
  ASSERT_TRUE(store.Commit(testing::NumberedGroup(0)).ok());
  ASSERT_TRUE(store.Commit(WriteGroup{}).ok());
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(store.commit_count(), 1);  // an empty group is no write
}

}  // namespace
}  // namespace pumptwin::store
