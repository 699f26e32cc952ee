#!/usr/bin/env bash
# run_all.sh: every GPU figure of the CUDA backend in one command, on a machine with
# an NVIDIA GPU (H100/H200), within 9 minutes (VIT_RUN_BUDGET_S, default 530 s):
#
#   bash benchmarks/cuda/run_all.sh
#
# Steps, in this order. Each runs under `timeout` with the cap shown, cut further to
# what the budget has left after keeping a reserve for the steps after it, so the run
# ends in time even if one step hangs; a step that fails is logged and the next runs.
#
#   step               what                                                      cap (s)
#   configure          cmake -DVIT_CUDA=ON, tests, examples, benchmarks on           120
#   build              vit_cuda_tests bench_cuda_kernels bench_cuda_train_step       300
#                      vit make_tiny_data (configure and build are skipped with
#                      VIT_SKIP_BUILD=1: the binaries in VIT_BUILD_DIR/bin are used)
#   cuda_tests         vit_cuda_tests: every [cuda] test                              120
#   memcheck           compute-sanitizer --tool memcheck over vit_cuda_tests,   VIT_SANITIZER_S
#   initcheck            without the out-of-memory test, whose intended             (60 each)
#   synccheck            cudaMalloc failure is an API error to the tool:
#                        ~"GPU out of memory names the allocation size"
#   racecheck          the same, also without the N=1024 attention test         VIT_RACECHECK_S
#                      (minutes under racecheck), time-boxed:                         (90)
#                        ~"cuda attention matches the CPU op at N 1024"
#   bench_kernels      bench_cuda_kernels: every kernel against copy/GEMM ceilings     90
#   bench_train_step   bench_cuda_train_step: images/s of the presets' full step,     120
#                      FP32 and TF32, each also as a CUDA graph where the build has it
#   cifar_data         VIT_CIFAR_DIR, or tiny CIFAR-10 files from make_tiny_data       30
#   train_bar          the bar of issue 14 §4: `vit train --device cuda`, cifar-tiny,  120
#                      batch 128, end to end; images/s and data wait from its
#                      metrics.csv step rows after the first logging window, against
#                      bench_cuda_train_step's cifar-tiny batch-128 rate of this run
#                      (bars: >= 90% of it, data wait <= 1%)
#   recipe_*           the recipes of docs/training.md, --steps 30 each on the GPU:    60 each
#                      rc 0 and a finite last loss required
#   dist_nccl          vit_dist_gpu_tests: communicator + reducer cases, NCCL, 1 rank   60
#   dist_*             2 ranks sharing the GPU (MPI staged) vs 1 process, batch      60+90+20
#                      64 x 2 vs 128, 5 SGD steps, weights within 1e-5 (needs mpirun)
#   torch_side_by_side PyTorch at the same shapes on the same GPU       what is left, if >= 30
#
# Files under $OUT (default /tmp/out), 8 in all:
#   build_test.log   environment, configure, build, cuda_tests and the four sanitizers
#   bench.log        bench_cuda_kernels and bench_cuda_train_step
#   kernels.csv      bench_cuda_kernels' rows
#   train.csv        bench_cuda_train_step's rows
#   vit_train.log    the train_bar run and the recipe runs (trainer output, verdicts)
#   torch.log torch.csv   torch_side_by_side.py
#   summary.md       step table, test and sanitizer verdicts, every table, the §4 bar
#                    and the recipe table; also printed last on stdout.
# Run directories and generated data go to VIT_WORK_DIR (default /tmp/vit_run_all).
#
# Environment:
#   OUT                where the files go (default /tmp/out)
#   VIT_RUN_BUDGET_S   the whole run's budget in seconds (default 530)
#   VIT_BUILD_DIR      build folder (default <repo>/build-gpu)
#   VIT_SKIP_BUILD=1   use VIT_BUILD_DIR/bin as it is (no configure, no build)
#   VIT_JOBS           parallel build jobs (default: all cores)
#   CUDA_ARCH          CUDA architectures (default: the project's, sm_90 code + PTX)
#   VIT_CIFAR_DIR      CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin) for
#                      the trainer runs; unset: make_tiny_data's files, each training
#                      batch file repeated 80 times (5200 images, 40 steps per epoch)
#   VIT_BAR_STEPS      steps of the train_bar run (default 400, at most 10 epochs)
#   VIT_BAR_PRECISION  which bench_cuda_train_step row the trainer is held to (fp32,
#                      the default: `vit train` leaves TF32 off; tf32)
#   VIT_RECIPE_STEPS   steps of each recipe run (default 30)
#   VIT_TRAIN_DEVICE   device of the trainer runs (default cuda; cpu checks this script's
#                      trainer steps on a machine without a GPU, at small VIT_BAR_STEPS)
#   VIT_SANITIZER_S    cap of memcheck, initcheck, synccheck each (default 60; 0 skips them)
#   VIT_RACECHECK_S    cap of racecheck (default 90; 0 skips it)
#   VIT_SANITIZER      path of compute-sanitizer (default: PATH, then $CUDA_HOME/bin,
#                      /usr/local/cuda/bin, the folder of nvcc)
#   VIT_PYTHON         the Python with PyTorch (default python3)
#   VIT_TORCH_ARGS     extra arguments for torch_side_by_side.py (e.g. --no-compile)
#   VIT_WORK_DIR       run directories and generated data (default /tmp/vit_run_all)
# torch.compile is best effort inside the budget: torch_side_by_side.py skips a run
# that would pass its deadline (printed as "skipped: deadline").
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
BUILD=${VIT_BUILD_DIR:-$ROOT/build-gpu}
BIN=$BUILD/bin
WORK=${VIT_WORK_DIR:-/tmp/vit_run_all}
mkdir -p "$WORK"
BUDGET=${VIT_RUN_BUDGET_S:-530}
SAN_S=${VIT_SANITIZER_S:-60}
RACE_S=${VIT_RACECHECK_S:-90}
BAR_STEPS=${VIT_BAR_STEPS:-400}
BAR_PRECISION=${VIT_BAR_PRECISION:-fp32}
RECIPE_STEPS=${VIT_RECIPE_STEPS:-30}
DEVICE=${VIT_TRAIN_DEVICE:-cuda}
PY=${VIT_PYTHON:-python3}
T0=$(date +%s)
export PYTHONUNBUFFERED=1
# Dependency CMake files written for CMake 3.x policies; CMake 4 refuses < 3.5 without this.
export CMAKE_POLICY_VERSION_MINIMUM=3.5

# The [cuda] tests the sanitizers leave out (names as in tests/cuda/*.cpp).
OOM_TEST='GPU out of memory names the allocation size'        # test_model_cuda.cpp
N1024_TEST='cuda attention matches the CPU op at N 1024'       # test_attention_cuda.cpp

LOG_BUILD=$OUT/build_test.log
LOG_BENCH=$OUT/bench.log
LOG_TRAIN=$OUT/vit_train.log
LOG_TORCH=$OUT/torch.log
STATUS=()
RESERVE=0 # seconds a step leaves for the steps after it
LAST_RC=0

left() { echo $((BUDGET - ($(date +%s) - T0))); }

# step NAME LOG CAP CMD...: runs CMD under `timeout CAP` (CAP cut to what is left of
# the budget minus RESERVE), appending its output to LOG under a "===== NAME: " header;
# records rc and time in STATUS, and rc in LAST_RC.
step() {
  local name=$1 log=$2 cap=$3
  shift 3
  local l
  l=$(($(left) - RESERVE))
  if ((cap > l)); then cap=$l; fi
  if ((cap < 5)); then
    STATUS+=("| $name | - | 0 | skipped: no time left in the ${BUDGET}s budget |")
    echo "== $name: skipped (budget spent)"
    LAST_RC=99
    return 99
  fi
  echo "== $name (cap ${cap}s): $*"
  echo "===== $name: $* (cap ${cap}s, at +$(($(date +%s) - T0))s)" >>"$log"
  local t rc dt what=ok
  t=$(date +%s)
  timeout -k 10 "$cap" "$@" >>"$log" 2>&1
  rc=$?
  dt=$(($(date +%s) - t))
  if ((rc == 124 || rc == 137)); then
    what="timed out (cap ${cap}s)"
  elif ((rc == 77)); then
    what="skipped: no CUDA device"
  elif ((rc != 0)); then
    what="failed"
  fi
  STATUS+=("| $name | $rc | $dt | $what |")
  echo "   -> rc $rc, ${dt}s, $what"
  LAST_RC=$rc
  return $rc
}

# note_status TEXT: appends TEXT to the status of the step recorded last.
note_status() { STATUS[-1]="${STATUS[-1]% |}; $1 |"; }

# skip NAME REASON: a step that cannot run.
skip() {
  STATUS+=("| $1 | - | 0 | skipped: $2 |")
  echo "== $1: skipped ($2)"
}

# have BINARY...: true when every BIN/BINARY exists and is executable.
have() {
  local b
  for b in "$@"; do [[ -x $BIN/$b ]] || return 1; done
}

# section LOG NAME: the output of step NAME in LOG (from its header to the next one).
section() { [[ -f $1 ]] && awk -v h="===== $2: " 'index($0, h) == 1 {on = 1; next} /^===== / {on = 0} on' "$1"; }
# tables LOG NAME: the markdown tables step NAME printed last (from its first "## " line).
tables() { section "$1" "$2" | sed -n '/^## /,$p'; }

# CSV_HEADER: the start of an awk program that maps a CSV header's names to columns
# (c["name"]), so the columns may move.
# shellcheck disable=SC2016  # awk's $i, not the shell's
CSV_HEADER='NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }'

find_sanitizer() {
  local c
  if [[ -n ${VIT_SANITIZER:-} ]]; then echo "$VIT_SANITIZER"; return; fi
  c=$(command -v compute-sanitizer 2>/dev/null) && { echo "$c"; return; }
  local nvcc_dir
  nvcc_dir=$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")
  for c in "${CUDA_HOME:-/nonexistent}/bin/compute-sanitizer" "${CUDA_PATH:-/nonexistent}/bin/compute-sanitizer" \
    /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer \
    "$nvcc_dir/compute-sanitizer" /usr/local/cuda-*/bin/compute-sanitizer; do
    [[ -x $c ]] && { echo "$c"; return; }
  done
}

: >"$LOG_BUILD"
: >"$LOG_BENCH"
: >"$LOG_TRAIN"
: >"$LOG_TORCH"
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
SAN=$(find_sanitizer)
{
  echo "run_all.sh at $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
    "($(git status --porcelain --untracked-files=no 2>/dev/null | wc -l) files changed since)"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  else
    echo "nvidia-smi: not found"
  fi
  nvcc --version 2>&1 | tail -2
  cmake --version 2>&1 | head -1
  echo "compute-sanitizer: ${SAN:-not found} $([[ -n $SAN ]] && "$SAN" --version 2>&1 | grep -o 'Version .*' | head -1)"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -1 || true
  echo "budget ${BUDGET}s, build dir $BUILD, work dir $WORK"
} >>"$LOG_BUILD" 2>&1
[[ -z $GPU_NAME ]] && echo "run_all.sh: nvidia-smi sees no GPU; the GPU steps will fail fast" | tee -a "$LOG_BUILD"

# ---- configure + build ----------------------------------------------------------------
if [[ ${VIT_SKIP_BUILD:-0} == 1 ]]; then
  skip build "VIT_SKIP_BUILD=1: using $BIN"
else
  CMAKE_ARGS=(-S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DVIT_CUDA=ON -DVIT_BUILD_TESTS=ON
    -DVIT_BUILD_EXAMPLES=ON -DVIT_BUILD_BENCHMARKS=ON)
  [[ -n ${CUDA_ARCH:-} ]] && CMAKE_ARGS+=(-DVIT_CUDA_ARCHITECTURES="$CUDA_ARCH")
  # Ninja only for a fresh folder: a folder configured with another generator stays so.
  command -v ninja >/dev/null && [[ ! -f $BUILD/CMakeCache.txt ]] && CMAKE_ARGS+=(-G Ninja)
  if [[ -x /usr/local/cuda/bin/nvcc ]]; then
    CMAKE_ARGS+=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
  fi
  DEPS=$ROOT/.deps
  if [[ -d $DEPS ]]; then
    CMAKE_ARGS+=(-DCMAKE_PREFIX_PATH="$DEPS")
    # Named outright in case this CMake does not search lib/<multiarch>/cmake.
    for d in "$DEPS"/lib/*/cmake/benchmark; do [[ -d $d ]] && CMAKE_ARGS+=(-Dbenchmark_DIR="$d"); done
  fi
  RESERVE=240
  if step configure "$LOG_BUILD" 120 cmake "${CMAKE_ARGS[@]}"; then
    RESERVE=200
    step build "$LOG_BUILD" 300 cmake --build "$BUILD" -j "${VIT_JOBS:-$(nproc)}" --target \
      vit_cuda_tests bench_cuda_kernels bench_cuda_train_step vit_cli make_tiny_data \
      $(grep -q '^VIT_NCCL:BOOL=ON' "$BUILD/CMakeCache.txt" && echo vit_dist_gpu_tests) \
      $(grep -q '^VIT_MPI:BOOL=ON' "$BUILD/CMakeCache.txt" && echo compare_weights)
  fi
  if ((LAST_RC != 0)); then
    echo "build failed: last lines of $LOG_BUILD"
    tail -40 "$LOG_BUILD"
  fi
fi

# ---- [cuda] tests and sanitizers -------------------------------------------------------
RESERVE=200
if have vit_cuda_tests; then
  step cuda_tests "$LOG_BUILD" 120 "$BIN/vit_cuda_tests" --durations yes
  # The excluded tests must exist, or the exclusions silently stop excluding.
  # (Catch2 v2 exits with the number of tests listed; 77 means no device, no list.)
  names=$(timeout 60 "$BIN/vit_cuda_tests" --list-test-names-only 2>/dev/null)
  if (($? != 77)) && [[ -n $names ]]; then
    for t in "$OOM_TEST" "$N1024_TEST"; do
      grep -Fxq "$t" <<<"$names" || {
        echo "run_all.sh: no [cuda] test is named '$t' any more: update OOM_TEST/N1024_TEST" | tee -a "$LOG_BUILD"
        note_status "excluded test '$t' not found"
      }
    done
  fi
  SAN_EXCLUDE=("~\"$OOM_TEST\"")
  if [[ -z $SAN ]]; then
    skip sanitizers "compute-sanitizer not found (PATH, \$CUDA_HOME/bin, /usr/local/cuda/bin)"
  else
    # A run cut by its cap still logs every error it found up to then. --error-exitcode
    # 86 tells sanitizer findings apart from failing tests.
    for tool in memcheck initcheck synccheck racecheck; do
      cap=$SAN_S exclude=("${SAN_EXCLUDE[@]}")
      if [[ $tool == racecheck ]]; then cap=$RACE_S exclude+=("~\"$N1024_TEST\""); fi
      if ((cap <= 0)); then
        skip "$tool" "cap 0 (VIT_SANITIZER_S / VIT_RACECHECK_S)"
        continue
      fi
      step "$tool" "$LOG_BUILD" "$cap" "$SAN" --tool "$tool" --error-exitcode 86 "$BIN/vit_cuda_tests" "${exclude[@]}"
      verdict=$(section "$LOG_BUILD" "$tool" | grep -Eo '(ERROR|RACECHECK) SUMMARY: .*' | tail -1)
      ((LAST_RC == 86)) && note_status "sanitizer errors"
      note_status "${verdict:-no summary line (cut by its cap?); $(section "$LOG_BUILD" "$tool" | grep -ci 'race reported\|hazard') hazard lines before that}"
    done
  fi
else
  skip cuda_tests "$BIN/vit_cuda_tests missing"
fi

# ---- benchmarks ------------------------------------------------------------------------
RESERVE=150
rm -f "$OUT/kernels.csv" "$OUT/train.csv"
if have bench_cuda_kernels; then
  step bench_kernels "$LOG_BENCH" 90 "$BIN/bench_cuda_kernels" "$OUT/kernels.csv"
  section "$LOG_BENCH" bench_kernels | grep -q "nothing measured" && note_status "nothing measured"
else
  skip bench_kernels "$BIN/bench_cuda_kernels missing"
fi
RESERVE=120
if have bench_cuda_train_step; then
  # The CUDA-graph rows (the step captured once and replayed), where this build has them.
  train_args=()
  grep -q fp32-graph "$BIN/bench_cuda_train_step" && train_args=(--precisions "fp32,tf32,fp32-graph,tf32-graph")
  step bench_train_step "$LOG_BENCH" 120 "$BIN/bench_cuda_train_step" --csv "$OUT/train.csv" "${train_args[@]}"
  section "$LOG_BENCH" bench_train_step | grep -q "nothing measured" && note_status "nothing measured"
else
  skip bench_train_step "$BIN/bench_cuda_train_step missing"
fi

# ---- CIFAR-10 files for the trainer -----------------------------------------------------
RESERVE=100
CIFAR=
if [[ -n ${VIT_CIFAR_DIR:-} ]]; then
  if [[ -f $VIT_CIFAR_DIR/data_batch_1.bin && -f $VIT_CIFAR_DIR/test_batch.bin ]]; then
    CIFAR=$VIT_CIFAR_DIR
    skip cifar_data "VIT_CIFAR_DIR=$CIFAR given"
  else
    skip cifar_data "VIT_CIFAR_DIR=$VIT_CIFAR_DIR has no data_batch_1.bin/test_batch.bin"
  fi
elif have make_tiny_data; then
  # make_tiny_data writes 13 records per training file (65 images: no full batch of
  # 128); each file repeated 80 times gives 5200 images, 40 steps per epoch at 128.
  rm -rf "$WORK/tiny" "$WORK/cifar10"
  if step cifar_data "$LOG_TRAIN" 30 "$BIN/make_tiny_data" "$WORK/tiny"; then
    mkdir -p "$WORK/cifar10"
    for f in "$WORK"/tiny/cifar10/data_batch_*.bin; do
      for _ in $(seq 80); do cat "$f"; done >"$WORK/cifar10/$(basename "$f")"
    done
    cp "$WORK/tiny/cifar10/test_batch.bin" "$WORK/tiny/cifar10/batches.meta.txt" "$WORK/cifar10/"
    CIFAR=$WORK/cifar10
    note_status "$(($(cat "$WORK"/cifar10/data_batch_*.bin | wc -c) / 3073)) training images in $CIFAR"
  fi
else
  skip cifar_data "no VIT_CIFAR_DIR and $BIN/make_tiny_data missing"
fi

# ---- the §4 bar: the trainer end to end against the bare step ----------------------------
# bar_stats RUN_DIR BATCH: "IMG_PER_S DATA_WAIT_PCT WINDOWS" over the step rows of
# metrics.csv after the first logging window (warm-up): images / wall time between the
# first row and the last, and the data wait weighted by each window's length.
bar_stats() {
  [[ -f $1/metrics.csv ]] || return 1
  awk -F, -v B="$2" "$CSV_HEADER"'
    $c["kind"] == "step" {
      n++; s = $c["step"]; t = $c["time_s"]
      if (n == 1) { s0 = s; t0 = t; tp = t; next }
      wait += $c["data_wait"] * (t - tp); tp = t; s1 = s
    }
    END {
      if (!("data_wait" in c) || n < 2 || tp <= t0) exit 1
      printf "%.1f %.3f %d\n", (s1 - s0) * B / (tp - t0), 100 * wait / (tp - t0), n - 1
    }' "$1/metrics.csv"
}
# bench_rate PRESET BATCH PRECISION: img_per_s of that row of train.csv.
bench_rate() {
  [[ -f $OUT/train.csv ]] || return 1
  awk -F, -v m="$1" -v b="$2" -v p="$3" "$CSV_HEADER"'
    $c["model"] == m && $c["batch"] == b && $c["precision"] == p { r = $c["img_per_s"] }
    END { if (r == "") exit 1; print r }' "$OUT/train.csv"
}
# last_step_row RUN_DIR: "LOSS NONFINITE" of the last step row of metrics.csv.
last_step_row() {
  [[ -f $1/metrics.csv ]] || return 1
  awk -F, "$CSV_HEADER"'$c["kind"] == "step" { l = $c["loss"]; nf = $c["nonfinite"]; n++ }
    END { if (!n) exit 1; print (l == "" ? "nan" : l), nf }' "$1/metrics.csv"
}
# test_top1 RUN_DIR: test top-1 (%) of the last epoch row.
test_top1() {
  awk -F, "$CSV_HEADER"'$c["kind"] == "epoch" { a = $c["test_top1"] } END { if (a != "") printf "%.2f%%", 100 * a }' \
    "$1/metrics.csv" 2>/dev/null
}
is_finite() { [[ $1 =~ ^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$ ]]; }

BAR_LINES=()
ratio=
if [[ -n $CIFAR ]] && have vit; then
  rm -rf "$WORK/bar"
  step train_bar "$LOG_TRAIN" 120 "$BIN/vit" train --dataset cifar10 --data "$CIFAR" --model cifar-tiny \
    --batch 128 --device "$DEVICE" --epochs 10 --steps "$BAR_STEPS" --log-every 20 --seed 0 --out "$WORK/bar"
  stats=$(bar_stats "$WORK/bar" 128) || stats=
  bare=$(bench_rate cifar-tiny 128 "$BAR_PRECISION") || bare=
  if [[ -n $stats ]]; then
    read -r rate dwait windows <<<"$stats"
    BAR_LINES+=("- trainer: \`vit train --device $DEVICE\`, cifar-tiny, batch 128, data $CIFAR:" \
      "  **$rate img/s** end to end over $windows logging windows of 20 steps after the first;" \
      "  data wait **$dwait%** (bar <= 1%: $(awk -v w="$dwait" 'BEGIN { print (w <= 1 ? "PASS" : "FAIL") }'))")
    if [[ -n $bare ]]; then
      ratio=$(awk -v a="$rate" -v b="$bare" 'BEGIN { printf "%.1f", 100 * a / b }')
      BAR_LINES+=("- bare step: bench_cuda_train_step cifar-tiny 128 $BAR_PRECISION, this run: **$bare img/s**" \
        "- **trainer / bare step = $ratio%** (bar >= 90%: $(awk -v r="$ratio" 'BEGIN { print (r >= 90 ? "PASS" : "FAIL") }'))")
    else
      BAR_LINES+=("- bare step: no cifar-tiny/128/$BAR_PRECISION row in $OUT/train.csv: no ratio")
    fi
    if graph=$(bench_rate cifar-tiny 128 "$BAR_PRECISION-graph"); then
      BAR_LINES+=("- for reference, the bare step captured as a CUDA graph ($BAR_PRECISION-graph): $graph img/s;" \
        "  trainer / that = $(awk -v a="$rate" -v b="$graph" 'BEGIN { printf "%.1f", 100 * a / b }')%")
    fi
    note_status "$rate img/s, data wait $dwait%${ratio:+, $ratio% of the bare step}"
  else
    BAR_LINES+=("- trainer run gave no metrics (rc $LAST_RC): see vit_train.log")
  fi
  printf '%s\n' "" "## Issue 14 §4 bar" "" "${BAR_LINES[@]}" >>"$LOG_TRAIN"
else
  skip train_bar "no CIFAR data or $BIN/vit missing"
fi

# ---- the recipes of docs/training.md, short, on the GPU ------------------------------------
RECIPES=(
  "cifar_tiny|--model cifar-tiny --randaugment-n 2 --randaugment-m 9 --drop-path 0.1"
  "cifar_small|--model cifar-small --randaugment-n 2 --randaugment-m 9 --drop-path 0.1 --mixup 0.8 --cutmix 1.0"
  "cifar_deep|--model cifar-deep --randaugment-n 2 --randaugment-m 9 --drop-path 0.1 --erasing 0.25"
  "everything|--model cifar-tiny --randaugment-n 2 --randaugment-m 9 --mixup 0.8 --cutmix 1.0 --erasing 0.25 --drop-path 0.1 --dropout 0.1"
)
RECIPE_ROWS=()
RESERVE=30
for r in "${RECIPES[@]}"; do
  name=recipe_${r%%|*}
  read -ra flags <<<"${r#*|}"
  if [[ -z $CIFAR ]] || ! have vit; then
    skip "$name" "no CIFAR data or $BIN/vit missing"
    continue
  fi
  rm -rf "${WORK:?}/$name"
  step "$name" "$LOG_TRAIN" 60 "$BIN/vit" train --dataset cifar10 --data "$CIFAR" "${flags[@]}" \
    --batch 128 --device "$DEVICE" --epochs 1 --steps "$RECIPE_STEPS" --log-every 10 --seed 0 --out "$WORK/$name"
  rc=$LAST_RC
  read -r loss nonfinite <<<"$(last_step_row "$WORK/$name" || echo "none -")"
  verdict=PASS
  if ((rc != 0)); then
    verdict="FAIL (rc $rc)"
  elif ! is_finite "$loss"; then
    verdict="FAIL (last loss $loss)"
    note_status "last loss $loss is not finite"
  fi
  RECIPE_ROWS+=("| $name | \`${flags[*]}\` | $rc | $loss | $nonfinite | $(test_top1 "$WORK/$name") | $verdict |")
  echo "recipe $name: rc $rc, last loss $loss, non-finite steps $nonfinite: $verdict" >>"$LOG_TRAIN"
done

# ---- data parallel on the GPU (issue 15) ---------------------------------------------------
# NCCL on one rank: the communicator and gradient-reducer cases on device buffers.
RESERVE=100
if have vit_dist_gpu_tests; then
  step dist_nccl "$LOG_BUILD" 60 "$BIN/vit_dist_gpu_tests"
else
  skip dist_nccl "$BIN/vit_dist_gpu_tests missing (a build without NCCL)"
fi
# Two ranks sharing this GPU (MPI staged through pinned memory) against one process
# with the doubled batch: 5 SGD steps, weights within 1e-5 of each other.
if [[ -n $CIFAR ]] && have vit compare_weights && command -v mpirun >/dev/null; then
  dp=(train --dataset cifar10 --data "$CIFAR" --device "$DEVICE" --no-augment --optimizer sgd
      --steps 5 --epochs 1 --log-every 1 --seed 0 --threads 2)
  rm -rf "${WORK:?}"/dp_one "${WORK:?}"/dp_two
  step dist_one_rank "$LOG_TRAIN" 60 "$BIN/vit" "${dp[@]}" --batch 128 --out "$WORK/dp_one"
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    step dist_two_ranks_staged "$LOG_TRAIN" 90 mpirun --oversubscribe -np 2 "$BIN/vit" "${dp[@]}" \
    --batch 64 --out "$WORK/dp_two"
  step dist_compare "$LOG_TRAIN" 20 "$BIN/compare_weights" "$WORK/dp_one/last.safetensors" \
    "$WORK/dp_two/last.safetensors" 1e-5
else
  skip dist_two_ranks_staged "needs CIFAR data, $BIN/vit, $BIN/compare_weights and mpirun"
fi

# ---- PyTorch on the same GPU: what is left -------------------------------------------------
RESERVE=0
torch_cap=$(($(left) - 15))
if ((torch_cap < 30)); then
  skip torch_side_by_side "under 30 s left"
else
  ours=()
  [[ -s $OUT/kernels.csv ]] && ours+=(--ours-kernels "$OUT/kernels.csv")
  [[ -s $OUT/train.csv ]] && ours+=(--ours-train "$OUT/train.csv")
  # shellcheck disable=SC2086  # VIT_TORCH_ARGS is a list of words
  step torch_side_by_side "$LOG_TORCH" "$torch_cap" "$PY" "$ROOT/benchmarks/cuda/torch_side_by_side.py" \
    --csv "$OUT/torch.csv" --deadline-s $((torch_cap - 15)) "${ours[@]}" ${VIT_TORCH_ARGS:-}
fi

# ---- summary --------------------------------------------------------------------------------
{
  echo "# run_all.sh summary ($(($(date +%s) - T0)) s of ${BUDGET} s)"
  echo
  sed '/^=====/,$d' "$LOG_BUILD" | sed 's/^/    /'
  echo
  echo "| step | rc | s | status |"
  echo "|---|---:|---:|---|"
  printf '%s\n' "${STATUS[@]}"
  echo
  echo "## [cuda] tests"
  echo
  section "$LOG_BUILD" cuda_tests | grep -E "^(All tests passed|test cases:|assertions:)" | sed 's/^/    /'
  section "$LOG_BUILD" cuda_tests | grep -B3 -A6 "FAILED:" | head -60 | sed 's/^/    /'
  echo
  echo "## Sanitizers (excluded: ~\"$OOM_TEST\"; racecheck also ~\"$N1024_TEST\")"
  echo
  for tool in memcheck initcheck synccheck racecheck; do
    section "$LOG_BUILD" "$tool" | grep -E "^(test cases:|=+ (ERROR|RACECHECK) SUMMARY)" | sed "s/^/    $tool: /"
  done
  echo
  tables "$LOG_BENCH" bench_kernels
  echo
  tables "$LOG_BENCH" bench_train_step
  echo
  echo "## Issue 14 §4 bar: the trainer against the bare step, same run"
  echo
  if ((${#BAR_LINES[@]})); then printf '%s\n' "${BAR_LINES[@]}"; else echo "not measured (see the step table)"; fi
  echo
  echo "## Recipes of docs/training.md, --device $DEVICE (--steps $RECIPE_STEPS, batch 128)"
  echo
  echo "| run | flags | rc | last loss | non-finite steps | test top-1 | verdict |"
  echo "|---|---|---:|---:|---:|---:|---|"
  ((${#RECIPE_ROWS[@]})) && printf '%s\n' "${RECIPE_ROWS[@]}"
  echo
  tables "$LOG_TORCH" torch_side_by_side
} >"$OUT/summary.md"
cat "$OUT/summary.md"
