// pumptwinctl audit list|verify. verify recomputes the SHA-256 hash chain (audit_hash.h)
// over every record ListAuditRecords returns and exits 4 at the first broken link.
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "proto/audit_hash.h"
#include "tools/ctl/ctl_commands.h"
#include "tools/ctl/ctl_format.h"

namespace pumptwin::ctl {
namespace {

namespace v1 = pumptwin::v1;

struct AuditFlags {
  std::string resource, actor, from, to;
  PageFlags page;
};

absl::StatusOr<v1::ListAuditRecordsRequest> BuildRequest(const AuditFlags& f) {
  v1::ListAuditRecordsRequest req;
  req.set_resource(f.resource);
  req.set_actor(f.actor);
  absl::StatusOr<int64_t> from = OptionalTimeMs("--from", f.from);
  if (!from.ok()) return from.status();
  absl::StatusOr<int64_t> to = OptionalTimeMs("--to", f.to);
  if (!to.ok()) return to.status();
  req.set_start_time_ms(*from);
  req.set_end_time_ms(*to);
  req.set_page_size(f.page.page_size);
  req.set_page_token(f.page.page_token);
  return req;
}

int RunList(Ctl& ctl, const AuditFlags& f) {
  absl::StatusOr<v1::ListAuditRecordsRequest> req = BuildRequest(f);
  if (!req.ok()) return ctl.Usage(req.status().message());
  Table t({{"SEQ", true},
           {"TIME (UTC)"},
           {"ACTOR"},
           {"ROLE"},
           {"METHOD"},
           {"RESOURCE"},
           {"REASON"},
           {"HASH"}});
  v1::ListAuditRecordsResponse resp;
  do {
    resp.Clear();
    auto ctx = ctl.NewContext();
    grpc::Status s = ctl.twin().ListAuditRecords(ctx.get(), *req, &resp);
    if (!s.ok()) return ctl.Fail(s);
    for (const auto& r : resp.records()) {
      if (ctl.json()) {
        ctl.PrintJson(r);
        continue;
      }
      t.AddRow({absl::StrCat(r.sequence()), FormatTimeMs(r.server_time_ms()), r.actor(), r.role(),
                r.method(), r.resource(), r.reason(), r.hash_hex().substr(0, 12)});
    }
    req->set_page_token(resp.next_page_token());
  } while (f.page.all && !resp.next_page_token().empty());
  if (!ctl.json()) t.Print(ctl.out());
  if (!f.page.all) NoteMorePages(ctl, resp.next_page_token());
  return kExitOk;
}

int RunVerify(Ctl& ctl, const AuditFlags& f) {
  // The chain is only checkable over consecutive records: no resource/actor filter, all pages.
  absl::StatusOr<v1::ListAuditRecordsRequest> req = BuildRequest(f);
  if (!req.ok()) return ctl.Usage(req.status().message());
  std::vector<v1::AuditRecord> records;
  v1::ListAuditRecordsResponse resp;
  do {
    resp.Clear();
    auto ctx = ctl.NewContext();
    grpc::Status s = ctl.twin().ListAuditRecords(ctx.get(), *req, &resp);
    if (!s.ok()) return ctl.Fail(s);
    for (auto& r : *resp.mutable_records()) records.push_back(std::move(r));
    req->set_page_token(resp.next_page_token());
  } while (!resp.next_page_token().empty());

  const audit::ChainVerdict v = audit::VerifyAuditChain(records);
  const uint64_t first_seq = records.empty() ? 0 : records.front().sequence();
  const uint64_t last_seq = records.empty() ? 0 : records.back().sequence();
  if (ctl.json()) {
    google::protobuf::Struct out;
    auto& fields = *out.mutable_fields();
    fields["ok"].set_bool_value(v.ok);
    fields["records"].set_number_value(static_cast<double>(records.size()));
    fields["checked"].set_number_value(static_cast<double>(v.checked));
    fields["first_sequence"].set_number_value(static_cast<double>(first_seq));
    fields["last_sequence"].set_number_value(static_cast<double>(last_seq));
    if (v.ok) {
      fields["head_hash_hex"].set_string_value(v.head_hash_hex);
    } else {
      fields["first_bad_index"].set_number_value(static_cast<double>(v.first_bad_index));
      fields["first_bad_sequence"].set_number_value(static_cast<double>(v.first_bad_sequence));
      fields["problem"].set_string_value(v.problem);
    }
    ctl.PrintJson(out);
  } else if (v.ok) {
    ctl.out() << "audit chain OK: " << records.size() << " records";
    if (!records.empty())
      ctl.out() << ", sequence " << first_seq << ".." << last_seq << ", head " << v.head_hash_hex;
    ctl.out() << "\n";
    if (!records.empty() && first_seq != 1) {
      ctl.out() << "note: the chain was checked from sequence " << first_seq
                << " on; its link to earlier records (previous_hash_hex "
                << records.front().previous_hash_hex() << ") was not checked\n";
    }
  } else {
    ctl.out() << "audit chain BROKEN at record index " << v.first_bad_index << " (sequence "
              << v.first_bad_sequence << "): " << v.problem << "\n";
    ctl.out() << v.first_bad_index << " records before it verified\n";
  }
  return v.ok ? kExitOk : kExitAuditFailed;
}

}  // namespace

void AddAuditCommands(CLI::App& root, Action* chosen) {
  auto* audit = root.add_subcommand("audit", "Audit log of every mutating call (admin)");
  audit->require_subcommand(1);

  auto* list =
      audit->add_subcommand("list", "ListAuditRecords: who did what, when, to which resource");
  auto lf = std::make_shared<AuditFlags>();
  list->add_option("--resource", lf->resource, "Only this resource, e.g. pumps/P1");
  list->add_option("--actor", lf->actor, "Only this actor");
  list->add_option("--from", lf->from, "From this server time (RFC 3339, now-7d...)");
  list->add_option("--to", lf->to, "Until this server time");
  AddPageFlags(list, &lf->page);
  OnSelected(list, chosen, [lf](Ctl& ctl) { return RunList(ctl, *lf); });

  auto* verify = audit->add_subcommand(
      "verify",
      "Fetch the audit records and recompute their SHA-256 hash chain (docs/api.md, \"Audit "
      "chain\"); "
      "exit 4 and report the first broken link when a record was altered, removed or reordered");
  auto vf = std::make_shared<AuditFlags>();
  verify->add_option("--from", vf->from, "Verify from this server time (default: the whole chain)");
  verify->add_option("--to", vf->to, "Until this server time");
  verify->add_option("--page_size", vf->page.page_size, "Records fetched per call");
  OnSelected(verify, chosen, [vf](Ctl& ctl) { return RunVerify(ctl, *vf); });
}

}  // namespace pumptwin::ctl
