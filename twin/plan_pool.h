// Interning of the immutable therapy objects twins share: drug limits (a handful of drugs
// per library version) and compiled therapy plans (many pumps of a clinic run the same
// prescription). Equal values map to one shared, immutable object, so a million twins do
// not each carry a copy of the drug table and the schedule.
//
// Thread-safe (one mutex; called when a twin is created, decoded or re-prescribed, never
// on the per-sample path). Objects live as long as a twin references them: the pool
// holds weak references and drops expired ones as it goes (amortised O(1) per call).
#ifndef PUMPTWIN_TWIN_PLAN_POOL_H_
#define PUMPTWIN_TWIN_PLAN_POOL_H_

#include <cstddef>
#include <memory>

#include "twin/drug_library.h"
#include "twin/model_state.h"

namespace pumptwin::twin {

std::shared_ptr<const DrugLimits> InternDrug(const DrugLimits& drug);

// Derives the plan's computed fields (DerivePlan), interns its drug, then the plan.
std::shared_ptr<const TherapyPlan> InternPlan(TherapyPlan plan);

// Builds and interns the plan of `rx` with `drug`.
std::shared_ptr<const TherapyPlan> MakePlan(const Prescription& rx, const DrugLimits& drug);

// Live distinct objects in the pools (tests, metrics).
struct PoolStats {
  size_t drugs = 0;
  size_t plans = 0;
};
PoolStats PlanPoolStats();

}  // namespace pumptwin::twin

#endif  // PUMPTWIN_TWIN_PLAN_POOL_H_
