#!/usr/bin/env bash
# Ingest with 1,000 open live streams of the web app against none (docs/benchmarks.md, "Web
# app"): ROUNDS (env, default 3) alternating pairs (ABBA), each on a fresh pumptwind on
# 127.0.0.1: the same pumptwin_loadgen run with no event stream open, and with STREAMS
# Server-Sent Event streams (/v1/alerts:watch, what every open web app holds) held open by
# sse_hold.mjs for the whole run. Prints each run's summary, the medians and their ratio,
# and the server's thread count (CivetWeb holds one worker thread per open stream).
#   tools/bench/scripts/web_streams.sh [STREAMS] [FRAMES_PER_STREAM]   # defaults 1000 5000
# Loopback only; every run is bounded in frames and seconds. Needs a Release build in build/
# (or PUMPTWIN_BUILD) with pumptwind and pumptwin_loadgen, and node.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BIN="${PUMPTWIN_BUILD:-$ROOT/build}/bin"
STREAMS="${1:-1000}"; FRAMES="${2:-5000}"; ROUNDS="${ROUNDS:-3}"
WORK="$(mktemp -d)"
SRV=""; HOLD=""
stop_all() {
  if [ -n "$HOLD" ] && kill -0 "$HOLD" 2>/dev/null; then kill "$HOLD"; wait "$HOLD" 2>/dev/null || true; fi
  if [ -n "$SRV" ] && kill -0 "$SRV" 2>/dev/null; then kill -9 "$SRV"; wait "$SRV" 2>/dev/null || true; fi
}
trap 'rm -rf "$WORK"' EXIT
source "$ROOT/tools/bench/scripts/bench_common.sh"  # wait_port
LOAD="--streams=2 --batch=100 --frames_per_stream=$FRAMES --duration_s=120 --pumps_per_stream=10 --sample_interval_ms=10000"
ulimit -n "$(ulimit -Hn)"

# run N: one loadgen run on a fresh server with N event streams open; prints the summary.
# Runs in a subshell: its own trap stops what it started.
run() {
  trap stop_all EXIT
  rm -rf "$WORK/data" "$WORK/ports"
  "$BIN/pumptwind" --data_dir="$WORK/data" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
    --http_listen=127.0.0.1:0 --http_max_streams="$STREAMS" --port_file="$WORK/ports" 2>"$WORK/server.log" &
  SRV=$!
  local gp hp; gp=$(wait_port "$WORK/ports" grpc_port); hp=$(wait_port "$WORK/ports" http_port)
  if [ "$1" -gt 0 ]; then
    mkfifo "$WORK/hold.in"
    node "$ROOT/tools/bench/scripts/sse_hold.mjs" "$hp" "$1" /v1/alerts:watch 600 < "$WORK/hold.in" > "$WORK/hold.out" &
    HOLD=$!
    exec 7> "$WORK/hold.in"
    for _ in $(seq 1 1200); do grep -q '^open' "$WORK/hold.out" && break; kill -0 $HOLD 2>/dev/null || break; sleep 0.1; done
    grep -q "^open $1\$" "$WORK/hold.out" || { echo "streams did not open: $(cat "$WORK/hold.out")" >&2; exit 1; }
  fi
  local threads; threads=$(ls /proc/$SRV/task | wc -l)
  local out; out=$("$BIN/pumptwin_loadgen" --target=127.0.0.1:$gp $LOAD --register_pumps | tail -n 1)
  local alerts; alerts=$(curl -s "127.0.0.1:$(sed -n 's/^metrics_port=//p' "$WORK/ports")/metrics" | awk '$1 ~ /^pumptwin_alert_transitions_total/ {s+=$2} END {print s+0}')
  local held=""
  if [ "$1" -gt 0 ]; then
    exec 7>&-; wait $HOLD || true; HOLD=""; rm -f "$WORK/hold.in"
    held=" holder: $(tail -n 1 "$WORK/hold.out")"
  fi
  echo "$out event_streams=$1 server_threads=$threads alert_transitions=$alerts$held"
  kill -TERM $SRV; wait $SRV || true; SRV=""
}
rate() { grep -o 'samples_per_s=[0-9]*' | cut -d= -f2; }
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

echo "== ingest with $STREAMS open event streams vs none, $ROUNDS rounds; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) =="
: > "$WORK/none"; : > "$WORK/held"
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then A=$(run 0); B=$(run "$STREAMS"); else B=$(run "$STREAMS"); A=$(run 0); fi
  echo "round $r none: $A"
  echo "round $r held: $B"
  echo "$A" | rate >> "$WORK/none"; echo "$B" | rate >> "$WORK/held"
done
mn=$(median < "$WORK/none"); mh=$(median < "$WORK/held")
echo "median samples/s: none=$mn with_${STREAMS}_streams=$mh ratio=$(awk -v a="$mh" -v b="$mn" 'BEGIN {printf "%.3f", a/b}')"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
