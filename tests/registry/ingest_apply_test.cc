// The shard's apply path: a sample the twin refuses in the middle of an in-order frame is
// nacked and its seq consumed, the others are stored in order (the frame's own sample
// vector becomes the forming chunk when the whole frame is in order), and a frame whose
// tail arrives out of order still stores everything once, in seq order.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/store/telemetry_codec.h"
#include "tests/registry/registry_fixture.h"

namespace pumptwin::server {
namespace {

class IngestApplyTest : public RegistryTest {
 protected:
  std::vector<uint64_t> StoredSeqs() {
    std::vector<uint64_t> seqs;
    absl::Status st = store::ScanSamplesAfterSeq(store_, "deg-1", 0, [&](const twin::Sample& s) {
      seqs.push_back(s.seq);
      return true;
    });
    EXPECT_TRUE(st.ok()) << st;
    return seqs;
  }
  device_link::IngestResult Submit(const std::vector<twin::Sample>& samples) {
    return SubmitAndWait(Batch({"deg-1"}, samples));
  }
};

TEST_F(IngestApplyTest, ARefusedSampleMidFrameIsNackedAndTheOthersAreStoredInOrder) {
  std::vector<twin::Sample> frame;
  for (uint64_t s = 1; s <= 5; ++s) frame.push_back(SampleAt(s));
  frame[2].device_time = SampleAt(1).device_time - absl::Minutes(1);  // seq 3 goes back in time
  device_link::IngestResult r = Submit(frame);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.nacks.size(), 1u);
  EXPECT_EQ(r.nacks[0].seq, 3u);
  EXPECT_EQ(r.nacks[0].reason, v1::NACK_REASON_TIME_ABSURD);
  ASSERT_EQ(r.durable.size(), 1u);
  EXPECT_EQ(r.durable[0].highest_durable_seq, 5u);  // 3 is consumed by its Nack
  EXPECT_EQ(StoredSeqs(), (std::vector<uint64_t>{1, 2, 4, 5}));
  EXPECT_EQ(LastSeq(), 5u);
}

TEST_F(IngestApplyTest, AFrameWhoseTailIsOutOfOrderIsStoredOnceInSeqOrder) {
  ASSERT_TRUE(Submit({SampleAt(1), SampleAt(2), SampleAt(4), SampleAt(5)}).status.ok());
  device_link::IngestResult r = Submit({SampleAt(6), SampleAt(3), SampleAt(7)});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.nacks.empty());
  ASSERT_EQ(r.durable.size(), 1u);
  EXPECT_EQ(r.durable[0].highest_durable_seq, 7u);
  EXPECT_EQ(StoredSeqs(), (std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(LastSeq(), 7u);
}

}  // namespace
}  // namespace pumptwin::server
