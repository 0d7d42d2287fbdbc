#!/usr/bin/env bash
# check_flag_files.sh PUMPTWIND
# deploy/pumptwind.flags (systemd and the container image) and the flag file of
# deploy/kubernetes/configmap.yaml parse with PUMPTWIND's own flags and values
# (--only_check_args: every name known, every value valid, nothing started). The files and
# mounts they name are checked by check_deploy_structure.py.
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

exit "$fail"
