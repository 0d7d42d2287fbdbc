#!/usr/bin/env bash
# A local pumptwin cluster on 127.0.0.1 for trying cluster mode and for tests: a PostgreSQL
# primary with two streaming standbys (synchronous quorum, ANY 1 (s1,s2)) and N pumptwind
# replicas on it. Everything lives in one state directory; nothing listens off loopback.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: tools/cluster.sh up|down|status|dsn [options] [-- extra pumptwind flags]

  up       install missing Debian packages, build when needed, then start PostgreSQL (primary
           + standbys s1, s2 with synchronous_standby_names='ANY 1 (s1,s2)', database
           "pumptwin") and the pumptwind replicas r1..rN on free loopback ports. Refuses when
           the cluster is already up; starts a stopped one (down --keep) again.
  status   per PostgreSQL node: role, pid, port, replication state and sync state; per
           replica: pid, ports, shards owned (lease table and pumptwin_shards_owned), health.
           Exit 0 when everything started is up and healthy, 1 otherwise, 3 when no cluster.
  down     SIGTERM to the replicas, fast shutdown of PostgreSQL, then remove the state
           directory (unless --keep).
  dsn      print the libpq DSN the replicas use (every node; libpq picks the writable one).

Options:
  --dir DIR       state directory (default $PUMPTWIN_CLUSTER_DIR or /tmp/pumptwin-cluster)
  --replicas N    pumptwind replicas for up (default 3; 0 = the database only)
  --no-build      up: use the existing build/bin/pumptwind (or $PUMPTWIND), do not build
  --keep          down: keep the state directory (data and logs); `up` starts it again
  -h, --help      this help

Flags after `--` go to every pumptwind replica. Files in the state directory:
  pg/{primary,s1,s2}/   data directory, postgres.log, Unix socket (owned by `postgres` as root)
  replicas/rN/          pid, log, ports (--port_file) of replica rN
  cluster.env           ports, DSN, schema (read by status and down)
Connect with: psql "$(tools/cluster.sh dsn)"
As root, PostgreSQL runs as the `postgres` system user (Debian's package creates it).
Authentication is `trust` on 127.0.0.1: for a development machine only.
EOF
}

# ------------------------------------------------------------------------------ arguments
cmd="${1:-}"
case "$cmd" in
  up|down|status|dsn) shift ;;
  -h|--help|help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
  *) echo "cluster.sh: unknown command '$cmd' (up, down, status; --help)" >&2; exit 2 ;;
esac
DIR="${PUMPTWIN_CLUSTER_DIR:-/tmp/pumptwin-cluster}"
REPLICAS=3
BUILD=1
KEEP=0
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || { echo "cluster.sh: --dir needs a directory" >&2; exit 2; }
           DIR="$2"; shift 2 ;;
    --dir=*) DIR="${1#--dir=}"; shift ;;
    --replicas) [ $# -ge 2 ] || { echo "cluster.sh: --replicas needs a number" >&2; exit 2; }
                REPLICAS="$2"; shift 2 ;;
    --replicas=*) REPLICAS="${1#--replicas=}"; shift ;;
    --no-build) BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "cluster.sh: unknown option '$1' (--help)" >&2; exit 2 ;;
  esac
done
if ! [[ "$REPLICAS" =~ ^[0-9]+$ ]] || [ "$REPLICAS" -gt 9 ]; then
  echo "cluster.sh: --replicas must be 0..9, got '$REPLICAS'" >&2; exit 2
fi
[ -n "$DIR" ] || { echo "cluster.sh: the state directory is empty" >&2; exit 2; }
DIR="$(realpath -m -- "$DIR")"
case "$DIR" in
  /|/tmp|/root|/home|/var|/usr|/etc) echo "cluster.sh: refusing state directory $DIR" >&2; exit 2 ;;
esac

source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"
MARKER="$DIR/.pumptwin-cluster"
NODES=(primary s1 s2)
DB=pumptwin
SCHEMA=pumptwin
SHARDS=256
LEASE_TTL=15s

die() { log "error: $*"; exit 1; }

# ------------------------------------------------------------------------------ PostgreSQL
# The newest /usr/lib/postgresql/<major>/bin with initdb (or $PUMPTWIN_POSTGRES_BIN_DIR), as
# the tests find it.
find_pg_bin() {
  if [ -n "${PUMPTWIN_POSTGRES_BIN_DIR:-}" ]; then
    [ -x "$PUMPTWIN_POSTGRES_BIN_DIR/initdb" ] && echo "$PUMPTWIN_POSTGRES_BIN_DIR"
    return 0
  fi
  local d best="" best_major=-1 major
  for d in /usr/lib/postgresql/*/bin; do
    if [ ! -x "$d/initdb" ] || [ ! -x "$d/pg_basebackup" ]; then continue; fi
    major="$(basename "$(dirname "$d")")"
    [[ "$major" =~ ^[0-9]+$ ]] || continue
    if [ "$major" -gt "$best_major" ]; then best="$d"; best_major="$major"; fi
  done
  echo "$best"
}

# PostgreSQL refuses to run as root: then its programs run as `postgres`.
PG_SWITCH=0
if [ "$(id -u)" -eq 0 ]; then PG_SWITCH=1; fi
as_pg() {
  if [ "$PG_SWITCH" = 1 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

psql_at() {  # psql_at PORT DB SQL: unaligned, tuples only
  PGCONNECT_TIMEOUT=5 "$PGBIN/psql" -X -A -t -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" \
    -U postgres -d "$2" -c "$3"
}

# N free TCP ports on 127.0.0.1 (bound together, then released: a later bind can still lose a
# race, which the starts below detect and retry).
free_ports() {
  local py=/usr/bin/python3
  [ -x "$py" ] || py=python3
  "$py" - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

node_dir() { echo "$DIR/pg/$1"; }
node_pid() {  # the postmaster's pid when running, else empty
  local f
  f="$(node_dir "$1")/data/postmaster.pid"
  [ -r "$f" ] || return 0
  local pid
  pid="$(head -n1 "$f" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

pg_start_node() {  # pg_start_node NODE: pg_ctl start, waits until it accepts connections
  local d
  d="$(node_dir "$1")"
  as_pg "$PGBIN/pg_ctl" start -D "$d/data" -l "$d/postgres.log" -w -t 90 -s >/dev/null 2>&1
}

port_taken_in_log() { tail -n 20 "$(node_dir "$1")/postgres.log" 2>/dev/null | grep -q "could not bind"; }

# Settings of every node (postgresql.auto.conf: read last, copied by pg_basebackup, and the
# later line wins, so a standby appends its own port and socket after the primary's).
node_settings() {  # node_settings NODE PORT
  local d
  d="$(node_dir "$1")"
  cat <<EOF
# tools/cluster.sh: $1
listen_addresses = '127.0.0.1'
port = $2
unix_socket_directories = '$d'
EOF
}

pg_init_primary() {
  local d port
  d="$(node_dir primary)"
  log "initdb: primary in $d/data"
  as_pg "$PGBIN/initdb" -D "$d/data" -U postgres -A trust -E UTF8 --no-locale --no-sync \
    --no-instructions >"$d/initdb.log" 2>&1 || { tail -n 20 "$d/initdb.log" >&2; die "initdb failed"; }
  # Durability as pumptwind requires it (fsync, synchronous_commit on) and the cluster's
  # quorum: a commit is acknowledged once one of s1, s2 has flushed it. A promoted standby
  # keeps the setting (it is copied to the standbys).
  as_pg tee -a "$d/data/postgresql.auto.conf" >/dev/null <<'EOF'
fsync = on
synchronous_commit = on
synchronous_standby_names = 'ANY 1 (s1,s2)'
wal_level = replica
max_wal_senders = 10
hot_standby = on
shared_buffers = 32MB
max_connections = 100
logging_collector = off
EOF
}

pg_write_node_settings() {  # NODE PORT [primary_port]
  local d
  d="$(node_dir "$1")"
  node_settings "$1" "$2" | as_pg tee -a "$d/data/postgresql.auto.conf" >/dev/null
  if [ $# -ge 3 ]; then
    echo "primary_conninfo = 'host=127.0.0.1 port=$3 user=postgres application_name=$1'" |
      as_pg tee -a "$d/data/postgresql.auto.conf" >/dev/null
  fi
}

pg_start_on_free_port() {  # NODE [primary_port]: picks a port, retried when taken
  local node="$1" port _
  for _ in 1 2 3 4 5; do
    port="$(free_ports 1)"
    pg_write_node_settings "$node" "$port" "${@:2}"
    if pg_start_node "$node"; then
      echo "$port" >"$(node_dir "$node")/port"
      return 0
    fi
    port_taken_in_log "$node" || break
    log "port $port was taken meanwhile; retrying"
  done
  tail -n 20 "$(node_dir "$node")/postgres.log" >&2 || true
  die "PostgreSQL node $node did not start (log: $(node_dir "$node")/postgres.log)"
}

pg_make_dir() {
  local d
  d="$(node_dir "$1")"
  mkdir -p "$d"
  chmod 0700 "$d"
  if [ "$PG_SWITCH" = 1 ]; then chown postgres:postgres "$d"; fi
}

node_port() { cat "$(node_dir "$1")/port" 2>/dev/null || true; }

# Waits (bounded) until both standbys stream from the primary as quorum members.
wait_standbys_in_quorum() {
  local port deadline rows
  port="$(node_port primary)"
  deadline=$((SECONDS + 60))
  while :; do
    rows="$(psql_at "$port" postgres "SELECT count(*) FROM pg_stat_replication WHERE
             application_name IN ('s1','s2') AND state = 'streaming' AND sync_state = 'quorum'" \
             2>/dev/null || true)"
    [ "$rows" = 2 ] && return 0
    [ $SECONDS -lt $deadline ] || die "the standbys did not reach sync state 'quorum' in 60 s \
(pg_stat_replication: $(psql_at "$port" postgres "SELECT string_agg(application_name || ' ' || state || ' ' || sync_state, ', ') FROM pg_stat_replication" 2>/dev/null || echo unreadable))"
    sleep 0.2
  done
}

dsn() {  # the libpq DSN of the replicas: every node, the writable one chosen by libpq
  local hosts="" ports="" n
  for n in "${NODES[@]}"; do
    hosts="${hosts:+$hosts,}127.0.0.1"
    ports="${ports:+$ports,}$(node_port "$n")"
  done
  echo "host=$hosts port=$ports user=postgres dbname=$DB target_session_attrs=read-write connect_timeout=5"
}

# ------------------------------------------------------------------------------ replicas
PUMPTWIND="${PUMPTWIND:-$PUMPTWIN_BUILD/bin/pumptwind}"
PUMPTWINCTL="${PUMPTWINCTL:-$(dirname "$PUMPTWIND")/pumptwinctl}"

replica_dir() { echo "$DIR/replicas/$1"; }
replica_pid() {  # the pid when that process is alive and is this replica, else empty
  local f pid
  f="$(replica_dir "$1")/pid"
  [ -r "$f" ] || return 0
  pid="$(cat "$f")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -x -F -- "--port_file=$(replica_dir "$1")/ports" &&
    echo "$pid"
  return 0
}
replica_port() {  # replica_port NAME grpc|http|metrics
  sed -n "s/^$2=//p" "$(replica_dir "$1")/listen" 2>/dev/null || true
}

start_replica() {  # start_replica NAME: on the ports of its `listen` file
  local name="$1" rd grpc http metrics
  rd="$(replica_dir "$name")"
  grpc="$(replica_port "$name" grpc)"
  http="$(replica_port "$name" http)"
  metrics="$(replica_port "$name" metrics)"
  rm -f "$rd/ports"
  local args=(
    --store=postgres --postgres_dsn="$(dsn)" --postgres_schema="$SCHEMA"
    --listen="127.0.0.1:$grpc" --http_listen="127.0.0.1:$http" --metrics_listen="127.0.0.1:$metrics"
    --port_file="$rd/ports"
    --cluster_replica="$name" --cluster_advertise="127.0.0.1:$grpc"
    --cluster_shards="$SHARDS" --cluster_lease_ttl="$LEASE_TTL"
    ${EXTRA[@]+"${EXTRA[@]}"}
  )
  printf '%q ' "$PUMPTWIND" "${args[@]}" >"$rd/command"
  echo >>"$rd/command"
  setsid "$PUMPTWIND" "${args[@]}" </dev/null >>"$rd/log" 2>&1 &
  echo $! >"$rd/pid"
}

# Waits (bounded) until the replica wrote its port file (all listeners bound); fails early
# when it exits.
wait_replica_bound() {
  local name="$1" rd pid deadline
  rd="$(replica_dir "$name")"
  pid="$(cat "$rd/pid")"
  deadline=$((SECONDS + 120))
  while [ ! -s "$rd/ports" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null && code=0 || code=$?
      if tail -n 20 "$rd/log" | grep -q -i -E "event=startup_failed .*(address (already )?in use|binding to port)"; then
        return 10
      fi
      tail -n 20 "$rd/log" >&2
      die "replica $name exited (status $code) while starting; log: $rd/log"
    fi
    [ $SECONDS -lt $deadline ] || die "replica $name did not bind its ports in 120 s; log: $rd/log"
    sleep 0.2
  done
}

launch_replica() {  # launch_replica NAME: fresh ports (retried when taken) unless it has some
  local name="$1" rd ports _
  rd="$(replica_dir "$name")"
  mkdir -p "$rd"
  for _ in 1 2 3 4 5; do
    if [ ! -s "$rd/listen" ]; then
      read -r -a ports <<<"$(free_ports 3)"
      printf 'grpc=%s\nhttp=%s\nmetrics=%s\n' "${ports[@]}" >"$rd/listen"
    fi
    start_replica "$name"
    if wait_replica_bound "$name"; then
      log "replica $name: pid $(cat "$rd/pid"), grpc 127.0.0.1:$(replica_port "$name" grpc)," \
          "http $(replica_port "$name" http), metrics $(replica_port "$name" metrics)"
      return 0
    fi
    log "replica $name: a port was taken meanwhile; retrying on other ports"
    rm -f "$rd/listen"
  done
  die "replica $name could not bind free ports; log: $rd/log"
}

# The whole --help is read first (grep -q quitting early would SIGPIPE the writer under pipefail).
has_cluster_mode() { grep -q -- "--cluster_replica" <<<"$("$PUMPTWIND" --help 2>&1)"; }

# ------------------------------------------------------------------------------ state
write_env() {
  {
    printf 'PGBIN=%q\n' "$PGBIN"
    printf 'STARTED_REPLICAS=%q\n' "$REPLICAS"
    printf 'STARTED_PUMPTWIND=%q\n' "$PUMPTWIND"
    printf 'DSN=%q\n' "$(dsn)"
    printf 'SCHEMA=%q\n' "$SCHEMA"
  } >"$DIR/cluster.env"
}
read_env() {  # sets PGBIN, DSN, SCHEMA (and STARTED_REPLICAS, STARTED_PUMPTWIND) of the cluster
  [ -f "$MARKER" ] && [ -f "$DIR/cluster.env" ] || return 1
  # shellcheck disable=SC1091
  source "$DIR/cluster.env"
}

anything_running() {
  local n r
  for n in "${NODES[@]}"; do [ -z "$(node_pid "$n")" ] || return 0; done
  for r in "$DIR"/replicas/*/; do
    [ -d "$r" ] || continue
    [ -z "$(replica_pid "$(basename "$r")")" ] || return 0
  done
  return 1
}

# ------------------------------------------------------------------------------ commands
stop_all() {  # replicas (SIGTERM, bounded wait, then SIGKILL), then PostgreSQL (fast)
  local r name pid deadline n
  for r in "$DIR"/replicas/*/; do
    [ -d "$r" ] || continue
    name="$(basename "$r")"
    pid="$(replica_pid "$name")"
    [ -n "$pid" ] || continue
    log "stopping replica $name (pid $pid, SIGTERM)"
    kill -TERM "$pid" 2>/dev/null || true
  done
  for r in "$DIR"/replicas/*/; do
    [ -d "$r" ] || continue
    name="$(basename "$r")"
    pid="$(cat "$r/pid" 2>/dev/null || true)"
    [ -n "$pid" ] || continue
    deadline=$((SECONDS + 60))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null && [ -n "$(replica_pid "$name")" ]; then
      log "replica $name did not stop in 60 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  # The primary first: its shutdown checkpoint reaches the standbys before they stop.
  for n in "${NODES[@]}"; do
    [ -n "$(node_pid "$n")" ] || continue
    log "stopping PostgreSQL $n (fast shutdown)"
    as_pg "$PGBIN/pg_ctl" stop -D "$(node_dir "$n")/data" -m fast -w -t 60 -s >/dev/null 2>&1 ||
      as_pg "$PGBIN/pg_ctl" stop -D "$(node_dir "$n")/data" -m immediate -w -t 30 -s >/dev/null 2>&1 ||
      log "warning: PostgreSQL $n did not stop"
  done
}

cmd_down() {
  if [ ! -e "$DIR" ]; then log "no cluster in $DIR"; return 0; fi
  [ -f "$MARKER" ] || die "$DIR is not a tools/cluster.sh state directory (no .pumptwin-cluster): not touching it"
  read_env || true
  PGBIN="${PGBIN:-$(find_pg_bin)}"
  stop_all
  if [ "$KEEP" = 1 ]; then
    log "stopped; state kept in $DIR (tools/cluster.sh up --dir $DIR starts it again)"
  else
    rm -rf -- "$DIR"
    log "stopped; removed $DIR"
  fi
}

on_up_failure() {
  local code=$?
  trap - ERR EXIT
  if [ "$code" -ne 0 ]; then
    log "up failed: stopping what was started; logs kept in $DIR (tools/cluster.sh down --dir $DIR removes it)"
    stop_all || true
  fi
  exit "$code"
}

cmd_up() {
  if [ -e "$DIR" ] && [ ! -f "$MARKER" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
    die "$DIR exists and is not a cluster state directory: choose another --dir"
  fi
  local restart=0
  if [ -f "$MARKER" ]; then
    read_env || die "$DIR is incomplete (no cluster.env): tools/cluster.sh down --dir $DIR, then up"
    if anything_running; then
      die "a cluster is already up in $DIR (tools/cluster.sh status --dir $DIR; down to stop it)"
    fi
    restart=1
  fi

  # Packages and build, as tools/run.sh does (the database alone needs no build).
  if [ "$REPLICAS" -gt 0 ]; then
    ensure_packages
    if [ "$BUILD" = 1 ]; then build; fi
    [ -x "$PUMPTWIND" ] || die "no pumptwind at $PUMPTWIND (build it, or drop --no-build)"
    has_cluster_mode || die "this pumptwind ($PUMPTWIND) has no cluster mode (--cluster_replica \
is not in its --help): build a version with it, or use --replicas 0 for the database only"
  else
    ensure_packages postgresql libpq-dev
  fi
  PGBIN="$(find_pg_bin)"
  [ -n "$PGBIN" ] || die "no PostgreSQL server binaries (initdb, pg_basebackup) in /usr/lib/postgresql/*/bin: install the Debian package postgresql"
  if [ "$PG_SWITCH" = 1 ]; then
    id postgres >/dev/null 2>&1 || die "running as root, and PostgreSQL refuses root: there is no \`postgres\` user to run it as (install the Debian package postgresql)"
  fi

  trap on_up_failure EXIT
  mkdir -p "$DIR"
  chmod 0755 "$DIR"
  touch "$MARKER"
  if [ "$PG_SWITCH" = 1 ] && ! runuser -u postgres -- test -x "$DIR"; then
    die "$DIR is not reachable by the postgres user (a parent directory lacks o+x): choose another --dir"
  fi

  if [ "$restart" = 1 ]; then
    log "starting the stopped cluster in $DIR"
    local n
    for n in "${NODES[@]}"; do
      log "PostgreSQL $n on 127.0.0.1:$(node_port "$n")"
      pg_start_node "$n" || { tail -n 20 "$(node_dir "$n")/postgres.log" >&2; die "PostgreSQL $n did not start"; }
    done
  else
    log "state directory $DIR (PostgreSQL $(basename "$(dirname "$PGBIN")") from $PGBIN)"
    pg_make_dir primary
    pg_init_primary
    pg_start_on_free_port primary
    log "primary on 127.0.0.1:$(node_port primary)"
    local s
    for s in s1 s2; do
      pg_make_dir "$s"
      log "pg_basebackup -R: standby $s"
      as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$(node_port primary)" -U postgres \
        -D "$(node_dir "$s")/data" -X stream -R --no-sync --checkpoint=fast \
        >"$(node_dir "$s")/basebackup.log" 2>&1 ||
        { tail -n 20 "$(node_dir "$s")/basebackup.log" >&2; die "pg_basebackup of $s failed"; }
      pg_start_on_free_port "$s" "$(node_port primary)"
      log "standby $s on 127.0.0.1:$(node_port "$s")"
    done
  fi
  wait_standbys_in_quorum
  log "s1 and s2 stream from the primary, sync state quorum"
  if [ "$(psql_at "$(node_port primary)" postgres "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
    psql_at "$(node_port primary)" postgres "CREATE DATABASE $DB" >/dev/null
    log "created database $DB"
  fi
  write_env

  local i
  for ((i = 1; i <= REPLICAS; i++)); do
    launch_replica "r$i"
  done
  # A restart after `down --keep` with fewer replicas than before: the others stay stopped
  # (and status no longer lists them).
  trap - EXIT
  log "cluster up: $REPLICAS replica(s); tools/cluster.sh status --dir $DIR"
  log "DSN: $(dsn)"
}

cmd_status() {
  if ! read_env; then
    echo "no cluster in $DIR"
    return 3
  fi
  local ok=0 n pid port role state sync primary_port=""
  declare -A pids roles
  for n in "${NODES[@]}"; do
    pids[$n]="$(node_pid "$n")"
    roles[$n]=down
    [ -n "${pids[$n]}" ] || continue
    case "$(psql_at "$(node_port "$n")" postgres "SELECT pg_is_in_recovery()" 2>/dev/null || true)" in
      t) roles[$n]=standby ;;
      f) roles[$n]=primary; primary_port="${primary_port:-$(node_port "$n")}" ;;
      *) roles[$n]=unreachable ;;
    esac
  done
  echo "state directory: $DIR"
  echo "DSN: $DSN"
  echo
  printf '%-8s %-11s %-8s %-8s %-13s %-10s\n' NODE ROLE PID PORT STATE SYNC_STATE
  for n in "${NODES[@]}"; do
    pid="${pids[$n]}" role="${roles[$n]}" port="$(node_port "$n")" state=- sync=-
    case "$role" in
      standby)
        # As the current primary sees it: the walsender of this standby's application_name.
        if [ -n "$primary_port" ]; then
          read -r state sync <<<"$(psql_at "$primary_port" postgres "SELECT state, sync_state FROM
            pg_stat_replication WHERE application_name = '$n'" 2>/dev/null | tr '|' ' ' || true)"
        fi
        state="${state:-not-streaming}" sync="${sync:--}"
        [ "$state" = streaming ] || ok=1 ;;
      primary)
        state=running
        [ "$n" = primary ] || state=promoted ;;
      *) ok=1 ;;
    esac
    printf '%-8s %-11s %-8s %-8s %-13s %-10s\n' "$n" "$role" "${pid:--}" "${port:--}" "$state" "$sync"
  done

  local replicas=() i
  for ((i = 1; i <= ${STARTED_REPLICAS:-0}; i++)); do replicas+=("r$i"); done
  [ ${#replicas[@]} -gt 0 ] || { echo; echo "replicas: none (database only)"; return "$ok"; }

  # Shards per owner from the lease table (unexpired leases only); empty before the first
  # replica created it.
  local leases=""
  leases="$(psql_at "$primary_port" "$DB" "SELECT owner || ' ' || count(*) FROM \"$SCHEMA\".shard_leases
    WHERE owner <> '' AND expires_at > clock_timestamp() GROUP BY owner ORDER BY owner" 2>/dev/null || true)"
  echo
  printf '%-8s %-8s %-7s %-7s %-7s %-8s %-8s %-8s %-8s\n' REPLICA PID GRPC HTTP METRICS LEASES \
    SHARDS HEALTHZ GRPC_HEALTH
  local name grpc http metrics held gauge healthz grpc_health
  for name in "${replicas[@]}"; do
    pid="$(replica_pid "$name")"
    grpc="$(replica_port "$name" grpc)"
    http="$(replica_port "$name" http)"
    metrics="$(replica_port "$name" metrics)"
    held="$(awk -v o="$name" '$1 == o {print $2}' <<<"$leases")"
    gauge=- healthz=- grpc_health=-
    if [ -n "$pid" ]; then
      # The whole page is read first: awk exiting early would make curl fail (23) under pipefail.
      gauge="$(awk '/^pumptwin_shards_owned[ {]/ {printf "%d", $NF; exit}' \
        <<<"$(curl -s -m 3 "http://127.0.0.1:$metrics/metrics" 2>/dev/null || true)")"
      healthz="$(curl -s -m 3 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http/healthz" 2>/dev/null || true)"
      [ "$healthz" != 000 ] || healthz=-
      if [ -x "$PUMPTWINCTL" ]; then
        grpc_health="$("$PUMPTWINCTL" --server="127.0.0.1:$grpc" --timeout=3s health 2>/dev/null | head -n1 || true)"
      fi
      [ "$healthz" = 200 ] || [ "$grpc_health" = SERVING ] || ok=1
    else
      pid=down
      ok=1
    fi
    printf '%-8s %-8s %-7s %-7s %-7s %-8s %-8s %-8s %-8s\n' "$name" "$pid" "${grpc:--}" "${http:--}" \
      "${metrics:--}" "${held:-0}" "${gauge:--}" "${healthz:--}" "${grpc_health:--}"
  done
  echo "(LEASES: unexpired rows of $SCHEMA.shard_leases; SHARDS: the replica's pumptwin_shards_owned)"
  return "$ok"
}

case "$cmd" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  dsn) read_env || die "no cluster in $DIR"; echo "$DSN" ;;
esac
