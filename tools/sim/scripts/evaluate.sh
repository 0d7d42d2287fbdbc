#!/usr/bin/env bash
# The fleet evaluation (docs/detection.md, "Fleet evaluation"): per seed a fresh pumptwind on
# 127.0.0.1 (ephemeral ports, its own data dir, the data clock) and one pumpsim run (a mixed fleet,
# randomised physics, faults on every profile), then one `pumpsim evaluate` over all runs:
# the per (fault kind, profile) table, the goals met / not met, report.md and report.json.
#   tools/sim/scripts/evaluate.sh                       # 1000 pumps, 365 days, seeds 1 2 3
#   PUMPS=200 DAYS=60 SEEDS="1" tools/sim/scripts/evaluate.sh   # a quicker look
# Bounded: every run is killed after MAX_MINUTES (default 180) and the server is stopped on
# exit. OUT (default a new temporary directory) keeps the ground truth, logs and reports.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BIN="${PUMPTWIN_BUILD:-$ROOT/build}/bin"
PUMPS="${PUMPS:-1000}"
DAYS="${DAYS:-365}"
SEEDS="${SEEDS:-1 2 3}"
SCENARIO="${SCENARIO:-$ROOT/tools/sim/scenarios/fleet.json}"
MAX_MINUTES="${MAX_MINUTES:-180}"
OUT="${OUT:-$(mktemp -d -t pumpsim-eval.XXXXXX)}"
for b in pumptwind pumpsim; do
  [ -x "$BIN/$b" ] || { echo "evaluate: $BIN/$b is missing (build the pumptwind and pumpsim targets)" >&2; exit 1; }
done
mkdir -p "$OUT"
t0=$(date +%s)
# One server per seed: each run is its own simulated year on the data clock (--clock=data:
# pumps that report nothing are forecast on simulated time, not on today's wall clock).
SERVERS=()
cleanup() {
  for pid in "${SERVERS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${SERVERS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM
start_server() {  # $1: seed; sets TARGET
  local dir="$OUT/server-$1"
  rm -rf "$dir"
  mkdir -p "$dir"
  "$BIN/pumptwind" --data_dir="$dir/data" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --http_listen=127.0.0.1:0 \
    --port_file="$dir/ports" --clock=data --tick_interval=500ms 2>"$dir/pumptwind.log" &
  local pid=$!
  SERVERS+=("$pid")
  for _ in $(seq 1 300); do
    [ -s "$dir/ports" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "evaluate: pumptwind failed:" >&2; cat "$dir/pumptwind.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -s "$dir/ports" ] || { echo "evaluate: pumptwind did not start in 30 s" >&2; exit 1; }
  TARGET="127.0.0.1:$(sed -n 's/^grpc_port=//p' "$dir/ports")"
}
echo "evaluate: $PUMPS pumps x $DAYS days, seeds: $SEEDS, output in $OUT"
gts=()
targets=()
for seed in $SEEDS; do
  s0=$(date +%s)
  start_server "$seed"
  echo "evaluate: seed $seed: running the fleet against pumptwind on $TARGET"
  if ! timeout "${MAX_MINUTES}m" "$BIN/pumpsim" --target="$TARGET" --pumps="$PUMPS" --days="$DAYS" \
      --seed="$seed" --pump_prefix="s$seed" --scenario="$SCENARIO" \
      --ground_truth="$OUT/gt-$seed.jsonl" --progress_every_s=30 2>&1 | tee "$OUT/sim-$seed.log" |
      sed -u "s/^/[seed $seed] /"; then
    echo "evaluate: seed $seed failed (see $OUT/sim-$seed.log)" >&2
    exit 1
  fi
  echo "evaluate: seed $seed done in $(( $(date +%s) - s0 )) s"
  gts+=("$OUT/gt-$seed.jsonl")
  targets+=("$TARGET")
done
target_list=$(IFS=,; echo "${targets[*]}")
gt_list=$(IFS=,; echo "${gts[*]}")
rm -f "$OUT/report.md"
timeout "${MAX_MINUTES}m" "$BIN/pumpsim" evaluate --target="$target_list" --ground_truth="$gt_list" \
  --idle_s=5 --max_s=600 --markdown_out="$OUT/report.md" --json_out="$OUT/report.json" \
  >"$OUT/evaluate.log" 2>&1 || { echo "evaluate: pumpsim evaluate failed:" >&2; tail "$OUT/evaluate.log" >&2; exit 1; }
grep -v '^EVAL_' "$OUT/evaluate.log"
echo
echo "evaluate: summary: $(grep -c '^EVAL_GOAL .* met=1' "$OUT/evaluate.log") of $(grep -c '^EVAL_GOAL' "$OUT/evaluate.log") goals met; wall $(( $(date +%s) - t0 )) s"
echo "evaluate: reports: $OUT/report.md $OUT/report.json (per-fault lines: $OUT/evaluate.log)"
