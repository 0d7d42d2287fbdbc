#!/usr/bin/env bash
# Sets everything up (Debian packages when missing, Release build) and runs the whole
# test suite with ctest, then the model, store and gateway-link tests (the last over real
# gRPC on 127.0.0.1) again under AddressSanitizer + UndefinedBehaviorSanitizer, then a
# short libFuzzer run of the gateway frame decoder (clang build). Exits non-zero on any
# failure.
# Extra arguments go to the main ctest run (e.g. tools/test.sh -L twin).
#   PUMPTWIN_SANITIZE=0 tools/test.sh   # skip the sanitizer stage
#   PUMPTWIN_FUZZ=0 tools/test.sh       # skip the fuzz stage
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"
ensure_packages
build
log "running the test suite"
(cd "$PUMPTWIN_BUILD" && ctest --output-on-failure --timeout 600 -j"$(nproc)" "$@")

if [ "${PUMPTWIN_SANITIZE:-1}" != "0" ]; then
  ASAN_BUILD="${PUMPTWIN_ASAN_BUILD:-$PUMPTWIN_ROOT/build-asan}"
  log "sanitizer stage: ASan+UBSan build of the model, store and gateway-link tests in $ASAN_BUILD"
  ccache_launcher
  cmake -S "$PUMPTWIN_ROOT" -B "$ASAN_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPUMPTWIN_ASAN=ON -DPUMPTWIN_BUILD_BENCHMARKS=OFF "${launcher[@]}" >/dev/null
  cmake --build "$ASAN_BUILD" -j"$(nproc)" --target twin_tests store_tests device_link_tests
  (cd "$ASAN_BUILD" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure --timeout 600 -j"$(nproc)" -L 'twin|store|device_link')
fi

if [ "${PUMPTWIN_FUZZ:-1}" != "0" ]; then
  FUZZ_BUILD="${PUMPTWIN_FUZZ_BUILD:-$PUMPTWIN_ROOT/build-fuzz}"
  log "fuzz stage: clang + libFuzzer build of the frame decoder in $FUZZ_BUILD"
  ensure_packages "${PUMPTWIN_FUZZ_PACKAGES[@]}"
  ccache_launcher
  CC=clang CXX=clang++ cmake -S "$PUMPTWIN_ROOT" -B "$FUZZ_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPUMPTWIN_FUZZ=ON -DPUMPTWIN_BUILD_BENCHMARKS=OFF "${launcher[@]}" >/dev/null
  cmake --build "$FUZZ_BUILD" -j"$(nproc)" --target frame_fuzz
  (cd "$FUZZ_BUILD" && ctest --output-on-failure --timeout 600 -L fuzz)
fi
