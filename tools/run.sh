#!/usr/bin/env bash
# Sets everything up (Debian packages when missing, Release build) and runs pumptwind on
# its embedded store in ./data. Extra arguments go to pumptwind (see --help).
#   tools/run.sh                 # server on 127.0.0.1:50051, metrics on 127.0.0.1:9464
#   tools/run.sh --help          # all server flags
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"
ensure_packages
build
mkdir -p "$PUMPTWIN_ROOT/data"
log "starting pumptwind (Ctrl-C stops it cleanly)"
exec "$PUMPTWIN_BUILD/bin/pumptwind" --data_dir="$PUMPTWIN_ROOT/data" "$@"
