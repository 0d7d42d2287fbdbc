// Reconnect backoff for the gateway client: exponential growth with proportional jitter,
// plus the injectable waiting primitive (Sleeper) so tests never really sleep.
// BackoffDelay is a pure function; RealSleeper is thread-safe.
#ifndef PUMPTWIN_DEVICE_LINK_BACKOFF_H_
#define PUMPTWIN_DEVICE_LINK_BACKOFF_H_

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace pumptwin::device_link {

struct BackoffPolicy {
  absl::Duration initial = absl::Milliseconds(100);
  absl::Duration max = absl::Seconds(30);
  double multiplier = 2.0;
  // Each delay is scaled by a factor drawn uniformly from [1 - jitter, 1 + jitter], so a
  // fleet of gateways cut off together does not reconnect in lockstep.
  double jitter = 0.2;
};

// Delay before reconnect attempt `attempt` (1 = first retry after a failure):
// min(max, initial * multiplier^(attempt-1)) * (1 + jitter * (2u - 1)), u in [0, 1).
absl::Duration BackoffDelay(const BackoffPolicy& policy, int attempt, double uniform01);

// Waits for a duration unless `interrupt` is notified first (client shutdown).
class Sleeper {
 public:
  virtual ~Sleeper() = default;
  virtual void SleepFor(absl::Duration d, absl::Notification* interrupt) = 0;
};

class RealSleeper final : public Sleeper {
 public:
  void SleepFor(absl::Duration d, absl::Notification* interrupt) override {
    interrupt->WaitForNotificationWithTimeout(d);
  }
};

}  // namespace pumptwin::device_link

#endif  // PUMPTWIN_DEVICE_LINK_BACKOFF_H_
