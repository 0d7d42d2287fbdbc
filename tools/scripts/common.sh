#!/usr/bin/env bash
# Shared by run.sh and test.sh: install missing Debian packages, configure and build.
set -euo pipefail

PUMPTWIN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PUMPTWIN_BUILD="${PUMPTWIN_BUILD:-$PUMPTWIN_ROOT/build}"

# Everything the build, the tests and the tools need (Debian 12 names). PostgreSQL: libpq
# for the PostgreSQL store, the server binaries for its tests (they start their own server).
# golang-github-gogo-googleapis-dev: only for its google/api/{http,annotations}.proto (the
# HTTP rules of the API); libcivetweb-dev: the HTTP/JSON listener (prometheus-cpp uses it too).
PUMPTWIN_PACKAGES=(
  build-essential cmake pkg-config ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev librocksdb-dev libssl-dev
  libcli11-dev python3 python3-grpcio python3-protobuf python3-yaml prometheus openssl curl
  clang-format
  tzdata
  postgresql libpq-dev
  golang-github-gogo-googleapis-dev libcivetweb-dev
  chromium chromium-driver
)
# chromium: the browser of the web app's test (tests/web, driven by playwright-core from npm).
# Node.js and npm install the web app's charting library and the test's driver at configure
# time (server/web/package.json): Debian's nodejs + npm when no node is installed.

# The fuzz stage of the suite (libFuzzer needs clang and its runtime).
PUMPTWIN_FUZZ_PACKAGES=(clang libclang-rt-14-dev)

log() { printf '[pumptwin] %s\n' "$*" >&2; }

# ensure_packages [package...]: installs those of the list (default: PUMPTWIN_PACKAGES)
# that are missing; runs apt-get update first, only when something is missing.
ensure_packages() {
  local wanted=("$@")
  if [ ${#wanted[@]} -eq 0 ]; then wanted=("${PUMPTWIN_PACKAGES[@]}"); fi
  local missing=()
  if [ $# -eq 0 ] && ! command -v npm >/dev/null 2>&1; then missing+=(nodejs npm); fi
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  log "installing missing Debian packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# ccache as the compiler launcher when it is installed (the package list installs it).
ccache_launcher() {
  launcher=()
  if command -v ccache >/dev/null 2>&1; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  fi
}

# build [extra cmake args...]: configure (once) and build everything in $PUMPTWIN_BUILD.
build() {
  local launcher
  ccache_launcher
  log "configuring $PUMPTWIN_BUILD (Release)"
  cmake -S "$PUMPTWIN_ROOT" -B "$PUMPTWIN_BUILD" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" "$@" >/dev/null
  log "building with $(nproc) jobs"
  cmake --build "$PUMPTWIN_BUILD" -j"$(nproc)"
}
