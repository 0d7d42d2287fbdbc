#!/usr/bin/env bash
# Concurrent gateway streams held by pumptwind (docs/benchmarks.md, "Concurrent gateway
# streams"): starts pumptwind on 127.0.0.1 with a fresh data dir, registers one pump per
# stream, then pumptwin_streamhold opens STREAMS DeviceGateway streams, STREAMS_PER_CHANNEL
# per HTTP/2 connection, holds them HOLD_S seconds while each sends a one-sample frame every
# INTERVAL_S seconds and waits for its Ack, closes them, and prints the tool's summary and
# the server's own view (/metrics, log).
#   tools/bench/scripts/streams_hold.sh [STREAMS] [STREAMS_PER_CHANNEL] [HOLD_S] [INTERVAL_S]
# Defaults: 100000 streams, 100 per connection, held 100 s, one frame per stream in that
# time (1000 frames/s). STREAMS_PER_CHANNEL=1 is one connection per stream, like real
# gateways: both processes then need STREAMS file descriptors (ulimit -Hn).
# Loopback only; every step is bounded in time. Needs a Release build in build/ (or
# PUMPTWIN_BUILD) with the targets pumptwind and pumptwin_streamhold.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BIN="${PUMPTWIN_BUILD:-$ROOT/build}/bin"
STREAMS="${1:-100000}"; SPC="${2:-100}"; HOLD="${3:-100}"; INTERVAL="${4:-$HOLD}"
WORK="$(mktemp -d)"
SRV=""
cleanup() {
  if [ -n "$SRV" ] && kill -0 "$SRV" 2>/dev/null; then kill -9 "$SRV"; wait "$SRV" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() {  # file key -> port (bounded: 60 s)
  for _ in $(seq 1 600); do
    [ -s "$1" ] && grep -q "^$2=" "$1" && { sed -n "s/^$2=//p" "$1"; return 0; }
    sleep 0.1
  done
  echo "no $2 in $1; server log:" >&2; cat "$WORK/server.log" >&2; return 1
}
metric() { curl -s "127.0.0.1:$1/metrics" | awk -v m="$2" '$1==m {print $2}'; }

# One fd per connection on each side (plus ~100 for the store, pipes, epoll).
CONNECTIONS=$(( (STREAMS + SPC - 1) / SPC ))
ulimit -n "$(ulimit -Hn)"  # this shell's children (the tool) get the hard limit
if [ $(( CONNECTIONS + 100 )) -gt "$(ulimit -n)" ]; then
  echo "$CONNECTIONS connections need more open files than the hard limit $(ulimit -Hn):" \
       "raise it (ulimit -Hn as root, LimitNOFILE in systemd) or use more streams per" \
       "connection (second argument)" >&2
  exit 2
fi
echo "== $STREAMS streams, $SPC per connection ($CONNECTIONS connections), held ${HOLD}s," \
     "a frame per stream every ${INTERVAL}s; open-file limit $(ulimit -n); $(nproc) cores," \
     "load $(cut -d' ' -f1-3 /proc/loadavg) =="

(exec "$BIN/pumptwind" --data_dir="$WORK/data" --listen=127.0.0.1:0 \
   --metrics_listen=127.0.0.1:0 --http_listen=127.0.0.1:0 --port_file="$WORK/ports" 2>"$WORK/server.log") &
SRV=$!
GP=$(wait_port "$WORK/ports" grpc_port); MP=$(wait_port "$WORK/ports" metrics_port)
grep -o 'event=fd_limit.*' "$WORK/server.log" || true

set +e
"$BIN/pumptwin_streamhold" --target="127.0.0.1:$GP" --streams="$STREAMS" \
  --streams_per_channel="$SPC" --register_pumps --server_pid="$SRV" \
  --hold_s="$HOLD" --frame_interval_s="$INTERVAL" --connect_timeout_s=900 \
  --drain_timeout_s=120 --close_timeout_s=300 --max_s=3000 --progress_s=10
RC=$?
set -e
echo "server after the run: gateways_connected=$(metric "$MP" pumptwin_gateways_connected)" \
     "open_fds=$(metric "$MP" process_open_fds)" \
     "rss_bytes=$(metric "$MP" process_resident_memory_bytes)"
kill -TERM "$SRV"; wait "$SRV" || true; SRV=""
echo "clean stop: $(grep -o 'event=stopped.*' "$WORK/server.log" || echo 'NO stopped line')"
exit "$RC"
