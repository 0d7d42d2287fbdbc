#include "device_link/backoff.h"

#include <algorithm>
#include <cmath>

namespace pumptwin::device_link {

absl::Duration BackoffDelay(const BackoffPolicy& policy, int attempt, double uniform01) {
  if (attempt < 1) attempt = 1;
  const double growth = std::pow(std::max(1.0, policy.multiplier), attempt - 1);
  const double base_s =
      std::min(absl::ToDoubleSeconds(policy.max), absl::ToDoubleSeconds(policy.initial) * growth);
  const double u = std::clamp(uniform01, 0.0, 1.0);
  const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  const double factor = 1.0 + jitter * (2.0 * u - 1.0);
  return absl::Seconds(std::max(0.0, base_s * factor));
}

}  // namespace pumptwin::device_link
