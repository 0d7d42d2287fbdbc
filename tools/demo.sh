#!/usr/bin/env bash
# The demo: pumptwind on a fresh store (./data-demo) + a simulated fleet with injected
# faults (pumpsim) + a live view of the alerts arriving (pumptwinctl alerts watch).
# Ctrl-C stops everything. Run through `tools/run.sh --demo` (which builds first).
#   PUMPS=300 DAYS=30 SPEED=60000 tools/demo.sh     # defaults shown
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${PUMPTWIN_BUILD:-$ROOT/build}/bin"
PUMPS="${PUMPS:-300}"
DAYS="${DAYS:-30}"
SPEED="${SPEED:-60000}"   # simulated seconds per wall second: 30 days in ~45 s
DATA="$ROOT/data-demo"
for b in pumptwind pumpsim pumptwinctl; do
  [ -x "$BIN/$b" ] || { echo "demo: $BIN/$b is missing; run tools/run.sh --demo (it builds first)" >&2; exit 1; }
done

rm -rf "$DATA"
mkdir -p "$DATA"
pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo
  echo "demo: stopped. The store is kept in $DATA (pumptwind --data_dir=$DATA to look again)."
}
trap cleanup INT TERM EXIT

"$BIN/pumptwind" --data_dir="$DATA/store" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  --port_file="$DATA/ports" 2>"$DATA/pumptwind.log" &
pids+=($!)
for _ in $(seq 1 300); do
  [ -s "$DATA/ports" ] && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "demo: pumptwind failed:" >&2; cat "$DATA/pumptwind.log" >&2; exit 1; }
  sleep 0.1
done
GRPC_PORT=$(sed -n 's/^grpc_port=//p' "$DATA/ports")
METRICS_PORT=$(sed -n 's/^metrics_port=//p' "$DATA/ports")
TARGET="127.0.0.1:$GRPC_PORT"
cat <<INFO
== pumptwin demo ==
server   : $TARGET  (metrics: http://127.0.0.1:$METRICS_PORT/metrics, log: $DATA/pumptwind.log)
fleet    : $PUMPS simulated pumps, $DAYS days at ${SPEED}x, faults from tools/sim/scenarios/default.json
try      : $BIN/pumptwinctl --server $TARGET pumps list --order urgency
           $BIN/pumptwinctl --server $TARGET twin get <pump id>
Alerts appear below as the twins find the injected faults (Ctrl-C to stop).
Decision support for clinicians; not a medical device.

INFO

"$BIN/pumptwinctl" --server "$TARGET" alerts watch --from 0 &
pids+=($!)
"$BIN/pumpsim" --target="$TARGET" --pumps="$PUMPS" --days="$DAYS" --speed="$SPEED" \
  --scenario="$ROOT/tools/sim/scenarios/default.json" --ground_truth="$DATA/ground_truth.jsonl" \
  --progress_every_s=5 2>&1 | sed 's/^/[sim] /' &
pids+=($!)
wait "${pids[2]}" || true
echo
echo "demo: the simulated fleet finished. Detection report (pumpsim evaluate):"
"$BIN/pumpsim" evaluate --target="$TARGET" --ground_truth="$DATA/ground_truth.jsonl" \
  --idle_s=2 --max_s=30 2>&1 | grep -v '^EVAL_' || true
echo "demo: the server keeps running; Ctrl-C to stop."
wait "${pids[0]}"
