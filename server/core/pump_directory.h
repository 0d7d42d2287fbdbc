// PumpDirectory: the registered pumps as the hot path and the list calls need them:
// gateway bindings (Authorize), lifecycle, clinic, the owning shard, and a small summary
// each shard keeps up to date (worst active severity, refill and battery dates, last
// sample time). The full registration (v1::Pump) lives in the store. Striped absl::Mutex
// (stripe = stable hash of the pump id); thread-safe. Compact on purpose: one entry per
// pump of up to a million.
//
// Placement (gateway-affine): a pump's twin lives on the shard of its first gateway, so a
// gateway's frame, which carries several of its pumps, touches one shard (one task, one
// completion, one set of chunks) instead of several. A gateway gets a shard the first
// time one of its pumps is placed: the shard with the fewest pumps then; while its shard
// holds fewer than kPlacementSlack pumps more than the least loaded shard, the gateway's
// next pumps go there too, otherwise to the least loaded shard, which becomes the
// gateway's (a hospital relay with thousands of pumps spreads over every shard in runs).
// Pumps without a gateway go by the hash of their id. A pump keeps its shard for the life of the
// process (rebinding it to other gateways does not move its twin); placement is not persisted:
// recovery places again, in pump id order (docs/architecture.md, "Shards").
#ifndef PUMPTWIN_SERVER_PUMP_DIRECTORY_H_
#define PUMPTWIN_SERVER_PUMP_DIRECTORY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/container/node_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "pumptwin/v1/resources.pb.h"

namespace pumptwin::server {

struct PumpSummary {
  uint8_t worst_severity = 0;  // v1::Severity of the worst active alert, 0 = none
  bool silent = false;
  int64_t next_refill_due_ms = 0;  // 0 = unknown
  int64_t battery_eri_ms = 0;
  int64_t last_sample_server_ms = 0;
};

// The gateways a pump is bound to, in registration order (the first places the pump). Both
// the ids and the sets are interned: PumpDirectory owns them and never frees them (a fleet
// has few distinct sets), so an entry holds one pointer instead of a vector.
using GatewaySet = std::vector<const std::string*>;
const GatewaySet& NoGateways();

struct PumpEntry {
  const GatewaySet* gateways = &NoGateways();  // never null
  uint32_t clinic_id = 0;
  uint8_t lifecycle = 0;  // v1::PumpLifecycle
  uint8_t profile = 0;    // v1::PumpProfile
  uint16_t shard = 0;     // the shard that owns the twin (placement, below)
  PumpSummary summary;
};

class PumpDirectory {
 public:
  // How far a gateway's shard may run ahead of the least loaded shard (pumps).
  static constexpr size_t kPlacementSlack = 256;

  explicit PumpDirectory(int stripes);
  PumpDirectory(const PumpDirectory&) = delete;
  PumpDirectory& operator=(const PumpDirectory&) = delete;

  // Stripe (== shard) of a pump id: stable hash, the same across restarts.
  int StripeOf(absl::string_view pump_id) const;
  int stripes() const { return static_cast<int>(stripes_.size()); }

  // Inserts or replaces the entry from a registration (an existing entry keeps its shard
  // and summary). Returns the pump's shard.
  int Put(const v1::Pump& pump);
  // Inserts a new pump and places it: its shard, or ALREADY_EXISTS when the id is in the
  // directory (the atomic check that keeps one twin per id across shards).
  absl::StatusOr<int> Insert(const v1::Pump& pump);
  // Undoes Insert (a registration that could not be handed to its shard).
  void Erase(absl::string_view pump_id);
  // Erases every pump `which` selects (cluster mode: the pumps of shards given back).
  // Returns how many.
  size_t EraseIf(const std::function<bool(absl::string_view pump_id)>& which);
  // The shard of a registered pump; -1 when the id is unknown.
  int ShardOf(absl::string_view pump_id) const;
  // Pumps placed on each shard (index = shard).
  std::vector<size_t> ShardLoads() const;
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

  // A position in urgency order (ListPumps' worklist order): higher severity first, then
  // the soonest known due date (refill or battery ERI; unknown: INT64_MAX), then id.
  struct UrgencyPos {
    int neg_severity = 0;
    int64_t due_ms = INT64_MAX;
    absl::string_view id;
  };
  static UrgencyPos UrgencyOf(absl::string_view id, const PumpSummary& s);
  // Walks each stripe's pumps in urgency order (an index kept by Put, Insert, Erase and
  // UpdateSummary), from the first after `after` (nullopt: from the start), calling
  // fn(stripe, id, entry) under the stripe lock until it returns false, then the next stripe.
  void WalkByUrgency(
      const std::optional<UrgencyPos>& after,
      const std::function<bool(int, const std::string&, const PumpEntry&)>& fn) const;
  // The same in id order, from the first id after `after` (nullopt: from the start).
  void WalkById(const std::optional<absl::string_view>& after,
                const std::function<bool(int, const std::string&, const PumpEntry&)>& fn) const;

  std::string ClinicName(uint32_t id) const;
  // The interned id of a clinic name; nullopt when no pump was ever registered in it.
  std::optional<uint32_t> FindClinic(absl::string_view clinic) const;
  size_t size() const;

 private:
  using Node = std::pair<const std::string, PumpEntry>;
  // An entry of the urgency index: the key's fields copied, the node (stable in a
  // node-based map) for its id and entry.
  struct UrgencyKey {
    int neg_severity = 0;
    int64_t due_ms = INT64_MAX;
    const Node* node = nullptr;
  };
  struct UrgencyLess {
    using is_transparent = void;
    static UrgencyPos Pos(const UrgencyKey& k) { return {k.neg_severity, k.due_ms, k.node->first}; }
    static const UrgencyPos& Pos(const UrgencyPos& p) { return p; }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      const UrgencyPos x = Pos(a), y = Pos(b);
      if (x.neg_severity != y.neg_severity) return x.neg_severity < y.neg_severity;
      if (x.due_ms != y.due_ms) return x.due_ms < y.due_ms;
      return x.id < y.id;
    }
  };
  static UrgencyKey KeyOf(const Node& node);
  struct IdLess {
    using is_transparent = void;
    static absl::string_view Id(const Node* n) { return n->first; }
    static absl::string_view Id(absl::string_view id) { return id; }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return Id(a) < Id(b);
    }
  };
  struct Stripe {
    mutable absl::Mutex mu;
    // Node-based: a flat table's power-of-two capacity would hold up to twice the
    // entries' bytes in empty slots (a million pumps: ~100 B per pump more).
    absl::node_hash_map<std::string, PumpEntry> pumps ABSL_GUARDED_BY(mu);
    absl::btree_set<UrgencyKey, UrgencyLess> by_urgency ABSL_GUARDED_BY(mu);
    absl::btree_set<const Node*, IdLess> by_id ABSL_GUARDED_BY(mu);
  };
  uint32_t InternClinic(const std::string& clinic);
  // The interned set of these gateways (ids interned too), under one lock.
  const GatewaySet* InternGateways(
      const google::protobuf::RepeatedPtrField<std::string>& gateway_ids);
  // The entry of a registration, without shard and summary.
  PumpEntry MakeEntry(const v1::Pump& pump);
  // Chooses the shard of a new entry and counts it there.
  uint16_t Place(const PumpEntry& e, absl::string_view pump_id);

  std::vector<std::unique_ptr<Stripe>> stripes_;
  mutable absl::Mutex clinic_mu_;
  absl::flat_hash_map<std::string, uint32_t> clinic_ids_ ABSL_GUARDED_BY(clinic_mu_);
  std::vector<std::string> clinic_names_ ABSL_GUARDED_BY(clinic_mu_);
  // Interned gateway ids (node-based: entries point at the keys) -> the gateway's current
  // shard (-1: none yet).
  absl::node_hash_map<std::string, int> gateway_names_ ABSL_GUARDED_BY(clinic_mu_);
  absl::node_hash_set<GatewaySet> gateway_sets_ ABSL_GUARDED_BY(clinic_mu_);
  std::vector<size_t> placed_ ABSL_GUARDED_BY(clinic_mu_);  // pumps placed per shard
};

}  // namespace pumptwin::server

#endif  // PUMPTWIN_SERVER_PUMP_DIRECTORY_H_
