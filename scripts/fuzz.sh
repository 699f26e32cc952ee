#!/usr/bin/env bash
# Builds the libFuzzer targets with clang under ASan + UBSan and fuzzes one of
# them, starting from its committed seed corpus (copied to a scratch corpus,
# so the repository's stays small). Crashes, leaks and timeouts are written
# to build-fuzz/findings/<target>/; copy each into
# tests/fuzz/regressions/<target>/ once fixed, so that ctest replays it.
# Usage: scripts/fuzz.sh TARGET [libFuzzer flags...]
#   TARGET: safetensors | checkpoint | cifar | idx | image
#   e.g. scripts/fuzz.sh idx -runs=10000000
#        scripts/fuzz.sh image -max_total_time=1800 -jobs=2 -workers=2
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET [libFuzzer flags]}
shift
case $target in
  safetensors | checkpoint | cifar | idx | image) ;;
  *) echo "fuzz.sh: unknown target '$target' (safetensors, checkpoint, cifar, idx, image)" >&2; exit 2 ;;
esac
command -v clang++ > /dev/null || { echo "fuzz.sh: needs clang (apt-get install clang libclang-rt-14-dev libomp-14-dev)" >&2; exit 1; }
cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIT_FUZZ=ON \
  -DVIT_BUILD_EXAMPLES=OFF -DVIT_BUILD_BENCHMARKS=OFF > /dev/null
cmake --build build-fuzz --target "fuzz_$target" -j"$(nproc)"
work=build-fuzz/corpus/$target findings=build-fuzz/findings/$target
mkdir -p "$work" "$findings"
cp -n tests/fuzz/corpus/"$target"/* "$work"/
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# -rss_limit_mb: a parser asking for gigabytes is a finding, not a slow input.
exec "build-fuzz/bin/fuzz_$target" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$findings/" "$@" "$work"
