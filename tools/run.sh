#!/usr/bin/env bash
# Sets everything up (Debian packages when missing, Release build) and runs pumptwind on
# its embedded store in ./data. Extra arguments go to pumptwind (see --help).
#   tools/run.sh                 # server on 127.0.0.1:50051, metrics on 127.0.0.1:9464
#   tools/run.sh --help          # all server flags
#   tools/run.sh --demo          # server + simulated fleet with faults + live alerts
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"
ensure_packages
build
if [ "${1:-}" = "--demo" ]; then
  exec "$PUMPTWIN_ROOT/tools/demo.sh"
fi
mkdir -p "$PUMPTWIN_ROOT/data"
log "starting pumptwind (Ctrl-C stops it cleanly)"
exec "$PUMPTWIN_BUILD/bin/pumptwind" --data_dir="$PUMPTWIN_ROOT/data" "$@"
