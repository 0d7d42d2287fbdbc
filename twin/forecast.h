// Forecasts (model.md §5): reservoir low/empty dates (calculated, estimated with an
// uncertainty band from the delivery-ratio estimate), next refill due, battery ERI/EOS,
// dose today delivered vs prescribed. Pure functions of a ModelState; thread-compatible.
#ifndef PUMPTWIN_TWIN_FORECAST_H_
#define PUMPTWIN_TWIN_FORECAST_H_

#include "absl/time/time.h"
#include "twin/model_state.h"

namespace pumptwin::twin {

// Times are absl::InfiniteFuture() when not within the horizon (the proto's 0).
struct Forecast {
  absl::Time calculated_low_reservoir = absl::InfiniteFuture();
  absl::Time calculated_empty = absl::InfiniteFuture();
  absl::Time estimated_low_reservoir = absl::InfiniteFuture();
  absl::Time estimated_empty = absl::InfiniteFuture();
  absl::Time estimated_empty_earliest = absl::InfiniteFuture();
  absl::Time estimated_empty_latest = absl::InfiniteFuture();
  absl::Time next_refill_due = absl::InfiniteFuture();
  absl::Time battery_eri = absl::InfiniteFuture();
  absl::Time battery_eos = absl::InfiniteFuture();
  Micrograms dose_today_delivered;
  Micrograms dose_today_prescribed;
  bool operator==(const Forecast&) const = default;
};

struct ForecastConfig {
  absl::Duration horizon = absl::Hours(24 * 366 * 2);  // reservoir dates (assumed)
  double band_sd = 1.96;                               // 95 % band on the ratio (assumed)
  double min_ratio = 0.05;                             // floor of the band (assumed)
};

// Time at which `volume` more programmed volume will have been pumped from s.t, following
// the bolus slot, pending therapy and schedule (exact); kNeverNs beyond `horizon` or when
// the pump is suspended.
TimeNs TimeToProgram(const ModelState& s, const Setup& su, double volume_ul, TimeNs horizon);

Forecast ComputeForecast(const ModelState& s, const Setup& su, const Tuning& tu,
                         const ForecastConfig& fc = ForecastConfig());

}  // namespace pumptwin::twin

#endif  // PUMPTWIN_TWIN_FORECAST_H_
