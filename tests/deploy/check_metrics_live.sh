#!/usr/bin/env bash
# check_metrics_live.sh METRICS_DUMP
# Every metric that the alert rules and the Grafana dashboard use (tests/deploy/metric_names.py)
# must appear in METRICS_DUMP, a /metrics page of a running pumptwind (text exposition format).
# A metric counts as present when the dump has its `# TYPE` line or a sample of it (histograms
# through their _bucket/_sum/_count series). Series Prometheus adds itself (`up`, `ALERTS`) are
# not expected. Note: a labelled family shows up only once a child exists; the server creates
# the children of its bounded label sets at start so that every name is there from the first
# scrape.
# Exit 0 when all are present; 1 listing the missing ones; 2 on usage errors.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -ne 1 ] || [ ! -r "$1" ]; then
  echo "usage: $0 METRICS_DUMP (a saved /metrics page)" >&2
  exit 2
fi
dump="$1"
mapfile -t used < <(/usr/bin/python3 "$here/metric_names.py")
if [ "${#used[@]}" -eq 0 ]; then
  echo "no metric names extracted from the rules and the dashboard" >&2
  exit 2
fi
missing=()
for m in "${used[@]}"; do
  if grep -Eq "^# TYPE ${m} |^${m}(_bucket|_sum|_count)?(\{| )" "$dump"; then
    continue
  fi
  missing+=("$m")
done
for m in "${missing[@]}"; do
  echo "MISSING: $m (used by the rules or the dashboard, absent from $dump)"
done
echo "$(( ${#used[@]} - ${#missing[@]} )) passed, ${#missing[@]} failed"
[ "${#missing[@]}" -eq 0 ]
