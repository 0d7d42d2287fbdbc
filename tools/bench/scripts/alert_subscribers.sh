#!/usr/bin/env bash
# Ingest with 0 / 100 / 10 000 WatchAlerts subscribers (half of them never read), and the
# sample-to-alert latency at full ingest. Per round and subscriber count: a fresh pumptwind
# on 127.0.0.1 (own data dir), then one pumptwin_loadgen run that opens the subscribers,
# drives the usual ingest load (2 gateway streams x 10 pumps, frames of 100 samples) and,
# while that load runs at full speed, the alert probe (a pump raising and resolving a
# motor-stall alert, one sample every PROBE_MS ms). The counts rotate within a round so
# machine drift hits each the same.
# Usage: tools/bench/scripts/alert_subscribers.sh [frames_per_stream] [rounds] [probe_ms]
# Environment: COUNTS (subscriber counts, default "0 100 10000"), SERVER_ARGS (extra pumptwind
# flags, e.g. --watch_alerts_threads=1). Subscribers beyond the server's maximum
# (--watch_alerts_max_subscribers, default 50 per core) are refused and reported as
# watchers_refused; readers_held counts the reading subscribers the server kept;
# load_cpu_s is the load tool's own CPU time. LOADGEN_ARGS: extra
# pumptwin_loadgen flags, e.g. --watch_alerts_per_channel=10. PIN=1: pumptwind on CPU 0 and
# the load tool on CPU 1 (taskset), so that the load tool's own work does not slow the server.
# Results: docs/benchmarks.md "Alert subscribers".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BIN="${PUMPTWIN_BUILD:-$ROOT/build}/bin"
FRAMES="${1:-30000}"; ROUNDS="${2:-3}"; PROBE_MS="${3:-100}"
COUNTS="${COUNTS:-0 100 10000}"
WORK="$(mktemp -d)"; SRV=""
trap '[ -n "$SRV" ] && kill "$SRV" 2>/dev/null; rm -rf "$WORK"' EXIT

source "$ROOT/tools/bench/scripts/bench_common.sh"  # wait_port
SRV_PIN=""; LOAD_PIN=""
if [ "${PIN:-0}" = 1 ]; then SRV_PIN="taskset -c 0"; LOAD_PIN="taskset -c 1"; fi

run() {  # subscribers -> one result line
  rm -rf "$WORK/data" "$WORK/ports"
  $SRV_PIN "$BIN/pumptwind" --data_dir="$WORK/data" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --http_listen=127.0.0.1:0 \
    --port_file="$WORK/ports" ${SERVER_ARGS:-} 2>"$WORK/server.log" &
  SRV=$!
  local gp; gp=$(wait_port "$WORK/ports" grpc_port)
  local out rc=0
  # 50 streams per connection: at most half the server's maximum, so that it holds stalled
  # and reading subscribers alike (the tool opens them a connection at a time, alternating).
  # `times` (last line: the subshell's children) gives the load tool's own CPU time.
  out=$({ $LOAD_PIN "$BIN/pumptwin_loadgen" --target=127.0.0.1:$gp --register_pumps --streams=2 \
    --batch=100 --pumps_per_stream=10 --sample_interval_ms=10000 --frames_per_stream="$FRAMES" \
    --duration_s=120 --watch_alerts="$1" --watch_alerts_per_channel=50 --alert_probe_ms="$PROBE_MS" \
    ${LOADGEN_ARGS:-} 2>&1 || echo "load_exit=$?"
    times; })
  if [[ "$out" =~ load_exit=([0-9]+) ]]; then rc=${BASH_REMATCH[1]}; fi
  local load_s; load_s=$(echo "$out" | tail -1 | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/)
    printf "%.2f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }')
  out="$(echo "$out" | head -n -2) load_cpu_s=$load_s"
  # The server's own CPU (user + system, from /proc): client and server share the machine,
  # so the ingest rate alone also counts what the load tool's subscribers cost.
  # The alert hub's delivery threads alone (pt-alert-hub, summed) are the fan-out's direct cost.
  local hz; hz=$(getconf CLK_TCK)
  local cpu_s; cpu_s=$(awk -v hz="$hz" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$SRV/stat")
  local hub_s=0 t
  for t in /proc/$SRV/task/*; do
    if [ "$(cat "$t/comm" 2>/dev/null)" = pt-alert-hub ]; then
      hub_s=$(awk -v hz="$hz" -v acc="$hub_s" '{printf "%.2f", acc + ($14 + $15) / hz}' "$t/stat")
    fi
  done
  echo "subscribers=$1 exit=$rc $(echo "$out" | tr '\n' ' ') server_cpu_s=$cpu_s hub_cpu_s=$hub_s"
  kill -TERM "$SRV"; wait "$SRV" || true; SRV=""
}

for r in $(seq 1 "$ROUNDS"); do
  for n in $COUNTS; do run "$n"; done
  COUNTS="$(echo $COUNTS | awk '{for (i = 2; i <= NF; ++i) printf "%s ", $i; print $1}')"
done
