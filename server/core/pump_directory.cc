#include "server/core/pump_directory.h"

#include <algorithm>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"

namespace pumptwin::server {

const GatewaySet& NoGateways() {
  static const GatewaySet* const kNone = new GatewaySet();
  return *kNone;
}
namespace {

// FNV-1a: stable across processes and versions (absl::Hash is seeded per process).
// FNV-1a, then a final mix: FNV-1a's low bits depend only on the low bits of the input
// bytes (modulo 2 it is their parity), and the stripe is taken modulo the shard count.
uint64_t StableHash(absl::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;  // MurmurHash3's fmix64
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

}  // namespace

PumpDirectory::PumpDirectory(int stripes) : placed_(static_cast<size_t>(std::max(1, stripes))) {
  stripes_.reserve(std::max(1, stripes));
  for (int i = 0; i < std::max(1, stripes); ++i) stripes_.push_back(std::make_unique<Stripe>());
  clinic_names_.push_back("");  // id 0 = no clinic
  clinic_ids_[""] = 0;
}

int PumpDirectory::StripeOf(absl::string_view pump_id) const {
  return static_cast<int>(StableHash(pump_id) % stripes_.size());
}

uint32_t PumpDirectory::InternClinic(const std::string& clinic) {
  absl::MutexLock lock(&clinic_mu_);
  auto [it, inserted] = clinic_ids_.try_emplace(clinic, clinic_names_.size());
  if (inserted) clinic_names_.push_back(clinic);
  return it->second;
}

const GatewaySet* PumpDirectory::InternGateways(
    const google::protobuf::RepeatedPtrField<std::string>& gateway_ids) {
  if (gateway_ids.empty()) return &NoGateways();
  GatewaySet set;
  set.reserve(static_cast<size_t>(gateway_ids.size()));
  absl::MutexLock lock(&clinic_mu_);
  for (const std::string& g : gateway_ids) {
    set.push_back(&gateway_names_.try_emplace(g, -1).first->first);
  }
  return &*gateway_sets_.insert(std::move(set)).first;
}

uint16_t PumpDirectory::Place(const PumpEntry& e, absl::string_view pump_id) {
  absl::MutexLock lock(&clinic_mu_);
  size_t shard = static_cast<size_t>(StripeOf(pump_id));
  if (!e.gateways->empty()) {
    const size_t least =
        static_cast<size_t>(std::min_element(placed_.begin(), placed_.end()) - placed_.begin());
    int& gw_shard = gateway_names_.find(*e.gateways->front())->second;
    if (gw_shard < 0 ||
        placed_[static_cast<size_t>(gw_shard)] >= placed_[least] + kPlacementSlack) {
      gw_shard = static_cast<int>(least);
    }
    shard = static_cast<size_t>(gw_shard);
  }
  ++placed_[shard];
  return static_cast<uint16_t>(shard);
}

std::vector<size_t> PumpDirectory::ShardLoads() const {
  absl::MutexLock lock(&clinic_mu_);
  return placed_;
}

std::optional<uint32_t> PumpDirectory::FindClinic(absl::string_view clinic) const {
  absl::MutexLock lock(&clinic_mu_);
  auto it = clinic_ids_.find(clinic);
  if (it == clinic_ids_.end()) return std::nullopt;
  return it->second;
}

std::string PumpDirectory::ClinicName(uint32_t id) const {
  absl::MutexLock lock(&clinic_mu_);
  return id < clinic_names_.size() ? clinic_names_[id] : "";
}

PumpEntry PumpDirectory::MakeEntry(const v1::Pump& pump) {
  PumpEntry e;
  e.gateways = InternGateways(pump.gateway_ids());
  e.clinic_id = InternClinic(pump.clinic());
  e.lifecycle = static_cast<uint8_t>(pump.lifecycle());
  e.profile = static_cast<uint8_t>(pump.profile());
  return e;
}

int PumpDirectory::Put(const v1::Pump& pump) {
  PumpEntry e = MakeEntry(pump);
  Stripe& s = *stripes_[StripeOf(pump.pump_id())];
  absl::MutexLock lock(&s.mu);
  auto it = s.pumps.find(pump.pump_id());
  if (it != s.pumps.end()) {
    e.shard = it->second.shard;
    e.summary = it->second.summary;
    it->second = std::move(e);
    return it->second.shard;
  }
  e.shard = Place(e, pump.pump_id());
  auto placed = s.pumps.emplace(pump.pump_id(), std::move(e)).first;
  s.by_urgency.insert(KeyOf(*placed));
  s.by_id.insert(&*placed);
  return placed->second.shard;
}

absl::StatusOr<int> PumpDirectory::Insert(const v1::Pump& pump) {
  PumpEntry e = MakeEntry(pump);
  Stripe& s = *stripes_[StripeOf(pump.pump_id())];
  absl::MutexLock lock(&s.mu);
  if (s.pumps.contains(pump.pump_id())) {
    return absl::AlreadyExistsError(
        absl::StrCat("pump '", pump.pump_id(), "' is already registered"));
  }
  e.shard = Place(e, pump.pump_id());
  auto placed = s.pumps.emplace(pump.pump_id(), std::move(e)).first;
  s.by_urgency.insert(KeyOf(*placed));
  s.by_id.insert(&*placed);
  return placed->second.shard;
}

void PumpDirectory::Erase(absl::string_view pump_id) {
  Stripe& s = *stripes_[StripeOf(pump_id)];
  absl::MutexLock lock(&s.mu);
  auto it = s.pumps.find(pump_id);
  if (it == s.pumps.end()) return;
  {
    absl::MutexLock placement(&clinic_mu_);
    --placed_[it->second.shard];
  }
  s.by_urgency.erase(KeyOf(*it));
  s.by_id.erase(&*it);
  s.pumps.erase(it);
}

size_t PumpDirectory::EraseIf(const std::function<bool(absl::string_view)>& which) {
  size_t erased = 0;
  for (auto& stripe : stripes_) {
    Stripe& s = *stripe;
    absl::MutexLock lock(&s.mu);
    for (auto it = s.pumps.begin(); it != s.pumps.end();) {
      if (!which(it->first)) {
        ++it;
        continue;
      }
      {
        absl::MutexLock placement(&clinic_mu_);
        --placed_[it->second.shard];
      }
      s.by_urgency.erase(KeyOf(*it));
      s.by_id.erase(&*it);
      s.pumps.erase(it++);
      ++erased;
    }
  }
  return erased;
}

int PumpDirectory::ShardOf(absl::string_view pump_id) const {
  const Stripe& s = *stripes_[StripeOf(pump_id)];
  absl::MutexLock lock(&s.mu);
  auto it = s.pumps.find(pump_id);
  return it == s.pumps.end() ? -1 : it->second.shard;
}

void PumpDirectory::Clear() {
  for (auto& stripe : stripes_) {
    absl::MutexLock lock(&stripe->mu);
    stripe->by_urgency.clear();
    stripe->by_id.clear();
    stripe->pumps.clear();
  }
  absl::MutexLock lock(&clinic_mu_);
  for (auto& [id, shard] : gateway_names_) shard = -1;
  std::fill(placed_.begin(), placed_.end(), 0);
}

void PumpDirectory::Reserve(size_t pumps) {
  for (auto& stripe : stripes_) {
    absl::MutexLock lock(&stripe->mu);
    stripe->pumps.reserve(pumps / stripes_.size() + 1);
  }
}

bool PumpDirectory::Contains(absl::string_view pump_id) const {
  const Stripe& s = *stripes_[StripeOf(pump_id)];
  absl::MutexLock lock(&s.mu);
  return s.pumps.contains(pump_id);
}

std::optional<PumpEntry> PumpDirectory::Get(absl::string_view pump_id) const {
  const Stripe& s = *stripes_[StripeOf(pump_id)];
  absl::MutexLock lock(&s.mu);
  auto it = s.pumps.find(pump_id);
  if (it == s.pumps.end()) return std::nullopt;
  return it->second;
}

void PumpDirectory::UpdateSummary(absl::string_view pump_id, const PumpSummary& summary) {
  Stripe& s = *stripes_[StripeOf(pump_id)];
  absl::MutexLock lock(&s.mu);
  auto it = s.pumps.find(pump_id);
  if (it == s.pumps.end()) return;
  const UrgencyKey before = KeyOf(*it);
  it->second.summary = summary;
  const UrgencyKey after = KeyOf(*it);
  if (before.neg_severity != after.neg_severity || before.due_ms != after.due_ms) {
    s.by_urgency.erase(before);
    s.by_urgency.insert(after);
  }
}

PumpDirectory::UrgencyPos PumpDirectory::UrgencyOf(absl::string_view id, const PumpSummary& s) {
  UrgencyPos p;
  p.id = id;
  p.neg_severity = -static_cast<int>(s.worst_severity);
  for (int64_t d : {s.next_refill_due_ms, s.battery_eri_ms}) {
    if (d > 0) p.due_ms = std::min(p.due_ms, d);
  }
  return p;
}

PumpDirectory::UrgencyKey PumpDirectory::KeyOf(const Node& node) {
  const UrgencyPos p = UrgencyOf(node.first, node.second.summary);
  return UrgencyKey{p.neg_severity, p.due_ms, &node};
}

void PumpDirectory::WalkById(
    const std::optional<absl::string_view>& after,
    const std::function<bool(int, const std::string&, const PumpEntry&)>& fn) const {
  for (size_t i = 0; i < stripes_.size(); ++i) {
    const Stripe& s = *stripes_[i];
    absl::MutexLock lock(&s.mu);
    auto it = after.has_value() ? s.by_id.upper_bound(*after) : s.by_id.begin();
    for (; it != s.by_id.end(); ++it) {
      if (!fn(static_cast<int>(i), (*it)->first, (*it)->second)) break;
    }
  }
}

void PumpDirectory::WalkByUrgency(
    const std::optional<UrgencyPos>& after,
    const std::function<bool(int, const std::string&, const PumpEntry&)>& fn) const {
  for (size_t i = 0; i < stripes_.size(); ++i) {
    const Stripe& s = *stripes_[i];
    absl::MutexLock lock(&s.mu);
    auto it = after.has_value() ? s.by_urgency.upper_bound(*after) : s.by_urgency.begin();
    for (; it != s.by_urgency.end(); ++it) {
      if (!fn(static_cast<int>(i), it->node->first, it->node->second)) break;
    }
  }
}

absl::Status PumpDirectory::Authorize(absl::string_view gateway_id,
                                      absl::string_view pump_id) const {
  const Stripe& s = *stripes_[StripeOf(pump_id)];
  absl::MutexLock lock(&s.mu);
  auto it = s.pumps.find(pump_id);
  if (it == s.pumps.end()) {
    return absl::NotFoundError(absl::StrCat("pump '", pump_id, "' is not registered"));
  }
  if (it->second.lifecycle == v1::PUMP_LIFECYCLE_DECOMMISSIONED) {
    return absl::FailedPreconditionError(
        absl::StrCat("pump '", pump_id, "' is decommissioned; its twin is archived"));
  }
  for (const std::string* g : *it->second.gateways) {
    if (*g == gateway_id) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("pump '", pump_id, "' is not bound to gateway '", gateway_id, "'"));
}

std::vector<std::string> PumpDirectory::PumpsOfGateway(absl::string_view gateway_id) const {
  std::vector<std::string> out;
  for (const auto& stripe : stripes_) {
    absl::MutexLock lock(&stripe->mu);
    for (const auto& [id, e] : stripe->pumps) {
      if (std::any_of(e.gateways->begin(), e.gateways->end(),
                      [&](const std::string* g) { return *g == gateway_id; })) {
        out.push_back(id);
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void PumpDirectory::ForEach(
    const std::function<void(const std::string&, const PumpEntry&)>& fn) const {
  for (const auto& stripe : stripes_) {
    absl::MutexLock lock(&stripe->mu);
    for (const auto& [id, e] : stripe->pumps) fn(id, e);
  }
}

size_t PumpDirectory::size() const {
  size_t n = 0;
  for (const auto& stripe : stripes_) {
    absl::MutexLock lock(&stripe->mu);
    n += stripe->pumps.size();
  }
  return n;
}

}  // namespace pumptwin::server
