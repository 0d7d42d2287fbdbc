#!/usr/bin/env bash
# Driver of the python_client_e2e ctest: starts pumptwind on 127.0.0.1:0 with a token
# file (admin + viewer tokens from pumptwin-token), runs the Python example client and
# checks its output, then stops the server with SIGTERM.
# Usage: run_client_test.sh PUMPTWIND PUMPTWIN_TOKEN CLIENT_PY STUBS_DIR
set -euo pipefail
pumptwind=$1 token_tool=$2 client=$3 stubs=$4
py=/usr/bin/python3   # Debian's python3-grpcio; a pyenv python3 cannot see it

if ! "$py" -c 'import grpc, google.protobuf' 2>/dev/null; then
  echo "SKIP: $py has no grpc/protobuf (apt install python3-grpcio python3-protobuf)"
  exit 77
fi
[[ -f $stubs/pumptwin/v1/twin_service_pb2_grpc.py ]] || {
  echo "FAIL: no stubs in $stubs (build target pumptwin_proto_python)"; exit 1; }

work=$(mktemp -d /tmp/pumptwin_pyclient.XXXXXX)
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- server log"; cat "$work/server.log" || true; exit 1; }

mapfile -t admin < <("$token_tool" new --quiet --name py.admin --role admin)
mapfile -t viewer < <("$token_tool" new --quiet --name py.viewer --role viewer)
printf '%s\n%s\n' "${admin[1]}" "${viewer[1]}" > "$work/tokens"

"$pumptwind" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --http_listen=127.0.0.1:0 --data_dir="$work/data" \
  --port_file="$work/ports" --auth_tokens_file="$work/tokens" --shutdown_grace=1s \
  >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
  [[ -f $work/ports ]] && break
  kill -0 "$server_pid" 2>/dev/null || fail "pumptwind exited during start-up"
  sleep 0.1
done
[[ -f $work/ports ]] || fail "pumptwind did not write its port file"
port=$(sed -n 's/^grpc_port=//p' "$work/ports")
target=127.0.0.1:$port

grep -q -- '--max-events' <<<"$("$py" "$client" --help)" || fail "--help does not document --max-events"

# 1. The full flow as admin.
set +e
"$py" "$client" --target="$target" --stubs="$stubs" --token="${admin[0]}" \
  --pump-id=py-e2e-1 --max-events=5 --timeout=3 >"$work/out" 2>&1
rc=$?
set -e
echo "--- client output (exit $rc)"; cat "$work/out"
[[ $rc == 0 || $rc == 3 ]] || fail "client exit code $rc (want 0, or 3 for UNIMPLEMENTED steps)"
grep -q '^register_pump: ok pumps/py-e2e-1' "$work/out" || fail "RegisterPump did not succeed"
grep -q '^get_pump: ok pumps/py-e2e-1 clinic=demo-clinic profile=PUMP_PROFILE_PROGRAMMABLE_PERISTALTIC' \
  "$work/out" || fail "GetPump did not return the registered pump"
grep -q '^get_twin: ok pump_id=py-e2e-1 .*prescription_version=1 drug=morphine' "$work/out" \
  || fail "GetTwin did not return the twin with the initial prescription"
# TODO(tighten): SetPrescription and WatchAlerts are being implemented (issue 5). Until
# they land, UNIMPLEMENTED is accepted; then require exactly
#   '^set_prescription: ok version=2 rate_ul_per_day=500.0'  and  '^watch_alerts: ok events='
# and require exit code 0.
for step in set_prescription watch_alerts; do
  if grep -q "^$step: ok" "$work/out"; then
    echo "NOTE: $step succeeded"
  elif grep -q "^$step: UNIMPLEMENTED" "$work/out"; then
    echo "NOTE: $step is UNIMPLEMENTED in this build (accepted for now)"
  else
    fail "$step neither succeeded nor answered UNIMPLEMENTED"
  fi
done
if grep -q '^set_prescription: ok' "$work/out"; then
  grep -q '^set_prescription: ok version=2 rate_ul_per_day=500.0' "$work/out" \
    || fail "SetPrescription succeeded with an unexpected version or rate"
fi

# 2. Running again: the pump exists already, the client carries on.
"$py" "$client" --target="$target" --stubs="$stubs" --token="${admin[0]}" \
  --pump-id=py-e2e-1 --max-events=1 --timeout=2 >"$work/out2" 2>&1 || true
grep -q '^register_pump: ok pumps/py-e2e-1 (already registered)' "$work/out2" \
  || { cat "$work/out2"; fail "second run did not accept the existing pump"; }

# 3. Auth applies to the Python client too: viewer cannot register, no token is refused.
set +e
"$py" "$client" --target="$target" --stubs="$stubs" --token="${viewer[0]}" \
  --pump-id=py-e2e-2 --timeout=2 >"$work/out3" 2>&1
rc=$?
PUMPTWIN_TOKEN= "$py" "$client" --target="$target" --stubs="$stubs" \
  --pump-id=py-e2e-3 --timeout=2 >"$work/out4" 2>&1
rc4=$?
set -e
[[ $rc == 1 ]] && grep -q '^register_pump: PERMISSION_DENIED' "$work/out3" \
  || { cat "$work/out3"; fail "viewer was not refused RegisterPump"; }
[[ $rc4 == 1 ]] && grep -q '^register_pump: UNAUTHENTICATED' "$work/out4" \
  || { cat "$work/out4"; fail "a call without token was not refused"; }

kill -TERM "$server_pid"
wait "$server_pid" || fail "pumptwind exited non-zero on SIGTERM"
server_pid=
echo "PASS"
