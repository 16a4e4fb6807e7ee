#!/usr/bin/env bash
# Builds everything and runs every test, twice: an optimized build with all
# tests, then a build with AddressSanitizer and UndefinedBehaviorSanitizer
# running them again. Installs what it needs first (tools/setup.sh).
#
#   bash tools/test.sh            # both builds
#   DROVER_SKIP_SANITIZERS=1 bash tools/test.sh   # the optimized build only
set -euo pipefail
cd "$(dirname "$0")/.."
# Root: the set-up installs packages, and the tests of privilege dropping,
# network namespaces and small disks need it. They fail rather than skip here.
if [ "$(id -u)" != 0 ]; then
  echo "tools/test.sh: run it as root (it installs packages; some tests switch users and create network namespaces)" >&2
  exit 1
fi
export DROVER_PRIVILEGED_TESTS=required
bash tools/setup.sh
python3 tools/check_architecture.py
jobs="${DROVER_JOBS:-2}"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
# Paths relative to the checkout, and no hash of the working directory, so a
# fresh clone elsewhere (CI) reuses what an earlier build compiled.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR=1

build_and_test() {
  local dir="$1"; shift
  echo "== build $dir" >&2
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "== test $dir" >&2
  (cd "$dir" && ctest -j "$jobs" --output-on-failure --timeout 900)
}

build_and_test build -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "${DROVER_SKIP_SANITIZERS:-0}" != "1" ]; then
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  build_and_test build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDROVER_SANITIZE=ON -DDROVER_BENCHMARKS=OFF
fi
echo "== all tests passed" >&2
