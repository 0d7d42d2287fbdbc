#!/usr/bin/env bash
# check_flag_files.sh PUMPTWIND
# deploy/pumptwind.flags (systemd and the container image), the flag file of
# deploy/kubernetes/configmap.yaml and the cluster examples' flags (deploy/kubernetes-cluster:
# flag file + container args; deploy/patroni: flag file + the drop-in's ExecStart) parse with
# PUMPTWIND's own flags and values (--only_check_args: every name known, every value valid,
# nothing started). A PUMPTWIND without cluster mode (no --cluster_replica in its --help) is
# given the cluster examples without their --cluster_* flags. The files and mounts they name
# are checked by check_deploy_structure.py.
# Exit 0 when all pass; 1 listing the failures.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
server="${1:?usage: $0 PUMPTWIND}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail=0

check_flags() {  # check_flags NAME FILE
  if ! out="$("$server" --config="$2" --only_check_args 2>&1)"; then
    echo "FAIL: $1 does not parse with pumptwind's flags:"; echo "$out" | head -5; fail=1
  else
    echo "ok: $1 parses"
  fi
}

check_flags deploy/pumptwind.flags "$root/deploy/pumptwind.flags"
/usr/bin/python3 - "$root/deploy/kubernetes/configmap.yaml" >"$work/k8s.flags" <<'PY'
import sys, yaml
with open(sys.argv[1], encoding="utf-8") as f:
    print(yaml.safe_load(f)["data"]["pumptwind.flags"])
PY
check_flags "deploy/kubernetes/configmap.yaml (pumptwind.flags)" "$work/k8s.flags"

# The cluster examples: the flag file plus the per-replica flags, with sample values for what
# the kubelet ($(VAR)) and systemd (%d, %H) fill in.
/usr/bin/python3 - "$root/deploy" "$work" <<'PY'
import re, sys, yaml
deploy, work = sys.argv[1], sys.argv[2]
sample = {"POD_NAME": "pumptwin-0", "POD_NAMESPACE": "pumptwin",
          "PUMPTWIN_POSTGRES_DSN": "host=pumptwin-db-rw dbname=pumptwin user=pumptwin"}
with open(f"{deploy}/kubernetes-cluster/configmap-cluster.yaml", encoding="utf-8") as f:
    text = yaml.safe_load(f)["data"]["pumptwind.flags"]
with open(f"{deploy}/kubernetes-cluster/statefulset-cluster.yaml", encoding="utf-8") as f:
    args = yaml.safe_load(f)["spec"]["template"]["spec"]["containers"][0]["args"]
args = [re.sub(r"\$\(([A-Z_]+)\)", lambda m: sample[m.group(1)], a) for a in args if not a.startswith("--config=")]
open(f"{work}/k8s-cluster.flags", "w").write(text + "\n".join(args) + "\n")
with open(f"{deploy}/patroni/pumptwind-cluster.flags", encoding="utf-8") as f:
    text = f.read()
with open(f"{deploy}/patroni/pumptwind.service.d/cluster.conf", encoding="utf-8") as f:
    unit = f.read()
cmd = re.search(r"^ExecStart=(/.*?)(?<!\\)$", unit, re.M | re.S).group(1).replace("\\\n", " ")
cmd = cmd.replace("%d", "/run/credentials/pumptwind.service").replace("%H", "host1.example.net")
flags = [m.strip('"') for m in re.findall(r'"--[^"]*"|--\S+', cmd) if not m.startswith("--config=")]
open(f"{work}/patroni.flags", "w").write(text + "\n" + "\n".join(flags) + "\n")
PY
if grep -q -- "--cluster_replica" <<<"$("$server" --help 2>&1)"; then
  check_flags "deploy/kubernetes-cluster (flag file and args)" "$work/k8s-cluster.flags"
  check_flags "deploy/patroni (flag file and drop-in)" "$work/patroni.flags"
else
  echo "note: $(basename "$server") has no cluster mode: the cluster examples are checked without --cluster_*"
  for f in k8s-cluster patroni; do
    grep -v -E '^--cluster_[a-z_]+=' "$work/$f.flags" >"$work/$f.nocluster.flags"
    grep -q -E '^--cluster_[a-z_]+=' "$work/$f.flags" ||
      { echo "FAIL: $f: no --cluster_* flags found in the example"; fail=1; }
  done
  check_flags "deploy/kubernetes-cluster (flag file and args)" "$work/k8s-cluster.nocluster.flags"
  check_flags "deploy/patroni (flag file and drop-in)" "$work/patroni.nocluster.flags"
fi

exit "$fail"
