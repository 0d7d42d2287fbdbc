#include "server/core/verify.h"

#include "absl/strings/str_cat.h"
#include "server/core/event_inputs.h"
#include "server/core/replay.h"
#include "server/core/twin_registry.h"
#include "server/store/store_keys.h"
#include "twin/event_fold.h"

namespace pumptwin::server {

absl::StatusOr<VerifyReport> VerifyStore(const store::Store& store,
                                         std::shared_ptr<const twin::DrugLibrary> library) {
  if (library == nullptr) {
    library = std::shared_ptr<const twin::DrugLibrary>(std::shared_ptr<void>(),
                                                       &twin::DrugLibrary::Default());
  }
  VerifyReport report;
  std::vector<std::string> ids;
  absl::Status scan = store.ScanPumps([&](absl::string_view id, absl::string_view) {
    ids.emplace_back(id);
    return true;
  });
  if (!scan.ok()) return scan;
  for (const std::string& id : ids) {
    ++report.pumps;
    auto snap = store.GetSnapshot(id);
    auto genesis = store.GetMeta(store::keys::GenesisMetaKey(id));
    if (!snap.ok() || !genesis.ok()) {
      report.mismatches.push_back(absl::StrCat(id, ": snapshot or genesis missing"));
      continue;
    }
    auto recovered = twin::Twin::Deserialize(*snap);
    auto fresh = twin::Twin::Deserialize(*genesis);
    if (!recovered.ok() || !fresh.ok()) {
      report.mismatches.push_back(absl::StrCat(id, ": snapshot or genesis does not decode"));
      continue;
    }
    // What recovery builds: the last snapshot and the telemetry after it.
    auto a = ReplayTelemetry(store, id, *recovered);
    if (!a.ok()) {
      report.mismatches.push_back(
          absl::StrCat(id, ": recovery replay failed: ", a.status().message()));
      continue;
    }
    // From scratch: the genesis twin folded with every stored input in event time.
    PumpHistory history;
    if (absl::Status s = LoadPumpHistory(store, id, absl::InfinitePast(), &history); !s.ok()) {
      report.mismatches.push_back(absl::StrCat(id, ": history does not load: ", s.message()));
      continue;
    }
    std::vector<twin::FoldInput> inputs = history.FoldInputs(library);
    twin::FoldOptions no_checkpoints;
    no_checkpoints.checkpoint_every = absl::ZeroDuration();
    auto b = twin::Fold(*fresh, inputs, no_checkpoints, nullptr);
    if (!b.ok()) {
      report.mismatches.push_back(
          absl::StrCat(id, ": fold from the registration failed: ", b.status().message()));
      continue;
    }
    report.samples += history.samples.size();
    report.records += history.inputs.size();
    if (recovered->Serialize() != fresh->Serialize()) {
      report.mismatches.push_back(absl::StrCat(
          id, ": recovered twin (seq ", recovered->last_seq(), ", model time ",
          absl::FormatTime(recovered->device_time()), ") differs from the fold of its inputs (seq ",
          fresh->last_seq(), ", model time ", absl::FormatTime(fresh->device_time()), ")"));
      continue;
    }
    ++report.exact;
  }
  return report;
}

}  // namespace pumptwin::server

#include <cstdio>

#include "server/core/verify_main.h"
#include "server/store/rocksdb_store.h"

namespace pumptwin::server {

int RunVerify(const std::string& data_dir) {
  store::RocksDbStoreOptions o;
  o.path = data_dir;
  o.create_if_missing = false;
  o.now = [] { return absl::Now(); };
  auto st = store::RocksDbStore::Open(o);
  if (!st.ok()) {
    std::fprintf(stderr, "verify: cannot open the store in %s: %s\n", data_dir.c_str(),
                 std::string(st.status().message()).c_str());
    return 1;
  }
  auto report = VerifyStore(**st);
  if (!report.ok()) {
    std::fprintf(stderr, "verify: %s\n", std::string(report.status().message()).c_str());
    return 1;
  }
  for (const std::string& m : report->mismatches) std::printf("MISMATCH %s\n", m.c_str());
  std::printf("verify: pumps=%zu exact=%zu mismatches=%zu samples=%zu records=%zu\n", report->pumps,
              report->exact, report->mismatches.size(), report->samples, report->records);
  return report->mismatches.empty() ? 0 : 3;
}

}  // namespace pumptwin::server
