// Durable event-time inputs of a pump and its checkpoints (docs/storage.md "Event-time
// inputs and checkpoints", docs/model.md "Event time"): the clinical records and
// state-changing ticks that, with the stored telemetry, make every twin a replayable fold
// of its inputs; how they are applied (one function for live calls and every replay); and
// loading a pump's history from the store as fold inputs.
// Free functions; thread-safe as far as the Store is.
#ifndef PUMPTWIN_SERVER_EVENT_INPUTS_H_
#define PUMPTWIN_SERVER_EVENT_INPUTS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pumptwin/v1/twin_service.pb.h"
#include "server/store/store.h"
#include "twin/drug_library.h"
#include "twin/event_fold.h"
#include "twin/twin.h"

namespace pumptwin::server {

enum class InputKind : uint8_t { kRefill = 1, kEvent = 2, kPrescription = 3, kTick = 4 };

// One stored clinical record or tick.
struct StoredInput {
  twin::InputKey key;
  InputKind kind = InputKind::kTick;
  absl::Time server_time;
  // kRefill: v1::RecordRefillRequest, kEvent: v1::RecordEventRequest,
  // kPrescription: v1::SetPrescriptionRequest (prescription with its version and resolved
  // effective time); times resolved to what was applied. kTick: empty.
  std::string payload;
};

// A clinical record at `time` (rank kClinical, tie = its server time: records stated at the
// same time apply in arrival order).
StoredInput MakeClinicalInput(InputKind kind, absl::Time time, absl::Time server_time,
                              std::string payload);
// A tick that changed the twin, at the model time it ran at.
StoredInput MakeTickInput(absl::Time model_time, absl::Time server_time);

// Meta keys (layouts in server/store/store_keys.h): "input/" u8 len | pump | ordered time
// ns | rank | BE tie, and "ckpt/" u8 len | pump | ordered boundary ns. Bytewise order ==
// event order.
std::string InputMetaKey(absl::string_view pump_id, const twin::InputKey& key);
std::string InputValue(const StoredInput& in);
absl::StatusOr<StoredInput> ParseInput(absl::string_view key, absl::string_view value);
std::string CheckpointMetaKey(absl::string_view pump_id, absl::Time boundary);
// [begin, end) of every checkpoint key of the pump before `before` (pruning).
std::pair<std::string, std::string> CheckpointRangeBefore(absl::string_view pump_id,
                                                          absl::Time before);

// Applies a clinical record or tick to `twin`: the one procedure behind the live
// RecordRefill / RecordEvent / SetPrescription and every replay. `refill`: the verdict of a
// refill (may be null). A prescription is re-checked against `library`; its soft limits
// were acknowledged when it was set.
absl::Status ApplyStoredInput(const StoredInput& in, twin::Twin& twin,
                              const twin::DrugLibrary& library,
                              std::vector<twin::AlertTransition>* out,
                              twin::RefillResult* refill = nullptr);

twin::Refill RefillFromRequest(const v1::RecordRefillRequest& r);
twin::ClinicalEvent EventFromRequest(const v1::RecordEventRequest& r);

// A pump's stored history from `from` on (inclusive): samples with their group server
// times and clinical/tick inputs; FoldInputs() turns it into fold inputs (they reference
// this object, which must outlive them).
struct PumpHistory {
  std::vector<twin::Sample> samples;
  std::vector<absl::Time> sample_server_times;
  std::vector<StoredInput> inputs;
  std::vector<twin::FoldInput> FoldInputs(std::shared_ptr<const twin::DrugLibrary> library) const;
};
// Sorts `inputs` whose first `sorted_prefix` and the rest are each sorted already (the
// common case: stored inputs, then late ones in seq order) by one stable merge, else by
// twin::SortInputs; the result is the same either way.
void SortAppendedInputs(std::vector<twin::FoldInput>& inputs, size_t sorted_prefix);
// `max_seq`: samples above it are left out (0: all).
absl::Status LoadPumpHistory(const store::Store& store, absl::string_view pump_id, absl::Time from,
                             PumpHistory* out);

// ---- approximate clinical times (docs/model.md "Approximate clinical times")
// How far the pump's refill log entry may be from an approximate refill's stated time for
// the two to be the same act.
inline constexpr absl::Duration kRefillLogTolerance = absl::Hours(2);

// A pump refill log entry (DeviceEventType::kReservoirRefill) not matched by a record yet:
// kept as meta "rlog/" u8 len | pump | ordered time ns, value BE seq of its sample.
struct RefillLogEntry {
  absl::Time device_time;
  uint64_t seq = 0;
};
std::string RefillLogMetaKey(absl::string_view pump_id, absl::Time device_time);
std::string RefillLogValue(uint64_t seq);
// [key, key + '\0'): the range that erases exactly `key`.
std::pair<std::string, std::string> SingleKeyRange(std::string key);
// The unmatched entry nearest `around` within kRefillLogTolerance (earliest on a tie).
absl::StatusOr<std::optional<RefillLogEntry>> FindRefillLogEntry(const store::Store& store,
                                                                 absl::string_view pump_id,
                                                                 absl::Time around);
// The stored refill with time_approximate set nearest `around` within kRefillLogTolerance
// (first in event order on a tie).
absl::StatusOr<std::optional<StoredInput>> FindApproximateRefill(const store::Store& store,
                                                                 absl::string_view pump_id,
                                                                 absl::Time around);
// The refill `in` moved to the pump's exact time: key time and device_time_ms, and no
// longer approximate (a replay applies it where it is; no second entry moves it).
StoredInput RekeyRefill(const StoredInput& in, absl::Time exact);
// Whether `in` is a refill stated with an approximate time.
bool IsApproximateRefill(const StoredInput& in);

// The latest checkpoint with boundary <= t: (boundary, twin bytes); NOT_FOUND when none.
absl::StatusOr<std::pair<absl::Time, std::string>> FindCheckpoint(const store::Store& store,
                                                                  absl::string_view pump_id,
                                                                  absl::Time t);

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_EVENT_INPUTS_H_
