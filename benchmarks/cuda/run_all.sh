#!/usr/bin/env bash
# run_all.sh: every bar of issue 18 (bf16 mixed precision and tensor-core attention)
# on one H100/H200 in one command, ours and PyTorch in the same call, within 9
# minutes (VIT_RUN_BUDGET_S, default 530 s), with a verdict for each bar computed
# from what this run measured (benchmarks/cuda/bars.py):
#
#   VIT_SKIP_BUILD=1 VIT_BUILD_DIR=<carried build> bash benchmarks/cuda/run_all.sh
#
# Build on the CPU box and carry the binaries (VIT_SKIP_BUILD=1): a build on the GPU
# machine (configure 120 s + build 300 s caps) leaves no time for the bars.
#
# Steps, bars first. Each runs under `timeout` with the cap shown, cut further to what
# the budget has left after a reserve kept for the steps after it (shown), so the run
# ends in time even if one step hangs; a step that fails is logged and the next runs.
# Expected times are the 2026-12-04 H200 run's where one existed, else estimates.
#
#   step               what                                            cap (s) reserve  expected
#   configure, build   only without VIT_SKIP_BUILD=1                   120, 300    -        -
#   cuda_tests         vit_cuda_tests: every [cuda] test                    60    440      15
#   bench_kernels      bench_cuda_kernels: bf16 LayerNorm/GELU/softmax      60    400      30
#                      (the 80%-of-copy bar), bf16/tf32/fp32 attention at
#                      N 65/197 x D 32/64/80/128, GEMMs, conversions, the rest
#   bench_train_step   bench_cuda_train_step: cifar-tiny b512, vit-s16     120    340      55
#                      b256, vit-b16 b128; fp32, tf32, bf16, each also as
#                      a CUDA graph; peak memory per storage type
#   torch_side_by_side torch_side_by_side.py --suite bars: SDPA bf16       190    250     130
#                      (flash forced, cudnn, efficient, default), eager
#                      bf16, torch.compile bf16, eager fp32, eager tf32,
#                      then bf16 LN/GELU/softmax if time is left
#   acc_cifar_*        `vit train --precision P`, CIFAR subset, cifar-      40    160-     7 x 10
#                      tiny, 20 epochs: bf16 seed 0, bf16 seed 0 again          220
#                      (checkpoints compared with cmp: determinism), bf16
#                      seeds 1 2, fp32 seeds 0 1 2
#   acc_fmnist         `vit train --precision bf16` Fashion-MNIST,        150     75     100
#                      default recipe (50 epochs); skipped with a message
#                      when the data is absent
#   memcheck           compute-sanitizer over vit_cuda_tests without the     45     55-0    20 each
#   initcheck          out-of-memory test (its intended cudaMalloc failure   45
#   synccheck          is an API error to the tool):                         30
#                        ~"GPU out of memory names the allocation size"
#   racecheck          the same, also without the N=1024 attention test      60
#                      (minutes under racecheck), time-boxed:
#                        ~"cuda attention matches the CPU op at N 1024"
#   extras             (VIT_EXTRAS) each group only where its whole cap still fits, in
#                      this order (a group that does not fit is skipped, its bars "not
#                      measured"):
#     train_bar        issue 14's bar: `vit train --device cuda --precision            60
#                      VIT_BAR_PRECISION`, cifar-tiny, batch 128, up to 400 steps,    (+30, +15)
#                      against bench_cuda_train_step's cifar-tiny b128 rate of this
#                      run (bars: >= 90% of it, data wait <= 1%); the b128 row is
#                      measured by bench_train_bar (cap 30) when train.csv lacks it;
#                      without a CIFAR subset, cifar_data (cap 15): make_tiny_data's
#                      files, each training file x 80 (5200 images; this bar only)
#     dist_nccl        vit_dist_gpu_tests: NCCL communicator + reducer, one rank       60
#     dist_mpi         issue 15: 2 ranks sharing the GPU (MPI staged, batch 64 each)  30+60+10
#                      vs 1 process at 128, 5 SGD steps, compare_weights within 1e-5
#                      (needs the CIFAR subset, compare_weights and mpirun)
#     recipes          the recipes of docs/training.md in bf16, --steps 30: rc 0 and   30 each
#                      a finite last loss
#     recipes_fp32     the same in fp32                                               30 each
#   summary            bars.py over the CSVs (issue 18's bars, then the extras'), summary.md
#
# Expected: ~485 s before the extras, so a default call leaves room for few of them (the
# step table says which were skipped and why); VIT_MAIN=0 runs the extras alone.
#
# Files under $OUT (default /tmp/out):
#   summary.md       the bars with their verdicts first, then the step table, tests and
#                    sanitizers, every table; also printed last on stdout
#   bars.csv         the bar rows (bar, case, ours, reference, ratio, threshold, verdict):
#                    issue 18's, then the extras' ("issue 14: ...", "issue 15: ...")
#   build_test.log   environment, configure, build, cuda_tests and the four sanitizers
#   bench.log        bench_cuda_kernels and bench_cuda_train_step
#   kernels.csv      bench_cuda_kernels' rows (kernel,dtype,shape,...)
#   train.csv        bench_cuda_train_step's rows
#   torch.log torch.csv   torch_side_by_side.py
#   vit_train.log    every trainer run (output): accuracy, train_bar, dist, recipes
#   accuracy.csv     the accuracy runs (run,dataset,model,precision,seed,epochs,rc,seconds,run_dir,note)
#   acc/<run>/       each accuracy run's metrics.csv and config.json
#   checks.csv       check,rc,failed,errors,summary of the tests, sanitizers, determinism,
#                    and the extras train_bar, dist_nccl, dist_one_rank, dist_two_ranks_staged,
#                    dist_compare (rc "skipped" with the reason when not run)
#   train_bar/       the train_bar run's metrics.csv and config.json
#   train_bar.csv    bench_train_bar's rows (cifar-tiny b128), when it ran
# Run directories and generated data go to VIT_WORK_DIR (default /tmp/vit_run_all).
#
# Environment:
#   OUT                where the files go (default /tmp/out)
#   VIT_RUN_BUDGET_S   the whole run's budget in seconds (default 530)
#   VIT_BUILD_DIR      build folder (default <repo>/build-gpu)
#   VIT_SKIP_BUILD=1   use VIT_BUILD_DIR/bin as it is (no configure, no build)
#   VIT_JOBS           parallel build jobs (default: all cores)
#   CUDA_ARCH          CUDA architectures (default: the project's, sm_90 code + PTX)
#   VIT_CIFAR_DIR      the CIFAR-10 subset (data_batch_1..5.bin, test_batch.bin) for the
#                      CIFAR accuracy bar; default: shared/data/cifar10-subset in or beside
#                      the repository; none: that bar is skipped with a message
#   VIT_FMNIST_DIR     Fashion-MNIST (default /usr/share/datasets/fashion-mnist)
#   VIT_CIFAR_SEEDS    seeds of the CIFAR runs (default "0 1 2")
#   VIT_CIFAR_EPOCHS   epochs of the CIFAR runs (default 20)
#   VIT_FMNIST_EPOCHS  epochs of the Fashion-MNIST run (default: the recipe's, 50)
#   VIT_ACC_STEPS      --steps for every accuracy run (default none: whole runs; set, the
#                      runs end early and the accuracy bars read "not measured": for
#                      checking this script, e.g. with VIT_TRAIN_DEVICE=cpu)
#   VIT_TRAIN_DEVICE   device of the trainer runs (default cuda; cpu checks this script's
#                      trainer steps on a machine without a GPU, with VIT_ACC_STEPS)
#   VIT_TRAIN_STEPS    bench_cuda_train_step --steps (default 20; warm-up 5)
#   VIT_SANITIZER_S    cap of memcheck and initcheck (default 45; synccheck 2/3 of it;
#                      0 skips the three)
#   VIT_RACECHECK_S    cap of racecheck (default 60; 0 skips it)
#   VIT_SANITIZER      path of compute-sanitizer (default: PATH, then $CUDA_HOME/bin,
#                      /usr/local/cuda/bin, the folder of nvcc)
#   VIT_PYTHON         the Python with PyTorch (default python3)
#   VIT_TORCH_ARGS     extra arguments for torch_side_by_side.py (e.g. --no-compile)
#   VIT_MAIN           0: skip issue 18's steps (tests, benchmarks, PyTorch, accuracy,
#                      sanitizers: their bars read "not measured"), so the whole budget goes
#                      to the extras, e.g. VIT_MAIN=0 VIT_EXTRAS="train_bar dist_nccl dist_mpi"
#   VIT_EXTRAS         1 (default): every extra; 0: none; or a list of the groups to run,
#                      e.g. "train_bar dist_mpi" (train_bar dist_nccl dist_mpi recipes
#                      recipes_fp32; they run in the order above whatever the list's)
#   VIT_BAR_STEPS      steps of the train_bar run (default 400, at most 10 epochs)
#   VIT_BAR_PRECISION  precision of the train_bar run and of the bench row it is held to
#                      (default fp32; tf32, bf16)
#   VIT_BAR_S          cap of the train_bar run (default 60)
#   VIT_RECIPE_STEPS   steps of each recipe run (default 30)
#   VIT_WORK_DIR       run directories and generated data (default /tmp/vit_run_all)
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
SAN_S=${VIT_SANITIZER_S:-45}
RACE_S=${VIT_RACECHECK_S:-60}
RECIPE_STEPS=${VIT_RECIPE_STEPS:-30}
DEVICE=${VIT_TRAIN_DEVICE:-cuda}
PY=${VIT_PYTHON:-python3}
FMNIST=${VIT_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
CIFAR_SEEDS=${VIT_CIFAR_SEEDS:-0 1 2}
CIFAR_EPOCHS=${VIT_CIFAR_EPOCHS:-20}
FMNIST_EPOCHS=${VIT_FMNIST_EPOCHS:-}
ACC_STEPS=${VIT_ACC_STEPS:-}
TRAIN_STEPS=${VIT_TRAIN_STEPS:-20}
BAR_STEPS=${VIT_BAR_STEPS:-400}
BAR_PRECISION=${VIT_BAR_PRECISION:-fp32}
BAR_S=${VIT_BAR_S:-60}
MAIN=${VIT_MAIN:-1}
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
ACC_CSV=$OUT/accuracy.csv
CHECKS_CSV=$OUT/checks.csv
STATUS=()
RESERVE=0 # seconds a step leaves for the steps after it
LAST_RC=0

left() { echo $((BUDGET - ($(date +%s) - T0))); }
elapsed() { echo $(($(date +%s) - T0)); }

# step NAME LOG CAP CMD...: runs CMD under `timeout CAP` (CAP cut to what is left of
# the budget minus RESERVE), appending its output to LOG under a "===== NAME: " header;
# records rc and time in STATUS, rc in LAST_RC and the seconds in LAST_S.
step() {
  local name=$1 log=$2 cap=$3
  shift 3
  local l
  l=$(($(left) - RESERVE))
  if ((cap > l)); then cap=$l; fi
  if ((cap < 5)); then
    STATUS+=("| $name | - | 0 | skipped: no time left in the ${BUDGET}s budget |")
    echo "== $name: skipped (budget spent)"
    echo "===== $name: skipped (budget spent, at +$(elapsed)s)" >>"$log"
    LAST_RC=99 LAST_S=0
    return 99
  fi
  echo "== $name (cap ${cap}s, at +$(elapsed)s): $*"
  echo "===== $name: $* (cap ${cap}s, at +$(elapsed)s)" >>"$log"
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
  LAST_RC=$rc LAST_S=$dt
  return $rc
}

# fits CAP: true when a step of CAP seconds fits in what is left after RESERVE.
fits() { (($(left) - RESERVE >= $1)); }

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

# csv_field TEXT: TEXT as one CSV field (quoted, inner quotes doubled).
csv_field() { local s=${1//\"/\"\"}; printf '"%s"' "$s"; }
# check_row CHECK RC FAILED ERRORS SUMMARY: one row of checks.csv.
check_row() { echo "$1,$2,$3,$4,$(csv_field "$5")" >>"$CHECKS_CSV"; }
# acc_row RUN DATASET MODEL PRECISION SEED EPOCHS RC SECONDS RUN_DIR NOTE: one row of accuracy.csv.
acc_row() { echo "$1,$2,$3,$4,$5,$6,$7,$8,$9,$(csv_field "${10}")" >>"$ACC_CSV"; }

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
echo "run,dataset,model,precision,seed,epochs,rc,seconds,run_dir,note" >"$ACC_CSV"
echo "check,rc,failed,errors,summary" >"$CHECKS_CSV"
rm -f "$OUT/kernels.csv" "$OUT/train.csv" "$OUT/torch.csv" "$OUT/bars.csv" "$OUT/summary.md" "$OUT/train_bar.csv"
rm -rf "${OUT:?}/acc" "${OUT:?}/train_bar"
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
  echo "budget ${BUDGET}s, build dir $BUILD, work dir $WORK, trainer device $DEVICE"
} >>"$LOG_BUILD" 2>&1
[[ -z $GPU_NAME ]] && echo "run_all.sh: nvidia-smi sees no GPU; the GPU steps will fail fast" | tee -a "$LOG_BUILD"

# ---- configure + build ----------------------------------------------------------------
if [[ ${VIT_SKIP_BUILD:-0} == 1 ]]; then
  skip build "VIT_SKIP_BUILD=1: using $BIN"
else
  echo "run_all.sh: building here; at 9 minutes in all, the bars will not fit after a build:" \
    "build on the CPU box and carry it (VIT_SKIP_BUILD=1)" | tee -a "$LOG_BUILD"
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
    targets=(vit_cuda_tests bench_cuda_kernels bench_cuda_train_step vit_cli make_tiny_data)
    grep -q '^VIT_NCCL:BOOL=ON' "$BUILD/CMakeCache.txt" && targets+=(vit_dist_gpu_tests)
    grep -q '^VIT_MPI:BOOL=ON' "$BUILD/CMakeCache.txt" && targets+=(compare_weights)
    step build "$LOG_BUILD" 300 cmake --build "$BUILD" -j "${VIT_JOBS:-$(nproc)}" --target "${targets[@]}"
  fi
  if ((LAST_RC != 0)); then
    echo "build failed: last lines of $LOG_BUILD"
    tail -40 "$LOG_BUILD"
  fi
fi

# ---- [cuda] tests ------------------------------------------------------------------------
RESERVE=440
if ((!MAIN)); then
  skip cuda_tests "VIT_MAIN=0"
  check_row cuda_tests skipped "" "" "VIT_MAIN=0"
elif have vit_cuda_tests; then
  step cuda_tests "$LOG_BUILD" 60 "$BIN/vit_cuda_tests" --durations yes
  rc=$LAST_RC
  line=$(section "$LOG_BUILD" cuda_tests | grep -E "^(All tests passed|test cases:)" | tail -1)
  failed=$(grep -Eo '[0-9]+ failed' <<<"$line" | grep -Eo '^[0-9]+' | head -1)
  [[ $line == "All tests passed"* ]] && failed=0
  if ((rc == 99)); then
    check_row cuda_tests skipped "" "" "no time left in the ${BUDGET}s budget"
  else
    check_row cuda_tests "$rc" "${failed:-}" "" "${line:-no summary line (rc $rc)}"
  fi
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
else
  skip cuda_tests "$BIN/vit_cuda_tests missing"
  check_row cuda_tests skipped "" "" "$BIN/vit_cuda_tests missing"
fi

# ---- our benchmarks -------------------------------------------------------------------------
RESERVE=400
if ((!MAIN)); then
  skip bench_kernels "VIT_MAIN=0"
elif have bench_cuda_kernels; then
  step bench_kernels "$LOG_BENCH" 60 "$BIN/bench_cuda_kernels" "$OUT/kernels.csv"
  section "$LOG_BENCH" bench_kernels | grep -q "nothing measured" && note_status "nothing measured"
  missing=$(grep -c 'missing launcher' "$OUT/kernels.csv" 2>/dev/null)
  ((${missing:-0} > 0)) && note_status "$missing rows: missing launcher"
else
  skip bench_kernels "$BIN/bench_cuda_kernels missing"
fi
RESERVE=340
if ((!MAIN)); then
  skip bench_train_step "VIT_MAIN=0"
elif have bench_cuda_train_step; then
  step bench_train_step "$LOG_BENCH" 120 "$BIN/bench_cuda_train_step" --csv "$OUT/train.csv" \
    --steps "$TRAIN_STEPS" --warmup 5 --configs "cifar-tiny:512,vit-s16:256,vit-b16:128" \
    --precisions "fp32,tf32,bf16,fp32-graph,tf32-graph,bf16-graph"
  section "$LOG_BENCH" bench_train_step | grep -q "nothing measured" && note_status "nothing measured"
else
  skip bench_train_step "$BIN/bench_cuda_train_step missing"
fi

# ---- PyTorch on the same GPU, right after ours ------------------------------------------------
RESERVE=250
torch_cap=$((190 < $(left) - RESERVE ? 190 : $(left) - RESERVE))
if ((!MAIN)); then
  skip torch_side_by_side "VIT_MAIN=0"
elif ((torch_cap < 30)); then
  skip torch_side_by_side "under 30 s left"
else
  ours=()
  [[ -s $OUT/kernels.csv ]] && ours+=(--ours-kernels "$OUT/kernels.csv")
  [[ -s $OUT/train.csv ]] && ours+=(--ours-train "$OUT/train.csv")
  # shellcheck disable=SC2086  # VIT_TORCH_ARGS is a list of words
  step torch_side_by_side "$LOG_TORCH" "$torch_cap" "$PY" "$ROOT/benchmarks/cuda/torch_side_by_side.py" \
    --suite bars --csv "$OUT/torch.csv" --steps "$TRAIN_STEPS" --warmup 5 --deadline-s $((torch_cap - 12)) \
    "${ours[@]}" ${VIT_TORCH_ARGS:-}
fi

# ---- accuracy: the trainer in bf16 ----------------------------------------------------------------
# CIFAR subset: VIT_CIFAR_DIR, else shared/data/cifar10-subset in or beside the repository.
CIFAR="" CIFAR_WHY="no CIFAR subset (VIT_CIFAR_DIR unset; no shared/data/cifar10-subset in or beside the repository)"
if [[ -n ${VIT_CIFAR_DIR:-} ]]; then
  cands=("$VIT_CIFAR_DIR")
  CIFAR_WHY="VIT_CIFAR_DIR=$VIT_CIFAR_DIR has no data_batch_1.bin/test_batch.bin"
else
  cands=("$ROOT/shared/data/cifar10-subset" "$ROOT/../shared/data/cifar10-subset")
fi
for d in "${cands[@]}"; do
  if [[ -f $d/data_batch_1.bin && -f $d/test_batch.bin ]]; then
    CIFAR=$(cd "$d" && pwd)
    break
  fi
done
[[ -z $CIFAR ]] && echo "run_all.sh: $CIFAR_WHY: the CIFAR accuracy bar is skipped" | tee -a "$LOG_TRAIN"
steps_args=()
[[ -n $ACC_STEPS ]] && steps_args=(--steps "$ACC_STEPS")

# acc_run NAME DATASET DATA MODEL PRECISION SEED EPOCHS RECIPE_EPOCHS CAP [FLAGS...]: one
# trainer run into $WORK/acc/NAME (--epochs EPOCHS unless empty: RECIPE_EPOCHS is what the
# recipe then runs, for accuracy.csv), its metrics.csv and config.json copied to $OUT/acc/NAME.
acc_run() {
  local name=$1 dataset=$2 data=$3 model=$4 prec=$5 seed=$6 epochs=$7 recipe_epochs=$8 cap=$9
  shift 9
  local dir=$WORK/acc/$name ep=()
  [[ -n $epochs ]] && ep=(--epochs "$epochs")
  rm -rf "$dir"
  step "acc_$name" "$LOG_TRAIN" "$cap" "$BIN/vit" train --dataset "$dataset" --data "$data" --model "$model" \
    --device "$DEVICE" --precision "$prec" --seed "$seed" "${ep[@]}" "${steps_args[@]}" --log-every 100 \
    --out "$dir" "$@"
  local rc=$LAST_RC s=$LAST_S
  mkdir -p "$OUT/acc/$name"
  cp "$dir/metrics.csv" "$dir/config.json" "$OUT/acc/$name/" 2>/dev/null
  local top1
  top1=$(awk -F, "$CSV_HEADER"'$c["kind"] == "epoch" { a = $c["test_top1"]; n++ }
    END { if (n) printf "%.2f%% after %d epochs", 100 * a, n }' "$dir/metrics.csv" 2>/dev/null)
  if ((rc == 99)); then
    acc_row "${name%%_*}" "$dataset" "$model" "$prec" "$seed" "${epochs:-$recipe_epochs}" skipped 0 "" \
      "no time left in the ${BUDGET}s budget"
  else
    note_status "${top1:-no epoch row}"
    acc_row "${name%%_*}" "$dataset" "$model" "$prec" "$seed" "${epochs:-$recipe_epochs}" "$rc" "$s" "acc/$name" ""
  fi
  echo "accuracy run $name: rc $rc, ${s}s, ${top1:-no epoch row}" >>"$LOG_TRAIN"
  return "$rc"
}

if ((!MAIN)); then
  skip accuracy "VIT_MAIN=0"
  check_row determinism skipped "" "" "VIT_MAIN=0"
elif ! have vit; then
  skip accuracy "$BIN/vit missing"
  acc_row cifar cifar10 cifar-tiny bf16 - "$CIFAR_EPOCHS" skipped 0 "" "$BIN/vit missing"
  acc_row fmnist fashion-mnist fmnist-tiny bf16 0 50 skipped 0 "" "$BIN/vit missing"
  check_row determinism skipped "" "" "$BIN/vit missing"
else
  # CIFAR: bf16 seed 0 twice (determinism), the other bf16 seeds, then fp32.
  if [[ -z $CIFAR ]]; then
    skip acc_cifar "$CIFAR_WHY"
    acc_row cifar cifar10 cifar-tiny bf16 - "$CIFAR_EPOCHS" skipped 0 "" "$CIFAR_WHY"
    check_row determinism skipped "" "" "$CIFAR_WHY"
  else
    read -ra seeds <<<"$CIFAR_SEEDS"
    first=${seeds[0]:-0}
    runs=("bf16 $first" "bf16 $first repeat")
    for s in "${seeds[@]:1}"; do runs+=("bf16 $s"); done
    for s in "${seeds[@]}"; do runs+=("fp32 $s"); done
    n=${#runs[@]}
    for i in "${!runs[@]}"; do
      read -r prec seed again <<<"${runs[$i]}"
      # Keep ~10 s for each later CIFAR run, the Fashion-MNIST run and the sanitizers.
      RESERVE=$((10 * (n - i - 1) + 85 + 75))
      name=cifar_${prec}_s${seed}${again:+_repeat}
      if [[ -n $again ]]; then
        # The repeat is not an accuracy sample: its row goes to checks.csv only.
        dir=$WORK/acc/$name
        rm -rf "$dir"
        step "acc_$name" "$LOG_TRAIN" 40 "$BIN/vit" train --dataset cifar10 --data "$CIFAR" --model cifar-tiny \
          --device "$DEVICE" --precision bf16 --seed "$seed" --epochs "$CIFAR_EPOCHS" "${steps_args[@]}" \
          --log-every 100 --out "$dir"
        a=$WORK/acc/cifar_bf16_s${seed}/last.safetensors b=$dir/last.safetensors
        if [[ -f $a && -f $b ]]; then
          cmp "$a" "$b" >>"$LOG_TRAIN" 2>&1
          crc=$?
          what=$([[ $crc == 0 ]] && echo "bitwise equal" || echo "DIFFERENT")
          check_row determinism "$crc" "" "" "bf16 seed $seed run twice: last.safetensors $what ($(stat -c %s "$b") bytes)"
          note_status "checkpoints $what"
        else
          check_row determinism skipped "" "" "a checkpoint is missing ($a, $b)"
        fi
        continue
      fi
      acc_run "$name" cifar10 "$CIFAR" cifar-tiny "$prec" "$seed" "$CIFAR_EPOCHS" "$CIFAR_EPOCHS" 40
    done
  fi
  # Fashion-MNIST, bf16, the default recipe (fmnist-tiny, 50 epochs).
  RESERVE=75
  if compgen -G "$FMNIST/train-images-idx3-ubyte*" >/dev/null; then
    acc_run fmnist_bf16 fashion-mnist "$FMNIST" fmnist-tiny bf16 0 "$FMNIST_EPOCHS" 50 150
  else
    why="no Fashion-MNIST at $FMNIST (VIT_FMNIST_DIR): skipped"
    skip acc_fmnist "$why"
    echo "run_all.sh: $why" | tee -a "$LOG_TRAIN"
    acc_row fmnist fashion-mnist fmnist-tiny bf16 0 "${FMNIST_EPOCHS:-50}" skipped 0 "" "$why"
  fi
fi

# ---- compute-sanitizer over the [cuda] tests ------------------------------------------------------
if ((!MAIN)); then
  skip sanitizers "VIT_MAIN=0"
  for tool in memcheck initcheck synccheck racecheck; do check_row "$tool" skipped "" "" "VIT_MAIN=0"; done
elif have vit_cuda_tests; then
  SAN_EXCLUDE=("~\"$OOM_TEST\"")
  if [[ -z $SAN ]]; then
    skip sanitizers "compute-sanitizer not found (PATH, \$CUDA_HOME/bin, /usr/local/cuda/bin)"
    for tool in memcheck initcheck synccheck racecheck; do check_row "$tool" skipped "" "" "compute-sanitizer not found"; done
  else
    # A run cut by its cap still logs every error it found up to then. --error-exitcode
    # 86 tells sanitizer findings apart from failing tests.
    for tool in memcheck initcheck synccheck racecheck; do
      exclude=("${SAN_EXCLUDE[@]}")
      case $tool in
        # Each keeps ~15-20 s for each tool after it.
        memcheck) cap=$SAN_S RESERVE=55 ;;
        initcheck) cap=$SAN_S RESERVE=35 ;;
        synccheck) cap=$((2 * SAN_S / 3)) RESERVE=20 ;;
        racecheck) cap=$RACE_S RESERVE=0 exclude+=("~\"$N1024_TEST\"") ;;
      esac
      if ((cap <= 0)); then
        skip "$tool" "cap 0 (VIT_SANITIZER_S / VIT_RACECHECK_S)"
        check_row "$tool" skipped "" "" "cap 0"
        continue
      fi
      step "$tool" "$LOG_BUILD" "$cap" "$SAN" --tool "$tool" --error-exitcode 86 "$BIN/vit_cuda_tests" "${exclude[@]}"
      rc=$LAST_RC
      verdict=$(section "$LOG_BUILD" "$tool" | grep -Eo '(ERROR|RACECHECK) SUMMARY: .*' | tail -1)
      errors=$(grep -Eo 'SUMMARY: [0-9]+' <<<"$verdict" | grep -Eo '[0-9]+$')
      if ((rc == 99)); then
        check_row "$tool" skipped "" "" "no time left in the ${BUDGET}s budget"
        continue
      fi
      ((rc == 86)) && note_status "sanitizer errors"
      note_status "${verdict:-no summary line (cut by its cap?); $(section "$LOG_BUILD" "$tool" | grep -ci 'race reported\|hazard') hazard lines before that}"
      check_row "$tool" "$rc" "" "${errors:-}" "${verdict:-no summary line (rc $rc)}"
    done
  fi
else
  for tool in memcheck initcheck synccheck racecheck; do check_row "$tool" skipped "" "" "$BIN/vit_cuda_tests missing"; done
fi

# ---- extras, where their whole cap still fits -----------------------------------------------------
# The steps of earlier issues first (issue 14's trainer bar, issue 15's data parallel), then the
# recipes. Each group runs only when its whole cap fits in what is left (after RESERVE for the
# summary); a group that does not fit is skipped with that reason in the step table, and its
# bars in summary.md read "not measured". Measured figures go to checks.csv and $OUT/train_bar/;
# bars.py gives the verdicts.
EXTRAS_ALL="train_bar dist_nccl dist_mpi recipes recipes_fp32"
case ${VIT_EXTRAS:-1} in
  1) EXTRAS=$EXTRAS_ALL ;;
  0) EXTRAS="" ;;
  *) EXTRAS=$VIT_EXTRAS ;;
esac
for e in $EXTRAS; do
  [[ " $EXTRAS_ALL " == *" $e "* ]] || echo "run_all.sh: VIT_EXTRAS names '$e', which is none of: $EXTRAS_ALL" | tee -a "$LOG_BUILD"
done
want_extra() { [[ " $EXTRAS " == *" $1 "* ]]; }
# extra_skip NAME CHECKS REASON: NAME in the step table, each of CHECKS as skipped in checks.csv.
extra_skip() {
  local c
  skip "$1" "$3"
  for c in $2; do check_row "$c" skipped "" "" "$3"; done
}
RESERVE=8
RECIPE_ROWS=()

# bench_rate CSV PRESET BATCH PRECISION: img_per_s of that row of CSV.
bench_rate() {
  [[ -f $1 ]] || return 1
  awk -F, -v m="$2" -v b="$3" -v p="$4" "$CSV_HEADER"'
    $c["model"] == m && $c["batch"] == b && $c["precision"] == p && $c["img_per_s"] + 0 > 0 { r = $c["img_per_s"] }
    END { if (r == "") exit 1; print r }' "$1"
}

# Issue 14's bar: `vit train --device cuda`, cifar-tiny, batch 128, end to end, against the bare
# step of bench_cuda_train_step (cifar-tiny, batch 128, BAR_PRECISION) measured in this run:
# images/s >= 90% of it, data wait <= 1%. The default configs of bench_train_step have no
# batch-128 row, so one cheap config is measured here (train_bar.csv) unless train.csv has it.
# Data: the CIFAR subset, else make_tiny_data's files (each training file repeated 80 times:
# 5200 images, 40 steps per epoch), which serve this bar only.
if want_extra train_bar; then
  need_bench=1 need_data=0 group=$BAR_S
  bench_rate "$OUT/train.csv" cifar-tiny 128 "$BAR_PRECISION" >/dev/null && need_bench=0
  ((need_bench)) && group=$((group + 30))
  [[ -z $CIFAR ]] && need_data=1 group=$((group + 15))
  if ! have vit; then
    extra_skip train_bar train_bar "$BIN/vit missing"
  elif ((need_data)) && ! have make_tiny_data; then
    extra_skip train_bar train_bar "no CIFAR subset and $BIN/make_tiny_data missing"
  elif ! fits "$group"; then
    extra_skip train_bar train_bar "needs ${group}s, $(($(left) - RESERVE))s left"
  else
    bar_data=$CIFAR bar_src="train.csv" data_rc=0
    if ((need_data)); then
      rm -rf "${WORK:?}/tiny" "${WORK:?}/cifar10"
      step cifar_data "$LOG_TRAIN" 15 "$BIN/make_tiny_data" "$WORK/tiny"
      data_rc=$LAST_RC
      if ((data_rc == 0)); then
        mkdir -p "$WORK/cifar10"
        for f in "$WORK"/tiny/cifar10/data_batch_*.bin; do
          for _ in $(seq 80); do cat "$f"; done >"$WORK/cifar10/$(basename "$f")"
        done
        cp "$WORK/tiny/cifar10/test_batch.bin" "$WORK/tiny/cifar10/batches.meta.txt" "$WORK/cifar10/" 2>/dev/null
        bar_data=$WORK/cifar10
        note_status "$(($(cat "$WORK"/cifar10/data_batch_*.bin | wc -c) / 3073)) training images (make_tiny_data x 80)"
      fi
    fi
    if ((need_bench)); then
      bar_src="train_bar.csv"
      if have bench_cuda_train_step; then
        step bench_train_bar "$LOG_BENCH" 30 "$BIN/bench_cuda_train_step" --csv "$OUT/train_bar.csv" \
          --steps "$TRAIN_STEPS" --warmup 5 --configs cifar-tiny:128 \
          --precisions "$BAR_PRECISION,$BAR_PRECISION-graph"
      else
        skip bench_train_bar "$BIN/bench_cuda_train_step missing"
      fi
    fi
    if [[ -z $bar_data ]]; then
      skip train_bar "make_tiny_data failed"
      check_row train_bar skipped "" "" "no data: make_tiny_data failed (rc $data_rc)"
    else
      rm -rf "${WORK:?}/train_bar"
      step train_bar "$LOG_TRAIN" "$BAR_S" "$BIN/vit" train --dataset cifar10 --data "$bar_data" --model cifar-tiny \
        --batch 128 --device "$DEVICE" --precision "$BAR_PRECISION" --epochs 10 --steps "$BAR_STEPS" --log-every 20 --seed 0 --out "$WORK/train_bar"
      rc=$LAST_RC
      mkdir -p "$OUT/train_bar"
      cp "$WORK/train_bar/metrics.csv" "$WORK/train_bar/config.json" "$OUT/train_bar/" 2>/dev/null
      check_row train_bar "$rc" "" "" "vit train --device $DEVICE --precision $BAR_PRECISION, data $bar_data; bare step: $bar_src"
    fi
  fi
else
  check_row train_bar skipped "" "" "not in VIT_EXTRAS"
fi

# Issue 15: NCCL on one rank (the communicator and gradient-reducer cases on device buffers).
if ! want_extra dist_nccl; then
  check_row dist_nccl skipped "" "" "not in VIT_EXTRAS"
elif ! have vit_dist_gpu_tests; then
  extra_skip dist_nccl dist_nccl "$BIN/vit_dist_gpu_tests missing (a build without NCCL)"
elif ! fits 60; then
  extra_skip dist_nccl dist_nccl "needs 60s, $(($(left) - RESERVE))s left"
else
  step dist_nccl "$LOG_BUILD" 60 "$BIN/vit_dist_gpu_tests"
  rc=$LAST_RC
  line=$(section "$LOG_BUILD" dist_nccl | grep -E "^(All tests passed|test cases:)" | tail -1)
  check_row dist_nccl "$rc" "" "" "${line:-no summary line (rc $rc)}"
fi

# Issue 15: two ranks sharing this GPU (MPI staged through pinned memory) against one process
# with the doubled batch: 5 SGD steps, weights within 1e-5 (compare_weights: max|a - b| over
# max|b|, tensor by tensor).
DIST_CHECKS="dist_one_rank dist_two_ranks_staged dist_compare"
if ! want_extra dist_mpi; then
  for c in $DIST_CHECKS; do check_row "$c" skipped "" "" "not in VIT_EXTRAS"; done
elif [[ -z $CIFAR ]] || ! have vit compare_weights || ! command -v mpirun >/dev/null; then
  why=$( { [[ -z $CIFAR ]] && echo "no CIFAR subset"; have vit || echo "$BIN/vit missing";
    have compare_weights || echo "$BIN/compare_weights missing (a build without VIT_MPI)";
    command -v mpirun >/dev/null || echo "mpirun not found"; } | paste -sd ';' | sed 's/;/; /g')
  extra_skip dist_mpi "$DIST_CHECKS" "$why"
elif ! fits 100; then
  extra_skip dist_mpi "$DIST_CHECKS" "needs 100s, $(($(left) - RESERVE))s left"
else
  dp=(train --dataset cifar10 --data "$CIFAR" --device "$DEVICE" --no-augment --optimizer sgd
    --steps 5 --epochs 1 --log-every 1 --seed 0 --threads 2)
  rm -rf "${WORK:?}"/dp_one "${WORK:?}"/dp_two
  step dist_one_rank "$LOG_TRAIN" 30 "$BIN/vit" "${dp[@]}" --batch 128 --out "$WORK/dp_one"
  check_row dist_one_rank "$LAST_RC" "" "" "vit train --device $DEVICE, batch 128, 5 SGD steps"
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    step dist_two_ranks_staged "$LOG_TRAIN" 60 mpirun --oversubscribe -np 2 "$BIN/vit" "${dp[@]}" \
    --batch 64 --out "$WORK/dp_two"
  check_row dist_two_ranks_staged "$LAST_RC" "" "" "mpirun -np 2 vit train --device $DEVICE, batch 64 x 2, 5 SGD steps"
  if [[ -f $WORK/dp_one/last.safetensors && -f $WORK/dp_two/last.safetensors ]]; then
    step dist_compare "$LOG_TRAIN" 10 "$BIN/compare_weights" "$WORK/dp_one/last.safetensors" \
      "$WORK/dp_two/last.safetensors" 1e-5
    rc=$LAST_RC
    line=$(section "$LOG_TRAIN" dist_compare | grep -E '^compare_weights: ' | tail -1)
    check_row dist_compare "$rc" "" "" "${line:-no compare_weights line (rc $rc)}"
  else
    skip dist_compare "a checkpoint is missing"
    check_row dist_compare skipped "" "" "a checkpoint is missing (dp_one, dp_two)"
  fi
fi

# The recipes of docs/training.md, short: bf16 (issue 18), then fp32 (as before issue 18).
RECIPES=(
  "cifar_tiny|--model cifar-tiny --randaugment-n 2 --randaugment-m 9 --drop-path 0.1"
  "cifar_small|--model cifar-small --randaugment-n 2 --randaugment-m 9 --drop-path 0.1 --mixup 0.8 --cutmix 1.0"
  "cifar_deep|--model cifar-deep --randaugment-n 2 --randaugment-m 9 --drop-path 0.1 --erasing 0.25"
  "everything|--model cifar-tiny --randaugment-n 2 --randaugment-m 9 --mixup 0.8 --cutmix 1.0 --erasing 0.25 --drop-path 0.1 --dropout 0.1"
)
for prec in bf16 fp32; do
  group=recipes$([[ $prec == fp32 ]] && echo _fp32)
  want_extra "$group" || continue
  for r in "${RECIPES[@]}"; do
    name=recipe_${r%%|*}$([[ $prec == fp32 ]] && echo _fp32)
    read -ra flags <<<"${r#*|}"
    if [[ -z $CIFAR ]] || ! have vit; then
      skip "$name" "no CIFAR subset or $BIN/vit missing"
      continue
    fi
    if ! fits 30; then
      skip "$name" "needs 30s, $(($(left) - RESERVE))s left"
      continue
    fi
    rm -rf "${WORK:?}/$name"
    step "$name" "$LOG_TRAIN" 30 "$BIN/vit" train --dataset cifar10 --data "$CIFAR" "${flags[@]}" --precision "$prec" \
      --batch 128 --device "$DEVICE" --epochs 1 --steps "$RECIPE_STEPS" --log-every 10 --seed 0 --out "$WORK/$name"
    rc=$LAST_RC
    loss=$(awk -F, "$CSV_HEADER"'$c["kind"] == "step" { l = $c["loss"]; n++ } END { if (n) print (l == "" ? "nan" : l) }' \
      "$WORK/$name/metrics.csv" 2>/dev/null)
    verdict=PASS
    if ((rc != 0)); then
      verdict="FAIL (rc $rc)"
    elif ! [[ ${loss:-nan} =~ ^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$ ]]; then
      verdict="FAIL (last loss ${loss:-none})"
    fi
    RECIPE_ROWS+=("| $name | $prec | \`${flags[*]}\` | $rc | ${loss:-none} | $verdict |")
  done
done
[[ -z $EXTRAS ]] && skip extras "VIT_EXTRAS=0"

# ---- summary --------------------------------------------------------------------------------
BARS_PY=$(command -v python3 || echo "$PY")
"$BARS_PY" "$ROOT/benchmarks/cuda/bars.py" "$OUT" --csv "$OUT/bars.csv" --bar-precision "$BAR_PRECISION" >"$WORK/bars.md" 2>&1 ||
  echo "bars.py failed (rc $?): see above" >>"$WORK/bars.md"
{
  echo "# run_all.sh summary ($(elapsed) s of ${BUDGET} s)"
  echo
  sed '/^=====/,$d' "$LOG_BUILD" | sed 's/^/    /'
  echo
  cat "$WORK/bars.md"
  echo
  echo "## Steps"
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
  tables "$LOG_TORCH" torch_side_by_side
  if ((${#RECIPE_ROWS[@]})); then
    echo
    echo "## Extras: recipes of docs/training.md, --device $DEVICE (--steps $RECIPE_STEPS, batch 128)"
    echo
    echo "| run | precision | flags | rc | last loss | verdict |"
    echo "|---|---|---|---:|---:|---|"
    printf '%s\n' "${RECIPE_ROWS[@]}"
  fi
} >"$OUT/summary.md"
cat "$OUT/summary.md"
