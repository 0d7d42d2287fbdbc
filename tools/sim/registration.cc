// Registration of the fleet over TwinService (sim_parts.h).
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "tools/sim/sim_parts.h"

namespace pumptwin::sim {

absl::Status FromGrpc(const grpc::Status& st, absl::string_view what) {
  if (st.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                      absl::StrCat(what, ": ", st.error_message()));
}

void SetDeadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  ctx.set_wait_for_ready(true);
}

std::string GatewayId(const std::string& pump_prefix, int gateway) {
  return absl::StrCat(pump_prefix, "-gw", gateway);
}

absl::Status RegisterFleet(v1::TwinService::Stub& stub, const Fleet& fleet,
                           const std::string& pump_prefix) {
  for (const SimPump& p : fleet.pumps) {
    v1::RegisterPumpRequest req;
    auto* pp = req.mutable_pump();
    pp->set_pump_id(p.pump_id);
    pp->set_profile(p.profile);
    pp->set_reservoir_capacity_ul(p.capacity_ul);
    pp->set_catheter_length_cm(p.catheter_length_cm);
    pp->set_catheter_inner_diameter_mm(p.catheter_id_mm);
    pp->set_implant_time_ms(p.DeviceTime(p.implant_true_ms));
    pp->set_clinic(absl::StrCat("sim-clinic-", p.gateway % 5));
    pp->add_gateway_ids(GatewayId(pump_prefix, p.gateway));
    pp->set_reporting_interval_ms(p.sample_interval_ms);
    *req.mutable_initial_prescription() = p.rx;
    req.mutable_initial_prescription()->set_effective_time_ms(0);
    req.set_initial_reservoir_ul(std::round(p.calc_reservoir_ul));
    req.set_reason(p.mid_life ? "pumpsim enrolment" : "pumpsim implant");
    if (p.mid_life) {
      // What the clinician programmer showed at the enrolment interrogation: the pump's own
      // calculated volume, the last refill as the clinic recorded it, the battery indicator
      // (the programmer shows 5 % steps).
      auto* e = req.mutable_enrolment();
      e->set_interrogation_time_ms(p.DeviceTime(fleet.start_ms));
      e->set_calculated_reservoir_ul(std::round(p.calc_reservoir_ul / 10) * 10);
      e->set_last_refill_time_ms(ClinicianTime(p.last_refill_true_ms));
      e->set_last_refill_volume_ul(p.last_refill_volume_ul);
      if (p.has_battery) {
        e->set_battery_indicator_fraction(std::round(p.ChargeFraction() * 20) / 20);
        e->set_battery_eri_shown(p.ChargeFraction() <= 0.05);
      }
    }
    v1::Pump out;
    if (auto st = Call(stub, &v1::TwinService::Stub::RegisterPump, req, &out,
                       "RegisterPump " + p.pump_id);
        !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

}  // namespace pumptwin::sim
