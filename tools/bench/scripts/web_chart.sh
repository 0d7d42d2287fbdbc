#!/usr/bin/env bash
# A chart's data from one year of one pump's telemetry (docs/benchmarks.md, "Web app"):
# starts pumptwind on 127.0.0.1 with a fresh data dir, pumptwin_loadgen registers one pump
# and sends it a year of 1-minute samples (525,600), then curl times REPEAT requests of
# GetTelemetry over the HTTP/JSON API (what the web app's pump page asks), for the whole
# year downsampled to POINTS points, and prints p50/p90/max of curl's total time.
#   tools/bench/scripts/web_chart.sh [POINTS] [REPEAT]     # defaults 720 30
# Loopback only; every step is bounded in time. Needs a Release build in build/ (or
# PUMPTWIN_BUILD) with the targets pumptwind and pumptwin_loadgen.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BIN="${PUMPTWIN_BUILD:-$ROOT/build}/bin"
POINTS="${1:-720}"; REPEAT="${2:-30}"
WORK="$(mktemp -d)"
SRV=""
cleanup() {
  if [ -n "$SRV" ] && kill -0 "$SRV" 2>/dev/null; then kill -TERM "$SRV"; wait "$SRV" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
source "$ROOT/tools/bench/scripts/bench_common.sh"  # wait_port

echo "== one year of 1-min samples, downsampled to $POINTS points, $REPEAT requests; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) =="
"$BIN/pumptwind" --data_dir="$WORK/data" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  --http_listen=127.0.0.1:0 --port_file="$WORK/ports" 2>"$WORK/server.log" &
SRV=$!
GP=$(wait_port "$WORK/ports" grpc_port); HP=$(wait_port "$WORK/ports" http_port)
"$BIN/pumptwin_loadgen" --target="127.0.0.1:$GP" --register_pumps --streams=1 --pumps_per_stream=1 \
  --batch=1000 --frames_per_stream=526 --sample_interval_ms=60000 --pump_prefix=chart \
  --duration_s=600 | tail -n 1
PUMP=charts0p0
NOW_MS=$(( $(date +%s) * 1000 ))
START=$(( NOW_MS - 367 * 86400000 ))
END=$(( NOW_MS + 86400000 ))
INTERVAL=$(( (END - START) / POINTS ))
URL="http://127.0.0.1:$HP/v1/pumps/$PUMP/telemetry?startDeviceTimeMs=$START&endDeviceTimeMs=$END&downsampleIntervalMs=$INTERVAL&pageSize=10000"
N=$(curl -sf "$URL" | grep -o '"seq"' | wc -l)
echo "points returned: $N (bucket $((INTERVAL / 60000)) min)"
for _ in $(seq 1 "$REPEAT"); do
  curl -s -o /dev/null -w '%{time_total}\n' --max-time 30 "$URL"
done | sort -n | awk '{v[NR]=$1*1000} END {printf "http_ms p50=%.1f p90=%.1f max=%.1f n=%d\n", v[int((NR+1)/2)], v[int(NR*0.9+0.5)], v[NR], NR}'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
