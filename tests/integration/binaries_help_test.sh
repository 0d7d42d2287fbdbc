#!/bin/sh
# Usage: binaries_help_test.sh SOURCE_DIR BINARY...
# Every binary: `--help` exits 0, prints something, and names its flags' files by their path
# in the source tree (never the build machine's absolute path, nor a build-relative ../). pumptwind and pumptwinctl: --version exits 0 and prints the version. pumptwind: a
# configuration error exits 2 (docs/operations.md) and durations take days.
set -u
src="$1"
shift
fail=0
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

check() {  # check EXPECTED_CODE DESCRIPTION COMMAND...
  want="$1"; what="$2"; shift 2
  "$@" >"$out" 2>&1 </dev/null
  code=$?
  if [ "$code" -ne "$want" ]; then
    echo "FAIL: $what: exit $code, want $want"; sed -n 1,5p "$out"; fail=1
  fi
}

for bin in "$@"; do
  name="$(basename "$bin")"
  check 0 "$name --help" "$bin" --help
  if [ ! -s "$out" ]; then echo "FAIL: $name --help printed nothing"; fail=1; fi
  if grep -q -F "$src/" "$out"; then
    echo "FAIL: $name --help prints the source path:"; grep -F "$src/" "$out" | head -3; fail=1
  fi
  if grep -q -E "(^|[ \"'])/(work|home|tmp|root|src|build)/" "$out"; then
    echo "FAIL: $name --help prints an absolute path:"
    grep -E "(^|[ \"'])/(work|home|tmp|root|src|build)/" "$out" | head -3; fail=1
  fi
  if grep -q -E "Flags from (/|\.\./)" "$out"; then
    echo "FAIL: $name --help names a file outside the source tree's relative paths:"
    grep -E "Flags from (/|\.\./)" "$out" | head -3; fail=1
  fi
  case "$name" in
    pumptwind|pumptwinctl)
      check 0 "$name --version" "$bin" --version
      grep -q -E "^$name [0-9]+\.[0-9]+\.[0-9]+" "$out" || { echo "FAIL: $name --version: $(cat "$out")"; fail=1; }
      ;;
  esac
  if [ "$name" = pumptwind ]; then
    check 2 "pumptwind --no_such_flag" "$bin" --no_such_flag
    check 2 "pumptwind --retention=forever" "$bin" --retention=forever --only_check_args
    grep -q "e.g. 400d" "$out" || { echo "FAIL: the duration error does not say what is valid"; fail=1; }
    check 2 "pumptwind --config=missing" "$bin" --config=/nonexistent/pumptwind.flags
    check 0 "pumptwind --retention=400d" "$bin" --retention=400d --only_check_args
    check 2 "pumptwind plaintext on 0.0.0.0" "$bin" --listen=0.0.0.0:0
  fi
done
[ "$fail" -eq 0 ] && echo "OK: $# binaries"
exit "$fail"
