// Event time in the registry (in-process, MemStore): a clinical record that arrives before
// telemetry stamped earlier does not make that telemetry unusable; late samples are applied
// in their place by a rewind, and the twin ends byte-identical to time-ordered delivery,
// with the same open alerts, whatever the arrival order. `VerifyStore` (the fold from the
// registration) agrees, and a restart recovers the same bytes.
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/core/event_inputs.h"
#include "server/core/verify.h"
#include "tests/registry/registry_fixture.h"

namespace pumptwin::server {
namespace {

constexpr uint64_t kSamples = 3000;  // ~2 days of 1-minute samples: crosses checkpoints

// One arrival: a frame of samples [from, to], or a clinical record.
struct Arrival {
  uint64_t from = 0, to = 0;
  int record = -1;  // index into Records()
};

struct Record {
  InputKind kind;
  uint64_t after_seq;  // stated time: 30 s after this sample
};

std::vector<Record> Records() { return {{InputKind::kRefill, 1500}, {InputKind::kEvent, 2400}}; }

class EventTimeTest : public RegistryTest {
 protected:
  absl::Status Record(const struct Record& r) {
    const absl::Time at = SampleAt(r.after_seq).device_time + absl::Seconds(30);
    std::string payload;
    if (r.kind == InputKind::kRefill) {
      v1::RecordRefillRequest req;
      req.set_withdrawn_volume_ul(40000 - 500.0 * r.after_seq / 1440.0);
      req.set_added_volume_ul(38000);
      req.set_device_time_ms(absl::ToUnixMillis(at));
      payload = req.SerializeAsString();
    } else {
      v1::RecordEventRequest req;
      req.set_type(v1::CLINICAL_EVENT_CLINICIAN_BOLUS);
      req.set_volume_ul(200);
      req.set_duration_ms(600000);
      req.set_device_time_ms(absl::ToUnixMillis(at));
      payload = req.SerializeAsString();
    }
    return Apply(r.kind, at, payload);
  }

  // Applies a clinical record stated at `at` through the shard (as the TwinService calls do).
  absl::Status Apply(InputKind kind, absl::Time at, const std::string& payload) {
    absl::Notification done;
    absl::Status result;
    registry_->Mutate(
        "deg-1",
        [&](twin::Twin&, MutationContext& ctx) {
          return ctx.apply_input(MakeClinicalInput(kind, at, ctx.server_time, payload), nullptr);
        },
        [&](absl::Status s) {
          result = s;
          done.Notify();
        });
    done.WaitForNotification();
    return result;
  }

  // Delivers `arrivals`; every frame must be acked in full with no Nack.
  void Deliver(const std::vector<Arrival>& arrivals) {
    const auto records = Records();
    for (const Arrival& a : arrivals) {
      if (a.record >= 0) {
        absl::Status s = Record(records[a.record]);
        ASSERT_TRUE(s.ok()) << s;
        continue;
      }
      auto r = Ingest(a.from, a.to);
      ASSERT_TRUE(r.status.ok()) << r.status;
      ASSERT_TRUE(r.nacks.empty())
          << "seq " << r.nacks.front().seq << ": " << r.nacks.front().message;
      ASSERT_EQ(r.durable.size(), 1u);
      EXPECT_EQ(r.durable[0].highest_durable_seq, a.to);
    }
  }

  std::string TwinBytes() {
    absl::Notification done;
    std::string bytes;
    registry_->Read("deg-1", [&](const twin::Twin* t, absl::Status) {
      if (t != nullptr) bytes = t->Serialize();
      done.Notify();
    });
    done.WaitForNotification();
    return bytes;
  }

  std::vector<std::string> OpenAlerts() {
    std::vector<std::string> out;
    for (const v1::Alert& a : gate_->ActiveAlerts("deg-1")) {
      out.push_back(
          absl::StrCat(v1::AlertType_Name(a.type()), "/", v1::Severity_Name(a.severity())));
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // Frames of `frame` samples; records placed at their event time (in order) or at the
  // arrival slots given in `record_slots` (index of the frame they arrive before).
  static std::vector<Arrival> Plan(uint64_t frame, const std::vector<size_t>& record_slots) {
    std::vector<Arrival> frames;
    for (uint64_t s = 1; s <= kSamples; s += frame) {
      frames.push_back({s, std::min(kSamples, s + frame - 1), -1});
    }
    std::vector<Arrival> out;
    const auto records = Records();
    for (size_t f = 0; f <= frames.size(); ++f) {
      for (size_t r = 0; r < records.size(); ++r) {
        size_t slot = record_slots.empty()
                          ? records[r].after_seq / frame + 1  // after its sample's frame
                          : record_slots[r];
        if (slot == f) out.push_back({0, 0, static_cast<int>(r)});
      }
      if (f < frames.size()) out.push_back(frames[f]);
    }
    return out;
  }
};

// Reference: everything delivered in event-time order (frames of 60 samples, each record
// right after the frame holding the sample before it). Then random arrival orders: the
// records arrive anywhere, before the telemetry stamped earlier than them.
TEST_F(EventTimeTest, RandomArrivalOrdersEndInTheSameTwinAndAlerts) {
  constexpr uint64_t kFrame = 60;
  ASSERT_NO_FATAL_FAILURE(Deliver(Plan(kFrame, {})));
  const std::string reference = TwinBytes();
  const std::vector<std::string> reference_alerts = OpenAlerts();
  ASSERT_FALSE(reference.empty());
  ExpectVerifyExact();

  std::mt19937 rng(20261204);
  const size_t frames = (kSamples + kFrame - 1) / kFrame;
  for (int run = 0; run < 4; ++run) {
    SCOPED_TRACE(absl::StrCat("run ", run));
    const std::string id = "deg-1";
    // A fresh store and registry for each arrival order.
    registry_->Stop();
    committer_->Shutdown();
    store_.~MemStore();
    new (&store_) store::MemStore();
    SetUp();
    std::uniform_int_distribution<size_t> pick(0, frames);
    std::vector<size_t> slots;
    for (size_t r = 0; r < Records().size(); ++r) slots.push_back(pick(rng));
    ASSERT_NO_FATAL_FAILURE(Deliver(Plan(kFrame, slots)));
    EXPECT_TRUE(TwinBytes() == reference) << "slots " << slots[0] << "," << slots[1];
    EXPECT_EQ(OpenAlerts(), reference_alerts);
    ExpectVerifyExact();
    // Recovery (last snapshot + later telemetry) gives the same bytes.
    auto stats = Restart();
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_TRUE(TwinBytes() == reference);
  }
}

// A 36 h gateway outage with a refill recorded in its middle: the gateway's backlog arrives
// after the refill; nothing is refused, and the twin equals the in-order run.
TEST_F(EventTimeTest, BackfillAfterAnOutageWithARefillInTheMiddleIsAppliedInPlace) {
  constexpr uint64_t kFrame = 60;
  ASSERT_NO_FATAL_FAILURE(Deliver(Plan(kFrame, {})));
  const std::string reference = TwinBytes();
  registry_->Stop();
  committer_->Shutdown();
  store_.~MemStore();
  new (&store_) store::MemStore();
  SetUp();
  // Samples up to 900 arrive; then the outage (901..3000 = 35 h) during which the refill
  // (after 1500) and the bolus (after 2400) are recorded; then the backlog.
  std::vector<Arrival> plan;
  for (uint64_t s = 1; s <= 900; s += kFrame) plan.push_back({s, s + kFrame - 1, -1});
  plan.push_back({0, 0, 0});
  plan.push_back({0, 0, 1});
  for (uint64_t s = 901; s <= kSamples; s += kFrame) {
    plan.push_back({s, std::min(kSamples, s + kFrame - 1), -1});
  }
  ASSERT_NO_FATAL_FAILURE(Deliver(plan));
  EXPECT_TRUE(TwinBytes() == reference);
  ExpectVerifyExact();
}

// A back-dated record older than the history window is refused with the limit.
TEST_F(EventTimeTest, RecordsBeyondTheHistoryWindowAreRefusedWithTheLimit) {
  // 10 days of hourly samples.
  std::vector<twin::Sample> samples;
  for (uint64_t s = 1; s <= 240; ++s) {
    twin::Sample x = SampleAt(s);
    x.device_time = absl::FromUnixMillis(kStartMs) + absl::Hours(static_cast<int64_t>(s));
    samples.push_back(x);
  }
  auto r = SubmitAndWait(Batch({"deg-1"}, samples));
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_TRUE(r.nacks.empty());
  struct Record old {
    InputKind::kEvent, 1
  };
  absl::Status s = Record(old);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("history_window"), std::string::npos) << s;
}

// A refill recorded while the gateway is offline looks like a discrepancy (the model has not
// seen the pump deliver faster than programmed); the backlog shows the reservoir went down
// as withdrawn. The replay withdraws the alert through the alert log, with a reason, and
// the open alerts equal those of the in-order run.
TEST_F(EventTimeTest, LateTelemetryWithdrawsAnAlertItDisprovesThroughTheAlertLog) {
  constexpr uint64_t kLast = 2880;  // 2 days
  auto sample = [](uint64_t seq) {
    twin::Sample s = SampleAt(seq);
    s.measured_reservoir = twin::Microliters(40000 - 2000.0 * seq / 1440.0);
    return s;
  };
  auto frames = [&](uint64_t from, uint64_t to) {
    for (uint64_t s = from; s <= to; s += 60) {
      std::vector<twin::Sample> v;
      for (uint64_t q = s; q <= std::min(to, s + 59); ++q) v.push_back(sample(q));
      auto r = SubmitAndWait(Batch({"deg-1"}, v));
      ASSERT_TRUE(r.status.ok()) << r.status;
      ASSERT_TRUE(r.nacks.empty()) << r.nacks.front().message;
    }
  };
  auto refill = [&] {
    const absl::Time at = SampleAt(kLast).device_time + absl::Seconds(30);
    v1::RecordRefillRequest req;
    req.set_withdrawn_volume_ul(40000 - 2000.0 * kLast / 1440.0);
    req.set_added_volume_ul(38000);
    req.set_device_time_ms(absl::ToUnixMillis(at));
    return Apply(InputKind::kRefill, at, req.SerializeAsString());
  };
  // In order.
  ASSERT_NO_FATAL_FAILURE(frames(1, kLast));
  ASSERT_TRUE(refill().ok());
  const std::string reference = TwinBytes();
  const std::vector<std::string> reference_alerts = OpenAlerts();
  const bool reference_discrepancy =
      gate_->FindActive("deg-1", v1::ALERT_TYPE_REFILL_DISCREPANCY).has_value();
  // Out of order: the refill arrives while 121..2880 wait at the gateway.
  registry_->Stop();
  committer_->Shutdown();
  store_.~MemStore();
  new (&store_) store::MemStore();
  SetUp();
  ASSERT_NO_FATAL_FAILURE(frames(1, 120));
  ASSERT_TRUE(refill().ok());
  ASSERT_TRUE(gate_->FindActive("deg-1", v1::ALERT_TYPE_REFILL_DISCREPANCY).has_value())
      << "the refill should look discrepant before the backlog arrives";
  ASSERT_NO_FATAL_FAILURE(frames(121, kLast));
  EXPECT_TRUE(TwinBytes() == reference);
  EXPECT_EQ(OpenAlerts(), reference_alerts);
  ASSERT_FALSE(reference_discrepancy);
  // The alert log: the withdrawal is an ordinary event after the raise, with its reason.
  auto events = store_.ScanAlertsAfter(0, 1000);
  ASSERT_TRUE(events.ok());
  bool withdrawn = false;
  uint64_t previous = 0;
  for (const auto& [cursor, bytes] : *events) {
    EXPECT_EQ(cursor, previous + 1) << "a gap in the alert log";
    previous = cursor;
    v1::AlertEvent ev;
    ASSERT_TRUE(ev.ParseFromString(bytes));
    if (ev.transition() == v1::ALERT_TRANSITION_WITHDRAWN &&
        ev.alert().type() == v1::ALERT_TYPE_REFILL_DISCREPANCY) {
      withdrawn = true;
      EXPECT_NE(ev.alert().correction().find("late telemetry from gateway gw"), std::string::npos)
          << ev.alert().correction();
      EXPECT_GT(ev.alert().event_time_ms(), 0);
    }
  }
  EXPECT_TRUE(withdrawn) << "the disproved alert was not withdrawn";
  ExpectVerifyExact();
}

}  // namespace
}  // namespace pumptwin::server

namespace pumptwin::server {
namespace {

TEST_F(EventTimeTest, PrescriptionsAtTheModelTimeApplyInTurn) {
  for (uint64_t v = 2; v <= 4; ++v) {
    v1::SetPrescriptionRequest rec;
    v1::Prescription* rx = rec.mutable_prescription();
    rx->set_drug("morphine");
    rx->set_concentration_ug_per_ml(10000);
    rx->set_mode(v1::THERAPY_MODE_SIMPLE_CONTINUOUS);
    rx->set_rate_ul_per_day(500 + 10 * v);
    rx->set_version(v);
    absl::Notification done;
    absl::Status result;
    uint64_t version = 0;
    registry_->Mutate(
        "deg-1",
        [&](twin::Twin& pump_twin, MutationContext& ctx) {
          absl::Status s =
              ctx.apply_input(MakeClinicalInput(InputKind::kPrescription, pump_twin.device_time(),
                                                ctx.server_time, rec.SerializeAsString()),
                              nullptr);
          version = pump_twin.prescription().version;
          return s;
        },
        [&](absl::Status s) {
          result = s;
          done.Notify();
        });
    done.WaitForNotification();
    ASSERT_TRUE(result.ok()) << result;
    EXPECT_EQ(version, v);
  }
}

}  // namespace
}  // namespace pumptwin::server

namespace pumptwin::server {
namespace {

// Approximate clinical times: a refill entered at a time rounded to 5 minutes is re-keyed
// to the pump's own refill log entry for the same act, whichever arrives first, and the
// twin equals the run where the exact time was entered.
class RefillReconcileTest : public EventTimeTest {
 protected:
  static constexpr uint64_t kLast = 2880;  // 2 days of 1-minute samples
  static constexpr uint64_t kLogSeq = 1500;
  // The pump logs the refill 23 s before its sample kLogSeq.
  static absl::Time LogTime() { return SampleAt(kLogSeq).device_time - absl::Seconds(23); }
  // The staff entry: the pump time rounded to 5 minutes (never equal to it).
  static absl::Time RoundedTime() {
    const int64_t five = 5 * 60 * 1000;
    const int64_t ms = absl::ToUnixMillis(LogTime());
    return absl::FromUnixMillis((ms + five / 2) / five * five);
  }

  void Reset() {
    registry_->Stop();
    committer_->Shutdown();
    store_.~MemStore();
    new (&store_) store::MemStore();
    SetUp();
  }

  // Samples [from, to] in frames of 60; sample kLogSeq carries the pump's refill entry
  // when `with_log`.
  void Frames(uint64_t from, uint64_t to, bool with_log = true) {
    for (uint64_t s = from; s <= to; s += 60) {
      std::vector<twin::Sample> v;
      for (uint64_t q = s; q <= std::min(to, s + 59); ++q) {
        twin::Sample x = SampleAt(q);
        if (q == kLogSeq && with_log) {
          x.events.push_back(
              {twin::DeviceEventType::kReservoirRefill, LogTime(), twin::Microliters(38000)});
        }
        v.push_back(std::move(x));
      }
      auto r = SubmitAndWait(Batch({"deg-1"}, v));
      ASSERT_TRUE(r.status.ok()) << r.status;
      ASSERT_TRUE(r.nacks.empty())
          << "seq " << r.nacks.front().seq << ": " << r.nacks.front().message;
    }
  }

  absl::Status Refill(absl::Time at, bool approximate) {
    v1::RecordRefillRequest req;
    req.set_withdrawn_volume_ul(40000 - 500.0 * kLogSeq / 1440.0);
    req.set_added_volume_ul(38000);
    req.set_device_time_ms(absl::ToUnixMillis(at));
    req.set_time_approximate(approximate);
    return Apply(InputKind::kRefill, at, req.SerializeAsString());
  }

  // The stored refill records: (event time, still approximate).
  std::vector<std::pair<absl::Time, bool>> StoredRefills() {
    PumpHistory h;
    EXPECT_TRUE(LoadPumpHistory(store_, "deg-1", absl::InfinitePast(), &h).ok());
    std::vector<std::pair<absl::Time, bool>> out;
    for (const StoredInput& in : h.inputs) {
      if (in.kind == InputKind::kRefill) out.emplace_back(in.key.time, IsApproximateRefill(in));
    }
    return out;
  }

  bool UnmatchedLogEntry() {
    auto e = FindRefillLogEntry(store_, "deg-1", LogTime());
    EXPECT_TRUE(e.ok());
    return e.ok() && e->has_value();
  }

  // The twin of the in-order run with the exact time entered.
  std::string Reference() {
    Reset();
    Frames(1, kLogSeq - 1);
    EXPECT_TRUE(Refill(LogTime(), false).ok());
    Frames(kLogSeq, kLast);
    return TwinBytes();
  }
};

TEST_F(RefillReconcileTest, LogEntryAfterAnApproximateRecordReKeysItToThePumpTime) {
  const std::string reference = Reference();
  ASSERT_FALSE(reference.empty());
  Reset();
  // The gateway is offline from sample 1200 on; the staff enter the refill at a rounded
  // time; the backlog with the pump's log entry arrives later.
  ASSERT_NO_FATAL_FAILURE(Frames(1, 1200));
  ASSERT_TRUE(Refill(RoundedTime(), true).ok());
  ASSERT_NO_FATAL_FAILURE(Frames(1201, kLast));
  EXPECT_TRUE(TwinBytes() == reference);
  EXPECT_EQ(StoredRefills(), (std::vector<std::pair<absl::Time, bool>>{{LogTime(), false}}));
  EXPECT_FALSE(UnmatchedLogEntry());
  ExpectVerifyExact();
  auto stats = Restart();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(TwinBytes() == reference);
}

TEST_F(RefillReconcileTest, ApproximateRecordAfterTheLogEntryTakesThePumpTime) {
  const std::string reference = Reference();
  Reset();
  ASSERT_NO_FATAL_FAILURE(Frames(1, kLast));
  EXPECT_TRUE(UnmatchedLogEntry()) << "the unmatched entry is kept for a record to come";
  ASSERT_TRUE(Refill(RoundedTime(), true).ok());
  EXPECT_TRUE(TwinBytes() == reference);
  EXPECT_EQ(StoredRefills(), (std::vector<std::pair<absl::Time, bool>>{{LogTime(), false}}));
  EXPECT_FALSE(UnmatchedLogEntry()) << "the entry is consumed by the record it matched";
  ExpectVerifyExact();
}

// Without the flag the stated time stands (and gives another twin: the test above can
// tell the two apart); the pump's entry is stored with its sample and kept, never refused.
TEST_F(RefillReconcileTest, ExactRecordsAreNeverMovedAndUnmatchedEntriesAreKept) {
  const std::string reference = Reference();
  Reset();
  ASSERT_NO_FATAL_FAILURE(Frames(1, kLast));
  ASSERT_TRUE(Refill(RoundedTime(), false).ok());
  EXPECT_FALSE(TwinBytes() == reference);
  EXPECT_EQ(StoredRefills(), (std::vector<std::pair<absl::Time, bool>>{{RoundedTime(), false}}));
  EXPECT_TRUE(UnmatchedLogEntry());
  ExpectVerifyExact();
}

// A log entry more than the tolerance from the approximate record does not move it.
TEST_F(RefillReconcileTest, RecordsBeyondTheToleranceAreNotMoved) {
  Reset();
  ASSERT_NO_FATAL_FAILURE(Frames(1, kLast));
  const absl::Time far = LogTime() + kRefillLogTolerance + absl::Minutes(5);
  ASSERT_TRUE(Refill(far, true).ok());
  EXPECT_EQ(StoredRefills(), (std::vector<std::pair<absl::Time, bool>>{{far, true}}));
  EXPECT_TRUE(UnmatchedLogEntry());
  ExpectVerifyExact();
}

}  // namespace
}  // namespace pumptwin::server
