#include "server/verify.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "pumptwin/v1/resources.pb.h"
#include "server/replay.h"
#include "server/twin_registry.h"

namespace pumptwin::server {
namespace {

// Pumps whose twin changed other than by telemetry: any audit record but registration,
// or an alert transition the server-time tick produces.
absl::StatusOr<absl::flat_hash_set<std::string>> NotReplayable(const store::Store& store) {
  absl::flat_hash_set<std::string> out;
  uint64_t after = 0;
  for (;;) {
    auto batch = store.ScanAuditAfter(after, 4096);
    if (!batch.ok()) return batch.status();
    if (batch->empty()) break;
    for (const auto& [seq, bytes] : *batch) {
      after = seq;
      v1::AuditRecord r;
      if (!r.ParseFromString(bytes)) return absl::DataLossError("an audit record does not parse");
      if (r.method() != "TwinService.RegisterPump" && absl::StartsWith(r.resource(), "pumps/")) {
        out.insert(r.resource().substr(6, r.resource().find('/', 6) - 6));
      }
    }
  }
  after = 0;
  for (;;) {
    auto batch = store.ScanAlertsAfter(after, 4096);
    if (!batch.ok()) return batch.status();
    if (batch->empty()) break;
    for (const auto& [cursor, bytes] : *batch) {
      after = cursor;
      v1::AlertEvent ev;
      if (!ev.ParseFromString(bytes)) return absl::DataLossError("an alert event does not parse");
      switch (ev.alert().type()) {
        case v1::ALERT_TYPE_SILENT_PUMP:
        case v1::ALERT_TYPE_NO_RESUMPTION_AFTER_MRI:
        case v1::ALERT_TYPE_DRUG_STABILITY:
        case v1::ALERT_TYPE_MOTOR_STALL:
          out.insert(ev.alert().pump_id());
          break;
        default:
          break;
      }
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<VerifyReport> VerifyStore(const store::Store& store) {
  auto skip = NotReplayable(store);
  if (!skip.ok()) return skip.status();
  VerifyReport report;
  std::vector<std::string> ids;
  absl::Status scan = store.ScanPumps([&](absl::string_view id, absl::string_view) {
    ids.emplace_back(id);
    return true;
  });
  if (!scan.ok()) return scan;
  for (const std::string& id : ids) {
    ++report.pumps;
    if (skip->contains(id)) {
      ++report.not_replayable;
      continue;
    }
    auto snap = store.GetSnapshot(id);
    auto genesis = store.GetMeta(GenesisKey(id));
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
    auto a = ReplayTelemetry(store, id, *recovered);
    auto b = ReplayTelemetry(store, id, *fresh);
    if (!a.ok() || !b.ok()) {
      report.mismatches.push_back(absl::StrCat(
          id, ": replay failed: ", (!a.ok() ? a.status() : b.status()).message()));
      continue;
    }
    report.samples += *b;
    if (recovered->Serialize() != fresh->Serialize()) {
      report.mismatches.push_back(absl::StrCat(id, ": recovered twin (seq ",
                                               recovered->last_seq(), ") differs from replay (seq ",
                                               fresh->last_seq(), ")"));
      continue;
    }
    ++report.exact;
  }
  return report;
}

}  // namespace pumptwin::server

#include <cstdio>

#include "server/store/rocksdb_store.h"
#include "server/verify_main.h"

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
  std::printf("verify: pumps=%zu exact=%zu not_replayable=%zu mismatches=%zu samples=%zu\n",
              report->pumps, report->exact, report->not_replayable, report->mismatches.size(),
              report->samples);
  return report->mismatches.empty() ? 0 : 3;
}

}  // namespace pumptwin::server
