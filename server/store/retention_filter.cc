// Retention filter: reads only the envelope header (bytes 9..16) of each telemetry value.
#include "server/store/retention_filter.h"

#include <limits>

#include "server/store/store_keys.h"

namespace pumptwin::store {
namespace {

class TelemetryRetentionFilter final : public rocksdb::CompactionFilter {
 public:
  explicit TelemetryRetentionFilter(int64_t cutoff_unix_ns) : cutoff_unix_ns_(cutoff_unix_ns) {}

  bool Filter(int /*level*/, const rocksdb::Slice& /*key*/, const rocksdb::Slice& value,
              std::string* /*new_value*/, bool* /*value_changed*/) const override {
    absl::StatusOr<keys::EnvelopeParts> env =
        keys::ParseTelemetryEnvelope(absl::string_view(value.data(), value.size()));
    // A malformed value is kept: deleting it would hide the corruption from the reader.
    return env.ok() && env->last_unix_ns < cutoff_unix_ns_;
  }
  const char* Name() const override { return "pumptwin.TelemetryRetentionFilter"; }

 private:
  const int64_t cutoff_unix_ns_;
};

}  // namespace

TelemetryRetentionFilterFactory::TelemetryRetentionFilterFactory(std::function<absl::Time()> now,
                                                                 absl::Duration retention)
    : now_(std::move(now)), retention_(retention) {}

std::unique_ptr<rocksdb::CompactionFilter> TelemetryRetentionFilterFactory::CreateCompactionFilter(
    const rocksdb::CompactionFilter::Context& /*context*/) {
  if (retention_ == absl::InfiniteDuration()) return nullptr;
  // ToUnixNanos saturates, so a cutoff before 1677 simply keeps everything.
  const int64_t cutoff = absl::ToUnixNanos(now_() - retention_);
  return std::make_unique<TelemetryRetentionFilter>(cutoff);
}

}  // namespace pumptwin::store
