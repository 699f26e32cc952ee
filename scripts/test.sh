#!/usr/bin/env bash
# Sets up, builds everything (library tests, examples, benchmarks, package
# consumer, and vit::cuda with its tests where nvcc is found) and runs the whole test suite through ctest; then builds the suite
# again under AddressSanitizer + UndefinedBehaviorSanitizer (any report is a
# failure, leaks included) and runs it there too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)"

# The CUDA library stays out of the sanitizer build (nvcc objects and the CUDA
# runtime are not instrumented); its kernels' logic is in vit_cuda_emu_tests here too.
# -O1 with line tables only (-g1): half the compile time of -O2 -g, and every
# report still names file and line.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" \
  -DVIT_SANITIZE=address,undefined -DVIT_BUILD_BENCHMARKS=OFF -DVIT_CUDA=OFF >/dev/null
cmake --build build-asan -j"$(nproc)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$(nproc)"
