#!/usr/bin/env bash
# pack_deps.sh: run on the development machine (Debian, with the -dev packages
# installed), it copies what CMake needs from them into .deps/ in the repo root,
# laid out as under /usr so that -DCMAKE_PREFIX_PATH=$PWD/.deps finds every
# package there. The GPU machine has CUDA, CMake and a compiler but none of
# Debian's -dev packages; run_all.sh uses .deps/ when it exists (carry `.deps`).
#
#   headers + CMake package files: Eigen (eigen3), Catch2 v2, CLI11, nlohmann-json, stb
#   also, because the top-level CMakeLists and benchmarks/ ask for them:
#     zlib (zlib.h, zconf.h, libz.so for linking: the binary then needs only the
#           libz.so.1 every Linux system has),
#     Google Benchmark (headers, CMake files and the library file its imported
#           target names: benchmarks/CMakeLists.txt calls find_package(benchmark)
#           before add_subdirectory(cuda); bench_ops itself is never built there).
#
# Then it checks that a configure of this repo with only that prefix resolves every
# find_package/find_path into .deps (this machine's /usr/include cannot be hidden,
# so the check prints where each was found and fails if one is outside .deps).
#
# Usage: bash benchmarks/cuda/pack_deps.sh [DEST (default: <repo>/.deps)]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEST=${1:-$ROOT/.deps}
ARCH=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)

rm -rf "$DEST"
mkdir -p "$DEST"

# copy SRC...: each /usr/<rel> to $DEST/<rel>, following symbolic links (so a
# library reached through libX.so -> libX.so.1 -> libX.so.1.2.3 arrives as a file).
copy() {
  local src rel
  for src in "$@"; do
    [[ -e $src ]] || { echo "pack_deps: missing $src (install its -dev package)" >&2; exit 1; }
    rel=${src#/usr/}
    mkdir -p "$DEST/$(dirname "$rel")"
    cp -r -L "$src" "$DEST/$rel"
  done
}

copy /usr/include/eigen3 /usr/share/eigen3/cmake                          # libeigen3-dev
copy /usr/include/catch2 /usr/lib/cmake/Catch2 /usr/lib/libCatch2WithMain.a # catch2 (v2)
copy /usr/include/CLI /usr/share/cmake/CLI11                              # libcli11-dev
copy /usr/include/nlohmann /usr/share/cmake/nlohmann_json                 # nlohmann-json3-dev
copy /usr/include/stb                                                     # libstb-dev
copy /usr/include/zlib.h /usr/include/zconf.h                             # zlib1g-dev
mkdir -p "$DEST/lib"
cp -L "/usr/lib/$ARCH/libz.so" "$DEST/lib/libz.so"
copy /usr/include/benchmark "/usr/lib/$ARCH/cmake/benchmark"              # libbenchmark-dev
# The files benchmarkTargets-*.cmake names (CMake checks that they exist).
for f in $(grep -ho '${_IMPORT_PREFIX}/[^" ]*' "$DEST/lib/$ARCH/cmake/benchmark/"benchmarkTargets-*.cmake | sort -u); do
  copy "/usr/${f#'${_IMPORT_PREFIX}/'}"
done

echo "pack_deps: $(du -sh "$DEST" | cut -f1) in $DEST"

# ---- check: configure with only this prefix and see where each package came from ----
CHECK=${VIT_DEPS_CHECK_DIR:-/tmp/deps-check}
rm -rf "$CHECK"
cmake -S "$ROOT" -B "$CHECK" -DCMAKE_PREFIX_PATH="$DEST" -DVIT_CUDA=OFF -DVIT_BUILD_TESTS=ON \
  -DVIT_BUILD_EXAMPLES=ON -DVIT_BUILD_BENCHMARKS=ON >"$CHECK.log" 2>&1 \
  || { cat "$CHECK.log"; echo "pack_deps: configure with .deps failed" >&2; exit 1; }
bad=0
for var in Eigen3_DIR Catch2_DIR CLI11_DIR nlohmann_json_DIR benchmark_DIR VIT_STB_DIR ZLIB_INCLUDE_DIR \
           ZLIB_LIBRARY_RELEASE ZLIB_LIBRARY; do
  val=$(grep -E "^$var:[A-Z]+=" "$CHECK/CMakeCache.txt" | head -1 | cut -d= -f2- || true)
  [[ -z $val ]] && continue  # ZLIB_LIBRARY vs ZLIB_LIBRARY_RELEASE: CMake versions differ
  case $(realpath -m "$val") in
    "$(realpath -m "$DEST")"*) echo "  found in .deps: $var = $val" ;;
    *) echo "  NOT in .deps:   $var = $val"; bad=1 ;;
  esac
done
rm -rf "$CHECK" "$CHECK.log"
[[ $bad == 0 ]] || { echo "pack_deps: some packages resolved outside $DEST" >&2; exit 1; }
echo "pack_deps: ok; on the GPU machine: carry .deps, then bash benchmarks/cuda/run_all.sh"
