#!/usr/bin/env bash
# Side-by-side ingest benchmark, one run: the same load tool against (a) the null sink
# (parse, validate, ack) and (b) pumptwind (model + durable group-committed ack), in ROUNDS
# (env, default 5; 0 skips (a) and (b)) alternating pairs with medians, then (c) fleet size: resident memory
# with N registered twins and the restart time (SKIP_FLEET=1 skips it).
#   tools/bench/scripts/ingest_compare.sh [STREAMS] [BATCH] [FRAMES_PER_STREAM] [FLEET] [WINDOW]
# WINDOW: frames in flight per stream (default 32), the same for the null sink, pumptwind
# (--gateway_window_frames) and the load tool. FLEET_FLAGS (env) go to the fleet
# registration, e.g. FLEET_FLAGS=--distinct_prescriptions. LATE_PERCENT (env, e.g. 1): each
# round runs the null sink, pumptwind in order and pumptwind with that percent of samples made
# late by clinical records stated ahead of them (pumptwin_loadgen --late_record_percent: the
# server applies them by event-time rewinds, counted in pumptwin_late_inputs_total) instead of
# (a)/(b), and prints both ratios against the same null-sink run side by side.
# Loopback only; every run is bounded in frames and seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BIN="${PUMPTWIN_BUILD:-$ROOT/build}/bin"
STREAMS="${1:-2}"; BATCH="${2:-100}"; FRAMES="${3:-20000}"; FLEET="${4:-100000}"; WINDOW="${5:-32}"
WORK="$(mktemp -d)"; trap 'pkill -P $$ || true; rm -rf "$WORK"' EXIT

source "$ROOT/tools/bench/scripts/bench_common.sh"  # wait_port
metric() { curl -s "127.0.0.1:$1/metrics" | awk -v m="$2" '$1==m {print $2}'; }

# One load-tool run against a fresh null sink; prints the load tool's summary line.
run_null() {
  "$BIN/pumptwin_nullsink" --port=0 --duration_s=600 --max_unacked_frames=$WINDOW > "$WORK/ns.out" 2>&1 &
  local ns=$!
  for _ in $(seq 1 100); do grep -q 'listening on' "$WORK/ns.out" 2>/dev/null && break; sleep 0.1; done
  local port; port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$WORK/ns.out" | cut -d: -f2)
  "$BIN/pumptwin_loadgen" --target=127.0.0.1:$port $LOAD
  kill $ns; wait $ns 2>/dev/null || true
}
# One load-tool run against pumptwind on a fresh store; the summary line plus commit counts.
run_twin() {
  rm -rf "$WORK/data" "$WORK/ports"
  "$BIN/pumptwind" --data_dir="$WORK/data" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --http_listen=127.0.0.1:0 \
    --port_file="$WORK/ports" --gateway_window_frames=$WINDOW 2>"$WORK/server.log" &
  local srv=$!
  local gp mp; gp=$(wait_port "$WORK/ports" grpc_port); mp=$(wait_port "$WORK/ports" metrics_port)
  thread_cpu $srv > "$WORK/cpu0"
  local out; out=$("$BIN/pumptwin_loadgen" --target=127.0.0.1:$gp $LOAD --register_pumps)
  thread_cpu $srv > "$WORK/cpu1"
  local samples; samples=$(echo "$out" | grep -o 'samples_acked=[0-9]*' | cut -d= -f2)
  echo "$out commits=$(metric $mp pumptwin_store_commits_total) groups=$(metric $mp pumptwin_store_commit_groups_total) rewinds=$(curl -s 127.0.0.1:$mp/metrics | awk '$1 ~ /^pumptwin_late_inputs_total\{path="rewind"\}/ {print $2}') $(cpu_per_sample "$samples") $(stage_ms $mp)"
  kill -TERM $srv; wait $srv || true
}
# Mean server-side durable-ack time per frame part by stage, ms (pumptwin_ingest_stage_*).
stage_ms() {
  curl -s "127.0.0.1:$1/metrics" | awk '
    /^pumptwin_ingest_stage_frame_parts_total / {n=$2}
    /^pumptwin_ingest_stage_seconds_total/ {match($0, /stage="[a-z_]*"/); s[substr($0, RSTART+7, RLENGTH-8)]=$2}
    END {if (n > 0) for (k in s) printf "stage_ms_%s=%.3f ", k, s[k]/n*1e3}'
}
rate() { grep -o 'samples_per_s=[0-9]*' | cut -d= -f2; }
# CPU ticks (user + system) per server thread group: gRPC, shards, committer, other.
thread_cpu() {
  for t in /proc/$1/task/*; do
    echo "$(cat "$t/comm" 2>/dev/null | tr ' ' _) $(awk '{print $14+$15}' "$t/stat" 2>/dev/null)"
  done | awk '{g="other"; if ($1 ~ /^pt-shard/) g="shards"; else if ($1 ~ /^pt-committer/) g="committer";
               else if ($1 ~ /nexting|executo|grpc/) g="grpc"; c[g]+=$2} END {for (k in c) print k, c[k]}' | sort
}
# Server CPU per durable sample, by thread group, over the load tool's run (µs).
cpu_per_sample() {
  join "$WORK/cpu0" "$WORK/cpu1" | awk -v n="$1" -v hz="$(getconf CLK_TCK)" '
    {d=($3-$2)/hz*1e6/n; tot+=d; printf "cpu_us_%s=%.3f ", $1, d} END {printf "cpu_us_server=%.3f", tot}'
}
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

# The machine's speed drifts by up to +-20 % over minutes: ROUNDS alternating pairs (ABBA
# order, so neither side always runs first) and medians, not one pair.
ROUNDS="${ROUNDS:-5}"
LOAD="--streams=$STREAMS --batch=$BATCH --frames_per_stream=$FRAMES --duration_s=120 --pumps_per_stream=10 --sample_interval_ms=10000 --max_unacked_frames=$WINDOW"
if [ "$ROUNDS" -gt 0 ] && [ "${LATE_PERCENT:-0}" = 0 ]; then
echo "== (a) null sink (parse, validate, ack) and (b) pumptwind (model + durable ack): $ROUNDS rounds =="
: > "$WORK/null.rates"; : > "$WORK/twin.rates"; : > "$WORK/ratios"
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then A=$(run_null); B=$(run_twin); else B=$(run_twin); A=$(run_null); fi
  echo "round $r null: $A"
  echo "round $r twin: $B"
  ra=$(echo "$A" | rate); rb=$(echo "$B" | rate)
  echo "$ra" >> "$WORK/null.rates"; echo "$rb" >> "$WORK/twin.rates"
  awk -v a="$ra" -v b="$rb" 'BEGIN{printf "%.3f\n", b/a}' >> "$WORK/ratios"
  echo "round $r ratio pumptwind/nullsink = $(tail -1 "$WORK/ratios")"
done
mn=$(median < "$WORK/null.rates"); mt=$(median < "$WORK/twin.rates")
echo "median null sink samples/s=$mn  median pumptwind samples/s=$mt  ratio of medians=$(awk -v a="$mn" -v b="$mt" 'BEGIN{printf "%.3f", b/a}')"
echo "per-round ratios: $(sort -n "$WORK/ratios" | tr '\n' ' ') (median $(median < "$WORK/ratios"))"
fi
if [ "${LATE_PERCENT:-0}" != 0 ] && [ "$ROUNDS" -gt 0 ]; then
  echo "== in order vs ${LATE_PERCENT} % late, side by side: $ROUNDS rounds =="
  INORDER="$LOAD"; : > "$WORK/r_in"; : > "$WORK/r_late"
  for r in $(seq 1 "$ROUNDS"); do
    LOAD="$INORDER"
    if [ $((r % 2)) -eq 1 ]; then A=$(run_null); B=$(run_twin); fi
    LOAD="$INORDER --late_record_percent=$LATE_PERCENT"; C=$(run_twin)
    LOAD="$INORDER"
    if [ $((r % 2)) -eq 0 ]; then B=$(run_twin); A=$(run_null); fi
    echo "round $r null: $A"; echo "round $r in order twin: $B"; echo "round $r late twin: $C"
    ri=$(awk -v a="$(echo "$A" | rate)" -v b="$(echo "$B" | rate)" 'BEGIN{printf "%.3f", b/a}')
    rl=$(awk -v a="$(echo "$A" | rate)" -v b="$(echo "$C" | rate)" 'BEGIN{printf "%.3f", b/a}')
    echo "$ri" >> "$WORK/r_in"; echo "$rl" >> "$WORK/r_late"
    echo "round $r ratio in order=$ri late=$rl"
  done
  echo "median ratio pumptwind/nullsink in order=$(median < "$WORK/r_in") with ${LATE_PERCENT} % late=$(median < "$WORK/r_late")"
  LOAD="$INORDER"
fi
[ "${SKIP_FLEET:-0}" = 1 ] && exit 0

echo "== (c) fleet: $FLEET registered twins, on a fresh server and store =="
# A fresh server: its idle memory is the baseline (after an ingest run the heap already
# holds freed ingest buffers that the twins would reuse, which would flatter the figure).
rm -rf "$WORK/data" "$WORK/ports"
"$BIN/pumptwind" --data_dir="$WORK/data" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --http_listen=127.0.0.1:0 \
  --port_file="$WORK/ports" 2>"$WORK/server.log" &
SRV=$!
GP=$(wait_port "$WORK/ports" grpc_port); MP=$(wait_port "$WORK/ports" metrics_port)
sleep 2
rss0=$(metric $MP process_resident_memory_bytes)
R=$("$BIN/pumptwin_loadgen" --target=127.0.0.1:$GP --register_only=$FLEET --register_concurrency=128 ${FLEET_FLAGS:-})
echo "$R"
sleep 65  # the server trims its heap once a minute
rss1=$(metric $MP process_resident_memory_bytes)
echo "store memtables after the idle flush: $(metric $MP pumptwin_store_memtable_bytes) bytes"
echo "rss idle=$rss0 after=$rss1 per_twin_bytes=$(awk -v a="$rss0" -v b="$rss1" -v n="$FLEET" 'BEGIN{printf "%.0f", (b-a)/n}') total_per_twin_bytes=$(awk -v b="$rss1" -v n="$FLEET" 'BEGIN{printf "%.0f", b/n}')"
kill -TERM $SRV; wait $SRV || true
echo "clean stop: $(grep -o 'event=stopped.*' "$WORK/server.log")"
rm -f "$WORK/ports"
t0=$(date +%s.%N)
"$BIN/pumptwind" --data_dir="$WORK/data" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --http_listen=127.0.0.1:0 \
  --port_file="$WORK/ports" 2>"$WORK/server2.log" &
SRV=$!
GP=$(wait_port "$WORK/ports" grpc_port); MP=$(wait_port "$WORK/ports" metrics_port)
t1=$(date +%s.%N)
echo "restart with $FLEET twins: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s to serving; $(grep -o 'event=recovered.*' "$WORK/server2.log")"
rss2=$(metric $MP process_resident_memory_bytes)
echo "rss after restart=$rss2 per_twin_bytes=$(awk -v a="$rss0" -v b="$rss2" -v n="$FLEET" 'BEGIN{printf "%.0f", (b-a)/n}') total_per_twin_bytes=$(awk -v b="$rss2" -v n="$FLEET" 'BEGIN{printf "%.0f", b/n}')"
kill -9 $SRV; wait $SRV 2>/dev/null || true
