#!/usr/bin/env bash
# cluster_replicas_test.sh PUMPTWIND: tools/cluster.sh with three replicas of PUMPTWIND in
# cluster mode on loopback. After `up`: every replica is alive and SERVING (grpc.health.v1), the
# 256 virtual shards are all leased, each replica holds some and its pumptwin_shards_owned
# equals its leases. After SIGTERM to r3: r1 and r2 hold all 256 between them. `down` stops
# every replica and removes the state. The waits poll status, bounded (the replicas settle at
# their lease rounds, a third of the lease TTL apart). An EXIT trap runs `down` whatever fails.
# Exit 77 (skipped) when PUMPTWIND has no cluster mode (no --cluster_replica in its --help).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cluster="$root/tools/cluster.sh"
server="${1:?usage: $0 PUMPTWIND}"
# (the whole --help read first: `grep -q` quitting early would SIGPIPE the writer, and
# pipefail would read that as "no cluster mode")
if ! grep -q -- "--cluster_replica" <<<"$("$server" --help 2>&1)"; then
  echo "SKIP: $server has no cluster mode (--cluster_replica is not in its --help)"
  exit 77
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/pumptwin-cluster-test.XXXXXX")"
chmod 0755 "$work"  # PostgreSQL runs as `postgres` when this runs as root
dir="$work/cluster"
trap '"$cluster" down --dir "$dir" >/dev/null 2>&1; rm -rf "$work"' EXIT
export PUMPTWIND="$server"
fail=0
shards=256

ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

if ! "$cluster" up --no-build --replicas 3 --dir "$dir" >"$work/up.log" 2>&1; then
  bad "up with 3 replicas"; tail -n 30 "$work/up.log"; exit 1
fi
ok "up with 3 replicas"

# replica_rows: "NAME PID LEASES SHARDS GRPC_HEALTH" per replica line of status.
replica_rows() {
  "$cluster" status --dir "$dir" 2>/dev/null |
    awk '$1 ~ /^r[0-9]+$/ {print $1, $2, $6, $7, $9}'
}

# settled NAMES...: exactly these replicas are alive, healthy, hold all shards between them,
# each some, each gauge equal to its leases.
settled() {
  local rows want="$*" sum=0 name pid leases gauge health
  rows="$(replica_rows)"
  while read -r name pid leases gauge health; do
    [ -n "$name" ] || continue
    if [[ " $want " == *" $name "* ]]; then
      if [ "$pid" = down ] || [ "$health" != SERVING ] || [ "$leases" -le 0 ] || [ "$gauge" != "$leases" ]; then
        return 1
      fi
      sum=$((sum + leases))
    else
      [ "$leases" = 0 ] || return 1
    fi
  done <<<"$rows"
  [ "$sum" -eq "$shards" ]
}

wait_settled() {  # wait_settled SECONDS NAMES...
  local limit="$1" deadline=$((SECONDS + $1))
  shift
  while ! settled "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "status after $limit s:"; "$cluster" status --dir "$dir"
      return 1
    fi
    sleep 0.5
  done
}

if wait_settled 120 r1 r2 r3; then
  ok "r1, r2, r3 SERVING, the $shards shards leased among them, each gauge == its leases"
else
  bad "the three replicas did not settle within 120 s"
fi
replica_rows | sed 's/^/  /'

pid3="$(cat "$dir/replicas/r3/pid")"
kill -TERM "$pid3"
deadline=$((SECONDS + 60))
while kill -0 "$pid3" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$pid3/stat" 2>/dev/null)" != Z ]; do
  [ "$SECONDS" -lt "$deadline" ] || break
  sleep 0.2
done
if kill -0 "$pid3" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$pid3/stat" 2>/dev/null)" != Z ]; then
  bad "r3 did not exit within 60 s of SIGTERM"
else
  ok "r3 exited on SIGTERM"
fi
if wait_settled 120 r1 r2; then
  ok "r1 and r2 hold all $shards shards after r3 stopped"
else
  bad "r3's shards did not move to r1 and r2 within 120 s"
fi

pids="$(cat "$dir"/replicas/r*/pid)"
if "$cluster" down --dir "$dir" >"$work/down.log" 2>&1 && [ ! -e "$dir" ]; then
  ok "down removed the state directory"
else
  bad "down"; tail -n 20 "$work/down.log"
fi
for pid in $pids; do
  if [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] &&
     tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--port_file=$dir/"; then
    bad "replica pid $pid still runs after down"
  fi
done

[ "$fail" -eq 0 ] && echo "OK: tools/cluster.sh with 3 replicas"
exit "$fail"
