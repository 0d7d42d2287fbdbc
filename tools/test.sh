#!/usr/bin/env bash
# Sets everything up (Debian packages when missing, Release build) and runs the whole
# test suite with ctest. Exits non-zero on any failure. Extra arguments go to ctest
# (e.g. tools/test.sh -L twin).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"
ensure_packages
build
log "running the test suite"
cd "$PUMPTWIN_BUILD"
ctest --output-on-failure --timeout 600 -j"$(nproc)" "$@"
