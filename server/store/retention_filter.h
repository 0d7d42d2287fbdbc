// Telemetry retention as a RocksDB compaction filter (docs/storage.md, "Retention").
// The factory reads the injected clock once per compaction and hands each compaction a filter
// that drops chunks whose last sample time is before now - retention. Internal to the
// RocksDB backend. Thread-safe: RocksDB calls the factory from its background threads.
#ifndef PUMPTWIN_SERVER_STORE_RETENTION_FILTER_H_
#define PUMPTWIN_SERVER_STORE_RETENTION_FILTER_H_

#include <functional>
#include <memory>

#include "absl/time/time.h"
#include "rocksdb/compaction_filter.h"

namespace pumptwin::store {

class TelemetryRetentionFilterFactory final : public rocksdb::CompactionFilterFactory {
 public:
  // `now` must be thread-safe; it is the server clock, injected.
  TelemetryRetentionFilterFactory(std::function<absl::Time()> now, absl::Duration retention);

  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context& context) override;
  const char* Name() const override { return "pumptwin.TelemetryRetention"; }

 private:
  const std::function<absl::Time()> now_;
  const absl::Duration retention_;
};

}  // namespace pumptwin::store

#endif  // PUMPTWIN_SERVER_STORE_RETENTION_FILTER_H_
