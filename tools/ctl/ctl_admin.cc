// pumptwinctl health and drugs list.
#include <memory>

#include "absl/strings/str_cat.h"
#include "tools/ctl/ctl_commands.h"
#include "tools/ctl/ctl_format.h"

namespace pumptwin::ctl {
namespace {

int RunHealth(Ctl& ctl, const std::string& service) {
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  auto ctx = ctl.NewContext();
  grpc::Status s = ctl.health().Check(ctx.get(), req, &resp);
  if (!s.ok()) return ctl.Fail(s);
  const std::string status =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
  if (ctl.json()) {
    ctl.PrintJson(resp);
  } else {
    ctl.out() << status << "\n";
  }
  // Scripts use `pumptwinctl health` as a readiness probe: only SERVING is success.
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk
                                                                         : kExitServerError;
}

// --wait: follows Health.Watch until SERVING or the --timeout deadline (a readiness wait
// for scripts and tests, with no polling).
int RunHealthWait(Ctl& ctl, const std::string& service) {
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  auto ctx = ctl.NewContext();  // unary deadline: --timeout bounds the wait
  ctx->set_wait_for_ready(true);
  auto reader = ctl.health().Watch(ctx.get(), req);
  grpc::health::v1::HealthCheckResponse resp;
  while (reader->Read(&resp)) {
    if (resp.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      ctx->TryCancel();
      reader->Finish();
      if (ctl.json()) {
        ctl.PrintJson(resp);
      } else {
        ctl.out() << "SERVING\n";
      }
      return kExitOk;
    }
  }
  return ctl.Fail(reader->Finish());
}

int RunListDrugs(Ctl& ctl) {
  pumptwin::v1::ListDrugsRequest req;
  pumptwin::v1::ListDrugsResponse resp;
  auto ctx = ctl.NewContext();
  grpc::Status s = ctl.twin().ListDrugs(ctx.get(), req, &resp);
  if (!s.ok()) return ctl.Fail(s);
  if (ctl.json()) {
    ctl.PrintJson(resp);
    return kExitOk;
  }
  Table t({{"DRUG"},
           {"NAME"},
           {"MAX CONC (mg/mL)", true},
           {"MAX DAILY (mg)", true},
           {"SOFT DAILY (mg)", true},
           {"TITRATION MAX (%/24h)", true},
           {"STABILITY (days)", true},
           {"SOURCE"}});
  for (const auto& d : resp.drugs()) {
    t.AddRow({d.key(), d.display_name(), UgPerMlAsMgPerMl(d.max_concentration_ug_per_ml()),
              UgAsMg(d.max_daily_dose_ug()), UgAsMg(d.soft_max_daily_dose_ug()),
              FormatNumber(d.titration_max_increase_fraction() * 100.0, 1),
              FormatNumber(d.stability_days(), 1), d.source()});
  }
  ctl.out() << "drug library version "
            << (resp.library_version().empty() ? "-" : resp.library_version()) << "\n";
  t.Print(ctl.out());
  return kExitOk;
}

}  // namespace

void AddHealthCommand(CLI::App& root, Action* chosen) {
  auto* cmd = root.add_subcommand(
      "health",
      "grpc.health.v1 Check: prints SERVING when the server has finished recovery; exit 0 only "
      "when SERVING, 2 for any other answer, 3 when unreachable");
  auto service = std::make_shared<std::string>();
  cmd->add_option("--service", *service, "Service name to check (empty: the whole server)");
  auto wait = std::make_shared<bool>(false);
  cmd->add_flag(
      "--wait", *wait,
      "Wait (up to --timeout, following Health.Watch) until SERVING; exit 3 if it never is");
  OnSelected(cmd, chosen, [service, wait](Ctl& ctl) {
    return *wait ? RunHealthWait(ctl, *service) : RunHealth(ctl, *service);
  });
}

void AddDrugsCommands(CLI::App& root, Action* chosen) {
  auto* drugs = root.add_subcommand("drugs", "Drug library");
  drugs->require_subcommand(1);
  auto* list =
      drugs->add_subcommand("list", "ListDrugs: the drug library and its hard and soft limits");
  OnSelected(list, chosen, [](Ctl& ctl) { return RunListDrugs(ctl); });
}

}  // namespace pumptwin::ctl
