// FakeSink: an in-memory IngestSink for tests of the service, the client and tools. Pumps
// are registered with their bound gateways; each pump is sequenced with PumpSequencer and
// the samples it releases are recorded in apply order ("the store"), so tests can assert
// exactly-once delivery. Completions run inline, or are held until ReleaseHeld() (to test
// back-pressure); failures can be injected. Thread-safe; must outlive the servers using it.
#ifndef PUMPTWIN_DEVICE_LINK_FAKE_SINK_H_
#define PUMPTWIN_DEVICE_LINK_FAKE_SINK_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "device_link/ingest_sink.h"
#include "device_link/sequencer.h"

namespace pumptwin::device_link {

class FakeSink final : public IngestSink {
 public:
  explicit FakeSink(SequencerConfig config = {}) : config_(config) {}
  ~FakeSink() override;  // runs held completions

  void RegisterPump(const std::string& pump_id, std::vector<std::string> bound_gateways);
  void Decommission(const std::string& pump_id);
  // Hold completions instead of running them inline (back-pressure tests).
  void SetHoldCompletions(bool hold);
  // Runs up to `max` held completions (outside the sink's lock); returns how many ran.
  size_t ReleaseHeld(size_t max = SIZE_MAX);
  // The next `n` Submits fail with `status` (nothing applied).
  void FailNextSubmits(int n, absl::Status status);

  // Seqs released to "the twin" for a pump, in apply order (rejected slots excluded).
  std::vector<uint64_t> AppliedSeqs(const std::string& pump_id) const;
  uint64_t HighestDurableSeq(const std::string& pump_id) const;
  size_t held() const;
  // Largest number of Submits outstanding (not yet completed) at any instant.
  size_t max_outstanding() const;
  uint64_t submits() const;
  // Blocks until `pred` holds over the sink's state, or the timeout; returns pred's value.
  bool AwaitAppliedCount(const std::string& pump_id, size_t count, absl::Duration timeout) const;
  bool AwaitHeld(size_t count, absl::Duration timeout) const;

  void Submit(IngestBatch batch, std::function<void(IngestResult)> done) override;
  absl::StatusOr<std::vector<ResumePoint>> ResumePoints(
      absl::string_view gateway_id, const std::vector<std::string>& pump_ids) override;
  absl::Status Authorize(absl::string_view gateway_id, absl::string_view pump_id) override;

 private:
  struct Pump {
    absl::flat_hash_set<std::string> gateways;
    bool decommissioned = false;
    PumpSequencer sequencer;
    std::vector<uint64_t> applied;
  };
  struct Held {
    std::function<void(IngestResult)> done;
    IngestResult result;
  };

  const SequencerConfig config_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Pump> pumps_ ABSL_GUARDED_BY(mu_);
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Held> held_ ABSL_GUARDED_BY(mu_);
  size_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  size_t max_outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t submits_ ABSL_GUARDED_BY(mu_) = 0;
  int fail_next_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status fail_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pumptwin::device_link

#endif  // PUMPTWIN_DEVICE_LINK_FAKE_SINK_H_
