#!/usr/bin/env bash
# Side-by-side ingest benchmark, one run: the same load tool against (a) the null sink
# (parse, validate, ack) and (b) pumptwind (model + durable group-committed ack), then
# (c) fleet size: resident memory with N registered twins and the restart time.
#   tools/bench/scripts/ingest_compare.sh [STREAMS] [BATCH] [FRAMES_PER_STREAM] [FLEET] [WINDOW]
# WINDOW: frames in flight per stream (default 32), the same for the null sink, pumptwind
# (--gateway_window_frames) and the load tool. FLEET_FLAGS (env) go to the fleet
# registration, e.g. FLEET_FLAGS=--distinct_prescriptions.
# Loopback only; every run is bounded in frames and seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BIN="${PUMPTWIN_BUILD:-$ROOT/build}/bin"
STREAMS="${1:-2}"; BATCH="${2:-100}"; FRAMES="${3:-20000}"; FLEET="${4:-100000}"; WINDOW="${5:-32}"
WORK="$(mktemp -d)"; trap 'pkill -P $$ || true; rm -rf "$WORK"' EXIT

wait_port() {  # file key -> port
  for _ in $(seq 1 600); do
    [ -s "$1" ] && grep -q "^$2=" "$1" && { sed -n "s/^$2=//p" "$1"; return 0; }
    sleep 0.1
  done
  echo "no $2 in $1" >&2; return 1
}
metric() { curl -s "127.0.0.1:$1/metrics" | awk -v m="$2" '$1==m {print $2}'; }

echo "== (a) null sink =="
"$BIN/pumptwin_nullsink" --port=0 --duration_s=600 --max_unacked_frames=$WINDOW > "$WORK/ns.out" 2>&1 &
NS=$!
for _ in $(seq 1 100); do grep -q 'listening on' "$WORK/ns.out" 2>/dev/null && break; sleep 0.1; done
NS_PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$WORK/ns.out" | cut -d: -f2)
A=$("$BIN/pumptwin_loadgen" --target=127.0.0.1:$NS_PORT --streams=$STREAMS --batch=$BATCH \
     --frames_per_stream=$FRAMES --duration_s=120 --pumps_per_stream=10 --sample_interval_ms=10000 --max_unacked_frames=$WINDOW)
echo "$A"
kill $NS; wait $NS 2>/dev/null || true

echo "== (b) pumptwind: model + durable ack =="
"$BIN/pumptwind" --data_dir="$WORK/data" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  --port_file="$WORK/ports" --gateway_window_frames=$WINDOW 2>"$WORK/server.log" &
SRV=$!
GP=$(wait_port "$WORK/ports" grpc_port); MP=$(wait_port "$WORK/ports" metrics_port)
B=$("$BIN/pumptwin_loadgen" --target=127.0.0.1:$GP --streams=$STREAMS --batch=$BATCH \
     --frames_per_stream=$FRAMES --duration_s=120 --pumps_per_stream=10 --sample_interval_ms=10000 --max_unacked_frames=$WINDOW --register_pumps)
echo "$B"
ra=$(echo "$A" | grep -o 'samples_per_s=[0-9]*' | cut -d= -f2)
rb=$(echo "$B" | grep -o 'samples_per_s=[0-9]*' | cut -d= -f2)
echo "ratio pumptwind/nullsink = $(awk -v a="$ra" -v b="$rb" 'BEGIN{printf "%.2f", b/a}')"
echo "store commits=$(metric $MP pumptwin_store_commits_total) groups=$(metric $MP pumptwin_store_commit_groups_total)"
kill -TERM $SRV; wait $SRV || true

echo "== (c) fleet: $FLEET registered twins, on a fresh server and store =="
# A fresh server: its idle memory is the baseline (after an ingest run the heap already
# holds freed ingest buffers that the twins would reuse, which would flatter the figure).
rm -rf "$WORK/data" "$WORK/ports"
"$BIN/pumptwind" --data_dir="$WORK/data" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  --port_file="$WORK/ports" 2>"$WORK/server.log" &
SRV=$!
GP=$(wait_port "$WORK/ports" grpc_port); MP=$(wait_port "$WORK/ports" metrics_port)
sleep 2
rss0=$(metric $MP process_resident_memory_bytes)
R=$("$BIN/pumptwin_loadgen" --target=127.0.0.1:$GP --register_only=$FLEET --register_concurrency=128 ${FLEET_FLAGS:-})
echo "$R"
sleep 65  # the server trims its heap once a minute
rss1=$(metric $MP process_resident_memory_bytes)
echo "rss idle=$rss0 after=$rss1 per_twin_bytes=$(awk -v a="$rss0" -v b="$rss1" -v n="$FLEET" 'BEGIN{printf "%.0f", (b-a)/n}') total_per_twin_bytes=$(awk -v b="$rss1" -v n="$FLEET" 'BEGIN{printf "%.0f", b/n}')"
kill -TERM $SRV; wait $SRV || true
echo "clean stop: $(grep -o 'event=stopped.*' "$WORK/server.log")"
rm -f "$WORK/ports"
t0=$(date +%s.%N)
"$BIN/pumptwind" --data_dir="$WORK/data" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  --port_file="$WORK/ports" 2>"$WORK/server2.log" &
SRV=$!
GP=$(wait_port "$WORK/ports" grpc_port); MP=$(wait_port "$WORK/ports" metrics_port)
t1=$(date +%s.%N)
echo "restart with $FLEET twins: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s to serving; $(grep -o 'event=recovered.*' "$WORK/server2.log")"
rss2=$(metric $MP process_resident_memory_bytes)
echo "rss after restart=$rss2 per_twin_bytes=$(awk -v a="$rss0" -v b="$rss2" -v n="$FLEET" 'BEGIN{printf "%.0f", (b-a)/n}') total_per_twin_bytes=$(awk -v b="$rss2" -v n="$FLEET" 'BEGIN{printf "%.0f", b/n}')"
kill -9 $SRV; wait $SRV 2>/dev/null || true
