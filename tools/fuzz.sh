#!/usr/bin/env bash
# Fuzzes one parser family with libFuzzer (docs/SECURITY.md, "Fuzzing"):
#
#   bash tools/fuzz.sh FAMILY [SECONDS]     # default 60 s
#
# Families: canonical_json signed_formats agent_messages tracker_announce
# http_request. Builds the fuzzer with clang-14 in build-fuzz/, fuzzes a
# working copy of tests/fuzz/corpus/FAMILY, then merges what found new
# coverage back into the repository's corpus (minimized), so every later build
# replays it (FuzzCorpus_FAMILY). A crash leaves its input in build-fuzz/ and
# the script fails; add the input to the corpus once it is fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
family="${1:?usage: tools/fuzz.sh FAMILY [SECONDS]}"
seconds="${2:-60}"
[ -d "tests/fuzz/corpus/$family" ] || { echo "fuzz: no family '$family'" >&2; exit 2; }
bash tools/setup.sh
command -v clang++-14 >/dev/null || { apt-get update && apt-get install -y clang-14; }
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}" CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 -DDROVER_FUZZ=ON -DDROVER_BENCHMARKS=OFF >/dev/null
cmake --build build-fuzz -j "${DROVER_JOBS:-2}" --target "fuzz_$family"
work="build-fuzz/work/$family"
mkdir -p "$work" "build-fuzz/crashes/$family"
cp -n "tests/fuzz/corpus/$family"/* "$work"/ 2>/dev/null || true
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
status=0
"build-fuzz/bin/fuzz_$family" "$work" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="build-fuzz/crashes/$family/" \
  2>&1 | tee "build-fuzz/$family.log" | grep -E "^#[0-9]+ +(INITED|DONE)|stat::|ERROR|SUMMARY" || true
grep -q "^Done\|DONE" "build-fuzz/$family.log" || status=1
# Keep only inputs that add coverage (libFuzzer's merge), in the repository.
"build-fuzz/bin/fuzz_$family" -merge=1 "tests/fuzz/corpus/$family" "$work" >/dev/null 2>&1 || true
echo "fuzz: $family: corpus $(ls "tests/fuzz/corpus/$family" | wc -l) inputs; log build-fuzz/$family.log" >&2
exit $status
