#include "twin/plan_pool.h"

#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/synchronization/mutex.h"

namespace pumptwin::twin {
namespace {

size_t HashOf(const DrugLimits& d) {
  return absl::HashOf(d.key, d.display_name, d.max_concentration.value(), d.max_daily_dose.value(),
                      d.soft_max_daily_dose.value(), d.titration_max_increase_fraction, d.stability,
                      d.oral_morphine_equivalence, d.source);
}

size_t HashOf(const TherapyPlan& p) {
  const Prescription& rx = p.rx;
  size_t h = absl::HashOf(rx.drug, rx.concentration.value(), static_cast<int>(rx.mode),
                          rx.rate.value(), rx.flex.weekly, rx.version, p.drug.get());
  for (const ScheduleStep& st : rx.flex.steps)
    h = absl::HashOf(h, st.start_offset, st.rate.value());
  if (rx.patient_bolus.has_value()) {
    const PatientBolusLimits& pb = *rx.patient_bolus;
    h = absl::HashOf(h, pb.volume.value(), pb.duration, pb.lockout, pb.max_per_24h);
  }
  return h;
}

bool SameValue(const DrugLimits& a, const DrugLimits& b) { return a == b; }
// Drugs are interned first, so plans compare their drug by identity.
bool SameValue(const TherapyPlan& a, const TherapyPlan& b) {
  return a.drug == b.drug && a.rx == b.rx;
}

// Hash-consing table of weak references, swept of expired entries every `sweep_every`
// inserts so that churned values do not accumulate.
template <typename T>
class Pool {
 public:
  std::shared_ptr<const T> Intern(T value) {
    const size_t h = HashOf(value);
    absl::MutexLock lock(&mu_);
    std::vector<std::weak_ptr<const T>>& bucket = table_[h];
    for (auto it = bucket.begin(); it != bucket.end();) {
      if (std::shared_ptr<const T> live = it->lock()) {
        if (SameValue(*live, value)) return live;
        ++it;
      } else {
        it = bucket.erase(it);
      }
    }
    auto made = std::make_shared<const T>(std::move(value));
    bucket.push_back(made);
    if (++inserts_ >= sweep_every_) Sweep();
    return made;
  }

  size_t Live() const {
    absl::MutexLock lock(&mu_);
    size_t n = 0;
    for (const auto& [h, bucket] : table_) {
      for (const auto& w : bucket) n += w.expired() ? 0 : 1;
    }
    return n;
  }

 private:
  void Sweep() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (auto it = table_.begin(); it != table_.end();) {
      std::erase_if(it->second, [](const std::weak_ptr<const T>& w) { return w.expired(); });
      if (it->second.empty()) {
        table_.erase(it++);
      } else {
        ++it;
      }
    }
    inserts_ = 0;
    sweep_every_ = std::max<size_t>(1024, 2 * table_.size());  // amortised O(1)
  }

  mutable absl::Mutex mu_;
  absl::flat_hash_map<size_t, std::vector<std::weak_ptr<const T>>> table_ ABSL_GUARDED_BY(mu_);
  size_t inserts_ ABSL_GUARDED_BY(mu_) = 0;
  size_t sweep_every_ ABSL_GUARDED_BY(mu_) = 1024;
};

Pool<DrugLimits>& Drugs() {
  static auto* pool = new Pool<DrugLimits>();
  return *pool;
}

Pool<TherapyPlan>& Plans() {
  static auto* pool = new Pool<TherapyPlan>();
  return *pool;
}

}  // namespace

std::shared_ptr<const DrugLimits> InternDrug(const DrugLimits& drug) {
  return Drugs().Intern(drug);
}

std::shared_ptr<const TherapyPlan> InternPlan(TherapyPlan plan) {
  DerivePlan(plan);
  return Plans().Intern(std::move(plan));
}

std::shared_ptr<const TherapyPlan> MakePlan(const Prescription& rx, const DrugLimits& drug) {
  TherapyPlan plan;
  plan.rx = rx;
  plan.drug = InternDrug(drug);
  return InternPlan(std::move(plan));
}

PoolStats PlanPoolStats() { return {Drugs().Live(), Plans().Live()}; }

}  // namespace pumptwin::twin
