#!/usr/bin/env bash
# cluster_script_test.sh: tools/cluster.sh on loopback, database only (--replicas 0):
# its argument errors; `up` starts a primary and two standbys that stream in sync state
# 'quorum' under synchronous_standby_names 'ANY 1 (s1,s2)'; a second `up` is refused; the
# DSN it prints (every node, target_session_attrs=read-write) reaches the primary even with
# a standby listed first; `down` stops every PostgreSQL process it started and removes the
# state directory, and refuses a directory that is not one. Whatever happens, the EXIT trap
# runs `down`.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cluster="$root/tools/cluster.sh"
work="$(mktemp -d "${TMPDIR:-/tmp}/pumptwin-cluster-test.XXXXXX")"
chmod 0755 "$work"  # PostgreSQL runs as `postgres` when this runs as root
dir="$work/cluster"
trap '"$cluster" down --dir "$dir" >/dev/null 2>&1; rm -rf "$work"' EXIT
fail=0
out="$work/out"

check() {  # check EXPECTED_CODE DESCRIPTION COMMAND...
  local want="$1" what="$2"
  shift 2
  "$@" >"$out" 2>&1 </dev/null
  local code=$?
  if [ "$code" -ne "$want" ]; then
    echo "FAIL: $what: exit $code, want $want"; tail -n 15 "$out"; fail=1
  else
    echo "ok: $what"
  fi
}
expect() {  # expect DESCRIPTION CONDITION...
  local what="$1"
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fail=1; fi
}

# Arguments.
check 0 "--help" "$cluster" --help
expect "--help names up, down, status and --replicas" \
  grep -q -- "--replicas N" "$out"
check 2 "unknown command" "$cluster" start
check 2 "--replicas abc" "$cluster" up --replicas abc --dir "$dir"
check 2 "unknown option" "$cluster" status --bogus
check 3 "status without a cluster" "$cluster" status --dir "$dir"
expect "nothing created by the refused calls" test ! -e "$dir"

# up, database only.
check 0 "up --replicas 0" "$cluster" up --replicas 0 --dir "$dir"
if [ "$fail" -ne 0 ]; then echo "FAIL: up did not succeed; stopping here"; exit 1; fi
check 1 "a second up is refused" "$cluster" up --replicas 0 --dir "$dir"
expect "the refusal says the cluster is up" grep -q "already up" "$out"

check 0 "status" "$cluster" status --dir "$dir"
cp "$out" "$work/status"
cat "$work/status"
row() { awk -v n="$1" '$1 == n {print $2, $5, $6}' "$work/status"; }
expect "status: primary is primary and running" test "$(row primary)" = "primary running -"
expect "status: s1 is a standby streaming in sync state quorum" test "$(row s1)" = "standby streaming quorum"
expect "status: s2 is a standby streaming in sync state quorum" test "$(row s2)" = "standby streaming quorum"
expect "status: no replicas" grep -q "replicas: none" "$work/status"
pids="$(awk '$1 ~ /^(primary|s1|s2)$/ {print $3}' "$work/status")"
expect "status: three postmaster pids" test "$(echo "$pids" | grep -c -E '^[0-9]+$')" = 3

port() { cat "$dir/pg/$1/port"; }
q() {  # q DSN SQL
  PGCONNECT_TIMEOUT=5 psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$1" -c "$2" 2>&1
}
primary_dsn="host=127.0.0.1 port=$(port primary) user=postgres dbname=pumptwin"
expect "primary: synchronous_standby_names is ANY 1 (s1,s2)" \
  test "$(q "$primary_dsn" "SHOW synchronous_standby_names")" = "ANY 1 (s1,s2)"
expect "primary: synchronous_commit on, fsync on" \
  test "$(q "$primary_dsn" "SELECT current_setting('synchronous_commit') || current_setting('fsync')")" = "onon"
expect "a commit on the primary is acknowledged (a standby confirmed it)" \
  test "$(q "$primary_dsn" "CREATE TABLE t(x int); INSERT INTO t VALUES (1); SELECT count(*) FROM t")" = 1
dsn="$("$cluster" dsn --dir "$dir")"
expect "dsn: every node, target_session_attrs=read-write" \
  grep -q "port=$(port primary),$(port s1),$(port s2) .*target_session_attrs=read-write" <<<"$dsn"
expect "the DSN reaches the writable primary" \
  test "$(q "$dsn" "SELECT pg_is_in_recovery()::text || ' ' || current_setting('port')")" = "false $(port primary)"
standby_first="host=127.0.0.1,127.0.0.1 port=$(port s2),$(port primary) user=postgres dbname=pumptwin target_session_attrs=read-write"
expect "a standby listed first is skipped (libpq multi-host, read-write)" \
  test "$(q "$standby_first" "SELECT pg_is_in_recovery()")" = "f"

# down: refuses a foreign directory, then stops everything and removes the state.
mkdir -p "$work/foreign"
echo keep >"$work/foreign/file"
check 1 "down refuses a directory without the cluster marker" "$cluster" down --dir "$work/foreign"
expect "the foreign directory is untouched" test -f "$work/foreign/file"
check 0 "down" "$cluster" down --dir "$dir"
expect "down removed the state directory" test ! -e "$dir"
# pg_ctl stop returns once the postmaster removed its pid file, just before it exits: wait
# (bounded) for the exit; a zombie not yet reaped by its parent counts as exited.
exited() {
  local deadline=$((SECONDS + 20))
  while [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
for pid in $pids; do
  expect "postmaster $pid has exited" exited "$pid"
done
check 0 "down again (nothing to do)" "$cluster" down --dir "$dir"

[ "$fail" -eq 0 ] && echo "OK: tools/cluster.sh"
exit "$fail"
