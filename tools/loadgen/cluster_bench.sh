#!/usr/bin/env bash
# Cluster-mode figures (docs/benchmarks.md "Cluster mode"), against a local cluster started by
# tools/cluster.sh (PostgreSQL primary + 2 synchronous standbys, N pumptwind replicas):
#
#   tools/loadgen/cluster_bench.sh [--dir DIR] ingest [ROUNDS] [STREAMS] [FRAMES]
#       ROUNDS (default 3) alternating pairs (ABBA) of the same pumptwin_loadgen run against
#       (a) a single pumptwind on RocksDB (fresh temp data dir) and (b) the cluster's replicas
#       (--targets, new pumps each run). Per run: samples/s; for (b) also the CPU seconds of the
#       replicas, of every PostgreSQL process and of the rest (load tool), and what PostgreSQL
#       committed: transactions, telemetry rows (inserted + updated), WAL bytes.
#   tools/loadgen/cluster_bench.sh [--dir DIR] replica-failover
#       2 streams x 30 pumps, a frame of 100 samples every 20 ms per stream (10 k samples/s)
#       for 30 s, to every replica; kill -9 of the last replica, then the seconds until the live
#       replicas' pumptwin_shards_owned add up to the shard count again (polled every 100 ms);
#       the load tool's summary says whether every sample still became durable.
#   tools/loadgen/cluster_bench.sh [--dir DIR] takeover [PUMPS]
#       registers PUMPS (default 10000) pumps with 300 samples each (a snapshot each), kill -9
#       of the last replica, then the survivors' cluster_takeover / cluster_loaded_gained log lines
#       and pumptwin_cluster_takeovers_total once the shards are all served again.
#   tools/loadgen/cluster_bench.sh [--dir DIR] db-failover
#       kill -9 of the PostgreSQL primary, pg_promote() of s1, s2 re-pointed at s1 (reload),
#       then a probe (register + one frame per pump, every replica's shards) until the ingest
#       is acknowledged again. Leaves the cluster with s1 as primary: `tools/cluster.sh down`.
#
# Start the cluster first (tools/cluster.sh up --replicas 3 [--dir DIR] [-- --cluster_lease_ttl=2s]);
# replica-failover, takeover and db-failover each break it: `tools/cluster.sh down` and `up`
# between them. Loopback only; every run is bounded in frames and seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${PUMPTWIN_BUILD:-$ROOT/build}/bin"
DIR="${PUMPTWIN_CLUSTER_DIR:-/tmp/pumptwin-cluster}"
if [ "${1:-}" = --dir ]; then DIR="$2"; shift 2; fi
CMD="${1:-}"; shift || true
[ -f "$DIR/cluster.env" ] || { echo "no cluster in $DIR (tools/cluster.sh up first)" >&2; exit 2; }
WORK="$(mktemp -d)"; trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$WORK"' EXIT
source "$ROOT/tools/bench/scripts/bench_common.sh"  # wait_port
PGBIN="$(sed -n 's/^PGBIN=//p' "$DIR/cluster.env")"
SHARDS=256

now() { date +%s.%N; }
port_of() { sed -n "s/^$2=//p" "$DIR/replicas/$1/ports"; }
live_replicas() {
  for d in "$DIR"/replicas/r*; do
    local pid; pid="$(cat "$d/pid" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && basename "$d"
  done
}
targets() { for r in $(live_replicas); do echo "127.0.0.1:$(port_of "$r" grpc_port)"; done | paste -sd, -; }
metric() { curl -s "127.0.0.1:$1/metrics" | awk -v m="$2" '$1==m {s+=$2} END {print s+0}'; }
shards_owned() {  # summed over the live replicas
  local t=0
  for r in $(live_replicas); do t=$((t + $(metric "$(port_of "$r" metrics_port)" pumptwin_shards_owned))); done
  echo $t
}
pg_port() { cat "$DIR/pg/$1/port"; }
psql_at() { "$PGBIN/psql" -h 127.0.0.1 -p "$(pg_port "$1")" -U postgres -d pumptwin -XAtq -c "$2"; }
postmaster_pid() { head -1 "$DIR/pg/$1/data/postmaster.pid" 2>/dev/null; }
# CPU ticks (user + system) of processes and their children threads.
ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
pg_pids() {  # [NODE...] (default: every node)
  for n in ${@:-primary s1 s2}; do
    local pm; pm="$(postmaster_pid $n)" || continue
    [ -n "$pm" ] || continue
    echo "$pm"; pgrep -P "$pm" || true
  done
}
replica_sum() {  # a metric summed over the live replicas
  local t=0
  for r in $(live_replicas); do t=$(echo "$t + $(metric "$(port_of "$r" metrics_port)" "$1")" | bc); done
  echo "$t"
}
replica_pids() { for r in $(live_replicas); do cat "$DIR/replicas/$r/pid"; done; }
machine_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8}' /proc/stat; }
rate() { grep -o 'durable_per_s=[0-9]*' | cut -d= -f2; }

case "$CMD" in
ingest)
  ROUNDS="${1:-3}"; STREAMS="${2:-2}"; FRAMES="${3:-30000}"
  LOAD="--streams=$STREAMS --pumps_per_stream=10 --batch=100 --frames_per_stream=$FRAMES \
    --sample_interval_ms=10000 --max_unacked_frames=32 --duration_s=90 --register_pumps"
  run_single() {
    rm -rf "$WORK/data" "$WORK/ports"
    "$BIN/pumptwind" --data_dir="$WORK/data" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
      --http_listen=127.0.0.1:0 --port_file="$WORK/ports" 2>"$WORK/single.log" &
    local srv=$! gp c0 c1 m0 m1 out; gp=$(wait_port "$WORK/ports" grpc_port)
    c0=$(ticks $srv); m0=$(machine_ticks)
    out=$("$BIN/pumptwin_loadgen" --targets=127.0.0.1:$gp $LOAD --pump_prefix="single$1-" | tr '\n' ' ')
    c1=$(ticks $srv); m1=$(machine_ticks)
    echo "$out" | awk -v c=$((c1 - c0)) -v m=$((m1 - m0)) -v hz="$(getconf CLK_TCK)" \
      '{printf "%s cpu_s_pumptwind=%.1f cpu_s_other=%.1f\n", $0, c/hz, (m-c)/hz}'
    kill -TERM $srv; wait $srv || true
  }
  run_cluster() {
    local pg0 rp0 m0 x0 r0 w0 pg1 rp1 m1 x1 r1 w1 out
    local rows="SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0) FROM pg_stat_user_tables"
    x0=$(psql_at primary "SELECT xact_commit FROM pg_stat_database WHERE datname = 'pumptwin'")
    r0=$(psql_at primary "$rows"); w0=$(psql_at primary "SELECT pg_current_wal_lsn() - '0/0'")
    local c0 d0 c1 d1 pp0 pp1
    c0=$(replica_sum pumptwin_store_commits_total); d0=$(replica_sum pumptwin_store_commit_duration_seconds_sum)
    pg0=$(ticks $(pg_pids)); pp0=$(ticks $(pg_pids primary)); rp0=$(ticks $(replica_pids)); m0=$(machine_ticks)
    out=$("$BIN/pumptwin_loadgen" --targets="$(targets)" $LOAD --pump_prefix="c$1-$RANDOM-" | tr '\n' ' ')
    pg1=$(ticks $(pg_pids)); pp1=$(ticks $(pg_pids primary)); rp1=$(ticks $(replica_pids)); m1=$(machine_ticks)
    c1=$(replica_sum pumptwin_store_commits_total); d1=$(replica_sum pumptwin_store_commit_duration_seconds_sum)
    sleep 1  # pg_stat counters are flushed by each backend at most once a second
    x1=$(psql_at primary "SELECT xact_commit FROM pg_stat_database WHERE datname = 'pumptwin'")
    r1=$(psql_at primary "$rows"); w1=$(psql_at primary "SELECT pg_current_wal_lsn() - '0/0'")
    local secs; secs=$(echo "$out" | grep -o ' elapsed_s=[0-9.]*' | tail -1 | cut -d= -f2)
    local hz; hz=$(getconf CLK_TCK)
    echo "$out" | awk -v pg=$((pg1 - pg0)) -v rp=$((rp1 - rp0)) -v m=$((m1 - m0)) -v hz="$hz" \
      -v x=$((x1 - x0)) -v r=$((r1 - r0)) -v w="$(echo "$w1 - $w0" | bc)" -v s="$secs" \
      -v pp=$((pp1 - pp0)) -v c="$(echo "$c1 - $c0" | bc)" -v d="$(echo "$d1 - $d0" | bc)" '{
      printf "%s cpu_s_replicas=%.1f cpu_s_postgres=%.1f (primary %.1f) cpu_s_other=%.1f replica_commits=%d commit_ms_mean=%.2f pg_xacts=%d pg_rows=%d pg_wal_mb=%.0f pg_xacts_per_s=%.0f pg_rows_per_s=%.0f\n",
        $0, rp/hz, pg/hz, pp/hz, (m-rp-pg)/hz, c, (c > 0 ? d / c * 1e3 : 0), x, r, w/1e6, x/s, r/s }'
  }
  echo "== $ROUNDS rounds: (a) single pumptwind on RocksDB, (b) cluster $(targets) =="
  : > "$WORK/a"; : > "$WORK/b"; : > "$WORK/ratio"
  for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then A=$(run_single $r); B=$(run_cluster $r); else B=$(run_cluster $r); A=$(run_single $r); fi
    echo "round $r single:  $A"; echo "round $r cluster: $B"
    a=$(echo "$A" | rate); b=$(echo "$B" | rate)
    echo "$a" >> "$WORK/a"; echo "$b" >> "$WORK/b"
    echo "$b $a" | awk '{printf "%.3f\n", $1/$2}' | tee -a "$WORK/ratio" | sed "s/^/round $r ratio cluster\/single: /"
  done
  mm() { sort -n "$1" | awk '{v[NR]=$1} END {printf "min=%s median=%s max=%s", v[1], v[int((NR+1)/2)], v[NR]}'; }
  echo "single samples/s: $(mm "$WORK/a")"
  echo "cluster samples/s: $(mm "$WORK/b")"
  echo "ratio: $(mm "$WORK/ratio")"
  ;;
replica-failover)
  [ "$(shards_owned)" = $SHARDS ] || { echo "shards not all served: $(shards_owned)" >&2; exit 1; }
  T="$(targets)"; victim="$(live_replicas | tail -1)"
  ttl="$(grep -o 'cluster_lease_ttl=[^ ]*' "$DIR/replicas/$victim/command" | tail -1)"
  "$BIN/pumptwin_loadgen" --targets="$T" --register_pumps --pump_prefix="fo$RANDOM-" --streams=2 \
    --pumps_per_stream=30 --batch=100 --frames_per_stream=1500 --frame_interval_ms=20 \
    --sample_interval_ms=1000 --duration_s=90 > "$WORK/load.out" 2>&1 &
  load=$!
  sleep 5  # let the load reach every replica before the kill (a benchmark pause)
  t0=$(now); kill -9 "$(cat "$DIR/replicas/$victim/pid")"
  echo "killed $victim ($ttl) at $(date -u +%T.%N)"
  for _ in $(seq 1 1200); do
    [ "$(shards_owned)" = $SHARDS ] && break
    sleep 0.1
  done
  t1=$(now); echo "shards all served again after $(echo "$t1 - $t0" | bc) s ($(shards_owned)/$SHARDS)"
  wait $load || true; cat "$WORK/load.out"
  ;;
takeover)
  N="${1:-10000}"; [ $((N % 10)) -eq 0 ] || { echo "PUMPS: a multiple of 10" >&2; exit 2; }
  T="$(targets)"; victim="$(live_replicas | tail -1)"
  t0=$(now)
  "$BIN/pumptwin_loadgen" --targets="$T" --register_pumps --pump_prefix="tk$RANDOM-" --streams=10 \
    --pumps_per_stream=$((N / 10)) --batch=300 --frames_per_stream=0 --sample_interval_ms=1000 \
    --duration_s=300 --register_concurrency=64
  echo "loaded $N pumps x 300 samples in $(echo "$(now) - $t0" | bc) s"
  declare -A cnt0
  for r in $(live_replicas); do
    cnt0[$r]=$(metric "$(port_of "$r" metrics_port)" pumptwin_cluster_takeovers_total)
    wc -l < "$DIR/replicas/$r/log" > "$WORK/$r.lines"
  done
  t0=$(now); kill -9 "$(cat "$DIR/replicas/$victim/pid")"; echo "killed $victim"
  for _ in $(seq 1 1200); do [ "$(shards_owned)" = $SHARDS ] && break; sleep 0.1; done
  echo "shards all served again after $(echo "$(now) - $t0" | bc) s"
  for r in $(live_replicas); do
    mp=$(port_of "$r" metrics_port)
    echo "$r: takeovers +$(echo "$(metric "$mp" pumptwin_cluster_takeovers_total) - ${cnt0[$r]}" | bc)" \
      "(pumptwin_cluster_takeover_seconds by kind; times in the log lines)"
    tail -n +$(($(cat "$WORK/$r.lines") + 1)) "$DIR/replicas/$r/log" | grep -E 'cluster_takeover|cluster_loaded_gained|store_revived|recovered' || true
  done
  ;;
db-failover)
  old="$(postmaster_pid primary)"; s1="$(pg_port s1)"
  T="$(targets)"
  probe() {  # one pump per replica's shards, at least: register + one frame each, bounded
    timeout 20 "$BIN/pumptwin_loadgen" --targets="$T" --register_pumps --pump_prefix="dbp$1-" \
      --streams=1 --pumps_per_stream=12 --batch=1 --frames_per_stream=12 --duration_s=10 \
      --register_concurrency=12 >"$WORK/probe.out" 2>&1
  }
  probe 0 || { cat "$WORK/probe.out"; echo "probe fails before the failover" >&2; exit 1; }
  t0=$(now); kill -9 "$old"; echo "killed the primary (pid $old) at $(date -u +%T.%N)"
  psql_at s1 "SELECT pg_promote(true, 60)" >/dev/null
  t1=$(now); echo "s1 promoted after $(echo "$t1 - $t0" | bc) s"
  psql_at s2 "ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=$s1 user=postgres application_name=s2'" >/dev/null
  psql_at s2 "SELECT pg_reload_conf()" >/dev/null
  for _ in $(seq 1 600); do
    [ "$(psql_at s1 "SELECT count(*) FROM pg_stat_replication WHERE application_name = 's2' AND state = 'streaming'" 2>/dev/null)" = 1 ] && break
    sleep 0.1
  done
  t2=$(now); echo "s2 streaming from s1 after $(echo "$t2 - $t0" | bc) s"
  for i in $(seq 1 60); do
    probe "$i" && break
  done
  t3=$(now); echo "ingest acknowledged again (probe $i) after $(echo "$t3 - $t0" | bc) s"
  cat "$WORK/probe.out"
  ;;
*) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
