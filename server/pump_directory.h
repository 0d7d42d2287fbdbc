// PumpDirectory: the registered pumps as the hot path and the list calls need them:
// gateway bindings (Authorize), lifecycle, clinic, and a small summary each shard keeps
// up to date (worst active severity, refill and battery dates, last sample time). The
// full registration (v1::Pump) lives in the store. Striped absl::Mutex per shard range;
// thread-safe. Compact on purpose: one entry per pump of up to a million.
#ifndef PUMPTWIN_SERVER_PUMP_DIRECTORY_H_
#define PUMPTWIN_SERVER_PUMP_DIRECTORY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/container/node_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "pumptwin/v1/resources.pb.h"

namespace pumptwin::server {

struct PumpSummary {
  uint8_t worst_severity = 0;     // v1::Severity of the worst active alert, 0 = none
  bool silent = false;
  int64_t next_refill_due_ms = 0;  // 0 = unknown
  int64_t battery_eri_ms = 0;
  int64_t last_sample_server_ms = 0;
};

struct PumpEntry {
  // Interned gateway ids (PumpDirectory owns the strings, never frees them): a pointer
  // per binding instead of a string copy per pump.
  absl::InlinedVector<const std::string*, 1> gateways;
  uint32_t clinic_id = 0;
  uint8_t lifecycle = 0;  // v1::PumpLifecycle
  uint8_t profile = 0;    // v1::PumpProfile
  PumpSummary summary;
};

class PumpDirectory {
 public:
  explicit PumpDirectory(int stripes);
  PumpDirectory(const PumpDirectory&) = delete;
  PumpDirectory& operator=(const PumpDirectory&) = delete;

  // Stripe (== shard) of a pump id: stable hash, the same across restarts.
  int StripeOf(absl::string_view pump_id) const;
  int stripes() const { return static_cast<int>(stripes_.size()); }

  // Inserts or replaces the entry from a registration.
  void Put(const v1::Pump& pump);
  bool Contains(absl::string_view pump_id) const;
  void Clear();
  // Pre-sizes the stripes for `pumps` entries (recovery: no rehash while loading).
  void Reserve(size_t pumps);
  std::optional<PumpEntry> Get(absl::string_view pump_id) const;
  void UpdateSummary(absl::string_view pump_id, const PumpSummary& summary);

  // OK, NOT_FOUND (unregistered), PERMISSION_DENIED (not bound), FAILED_PRECONDITION
  // (decommissioned).
  absl::Status Authorize(absl::string_view gateway_id, absl::string_view pump_id) const;

  // Pumps bound to a gateway (linear in the pumps; called at Hello only).
  std::vector<std::string> PumpsOfGateway(absl::string_view gateway_id) const;

  // Calls fn for every entry (under the stripe lock: keep fn short). Order unspecified.
  void ForEach(const std::function<void(const std::string&, const PumpEntry&)>& fn) const;

  std::string ClinicName(uint32_t id) const;
  size_t size() const;

 private:
  struct Stripe {
    mutable absl::Mutex mu;
    // Node-based: a flat table's power-of-two capacity would hold up to twice the
    // entries' bytes in empty slots (a million pumps: ~100 B per pump more).
    absl::node_hash_map<std::string, PumpEntry> pumps ABSL_GUARDED_BY(mu);
  };
  uint32_t InternClinic(const std::string& clinic);
  const std::string* InternGateway(const std::string& gateway_id);

  std::vector<std::unique_ptr<Stripe>> stripes_;
  mutable absl::Mutex clinic_mu_;
  absl::flat_hash_map<std::string, uint32_t> clinic_ids_ ABSL_GUARDED_BY(clinic_mu_);
  std::vector<std::string> clinic_names_ ABSL_GUARDED_BY(clinic_mu_);
  absl::node_hash_set<std::string> gateway_names_ ABSL_GUARDED_BY(clinic_mu_);
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_PUMP_DIRECTORY_H_
