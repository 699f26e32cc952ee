#!/usr/bin/env bash
# run_all.sh: the whole GPU check in one go, for one call on a machine with an
# NVIDIA GPU (H100/H200), within ~9 minutes (VIT_RUN_BUDGET_S, default 530 s):
#
#   1. configure (-DVIT_CUDA=ON -DVIT_BUILD_TESTS=ON) and build bench_cuda_kernels,
#      bench_cuda_train_step and vit_cuda_tests (with .deps/ as CMAKE_PREFIX_PATH
#      when it exists: the headers benchmarks/cuda/pack_deps.sh packs, for a machine
#      without Debian's -dev packages);
#   2. vit_cuda_tests (the [cuda] tests: launchers against the CPU ops);
#   3. bench_cuda_kernels: every kernel against the measured copy and GEMM ceilings;
#   4. bench_cuda_train_step: images/s of cifar-tiny, cifar-small and ViT-S/16;
#   5. torch_side_by_side.py: PyTorch at the same shapes and steps, on the same GPU,
#      and the ours/theirs tables;
#   6. compute-sanitizer memcheck and racecheck on vit_cuda_tests (if installed),
#      with what is left of the budget.
#
# Every step has a time cap taken from the budget that is left, so the run ends in
# time even if one step hangs; a step that fails is logged and the next still runs.
# Files under $OUT (default /tmp/out), 8 in all (the device tool brings back at
# most 8 files):
#   build_test.log   configure, build, vit_cuda_tests, memcheck, racecheck
#   kernels.log kernels.csv   bench_cuda_kernels
#   train.log train.csv       bench_cuda_train_step
#   torch.log torch.csv       torch_side_by_side.py
#   summary.md       step status and every table; also printed last on stdout,
#                    with the ours-vs-PyTorch tables at the very end.
#
# Usage (repo root or anywhere): bash benchmarks/cuda/run_all.sh
# Environment:
#   OUT                 where the files go (default /tmp/out)
#   VIT_RUN_BUDGET_S    the whole run's budget in seconds (default 530)
#   VIT_SANITIZER_S     cap of each compute-sanitizer run (default 60; 0 skips them)
#   VIT_TORCH_ARGS      extra arguments for torch_side_by_side.py (e.g. --no-compile)
#   VIT_PYTHON          the Python with PyTorch (default python3)
#   VIT_BUILD_DIR       build folder (default <repo>/build-gpu)
#   VIT_JOBS            parallel build jobs (default: all cores)
#   CUDA_ARCH           CUDA architectures (default: the project's, sm_90 code + PTX)
# torch.compile is best effort inside the budget: the script skips a compile run that
# would pass its deadline (printed as "skipped: deadline"); a larger VIT_RUN_BUDGET_S,
# or VIT_SANITIZER_S=0, leaves it more time.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
BUILD=${VIT_BUILD_DIR:-$ROOT/build-gpu}
BUDGET=${VIT_RUN_BUDGET_S:-530}
SAN_S=${VIT_SANITIZER_S:-60}
T0=$(date +%s)
export PYTHONUNBUFFERED=1
# Dependency CMake files written for CMake 3.x policies; CMake 4 refuses < 3.5 without this.
export CMAKE_POLICY_VERSION_MINIMUM=3.5

LOG_BUILD=$OUT/build_test.log
STATUS=()

left() { echo $((BUDGET - ($(date +%s) - T0))); }

# step NAME LOG CAP_SECONDS CMD...: runs CMD under `timeout CAP` (capped again by
# what is left of the budget), appending its output to LOG; records rc and time.
step() {
  local name=$1 log=$2 cap=$3
  shift 3
  local l
  l=$(left)
  if ((cap > l)); then cap=$l; fi
  if ((cap < 5)); then
    STATUS+=("| $name | skipped | 0 | no time left in the ${BUDGET}s budget |")
    echo "== $name: skipped (budget spent)"
    return 99
  fi
  echo "== $name (cap ${cap}s): $*"
  {
    echo
    echo "===== $name: $* (cap ${cap}s, at +$(($(date +%s) - T0))s)"
  } >>"$log"
  local t=$(date +%s)
  timeout -k 10 "$cap" "$@" >>"$log" 2>&1
  local rc=$?
  local dt=$(($(date +%s) - t))
  local what=ok
  if ((rc == 124 || rc == 137)); then
    what="timed out (cap ${cap}s)"
  elif ((rc == 77)); then
    what="skipped: no CUDA device"
  elif ((rc != 0)); then
    what="failed"
  fi
  STATUS+=("| $name | $rc | $dt | $what |")
  echo "   -> rc $rc, ${dt}s, $what"
  return $rc
}

: >"$LOG_BUILD"
{
  echo "run_all.sh at $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
  nvcc --version 2>&1 | tail -2
  cmake --version 2>&1 | head -1
  "${VIT_PYTHON:-python3}" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 || true
} >>"$LOG_BUILD" 2>&1

# ---- 1. configure + build -----------------------------------------------------------
CMAKE_ARGS=(-S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DVIT_CUDA=ON -DVIT_BUILD_TESTS=ON
  -DVIT_BUILD_EXAMPLES=OFF -DVIT_BUILD_BENCHMARKS=ON)
[[ -n ${CUDA_ARCH:-} ]] && CMAKE_ARGS+=(-DVIT_CUDA_ARCHITECTURES="$CUDA_ARCH")
command -v ninja >/dev/null && CMAKE_ARGS+=(-G Ninja)
if [[ -x /usr/local/cuda/bin/nvcc ]]; then
  CMAKE_ARGS+=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
fi
DEPS=$ROOT/.deps
if [[ -d $DEPS ]]; then
  CMAKE_ARGS+=(-DCMAKE_PREFIX_PATH="$DEPS")
  # Named outright in case this CMake does not search lib/<multiarch>/cmake.
  for d in "$DEPS"/lib/*/cmake/benchmark; do [[ -d $d ]] && CMAKE_ARGS+=(-Dbenchmark_DIR="$d"); done
fi
built=0
if step configure "$LOG_BUILD" 120 cmake "${CMAKE_ARGS[@]}"; then
  step build "$LOG_BUILD" $(($(left) - 240 > 360 ? 360 : $(left) - 240)) \
    cmake --build "$BUILD" -j "${VIT_JOBS:-$(nproc)}" --target bench_cuda_kernels bench_cuda_train_step vit_cuda_tests &&
    built=1
fi
BIN=$BUILD/bin
if ((built == 0)); then
  echo "build failed: last lines of $LOG_BUILD"
  tail -40 "$LOG_BUILD"
fi

# ---- 2..5. tests, our benchmarks, PyTorch ---------------------------------------------------
if ((built)); then
  step cuda_tests "$LOG_BUILD" 90 "$BIN/vit_cuda_tests"
  step bench_kernels "$OUT/kernels.log" 150 "$BIN/bench_cuda_kernels" "$OUT/kernels.csv"
  step bench_train_step "$OUT/train.log" 180 "$BIN/bench_cuda_train_step" --csv "$OUT/train.csv"
fi
# PyTorch gets what is left but the sanitizers' time; it skips its torch.compile
# runs itself when its deadline comes near.
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
san_reserve=0
((built)) && [[ -n $SAN ]] && ((SAN_S > 0)) && san_reserve=$((2 * SAN_S + 10))
torch_cap=$(($(left) - san_reserve))
((torch_cap < 60)) && torch_cap=60
ours=()
[[ -s $OUT/kernels.csv ]] && ours+=(--ours-kernels "$OUT/kernels.csv")
[[ -s $OUT/train.csv ]] && ours+=(--ours-train "$OUT/train.csv")
step torch_side_by_side "$OUT/torch.log" "$torch_cap" "${VIT_PYTHON:-python3}" "$ROOT/benchmarks/cuda/torch_side_by_side.py" \
  --csv "$OUT/torch.csv" --deadline-s $((torch_cap - 15)) "${ours[@]}" ${VIT_TORCH_ARGS:-}

# ---- 6. sanitizers ---------------------------------------------------------------------------
# A run cut by its cap still logs every error it found up to then.
if ((built)) && [[ -n $SAN ]] && ((SAN_S > 0)); then
  step memcheck "$LOG_BUILD" "$SAN_S" "$SAN" --tool memcheck --error-exitcode 1 "$BIN/vit_cuda_tests"
  step racecheck "$LOG_BUILD" "$SAN_S" "$SAN" --tool racecheck --error-exitcode 1 "$BIN/vit_cuda_tests"
elif ((built)); then
  STATUS+=("| sanitizers | - | 0 | skipped (compute-sanitizer not found, or VIT_SANITIZER_S=0) |")
fi

# ---- summary ----------------------------------------------------------------------------------
# tables LOG: the markdown tables a program prints last (from its first "## " line).
tables() { [[ -f $1 ]] && sed -n '/^## /,$p' "$1"; }
{
  echo "# run_all.sh summary ($(($(date +%s) - T0)) s of ${BUDGET} s)"
  echo
  sed '/^=====/,$d' "$LOG_BUILD" | sed 's/^/    /'
  echo
  echo "| step | rc | s | status |"
  echo "|---|---:|---:|---|"
  printf '%s\n' "${STATUS[@]}"
  echo
  grep -E "^(All tests passed|test cases:|=+ (ERROR|RACECHECK) SUMMARY)" \
    "$LOG_BUILD" 2>/dev/null | sed 's/^/    /'
  echo
  tables "$OUT/kernels.log"
  echo
  tables "$OUT/train.log"
  echo
  tables "$OUT/torch.log"
} >"$OUT/summary.md"
cat "$OUT/summary.md"
