// Serialisation: lossless, deterministic round trip; truncation and corruption detected.
#include "twin/codec.h"

#include "gtest/gtest.h"
#include "tests/twin/twin_test_util.h"
#include "twin/model_state.h"

namespace pumptwin::twin {
namespace {

using testing::Day;
using testing::Faults;
using testing::MakeTwin;
using testing::Morphine;
using testing::PumpSim;

// A twin with most state populated: alerts, pending prescription, flex schedule, PTM.
Twin BusyTwin() {
  Prescription rx = Morphine(0);
  rx.mode = TherapyMode::kFlex;
  rx.flex.steps = {{absl::ZeroDuration(), MicrolitersPerDay(400)},
                   {absl::Hours(8), MicrolitersPerDay(700)}};
  rx.patient_bolus = PatientBolusLimits{Microliters(20), absl::Minutes(10), absl::Hours(2), 4};
  Twin twin = MakeTwin(PumpProfile::kSensorized, rx);
  Faults f;
  f.start = Day(3);
  f.ratio = 1.3;
  f.stroke_offset_mmhg = 15;
  PumpSim sim(&twin, 99, f);
  std::vector<AlertTransition> out;
  EXPECT_TRUE(sim.Run(absl::Hours(24 * 8), &out).ok());
  EXPECT_FALSE(out.empty());
  Prescription next = rx;
  next.flex.steps[1].rate = MicrolitersPerDay(650);
  next.version = 2;
  EXPECT_TRUE(twin.SetPrescription(next, twin.device_time() + absl::Hours(30), {}, &out).ok());
  return twin;
}

TEST(Codec, RoundTripIsByteIdenticalAndKeepsEveryAccessor) {
  const Twin twin = BusyTwin();
  const std::string bytes = twin.Serialize();
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), kTwinFormatVersion);
  absl::StatusOr<Twin> back = Twin::Deserialize(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->Serialize(), bytes);
  EXPECT_EQ(back->config(), twin.config());
  EXPECT_EQ(back->prescription(), twin.prescription());
  EXPECT_EQ(back->pending_prescription(), twin.pending_prescription());
  EXPECT_EQ(back->drug(), twin.drug());
  EXPECT_EQ(back->device_time(), twin.device_time());
  EXPECT_EQ(back->last_seq(), twin.last_seq());
  EXPECT_EQ(back->estimated_reservoir(), twin.estimated_reservoir());
  EXPECT_EQ(back->delivery_ratio(), twin.delivery_ratio());
  EXPECT_EQ(back->delivered_24h(), twin.delivered_24h());
  EXPECT_EQ(back->detectors(), twin.detectors());
  EXPECT_EQ(back->ForecastAt(Day(9)), twin.ForecastAt(Day(9)));
  for (int a = 1; a < kNumAlertTypes; ++a) {
    EXPECT_EQ(back->active_alert(static_cast<AlertType>(a)),
              twin.active_alert(static_cast<AlertType>(a)));
  }
}

TEST(Codec, RecoveredTwinEvolvesIdentically) {
  Twin a = BusyTwin();
  Twin b = *Twin::Deserialize(a.Serialize());
  PumpSim sa(&a, 5), sb(&b, 5);
  std::vector<AlertTransition> oa, ob;
  ASSERT_TRUE(sa.Run(absl::Hours(24 * 3), &oa).ok());
  ASSERT_TRUE(sb.Run(absl::Hours(24 * 3), &ob).ok());
  EXPECT_EQ(oa, ob);
  EXPECT_EQ(a.Serialize(), b.Serialize());
}

TEST(Codec, EveryTruncationIsRejected) {
  const std::string bytes = BusyTwin().Serialize();
  for (size_t n = 0; n < bytes.size(); ++n) {
    const absl::StatusCode code = Twin::Deserialize(bytes.substr(0, n)).status().code();
    ASSERT_TRUE(code == absl::StatusCode::kDataLoss || code == absl::StatusCode::kInvalidArgument)
        << n;
  }
  EXPECT_EQ(Twin::Deserialize(bytes + "x").status().code(), absl::StatusCode::kDataLoss);
}

TEST(Codec, EveryBitFlipIsRejected) {
  const std::string bytes = BusyTwin().Serialize();
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; bit += 3) {
      std::string c = bytes;
      c[i] = static_cast<char>(c[i] ^ (1 << bit));
      ASSERT_FALSE(Twin::Deserialize(c).ok()) << "byte " << i << " bit " << bit;
    }
  }
}

TEST(Codec, UnknownVersionIsInvalidArgument) {
  std::string bytes = BusyTwin().Serialize();
  bytes[0] = 9;
  const absl::Status st = Twin::Deserialize(bytes).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("version 9"), absl::string_view::npos);
}

// Version 1 had no VisitV2 fields: such a state still decodes (flow segments restart) and
// goes on observing; it re-serialises as the current version.
TEST(Codec, VersionOneStateStillDecodes) {
  Twin twin = BusyTwin();
  std::string v2 = twin.Serialize();
  size_t v2_fields = 0;
  ModelState st;
  st.VisitV2([&v2_fields](auto& f) { v2_fields += sizeof(f); });
  st.VisitV3([&v2_fields](auto& f) { v2_fields += sizeof(f); });
  const size_t v3_zone = 4;  // the (empty) time zone name of format version 3
  std::string v1 = v2.substr(0, v2.size() - 4 - v2_fields - v3_zone);
  v1[0] = 1;
  const uint32_t crc = Crc32(v1);
  v1.append(reinterpret_cast<const char*>(&crc), 4);
  absl::StatusOr<Twin> back = Twin::Deserialize(v1);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(static_cast<uint8_t>(back->Serialize()[0]), kTwinFormatVersion);
  EXPECT_EQ(back->delivery_ratio(), twin.delivery_ratio());
  PumpSim sim(&*back, 5);
  std::vector<AlertTransition> out;
  EXPECT_TRUE(sim.Run(absl::Hours(48), &out).ok());
}

TEST(Codec, StateFitsTheBudget) {
  const Twin twin = BusyTwin();
  EXPECT_LE(twin.StateBytes(), 528u);
  EXPECT_EQ(sizeof(Twin), twin.StateBytes());
}

// The per-pump Setup is allocated with make_shared (a 16-byte control block in front):
// 184 bytes or less keeps that allocation in glibc's 208-byte chunk, 16 bytes per twin
// less than the next size (docs/benchmarks.md, fleet memory).
TEST(Codec, SetupFitsItsAllocationChunk) { EXPECT_LE(sizeof(twin::Setup), 184u); }

TEST(Codec, Crc32KnownAnswer) { EXPECT_EQ(Crc32("123456789"), 0xCBF43926u); }

}  // namespace
}  // namespace pumptwin::twin
