// Helpers for the store tests: scratch directories and sample/group generators.
// Not thread-safe by themselves; each test owns its own instances.
#ifndef PUMPTWIN_TESTS_STORE_STORE_TEST_UTIL_H_
#define PUMPTWIN_TESTS_STORE_STORE_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/store/store.h"
#include "server/store/telemetry_codec.h"
#include "twin/sample.h"

namespace pumptwin::store::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::filesystem::path base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
    std::string pattern = (base / "pumptwin_store_XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string Sub(absl::string_view name) const { return (path_ / std::string(name)).string(); }

 private:
  std::filesystem::path path_;
};

// Regular telemetry as a real pump sends it: 1 min apart, ms timestamps, decimal readings.
inline std::vector<twin::Sample> RegularSamples(uint64_t first_seq, size_t n,
                                                absl::Time first_time) {
  std::vector<twin::Sample> out(n);
  for (size_t i = 0; i < n; ++i) {
    twin::Sample& s = out[i];
    s.seq = first_seq + i;
    s.device_time = first_time + absl::Minutes(static_cast<double>(i));
    const double k = static_cast<double>(first_seq + i);
    s.calculated_reservoir = twin::Microliters(20000.0 - 0.5 * k);
    s.measured_reservoir = twin::Microliters(std::round((20000.0 - 0.5 * k) * 10) / 10);
    s.cumulative_drive_units = 1000 + 3 * (first_seq + i);
    s.outlet_pressure = twin::Mmhg(12.3 + 0.1 * static_cast<double>(i % 5));
    s.battery_voltage = twin::Volts(3.05);
    s.temperature_c = 37.1;
    if (i % 50 == 7) {
      s.events.push_back(
          {twin::DeviceEventType::kBolusStart, s.device_time, twin::Microliters(25.0)});
    }
  }
  return out;
}

inline TelemetryChunk Chunk(absl::string_view pump, uint64_t first_seq, size_t n,
                            absl::Time first_time) {
  absl::StatusOr<TelemetryChunk> c = MakeChunk(pump, RegularSamples(first_seq, n, first_time));
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

// Group i: one chunk of pump "p<i % pumps>", that pump's snapshot, alert i+1, audit i+1.
// Samples are 10 per chunk, seqs continue per pump.
inline WriteGroup NumberedGroup(int i, int pumps = 3) {
  WriteGroup g;
  const std::string pump = absl::StrCat("p", i % pumps);
  const uint64_t first_seq = 1 + 10 * static_cast<uint64_t>(i / pumps);
  g.telemetry.push_back(Chunk(
      pump, first_seq, 10, absl::FromUnixSeconds(1700000000) + absl::Minutes(10.0 * (i / pumps))));
  g.telemetry.back().server_time = absl::FromUnixSeconds(1800000000) + absl::Seconds(i);
  g.snapshots.emplace_back(pump, absl::StrCat("snapshot-after-group-", i));
  g.alerts.emplace_back(i + 1, absl::StrCat("alert-", i));
  g.audit.emplace_back(i + 1, absl::StrCat("audit-", i));
  return g;
}

}  // namespace pumptwin::store::testing

#endif  // PUMPTWIN_TESTS_STORE_STORE_TEST_UTIL_H_
