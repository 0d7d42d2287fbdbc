// pumptwinctl twin get|watch and telemetry get; PrintTwinState.
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "tools/ctl/ctl_commands.h"
#include "tools/ctl/ctl_format.h"
#include "tools/ctl/units_parse.h"

namespace pumptwin::ctl {

namespace v1 = pumptwin::v1;

namespace {

std::string Opt(bool has, double v, int decimals) { return has ? FormatNumber(v, decimals) : "-"; }
std::string OptMl(bool has, double ul) { return has ? UlAsMl(ul) : "-"; }

std::string AlertingDetectors(const v1::TwinState& t) {
  std::vector<std::string> names;
  for (const auto& d : t.detectors()) {
    if (d.state() == v1::DETECTOR_STATE_ALERTING) {
      names.push_back(EnumShortName(v1::AlertType_descriptor(), d.type(), "ALERT_TYPE_"));
    }
  }
  return names.empty() ? "-" : absl::StrJoin(names, ",");
}

}  // namespace

void PrintTwinState(Ctl& ctl, const v1::TwinState& t) {
  PrintFields(
      ctl.out(),
      {
          {"pump", t.pump_id()},
          {"model time (device, UTC)", FormatTimeMs(t.device_time_ms())},
          {"last sample received (UTC)", FormatTimeMs(t.last_sample_server_time_ms())},
          {"last seq", absl::StrCat(t.last_seq())},
          {"prescription", absl::StrCat("version ", t.prescription_version(), ", ",
                                        t.drug().empty() ? "-" : t.drug(), " ",
                                        UgPerMlAsMgPerMl(t.concentration_ug_per_ml()), " mg/mL")},
          {"calculated reservoir (mL)", UlAsMl(t.calculated_reservoir_ul())},
          {"estimated reservoir (mL)", UlAsMl(t.estimated_reservoir_ul())},
          {"measured reservoir (mL)",
           OptMl(t.has_last_measured_reservoir_ul(), t.last_measured_reservoir_ul())},
          {"reservoir residual (mL)",
           OptMl(t.has_reservoir_residual_ul(), t.reservoir_residual_ul())},
          {"delivery ratio", absl::StrCat(FormatNumber(t.delivery_ratio(), 3), " ± ",
                                          FormatNumber(t.delivery_ratio_stddev(), 3))},
          {"delivered today (mg)", UgAsMg(t.delivered_today_ug())},
          {"delivered last 24h (mg)", UgAsMg(t.delivered_24h_ug())},
          {"delivered total (mL)", UlAsMl(t.delivered_total_ul())},
          {"battery (%)", FormatNumber(t.battery_charge_fraction() * 100.0, 1)},
          {"battery voltage (V)",
           Opt(t.has_last_battery_voltage_v(), t.last_battery_voltage_v(), 3)},
          {"stroke pressure expected / baseline (mmHg)",
           absl::StrCat(FormatNumber(t.expected_stroke_pressure_mmhg(), 1), " / ",
                        FormatNumber(t.pressure_baseline_mmhg(), 1))},
          {"stroke pressure measured (mmHg)",
           Opt(t.has_last_stroke_pressure_mmhg(), t.last_stroke_pressure_mmhg(), 1)},
          {"pressure residual (mmHg)",
           Opt(t.has_pressure_residual_mmhg(), t.pressure_residual_mmhg(), 1)},
          {"clock skew device-server (ms)", FormatNumber(t.clock_skew_ms(), 0)},
          {"last refill (UTC)", FormatTimeMs(t.last_refill_time_ms())},
      });
  const auto& f = t.forecast();
  ctl.out() << "forecast:\n";
  PrintFields(ctl.out(),
              {
                  {"  reservoir low: calculated / estimated",
                   absl::StrCat(FormatTimeMs(f.calculated_low_reservoir_time_ms()), " / ",
                                FormatTimeMs(f.estimated_low_reservoir_time_ms()))},
                  {"  reservoir empty: calculated / estimated",
                   absl::StrCat(FormatTimeMs(f.calculated_empty_time_ms()), " / ",
                                FormatTimeMs(f.estimated_empty_time_ms()))},
                  {"  estimated empty earliest .. latest",
                   absl::StrCat(FormatTimeMs(f.estimated_empty_earliest_ms()), " .. ",
                                FormatTimeMs(f.estimated_empty_latest_ms()))},
                  {"  next refill due", FormatTimeMs(f.next_refill_due_ms())},
                  {"  battery ERI / EOS", absl::StrCat(FormatTimeMs(f.battery_eri_time_ms()), " / ",
                                                       FormatTimeMs(f.battery_eos_time_ms()))},
                  {"  dose today delivered / prescribed (mg)",
                   absl::StrCat(UgAsMg(f.dose_today_delivered_ug()), " / ",
                                UgAsMg(f.dose_today_prescribed_ug()))},
              });
  if (t.detectors_size() > 0) {
    Table d({{"DETECTOR"}, {"STATE"}, {"DETAIL"}});
    for (const auto& s : t.detectors()) {
      d.AddRow({EnumShortName(v1::AlertType_descriptor(), s.type(), "ALERT_TYPE_"),
                EnumShortName(v1::DetectorState_descriptor(), s.state(), "DETECTOR_STATE_"),
                s.detail()});
    }
    d.Print(ctl.out());
  }
}

namespace {

int RunTwinGet(Ctl& ctl, const std::string& pump) {
  absl::StatusOr<std::string> name = PumpResourceName(pump);
  if (!name.ok()) return ctl.Usage(name.status().message());
  v1::GetTwinRequest req;
  req.set_name(*name);
  v1::TwinState resp;
  auto ctx = ctl.NewContext();
  grpc::Status s = ctl.twin().GetTwin(ctx.get(), req, &resp);
  if (!s.ok()) return ctl.Fail(s);
  if (ctl.json()) {
    ctl.PrintJson(resp);
  } else {
    PrintTwinState(ctl, resp);
  }
  return kExitOk;
}

struct WatchFlags {
  std::vector<std::string> pumps;
  std::string min_interval;
  StreamFlags stream;
};

int RunTwinWatch(Ctl& ctl, const WatchFlags& f) {
  v1::WatchTwinRequest req;
  for (const auto& p : f.pumps) {
    absl::StatusOr<std::string> name = PumpResourceName(p);
    if (!name.ok()) return ctl.Usage(name.status().message());
    req.add_names(*name);
  }
  if (!f.min_interval.empty()) {
    absl::StatusOr<absl::Duration> d = ParseDurationFlag("--min_interval", f.min_interval);
    if (!d.ok()) return ctl.Usage(d.status().message());
    req.set_min_interval_ms(absl::ToInt64Milliseconds(*d));
  }
  // Streams are printed as they come: fixed-width columns instead of a measured table.
  constexpr char kRow[] = "%-24s  %-12s  %10s  %14s  %14s  %12s  %s\n";
  if (!ctl.json()) {
    ctl.out() << absl::StrFormat(kRow, "TIME (device, UTC)", "PUMP", "SEQ", "EST RES (mL)",
                                 "DELIV 24H (mg)", "BATTERY (%)", "ALERTING");
    ctl.out().flush();
  }
  return ReadStream<v1::TwinState>(
      ctl, f.stream, [&](grpc::ClientContext* ctx) { return ctl.twin().WatchTwin(ctx, req); },
      [&](const v1::TwinState& t) {
        if (ctl.json()) return ctl.PrintJson(t);
        ctl.out() << absl::StrFormat(
            kRow, FormatTimeMs(t.device_time_ms()), t.pump_id(), absl::StrCat(t.last_seq()),
            UlAsMl(t.estimated_reservoir_ul()), UgAsMg(t.delivered_24h_ug()),
            FormatNumber(t.battery_charge_fraction() * 100.0, 1), AlertingDetectors(t));
        ctl.out().flush();
      });
}

struct TelemetryFlags {
  std::string pump, from, to, downsample;
  PageFlags page;
};

std::string Events(const v1::TelemetrySample& s) {
  std::vector<std::string> names;
  for (const auto& e : s.events()) {
    names.push_back(EnumShortName(v1::DeviceEventType_descriptor(), e.type(), "DEVICE_EVENT_"));
  }
  return names.empty() ? "-" : absl::StrJoin(names, ",");
}

int RunTelemetry(Ctl& ctl, const TelemetryFlags& f) {
  absl::StatusOr<std::string> name = PumpResourceName(f.pump);
  if (!name.ok()) return ctl.Usage(name.status().message());
  v1::GetTelemetryRequest req;
  req.set_name(*name);
  if (f.from.empty()) return ctl.Usage(absl::StrCat("--from is required: ", kTimeHelp));
  absl::StatusOr<int64_t> from = OptionalTimeMs("--from", f.from);
  if (!from.ok()) return ctl.Usage(from.status().message());
  absl::StatusOr<int64_t> to = OptionalTimeMs("--to", f.to);
  if (!to.ok()) return ctl.Usage(to.status().message());
  req.set_start_device_time_ms(*from);
  req.set_end_device_time_ms(*to);
  if (!f.downsample.empty()) {
    absl::StatusOr<absl::Duration> d = ParseDurationFlag("--downsample", f.downsample);
    if (!d.ok()) return ctl.Usage(d.status().message());
    req.set_downsample_interval_ms(absl::ToInt64Milliseconds(*d));
  }
  req.set_page_size(f.page.page_size);
  req.set_page_token(f.page.page_token);
  Table t({{"TIME (device, UTC)"},
           {"SEQ", true},
           {"CALC RES (mL)", true},
           {"MEAS RES (mL)", true},
           {"OUTLET (mmHg)", true},
           {"STROKE PEAK (mmHg)", true},
           {"BATTERY (V)", true},
           {"MOTOR (mA)", true},
           {"TEMP (C)", true},
           {"ALARMS", true},
           {"EVENTS"}});
  v1::GetTelemetryResponse resp;
  do {
    resp.Clear();
    auto ctx = ctl.NewContext();
    grpc::Status s = ctl.twin().GetTelemetry(ctx.get(), req, &resp);
    if (!s.ok()) return ctl.Fail(s);
    for (const auto& x : resp.samples()) {
      if (ctl.json()) {
        ctl.PrintJson(x);
        continue;
      }
      t.AddRow({FormatTimeMs(x.device_time_ms()), absl::StrCat(x.seq()),
                OptMl(x.has_calculated_reservoir_ul(), x.calculated_reservoir_ul()),
                OptMl(x.has_measured_reservoir_ul(), x.measured_reservoir_ul()),
                Opt(x.has_outlet_pressure_mmhg(), x.outlet_pressure_mmhg(), 1),
                Opt(x.has_stroke_pressure_peak_mmhg(), x.stroke_pressure_peak_mmhg(), 1),
                Opt(x.has_battery_voltage_v(), x.battery_voltage_v(), 3),
                Opt(x.has_motor_current_ma(), x.motor_current_ma(), 2),
                Opt(x.has_temperature_c(), x.temperature_c(), 1),
                x.alarm_flags() == 0 ? "-" : absl::StrFormat("0x%02x", x.alarm_flags()),
                Events(x)});
    }
    req.set_page_token(resp.next_page_token());
  } while (f.page.all && !resp.next_page_token().empty());
  if (!ctl.json()) t.Print(ctl.out());
  if (!f.page.all) NoteMorePages(ctl, resp.next_page_token());
  return kExitOk;
}

}  // namespace

void AddTwinCommands(CLI::App& root, Action* chosen) {
  auto* twin = root.add_subcommand("twin", "Live digital twin of a pump");
  twin->require_subcommand(1);
  auto* get = twin->add_subcommand(
      "get", "GetTwin: prediction, last measurements, residuals, detector states, forecasts");
  auto pump = std::make_shared<std::string>();
  get->add_option("PUMP", *pump, "PUMP_ID or pumps/PUMP_ID")->required();
  OnSelected(get, chosen, [pump](Ctl& ctl) { return RunTwinGet(ctl, *pump); });

  auto* watch =
      twin->add_subcommand("watch", "WatchTwin: stream twin changes of one or more pumps");
  auto wf = std::make_shared<WatchFlags>();
  watch->add_option("PUMP", wf->pumps, "Pumps to follow (PUMP_ID or pumps/PUMP_ID)")->required();
  watch->add_option("--min_interval", wf->min_interval,
                    "Coalesce updates per pump (server default 1s)");
  AddStreamFlags(watch, &wf->stream);
  OnSelected(watch, chosen, [wf](Ctl& ctl) { return RunTwinWatch(ctl, *wf); });

  auto* telemetry = root.add_subcommand("telemetry", "Recorded telemetry");
  telemetry->require_subcommand(1);
  auto* tget =
      telemetry->add_subcommand("get", "GetTelemetry: samples of a pump over a time range");
  auto tf = std::make_shared<TelemetryFlags>();
  tget->add_option("PUMP", tf->pump, "PUMP_ID or pumps/PUMP_ID")->required();
  tget->add_option("--from", tf->from,
                   absl::StrCat("Start, inclusive (device time; required): ", kTimeHelp));
  tget->add_option("--to", tf->to, "End, exclusive (default now)");
  tget->add_option("--downsample", tf->downsample, "At most one sample per interval, e.g. 1h");
  AddPageFlags(tget, &tf->page);
  OnSelected(tget, chosen, [tf](Ctl& ctl) { return RunTelemetry(ctl, *tf); });
}

}  // namespace pumptwin::ctl
