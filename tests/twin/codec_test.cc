// Serialisation: lossless, deterministic round trip; truncation and corruption detected.
#include "twin/codec.h"

#include <cstring>
#include <string>

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

// A format version 3 state as that version's encoder wrote it: the BusyTwin pump (flex
// schedule, PTM limits, a 30 % over-infusion from day 3) with a 7 min clock skew from day 3,
// run 8 days, then three samples each logging a motor stall and its recovery.
constexpr absl::string_view kVersion3Hex =
    "0302000000503104000000000088d3400000000000407f40f6285c8fc2f5e03f00003633a4ac871800a0b830"
    "46030000080000006d6f727068696e65000000000088c3400300000000000000000002000000000000000000"
    "000000000000000079400000c585311a00000000000000e085400100000000000034400070c9b28b00000000"
    "4071618c060000040000000100000000000000080000006d6f727068696e65080000004d6f727068696e6500"
    "0000000088d34000000000004ccd40000000000070c740333333333333d33f0000c6153ba01b000000000000"
    "c072403d0000005041434320323031372028617373756d6564293b2073746162696c69747920393020646179"
    "7320286c6162656c293b206f72616c3a4954203330303a3100000000000090ba4000003633a4ac8718000058"
    "b6d093268a1800f0c20632268a18c30000000000000000003633a4ac8718a2ffffffdfa2cd40db97532edc0f"
    "cc40ebffffff3fdab240d9be0c0c8b9fb4400000000000000000000000000088d340f93f53bfa74075400000"
    "00000000000000000000000000009322322441f11b4006c3b02cefb9f43f52b77f5a58bd253f60dd196c9a62"
    "cc40aaaaaa1b6714b2400000000080a21941d17af8624a9f19412213a13913e38918ff4a0000000000000000"
    "00000000008000000000000000800000000000000080000000000000008000000000000000808fcabb438fca"
    "bb438fcabb438fcabb438fcabb438fcabb43ebc7bc4361e9bc4361e9bc4382e65443f347fe4243bb534343bb"
    "534343bb534343bb534343bb534343bb53431af65443b97bba43b97bba43b97bba43b97bba43b97bba43b97b"
    "ba437ea3bb43b17e07000000a0410000000099bf8441bd3af43eddd4803ff58b5f461032bcc24b950442fd6a"
    "8441a2264140273f7e3fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    "ffffffffffffffffffffffffffff000000000000000003000000000000001a00c000c00000000000000080ca"
    "0003000300000003000000000000000100ae7e0300af3227c45605da43d999a741fa4bb84277be9cbd0000a0"
    "4100000000bad3a43f09261042314b6440f17dbb010000b07e00000000007c6daf3d";
// What that twin's accessors returned when it was written.
constexpr int64_t kV3DeviceTimeNs = 1768268220000000000;
constexpr uint64_t kV3LastSeq = 195;
constexpr double kV3Ratio = 1.2953941102716171;
constexpr double kV3RatioSd = 0.012878672671901252;
constexpr double kV3Estimated = 14367.720163773678;
constexpr double kV3Calculated = 15173.749999999829;

std::string FromHex(absl::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// Appends the CRC-32 trailer to `body` (a state without its trailer).
std::string WithCrc(std::string body) {
  const uint32_t crc = Crc32(body);
  body.append(reinterpret_cast<const char*>(&crc), 4);
  return body;
}

// Version 3 stored the clock-skew maxima as doubles and the stall and MRI counters as
// uint32 and had no change point: such a state decodes (narrowed), keeps what it knew,
// re-serialises as the current version and goes on observing.
TEST(Codec, VersionThreeStateMigrates) {
  const std::string v3 = FromHex(kVersion3Hex);
  ASSERT_EQ(static_cast<uint8_t>(v3[0]), 3);
  absl::StatusOr<Twin> back = Twin::Deserialize(v3);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(absl::ToUnixNanos(back->device_time()), kV3DeviceTimeNs);
  EXPECT_EQ(back->last_seq(), kV3LastSeq);
  EXPECT_EQ(back->delivery_ratio(), kV3Ratio);
  EXPECT_EQ(back->delivery_ratio_stddev(), kV3RatioSd);
  EXPECT_EQ(back->estimated_reservoir().value(), kV3Estimated);
  EXPECT_EQ(back->calculated_reservoir().value(), kV3Calculated);
  EXPECT_EQ(back->clock_skew(), absl::Minutes(7));
  EXPECT_EQ(back->motor_stalls(), 3u);
  EXPECT_EQ(back->active_alert(AlertType::kFlowDriftOver), Severity::kCritical);
  EXPECT_EQ(back->active_alert(AlertType::kClockSkew), Severity::kInfo);
  const std::string v4 = back->Serialize();
  EXPECT_EQ(static_cast<uint8_t>(v4[0]), kTwinFormatVersion);
  // The narrower fields give 12 bytes back; the change point takes them.
  EXPECT_EQ(v4.size(), v3.size());
  absl::StatusOr<Twin> again = Twin::Deserialize(v4);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->Serialize(), v4);
  PumpSim sim(&*back, 5);
  std::vector<AlertTransition> out;
  EXPECT_TRUE(sim.Run(absl::Hours(48), &out).ok());
  EXPECT_EQ(back->motor_stalls(), 3u);
}

// Version 1 had no VisitV2 fields (nor VisitV3's, nor the zone): such a state still decodes
// (flow segments restart) and re-serialises as the current version.
TEST(Codec, VersionOneStateStillDecodes) {
  const std::string v3 = FromHex(kVersion3Hex);
  size_t later_fields = 0;
  ModelState st;
  st.VisitV2([&later_fields](auto& f) { later_fields += sizeof(f); });
  st.VisitV3([&later_fields](auto& f) { later_fields += sizeof(f); });
  const size_t v3_zone = 4;  // the (empty) time zone name of format version 3
  std::string v1 = v3.substr(0, v3.size() - 4 - later_fields - v3_zone);
  v1[0] = 1;
  absl::StatusOr<Twin> back = Twin::Deserialize(WithCrc(v1));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(static_cast<uint8_t>(back->Serialize()[0]), kTwinFormatVersion);
  EXPECT_EQ(back->delivery_ratio(), kV3Ratio);
  EXPECT_EQ(back->clock_skew(), absl::Minutes(7));
  PumpSim sim(&*back, 5);
  std::vector<AlertTransition> out;
  EXPECT_TRUE(sim.Run(absl::Hours(48), &out).ok());
}

// A version 4 state whose change-point regression has a negative sum of squares is
// rejected, not decoded into a detector that would divide by it.
TEST(Codec, ChangePointOutOfRangeIsInvalidArgument) {
  const std::string bytes = BusyTwin().Serialize();
  size_t v4_fields = 0;
  ModelState st;
  st.VisitV4([&v4_fields](auto& f) { v4_fields += sizeof(f); });
  ASSERT_EQ(v4_fields, 4 * sizeof(float) + 2);  // ..., cp_sxx, cp_n, cp_level_sd
  const size_t zone = 4;                        // the (empty) time zone name
  const size_t sxx_at = bytes.size() - 4 - zone - 2 - sizeof(float);
  std::string body = bytes.substr(0, bytes.size() - 4);
  const float bad = -1.0f;
  std::memcpy(body.data() + sxx_at, &bad, sizeof(bad));
  const absl::Status s = Twin::Deserialize(WithCrc(body)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
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
