// Sample codec: round trips and every validation rule.
#include "device_link/sample_codec.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "device_link/frame_decoder.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/device_link/test_util.h"

namespace pumptwin::device_link {
namespace {

using ::testing::HasSubstr;
using testing::MakeSample;
using testing::TestNow;

TEST(SampleCodec, ProtoToTwinToProtoRoundTripsEveryField) {
  v1::TelemetrySample in = MakeSample("pump-1", 7);
  in.set_alarm_flags(v1::ALARM_FLAG_LOW_RESERVOIR | v1::ALARM_FLAG_ERI);
  v1::DeviceEvent* e = in.add_events();
  e->set_type(v1::DEVICE_EVENT_BOLUS_END);
  e->set_device_time_ms(in.device_time_ms() - 1000);
  e->set_value_ul(12.5);
  in.add_events()->set_type(v1::DEVICE_EVENT_MOTOR_STALL);
  in.mutable_events(1)->set_device_time_ms(in.device_time_ms());
  ASSERT_FALSE(ValidateSample(in, 0, TestNow(), {}).has_value());

  twin::Sample t = ToTwinSample(in);
  EXPECT_EQ(t.seq, 7u);
  ASSERT_TRUE(t.battery_voltage.has_value());
  EXPECT_EQ(t.battery_voltage->value(), 3.1);
  ASSERT_EQ(t.events.size(), 2u);
  EXPECT_EQ(t.events[0].type, twin::DeviceEventType::kBolusEnd);
  EXPECT_FALSE(t.events[1].volume.has_value());

  v1::TelemetrySample out;
  ToProtoSample("pump-1", t, &out);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(in, out))
      << in.DebugString() << "\nvs\n"
      << out.DebugString();
}

TEST(SampleCodec, AbsentOptionalFieldsStayAbsent) {
  v1::TelemetrySample in;
  in.set_pump_id("p");
  in.set_seq(1);
  in.set_device_time_ms(absl::ToUnixMillis(TestNow()));
  twin::Sample t;
  ASSERT_FALSE(DecodeSample(in, 0, TestNow(), {}, &t).has_value());
  EXPECT_FALSE(t.calculated_reservoir.has_value());
  EXPECT_FALSE(t.measured_reservoir.has_value());
  EXPECT_FALSE(t.battery_voltage.has_value());
  EXPECT_FALSE(t.temperature_c.has_value());
  v1::TelemetrySample out;
  ToProtoSample("p", t, &out);
  EXPECT_FALSE(out.has_battery_voltage_v());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(in, out));
}

TEST(SampleCodec, TwinToProtoToTwinRoundTrips) {
  twin::Sample t;
  t.seq = 42;
  t.device_time = TestNow() - absl::Minutes(5);
  t.calculated_reservoir = twin::Microliters(1234.5);
  t.outlet_pressure = twin::Mmhg(-3.0);
  t.motor_current_ma = 0.0;
  t.alarm_flags = twin::kAlarmMotorStall;
  t.events.push_back({twin::DeviceEventType::kDeliveryResumed, t.device_time, std::nullopt});
  v1::TelemetrySample p;
  ToProtoSample("x", t, &p);
  twin::Sample back;
  ASSERT_FALSE(DecodeSample(p, 0, TestNow(), {}, &back).has_value());
  EXPECT_EQ(back, t);
}

// The pump's own refill log entry decodes with its time and volume (an approximate
// RecordRefill is re-keyed to it, docs/model.md "Approximate clinical times").
TEST(SampleCodec, ReservoirRefillLogEntryDecodesWithTimeAndVolume) {
  v1::TelemetrySample p = MakeSample("p", 1);
  v1::DeviceEvent* e = p.add_events();
  e->set_type(v1::DEVICE_EVENT_RESERVOIR_REFILL);
  e->set_device_time_ms(p.device_time_ms() - 23000);
  e->set_value_ul(18000);
  ASSERT_FALSE(ValidateSample(p, 0, TestNow(), {}).has_value());
  twin::Sample back;
  ASSERT_FALSE(DecodeSample(p, 0, TestNow(), {}, &back).has_value());
  ASSERT_EQ(back.events.size(), 1u);
  EXPECT_EQ(back.events[0].type, twin::DeviceEventType::kReservoirRefill);
  EXPECT_EQ(back.events[0].device_time, absl::FromUnixMillis(p.device_time_ms() - 23000));
  ASSERT_TRUE(back.events[0].volume.has_value());
  EXPECT_EQ(back.events[0].volume->value(), 18000);
  v1::TelemetrySample again;
  ToProtoSample("p", back, &again);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(p, again));
}

TEST(SampleCodec, NanBatteryVoltageMessageNamesFieldValueAndIndex) {
  v1::TelemetrySample s = MakeSample("p", 1);
  s.set_battery_voltage_v(std::numeric_limits<double>::quiet_NaN());
  auto r = ValidateSample(s, 3, TestNow(), {});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->reason, v1::NACK_REASON_INVALID_FIELD);
  EXPECT_EQ(r->message, "samples[3].battery_voltage_v=NaN is not a finite number");
  EXPECT_TRUE(r->consumes_seq);
}

struct Rule {
  std::string name;
  std::function<void(v1::TelemetrySample*)> mutate;
  v1::NackReason reason;
  std::string message_part;
  bool consumes_seq;
};

class ValidationRuleTest : public ::testing::TestWithParam<Rule> {};

TEST_P(ValidationRuleTest, RejectsWithReasonAndMessage) {
  const Rule& rule = GetParam();
  v1::TelemetrySample s = MakeSample("pump-9", 5);
  rule.mutate(&s);
  auto r = ValidateSample(s, 0, TestNow(), {});
  ASSERT_TRUE(r.has_value()) << rule.name;
  EXPECT_EQ(r->reason, rule.reason) << r->message;
  EXPECT_THAT(r->message, HasSubstr(rule.message_part));
  EXPECT_EQ(r->consumes_seq, rule.consumes_seq);
}

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
const int64_t kNowMs = absl::ToUnixMillis(TestNow());

INSTANTIATE_TEST_SUITE_P(
    EveryRule, ValidationRuleTest,
    ::testing::Values(
        Rule{"EmptyPumpId", [](auto* s) { s->set_pump_id(""); }, v1::NACK_REASON_INVALID_FIELD,
             "samples[0].pump_id is empty", false},
        Rule{"LongPumpId", [](auto* s) { s->set_pump_id(std::string(65, 'a')); },
             v1::NACK_REASON_INVALID_FIELD, "65 bytes, exceeds maximum 64", false},
        Rule{"PumpIdWithSpace", [](auto* s) { s->set_pump_id("a b"); },
             v1::NACK_REASON_INVALID_FIELD, "not printable ASCII (0x20)", false},
        Rule{"SeqZero", [](auto* s) { s->set_seq(0); }, v1::NACK_REASON_INVALID_FIELD,
             "samples[0].seq=0 is invalid", false},
        Rule{"TimeFarPast", [](auto* s) { s->set_device_time_ms(0); }, v1::NACK_REASON_TIME_ABSURD,
             "max_device_time_in_past", true},
        Rule{"TimeFuture", [](auto* s) { s->set_device_time_ms(kNowMs + 25LL * 3600 * 1000); },
             v1::NACK_REASON_TIME_ABSURD, "max_device_time_in_future", true},
        Rule{"CalcReservoirNegative", [](auto* s) { s->set_calculated_reservoir_ul(-1); },
             v1::NACK_REASON_INVALID_FIELD, "calculated_reservoir_ul=-1 is below minimum 0", true},
        Rule{"CalcReservoirInf", [](auto* s) { s->set_calculated_reservoir_ul(kInf); },
             v1::NACK_REASON_INVALID_FIELD, "calculated_reservoir_ul=inf is not a finite", true},
        Rule{"MeasuredReservoirHuge", [](auto* s) { s->set_measured_reservoir_ul(1e6); },
             v1::NACK_REASON_INVALID_FIELD, "exceeds maximum 100000 (max_reservoir_ul)", true},
        Rule{"DriveUnitsHuge", [](auto* s) { s->set_cumulative_drive_units(1ULL << 62); },
             v1::NACK_REASON_INVALID_FIELD, "(max_cumulative_drive_units)", true},
        Rule{"OutletPressureNan", [](auto* s) { s->set_outlet_pressure_mmhg(kNan); },
             v1::NACK_REASON_INVALID_FIELD, "outlet_pressure_mmhg=NaN", true},
        Rule{"OutletPressureLow", [](auto* s) { s->set_outlet_pressure_mmhg(-500); },
             v1::NACK_REASON_INVALID_FIELD, "(min_pressure_mmhg)", true},
        Rule{"StrokePeakHigh", [](auto* s) { s->set_stroke_pressure_peak_mmhg(5000); },
             v1::NACK_REASON_INVALID_FIELD, "stroke_pressure_peak_mmhg=5000 exceeds maximum 3000",
             true},
        Rule{"CsfNegative", [](auto* s) { s->set_csf_pulsation_mmhg(-1); },
             v1::NACK_REASON_INVALID_FIELD, "csf_pulsation_mmhg=-1", true},
        Rule{"BatteryHigh", [](auto* s) { s->set_battery_voltage_v(7.2); },
             v1::NACK_REASON_INVALID_FIELD,
             "battery_voltage_v=7.2 exceeds maximum 5 (max_battery_voltage_v)", true},
        Rule{"BatteryCurrentNegative", [](auto* s) { s->set_battery_current_ua(-5); },
             v1::NACK_REASON_INVALID_FIELD, "(min_battery_current_ua)", true},
        Rule{"MotorCurrentInf", [](auto* s) { s->set_motor_current_ma(-kInf); },
             v1::NACK_REASON_INVALID_FIELD, "motor_current_ma=-inf is not a finite", true},
        Rule{"TemperatureHot", [](auto* s) { s->set_temperature_c(90); },
             v1::NACK_REASON_INVALID_FIELD, "(max_temperature_c)", true},
        Rule{"UnknownAlarmBit", [](auto* s) { s->set_alarm_flags(0x40); },
             v1::NACK_REASON_INVALID_FIELD, "alarm_flags=0x40 has bits outside", true},
        Rule{"TooManyEvents",
             [](auto* s) {
               for (int i = 0; i < 65; ++i) {
                 auto* e = s->add_events();
                 e->set_type(v1::DEVICE_EVENT_BOLUS_START);
                 e->set_device_time_ms(s->device_time_ms());
               }
             },
             v1::NACK_REASON_INVALID_FIELD, "(max_events_per_sample)", true},
        Rule{"EventTypeUnspecified",
             [](auto* s) { s->add_events()->set_device_time_ms(s->device_time_ms()); },
             v1::NACK_REASON_INVALID_FIELD, "events[0].type=0 is not a known", true},
        Rule{"EventTypeUnknown",
             [](auto* s) {
               auto* e = s->add_events();
               e->set_type(static_cast<v1::DeviceEventType>(99));
               e->set_device_time_ms(s->device_time_ms());
             },
             v1::NACK_REASON_INVALID_FIELD, "events[0].type=99", true},
        Rule{"EventTimeAbsurd",
             [](auto* s) {
               auto* e = s->add_events();
               e->set_type(v1::DEVICE_EVENT_BOLUS_START);
               e->set_device_time_ms(-5);
             },
             v1::NACK_REASON_TIME_ABSURD, "events[0].device_time_ms=-5", true},
        Rule{"EventVolumeNegative",
             [](auto* s) {
               auto* e = s->add_events();
               e->set_type(v1::DEVICE_EVENT_BOLUS_END);
               e->set_device_time_ms(s->device_time_ms());
               e->set_value_ul(-2);
             },
             v1::NACK_REASON_INVALID_FIELD, "events[0].value_ul=-2 is below minimum 0", true}),
    [](const ::testing::TestParamInfo<Rule>& info) { return info.param.name; });

TEST(SampleCodec, LimitsAreConfigurable) {
  ValidationLimits l;
  l.max_battery_voltage_v = 3.0;
  v1::TelemetrySample s = MakeSample("p", 1);  // 3.1 V
  auto r = ValidateSample(s, 0, TestNow(), l);
  ASSERT_TRUE(r.has_value());
  EXPECT_THAT(r->message, HasSubstr("exceeds maximum 3 (max_battery_voltage_v)"));
  l.max_device_time_in_future = absl::ZeroDuration();
  s = MakeSample("p", 1, TestNow() + absl::Minutes(2));
  s.clear_battery_voltage_v();
  EXPECT_EQ(ValidateSample(s, 0, TestNow(), l)->reason, v1::NACK_REASON_TIME_ABSURD);
}

TEST(SampleCodec, NackReasonsMapToGrpcCodes) {
  EXPECT_EQ(NackReasonToCode(v1::NACK_REASON_UNKNOWN_PUMP), absl::StatusCode::kNotFound);
  EXPECT_EQ(NackReasonToCode(v1::NACK_REASON_NOT_BOUND), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(NackReasonToCode(v1::NACK_REASON_INVALID_FIELD), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NackReasonToCode(v1::NACK_REASON_TIME_ABSURD), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NackReasonToCode(v1::NACK_REASON_OUT_OF_ORDER), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(NackReasonToCode(v1::NACK_REASON_DECOMMISSIONED),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(NackReasonToCode(v1::NACK_REASON_STORE_UNAVAILABLE), absl::StatusCode::kUnavailable);
}

TEST(FrameDecoder, GroupsByPumpAuthorizesOnceAndConsumesRejectedSeqs) {
  v1::TelemetryFrame f;
  f.set_frame_id(9);
  *f.add_samples() = MakeSample("a", 1);
  *f.add_samples() = MakeSample("b", 1);
  *f.add_samples() = MakeSample("a", 2);
  f.mutable_samples(2)->set_temperature_c(kNan);
  *f.add_samples() = MakeSample("stranger", 4);
  *f.add_samples() = MakeSample("stranger", 5);
  *f.add_samples() = MakeSample("a", 3);
  int auth_calls = 0;
  DecodedFrame out;
  ASSERT_TRUE(DecodeFrame(
                  f, "gw", TestNow(), {},
                  [&](absl::string_view pump) {
                    ++auth_calls;
                    return pump == "stranger" ? absl::PermissionDeniedError("not yours")
                                              : absl::OkStatus();
                  },
                  &out)
                  .ok());
  EXPECT_EQ(auth_calls, 3);
  ASSERT_EQ(out.batch.pumps.size(), 2u);
  EXPECT_EQ(out.batch.pumps[0].pump_id, "a");
  EXPECT_EQ(out.batch.pumps[0].samples.size(), 2u);
  EXPECT_EQ(out.batch.pumps[0].rejected_seqs, std::vector<uint64_t>{2});
  EXPECT_EQ(out.accepted_samples, 3u);
  ASSERT_EQ(out.nacks.size(), 3u);
  EXPECT_EQ(out.nacks[0].reason(), v1::NACK_REASON_INVALID_FIELD);
  EXPECT_EQ(out.nacks[0].message(), "samples[2].temperature_c=NaN is not a finite number");
  EXPECT_EQ(out.nacks[0].frame_id(), 9u);
  EXPECT_EQ(out.nacks[1].reason(), v1::NACK_REASON_NOT_BOUND);
  EXPECT_EQ(out.nacks[1].grpc_code(), static_cast<int>(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(out.nacks[2].seq(), 5u);
}

TEST(FrameDecoder, OversizedFrameIsAProtocolViolation) {
  v1::TelemetryFrame f;
  for (int i = 1; i <= 3; ++i) *f.add_samples() = MakeSample("a", i);
  FrameLimits limits;
  limits.max_samples_per_frame = 2;
  DecodedFrame out;
  absl::Status st = DecodeFrame(
      f, "gw", TestNow(), limits, [](absl::string_view) { return absl::OkStatus(); }, &out);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("exceeds max_samples_per_frame 2"));
}

}  // namespace
}  // namespace pumptwin::device_link
