#!/usr/bin/env bash
# The demo: pumptwind on a fresh store (./data-demo) + a simulated fleet with injected
# faults (pumpsim) + a live view of the alerts arriving (pumptwinctl alerts watch) + the web
# app on the HTTP listener (its URL and a login are printed).
# It stops by itself after the detection report (KEEP=1: the server keeps running until
# Ctrl-C). Lines are cut to the terminal width (at most 120 columns). Run through
# `tools/run.sh --demo` (which builds first).
#   PUMPS=300 DAYS=30 SPEED=60000 KEEP=0 tools/demo.sh     # defaults shown
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${PUMPTWIN_BUILD:-$ROOT/build}/bin"
PUMPS="${PUMPS:-300}"
DAYS="${DAYS:-30}"
SPEED="${SPEED:-60000}"   # simulated seconds per wall second: 30 days in ~45 s
KEEP="${KEEP:-0}"
WIDTH="${COLUMNS:-120}"
[ "$WIDTH" -le 120 ] 2>/dev/null || WIDTH=120
DATA="$ROOT/data-demo"
for b in pumptwind pumpsim pumptwinctl; do
  [ -x "$BIN/$b" ] || { echo "demo: $BIN/$b is missing; run tools/run.sh --demo (it builds first)" >&2; exit 1; }
done

rm -rf "$DATA"
mkdir -p "$DATA"
pids=()
cleanup() {
  trap - INT TERM EXIT
  # Newest first: the alert watch and the simulator end before the server they talk to.
  for ((i = ${#pids[@]} - 1; i >= 0; --i)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo
  echo "demo: stopped. The store stays in data-demo/store (pumptwind --data_dir=data-demo/store)."
}
trap cleanup INT TERM EXIT

"$BIN/pumptwind" --data_dir="$DATA/store" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  --http_listen="127.0.0.1:${PUMPTWIN_HTTP_PORT:-0}" --port_file="$DATA/ports" --clock=data --tick_interval=500ms 2>"$DATA/pumptwind.log" &
pids+=($!)
for _ in $(seq 1 300); do
  [ -s "$DATA/ports" ] && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "demo: pumptwind failed:" >&2; cat "$DATA/pumptwind.log" >&2; exit 1; }
  sleep 0.1
done
GRPC_PORT=$(sed -n 's/^grpc_port=//p' "$DATA/ports")
METRICS_PORT=$(sed -n 's/^metrics_port=//p' "$DATA/ports")
HTTP_PORT=$(sed -n 's/^http_port=//p' "$DATA/ports")
TARGET="127.0.0.1:$GRPC_PORT"
cat <<INFO
== pumptwin demo ==
server   : $TARGET  (metrics: http://127.0.0.1:$METRICS_PORT/metrics)
web app  : http://127.0.0.1:$HTTP_PORT/  log in with the token "demo" (any token: the demo runs
           without a token file, so everyone is admin "anonymous"; KEEP=1 keeps the server up)
http api : http://127.0.0.1:$HTTP_PORT/v1/pumps  (OpenAPI: http://127.0.0.1:$HTTP_PORT/v1/openapi.json)
logs     : data-demo/pumptwind.log, data-demo/pumpsim.log
fleet    : $PUMPS simulated pumps, $DAYS days at ${SPEED}x, faults of tools/sim/scenarios/default.json
try      : build/bin/pumptwinctl --server $TARGET pumps list --order urgency
           build/bin/pumptwinctl --server $TARGET twin get <pump id>
Alerts appear below as the twins find the injected faults (Ctrl-C to stop early).
Decision support for clinicians; not a medical device.

INFO

"$BIN/pumptwinctl" --server "$TARGET" alerts watch --from 0 2>&1 | stdbuf -oL cut -c "1-$WIDTH" &
pids+=($!)
# The simulator's progress lines go to its log; the alerts are what the demo shows.
"$BIN/pumpsim" --target="$TARGET" --pumps="$PUMPS" --days="$DAYS" --speed="$SPEED" \
  --scenario="$ROOT/tools/sim/scenarios/default.json" --ground_truth="$DATA/ground_truth.jsonl" \
  --progress_every_s=5 >"$DATA/pumpsim.log" 2>&1 &
pids+=($!)
sim_status=0
wait "${pids[2]}" || sim_status=$?
echo
if [ "$sim_status" -ne 0 ]; then
  echo "demo: the simulator failed (exit $sim_status); the end of data-demo/pumpsim.log:"
  tail -n 5 "$DATA/pumpsim.log" | cut -c "1-$WIDTH"
  exit 1
fi
echo "demo: the simulated fleet finished. Detection report (pumpsim evaluate):"
"$BIN/pumpsim" evaluate --target="$TARGET" --ground_truth="$DATA/ground_truth.jsonl" \
  --idle_s=2 --max_s=30 2>&1 | grep -v '^EVAL_' | cut -c "1-$WIDTH" || true
echo
echo "demo: summary: $PUMPS pumps, $DAYS simulated days; active alerts by type now:"
# `alerts list` columns: name, severity, state, type, ... (first line: the header).
"$BIN/pumptwinctl" --server "$TARGET" alerts list --active --all 2>&1 |
  awk 'NR > 1 && NF >= 4 { n[$4]++; total++ }
       END { for (t in n) printf "  %-28s %d\n", t, n[t]; if (!total) print "  none" }' |
  sort | cut -c "1-$WIDTH" || true
if [ "$KEEP" = "1" ]; then
  echo "demo: the server keeps running (KEEP=1); Ctrl-C to stop."
  wait "${pids[0]}"
fi
