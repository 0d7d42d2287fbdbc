#!/usr/bin/env bash
# live_metrics_test.sh PUMPTWIND [CHECK...]
# Starts PUMPTWIND on loopback (ephemeral ports, a temporary data dir), waits until it serves,
# saves its /metrics page and runs CHECK with the page's path appended (default:
# check_metrics_live.sh); always stops the server.
# ctest entry deploy_metrics_live, enabled with -DPUMPTWIN_LIVE_METRICS_TEST=ON once the server
# exports the whole catalogue (docs/metrics.md).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
server="${1:?usage: $0 PUMPTWIND [CHECK...]}"
shift
check=("$@")
[ "${#check[@]}" -gt 0 ] || check=("$here/check_metrics_live.sh")
work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
"$server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --http_listen=127.0.0.1:0 --data_dir="$work/data" \
  --port_file="$work/ports" --shutdown_grace=1s 2>"$work/server.log" &
pid=$!
for _ in $(seq 1 300); do
  [ -s "$work/ports" ] && grep -q metrics_port "$work/ports" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "pumptwind exited" >&2; exit 1; }
  sleep 0.1
done
port="$(sed -n 's/^metrics_port=//p' "$work/ports")"
[ -n "$port" ] || { echo "no metrics_port in $work/ports" >&2; exit 1; }
# Wait for readiness (recovery finished) so start-up gauges are set.
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/metrics" >"$work/metrics.txt" 2>/dev/null || true
  grep -Eq '^pumptwin_ready(\{\})? 1' "$work/metrics.txt" && break
  sleep 0.1
done
"${check[@]}" "$work/metrics.txt"
