// The detection goals `pumpsim evaluate` reports met / not met (docs/detection.md, "Fleet
// evaluation"). Times are hours from each goal's reference: the drift reaching 15 %, the
// occlusion's start or the pump's own stall, the depletion's start, the end of the window in
// which a healthy pump resumes after an MRI. A timed goal is met when the 95th percentile of
// its faults (missed ones counted as never) is within the bound.
#ifndef PUMPTWIN_TOOLS_SIM_EVAL_GOALS_H_
#define PUMPTWIN_TOOLS_SIM_EVAL_GOALS_H_

namespace pumptwin::sim {

inline constexpr double kGoalRecall = 0.99;  // on observable (kind, profile) pairs
inline constexpr double kGoalDriftHours = 72;
inline constexpr double kGoalOcclusionSensorizedHours = 1;
inline constexpr double kGoalOcclusionOwnStallHours = 1;
inline constexpr double kGoalBatteryHours = 7 * 24;
inline constexpr double kGoalMriHours = 1;
inline constexpr double kGoalFalseAlertsPerPumpYear = 0.1;
inline constexpr double kGoalMinPumpYears = 500;
inline constexpr double kGoalFlapsPer100PumpYears = 1;
// Marks a fault that was not detected in time-to-detect lists.
inline constexpr double kNotDetected = -1e9;

}  // namespace pumptwin::sim

#endif  // PUMPTWIN_TOOLS_SIM_EVAL_GOALS_H_
