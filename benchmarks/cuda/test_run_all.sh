#!/usr/bin/env bash
# test_run_all.sh: checks benchmarks/cuda/run_all.sh and bars.py on a machine with no
# GPU, in seconds: every binary, compute-sanitizer and PyTorch are stand-ins written
# into a temporary folder that print made-up figures, chosen so that each bar takes
# both verdicts somewhere (this checks the plumbing and the verdict logic, never a
# figure). Then it asserts the verdicts in bars.csv and the files run_all.sh leaves.
# Four calls: the whole script with every extra (issue 14's trainer bar reading
# train.csv's batch-128 row, issue 15's NCCL and two-rank runs, the recipes in bf16 and
# fp32: PASS); then without CIFAR data (make_tiny_data's files, the batch-128 row
# measured by its own bench step, a slow trainer and a failing NCCL test: FAIL); then
# the two-rank run's weights too far apart (FAIL) and a trainer cap that cannot fit
# (not measured); and VIT_MAIN=0, the extras alone.
#
#   bash benchmarks/cuda/test_run_all.sh        # prints "N passed, M failed"; rc 1 on a failure
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
T=$(mktemp -d /tmp/test_run_all.XXXXXX)
# VIT_TEST_KEEP=1 keeps the folder (each call's OUT is $T/<call>/out) and prints its name.
if [[ ${VIT_TEST_KEEP:-0} == 1 ]]; then echo "test_run_all: files in $T"; else trap 'rm -rf "$T"' EXIT; fi
B=$T/build/bin
mkdir -p "$B" "$T/cifar" "$T/fmnist" "$T/nocifar" "$T/path"
: >"$T/cifar/data_batch_1.bin"
: >"$T/cifar/test_batch.bin"
: >"$T/fmnist/train-images-idx3-ubyte"

cat >"$B/vit_cuda_tests" <<'EOF'
#!/usr/bin/env bash
if [[ ${1:-} == --list-test-names-only ]]; then
  printf '%s\n' 'GPU out of memory names the allocation size' 'cuda attention matches the CPU op at N 1024'
  exit 0
fi
echo "All tests passed (900 assertions in 40 test cases)"
EOF
cat >"$T/compute-sanitizer" <<'EOF'
#!/usr/bin/env bash
tool=$2
shift 4
"$@" >/dev/null
case $tool in
  racecheck) echo "========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)" ;;
  initcheck) echo "========= ERROR SUMMARY: 2 errors"; exit 86 ;;
  synccheck) sleep 30 ;;  # cut by its cap: no summary line
  *) echo "========= ERROR SUMMARY: 0 errors" ;;
esac
EOF
# Ours: layer_norm_bwd under 80% at one shape, softmax_bwd's launcher missing, attention
# slower than flash at C=768 H=12.
cat >"$B/bench_cuda_kernels" <<'EOF'
#!/usr/bin/env python3
import sys
rows = ["kernel,dtype,shape,time_us,bytes,gbps,pct_copy,gflop,tflops,pct_gemm,sets,note",
        "ceiling_copy,-,D2D 1 GiB,507.4,2147483648,4231.73,100.00,0,,,1,"]
for k in ("layer_norm_fwd", "layer_norm_bwd", "gelu_fwd", "gelu_bwd", "bias_gelu_fwd", "bias_gelu_bwd",
          "softmax_fwd"):
    for sh, pct in (("B=512 N=65 C=192", 85.0), ("B=256 N=197 C=768", 79.5 if k == "layer_norm_bwd" else 92.0)):
        rows.append(f"{k},bf16,{sh},10.0,1,1,{pct},0,,,1,")
rows.append("softmax_bwd,bf16,-,,0,,,,,,0,missing launcher: vit::cuda::softmax_backward(...)")
for B, N in ((512, 65), (256, 197)):
    for C, H in ((192, 3), (192, 6), (384, 6), (384, 12), (768, 12), (1280, 16), (1024, 8)):
        t = 300.0 if (C, H) == (768, 12) else 100.0
        rows.append(f"attention_fwd_bwd,bf16,B={B} N={N} C={C} H={H},{t},1,1,1,1,1,1,1,sum of the two medians")
open(sys.argv[1], "w").write("\n".join(rows) + "\n")
EOF
# Ours: vit-b16 bf16 too slow against eager and over torch's memory; the rest passes.
# Rows for the --configs asked; with STANDIN_TRAIN_128=1 also cifar-tiny batch 128 (what
# issue 14's bar compares against) whatever was asked.
cat >"$B/bench_cuda_train_step" <<'EOF'
#!/usr/bin/env python3
import os, sys
a = sys.argv[1:]
out = a[a.index("--csv") + 1]
configs = a[a.index("--configs") + 1].split(",")
precs = a[a.index("--precisions") + 1].split(",")
if os.environ.get("STANDIN_TRAIN_128") == "1" and "cifar-tiny:128" not in configs:
    configs.append("cifar-tiny:128")
figures = {"cifar-tiny:512": (30000, 45000, 60000, 1000), "vit-s16:256": (1300, 2900, 9000, 8000),
           "vit-b16:128": (400, 1300, 3000, 11000), "cifar-tiny:128": (20000, 30000, 40000, 500)}
rows = ["model,batch,precision,img_per_s,step_ms,loss_first,loss_last,peak_mib,gflop_per_step,tflops,"
        "mallocs_per_step,note"]
for cfg in configs:
    m, b = cfg.split(":")
    f32, t32, b16, peak = figures[cfg]
    for p, v, pk in (("fp32", f32, 2 * peak), ("tf32", t32, 2 * peak), ("bf16", b16, peak)):
        if p in precs:
            rows.append(f"{m},{b},{p},{v},1,2.3,2.2,{pk},1,1,0,")
        if p + "-graph" in precs:
            rows.append(f"{m},{b},{p}-graph,{v * 1.05},1,2.3,2.2,{pk + 10},1,1,0,")
open(out, "w").write("\n".join(rows) + "\n")
EOF
# Theirs: the 2026-12-04 H200 figures of issue 18's table; vit-b16's compile skipped by
# the deadline; no flash row at B=256 C=1024 H=8.
cat >"$T/python" <<'EOF'
#!/usr/bin/env bash
if [[ $1 == -c ]]; then echo "torch stand-in"; exit 0; fi
shift
exec python3 - "$@" <<'PY'
import sys
a = sys.argv[1:]
rows = ["section,impl,kernel,dtype,variant,shape,time_us,bytes,gbps,pct_copy,gflop,tflops,pct_gemm,sets,note"]
for B, N in ((512, 65), (256, 197)):
    for C, H in ((192, 3), (192, 6), (384, 6), (384, 12), (768, 12), (1280, 16), (1024, 8)):
        if (B, C, H) != (256, 1024, 8):
            rows.append(f"kernel,torch,attention_fwd_bwd,bf16,sdpa flash,B={B} N={N} C={C} H={H},200,1,1,1,1,1,1,1,")
rows.append("section,impl,model,batch,precision,mode,img_per_s,step_ms,loss_first,loss_last,peak_mib,warmup_s,note")
for m, b, f32, t32, e16, c16, peak in (("cifar-tiny", 512, 24981, 37246, 34717, 50227, 1238),
                                       ("vit-s16", 256, 1315, 2904, 5607, 8707, 8990),
                                       ("vit-b16", 128, 405, 1249, 2630, 3397, 9745)):
    rows += [f"train,torch,{m},{b},fp32,eager,{f32},1,1,1,{2 * peak},1,",
             f"train,torch,{m},{b},tf32,eager,{t32},1,1,1,{2 * peak},1,",
             f"train,torch,{m},{b},bf16,eager,{e16},1,1,1,{peak},1,",
             f"train,torch,{m},{b},bf16,compile,{c16},1,1,1,{peak},1," if m != "vit-b16" else
             f"train,torch,{m},{b},bf16,compile,nan,,,,,,skipped: deadline"]
open(a[a.index("--csv") + 1], "w").write("\n".join(rows) + "\n")
PY
EOF
# The trainer: test top-1 by run (bf16 mean 1.5 points under fp32 on CIFAR: FAIL;
# Fashion-MNIST 92.3%: PASS); the checkpoint depends on the arguments but not on --out.
# With --steps, a step row every --log-every steps at STANDIN_RATE images/s (default
# 19000: 95% of the bare step's 20000) and data wait STANDIN_WAIT (default 0.002).
cat >"$B/vit" <<'EOF'
#!/usr/bin/env bash
args=("$@") out= prec=fp32 seed=0 dataset= epochs= steps= every=10 batch=128
while (($#)); do
  case $1 in
    --out) out=$2; shift ;; --precision) prec=$2; shift ;; --seed) seed=$2; shift ;;
    --dataset) dataset=$2; shift ;; --epochs) epochs=$2; shift ;; --steps) steps=$2; shift ;;
    --log-every) every=$2; shift ;; --batch) batch=$2; shift ;;
  esac
  shift
done
mkdir -p "$out"
[[ -z $epochs ]] && epochs=$([[ $dataset == fashion-mnist ]] && echo 50 || echo 100)
top1=$(python3 -c "print(0.923 if '$dataset' == 'fashion-mnist' else 0.55 - (0.015 if '$prec' == 'bf16' else 0) + 0.001 * $seed)")
{
  echo "kind,step,epoch,time_s,lr,loss,train_top1,test_loss,test_top1,test_top5,img_per_s,data_wait,nonfinite,ema_test_loss,ema_test_top1,ema_test_top5"
  if [[ -n $steps ]]; then
    for ((s = every; s <= steps; s += every)); do
      t=$(python3 -c "print(0.5 + $s * $batch / ${STANDIN_RATE:-19000})")
      echo "step,$s,0,$t,0.001,1.5,0.5,,,,${STANDIN_RATE:-19000},${STANDIN_WAIT:-0.002},0,,,"
    done
    echo "epoch,$steps,0,9,0.001,1.5,0.5,1.3,$top1,0.93,,0.001,0,,,"
  else
    for ((e = 0; e < epochs; e++)); do
      echo "step,$((e * 10 + 10)),$e,1,0.001,1.5,0.5,,,,1000,0.001,0,,,"
      echo "epoch,$((e * 10 + 10)),$e,1,0.001,1.5,0.5,1.3,$top1,0.93,,0.001,0,,,"
    done
  fi
} >"$out/metrics.csv"
echo '{}' >"$out/config.json"
printf '%s\n' "${args[@]}" | grep -v "^$out\$" | grep -v '^--batch$\|^64$\|^128$' >"$out/last.safetensors"
EOF
# make_tiny_data: 13 records of 3073 bytes per training file, as the real one.
cat >"$B/make_tiny_data" <<'EOF'
#!/usr/bin/env bash
mkdir -p "$1/cifar10"
for i in 1 2 3 4 5; do head -c $((13 * 3073)) /dev/zero >"$1/cifar10/data_batch_$i.bin"; done
head -c $((20 * 3073)) /dev/zero >"$1/cifar10/test_batch.bin"
echo airplane >"$1/cifar10/batches.meta.txt"
EOF
# NCCL on one rank: passes unless STANDIN_NCCL_FAIL=1.
cat >"$B/vit_dist_gpu_tests" <<'EOF'
#!/usr/bin/env bash
if [[ ${STANDIN_NCCL_FAIL:-0} == 1 ]]; then echo "test cases: 6 | 5 passed | 1 failed"; exit 1; fi
echo "All tests passed (120 assertions in 6 test cases)"
EOF
# compare_weights: the worst relative difference STANDIN_DIFF (default 3.2e-07).
cat >"$B/compare_weights" <<'EOF'
#!/usr/bin/env bash
d=${STANDIN_DIFF:-3.2e-07}
echo "compare_weights: worst relative difference $d (head.weight), bound $3"
python3 -c "import sys; sys.exit(0 if $d <= $3 else 1)"
EOF
# mpirun: runs the program once (the stand-in trainer has no ranks).
cat >"$T/path/mpirun" <<'EOF'
#!/usr/bin/env bash
while [[ $1 == -* ]]; do case $1 in -np) shift 2 ;; *) shift ;; esac; done
exec "$@"
EOF
chmod +x "$B"/* "$T/compute-sanitizer" "$T/python" "$T/path/mpirun"

# run_case NAME VAR=VALUE...: run_all.sh into $T/NAME/out with the stand-ins; rc in RC[NAME].
declare -A RC=()
run_case() {
  local name=$1
  shift
  mkdir -p "$T/$name"
  env PATH="$T/path:$PATH" OUT="$T/$name/out" VIT_WORK_DIR="$T/$name/work" VIT_SKIP_BUILD=1 VIT_BUILD_DIR="$T/build" \
    VIT_SANITIZER="$T/compute-sanitizer" VIT_SANITIZER_S=15 VIT_PYTHON="$T/python" VIT_CIFAR_DIR="$T/cifar" \
    VIT_FMNIST_DIR="$T/fmnist" "$@" bash "$ROOT/benchmarks/cuda/run_all.sh" >"$T/$name/stdout" 2>&1
  RC[$name]=$?
}
run_case full STANDIN_TRAIN_128=1
run_case nodata VIT_CIFAR_DIR="$T/nocifar" VIT_SANITIZER_S=0 VIT_RACECHECK_S=0 VIT_EXTRAS="train_bar dist_nccl dist_mpi" \
  STANDIN_RATE=15000 STANDIN_WAIT=0.05 STANDIN_NCCL_FAIL=1
run_case extrasonly VIT_MAIN=0
run_case tight VIT_SANITIZER_S=0 VIT_RACECHECK_S=0 VIT_EXTRAS="dist_mpi train_bar" VIT_BAR_S=600 STANDIN_DIFF=3e-4
rc=${RC[full]}

pass=0 fail=0
check() { # check WHAT CONDITION...
  local what=$1
  shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $what"; fi
}
# verdict BAR CASE_PREFIX: the verdict of that row of $BARS (a bars.csv).
BARS=$T/full/out/bars.csv
verdict() {
  python3 - "$BARS" "$1" "$2" <<'PY'
import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    if r["bar"] == sys.argv[2] and r["case"].startswith(sys.argv[3]):
        print(r["verdict"])
        break
PY
}
is() { [[ $(verdict "$1" "$2") == "$3"* ]]; }

check "run_all.sh exits 0" [ "$rc" = 0 ]
for f in summary.md bars.csv kernels.csv train.csv torch.csv accuracy.csv checks.csv build_test.log bench.log \
  vit_train.log torch.log acc/cifar_bf16_s0/metrics.csv acc/fmnist_bf16/metrics.csv; do
  check "$f written" [ -s "$T/full/out/$f" ]
done
check "summary.md starts with the bars" grep -q "^## Issue 18 bars" "$T/full/out/summary.md"
C="train step bf16 vs torch.compile bf16" E="train step bf16 vs torch eager bf16" M="peak GPU memory bf16 vs torch eager bf16"
check "compile bar, cifar-tiny: PASS" is "$C" "cifar-tiny b512" PASS
check "compile bar, vit-b16 skipped by torch's deadline: not measured" is "$C" "vit-b16 b128" "FAIL (not measured: torch compile bf16: skipped: deadline"
check "eager bf16 1.5x bar, vit-s16 (1.69x): PASS" is "$E" "vit-s16 b256" PASS
check "eager bf16 1.5x bar, vit-b16 (1.20x): FAIL" is "$E" "vit-b16 b128" "FAIL"
check "memory bar, vit-s16: PASS" is "$M" "vit-s16 b256" PASS
check "memory bar, vit-b16: FAIL" is "$M" "vit-b16 b128" FAIL
A="attention fwd+bwd bf16 vs SDPA flash"
check "attention N=65 D=32: PASS" is "$A" "N=65 D=32 (B=512 C=192" PASS
check "attention N=197 D=64 (C=768): FAIL" is "$A" "N=197 D=64 (B=256 C=768" FAIL
check "attention D=80: measured" is "$A (measured)" "N=65 D=80" measured
check "attention D=128 without a flash row: not measured" is "$A (measured)" "N=197 D=128" "not measured"
W="bf16 kernel >= 80% of copy bandwidth"
check "layer_norm_fwd: PASS" is "$W" "layer_norm_fwd" PASS
check "layer_norm_bwd (79.5%): FAIL" is "$W" "layer_norm_bwd" FAIL
check "bias_gelu_bwd: PASS" is "$W" "bias_gelu_bwd" PASS
check "softmax_bwd missing launcher: not measured" is "$W" "softmax_bwd" "FAIL (not measured: missing launcher"
check "fp32 vs eager, vit-b16: PASS" is "train step fp32 vs torch eager fp32" "vit-b16" PASS
check "tf32 vs eager, vit-s16: PASS" is "train step tf32 vs torch eager tf32" "vit-s16" PASS
check "Fashion-MNIST 92.3%: PASS" is "accuracy: Fashion-MNIST bf16, default recipe" "fmnist-tiny" PASS
check "CIFAR bf16 1.5 points under fp32: FAIL" is "accuracy: CIFAR subset bf16 vs fp32 (mean of 3 seeds)" "cifar-tiny" FAIL
check "determinism (identical stand-in checkpoints): PASS" is "two identical bf16 runs: bitwise-equal checkpoints" "cmp" PASS
check "[cuda] tests: PASS" is "[cuda] tests" "vit_cuda_tests" PASS
check "memcheck 0 errors: PASS" is "compute-sanitizer memcheck" "vit_cuda_tests" PASS
check "initcheck 2 errors: FAIL" is "compute-sanitizer initcheck" "vit_cuda_tests" FAIL
check "synccheck cut by its cap: incomplete" is "compute-sanitizer synccheck" "vit_cuda_tests" "FAIL (incomplete"
check "racecheck: PASS" is "compute-sanitizer racecheck" "vit_cuda_tests" PASS
check "7 CIFAR runs recorded as 6 accuracy rows" [ "$(grep -c '^cifar,' "$T/full/out/accuracy.csv")" = 6 ]

# The extras, call 1: every extra ran and passed; the bar read train.csv's batch-128 row.
TB="issue 14: trainer vs bare step, same run" TW="issue 14: trainer data wait"
N="issue 15: NCCL communicator + reducer, one rank" D="issue 15: 2 ranks sharing the GPU (MPI staged) vs 1 process"
S=$T/full/out/summary.md
check "summary.md has the extras' bar table" grep -q "^## Extras: bars of issues 14 and 15" "$S"
check "train_bar 19000 of 20000 img/s (95%): PASS" is "$TB" "cifar-tiny b128 fp32" PASS
check "train_bar ratio computed from the figures" grep -q "| $TB | cifar-tiny b128 fp32 | 19000.0 img/s | 20000.0 img/s (bench_cuda_train_step, train.csv) | 95.0% |" "$S"
check "train_bar data wait 0.2%: PASS" is "$TW" "cifar-tiny b128" PASS
check "train_bar: the graph row beside it" grep -q "fp32-graph): 21000.0 img/s" "$S"
check "train.csv had the batch-128 row: no bench_train_bar step" bash -c "! grep -q '^| bench_train_bar ' '$S'"
check "train_bar metrics copied" [ -s "$T/full/out/train_bar/metrics.csv" ]
check "dist_nccl: PASS" is "$N" "vit_dist_gpu_tests" PASS
check "two ranks vs one, 3.2e-07: PASS" is "$D" "batch 64 x 2" PASS
check "4 bf16 + 4 fp32 recipe rows, all PASS" [ "$(grep -cE '^\| recipe_.* \| (bf16|fp32) \| .* \| PASS \|$' "$S")" = 8 ]
check "the extras do not count among issue 18's bars" grep -q '^\*\*[0-9]* PASS, [0-9]* FAIL\*\* (a bar not measured' "$S"

# Call 2: no CIFAR data: make_tiny_data's files for the trainer bar only, the batch-128 row
# from its own bench step; slow trainer, data wait 5%, NCCL failing; two ranks need CIFAR.
BARS=$T/nodata/out/bars.csv S=$T/nodata/out/summary.md
check "call 2 exits 0" [ "${RC[nodata]}" = 0 ]
check "make_tiny_data x 80: 5200 training images" grep -q "^| cifar_data | 0 | .*5200 training images" "$S"
check "bench_train_bar ran (no batch-128 row in train.csv)" grep -q "^| bench_train_bar | 0 |" "$S"
check "train_bar.csv written" grep -q "^cifar-tiny,128,fp32," "$T/nodata/out/train_bar.csv"
check "train_bar 75% of train_bar.csv's rate: FAIL" grep -q "| $TB | cifar-tiny b128 fp32 | 15000.0 img/s | 20000.0 img/s (bench_cuda_train_step, train_bar.csv) | 75.0% | >= 90% | FAIL |" "$S"
check "train_bar data wait 5%: FAIL" is "$TW" "cifar-tiny b128" FAIL
check "train_bar ran on the tiny data" grep -q "data $T/nodata/work/cifar10" "$S"
check "dist_nccl failing: FAIL" is "$N" "vit_dist_gpu_tests" FAIL
check "two ranks without CIFAR: not measured" is "$D" "batch 64 x 2" "FAIL (not measured: no CIFAR subset"
check "the accuracy bars do not use the tiny data" is "accuracy: CIFAR subset bf16 vs fp32 (mean of 3 seeds)" "cifar-tiny" "FAIL (not measured"

# Call 3: weights 3e-4 apart: FAIL; a trainer cap that cannot fit: not measured.
BARS=$T/tight/out/bars.csv S=$T/tight/out/summary.md
check "call 3 exits 0" [ "${RC[tight]}" = 0 ]
check "two ranks vs one, 3e-4: FAIL" is "$D" "batch 64 x 2" FAIL
check "train_bar that cannot fit: not measured" is "$TB" "cifar-tiny b128" "FAIL (not measured: needs 6"
check "train_bar that cannot fit: skipped in the step table" grep -q "^| train_bar | - | 0 | skipped: needs 6[0-9]*s, " "$S"
check "recipes not asked for: none run" bash -c "! grep -q '^| recipe_' '$S'"

# Call 4: VIT_MAIN=0: the extras alone; issue 18's bars not measured.
BARS=$T/extrasonly/out/bars.csv S=$T/extrasonly/out/summary.md
check "call 4 exits 0" [ "${RC[extrasonly]}" = 0 ]
check "VIT_MAIN=0: no kernel benchmark" grep -q "^| bench_kernels | - | 0 | skipped: VIT_MAIN=0 |" "$S"
check "VIT_MAIN=0: [cuda] tests not measured" is "[cuda] tests" "vit_cuda_tests" "FAIL (not measured: VIT_MAIN=0"
check "VIT_MAIN=0: train_bar against bench_train_bar's row: PASS" grep -q "| $TB | cifar-tiny b128 fp32 | 19000.0 img/s | 20000.0 img/s (bench_cuda_train_step, train_bar.csv) | 95.0% | >= 90% | PASS |" "$S"
check "VIT_MAIN=0: two ranks vs one: PASS" is "$D" "batch 64 x 2" PASS
check "VIT_MAIN=0: 8 recipe rows, all PASS" [ "$(grep -cE '^\| recipe_.* \| (bf16|fp32) \| .* \| PASS \|$' "$S")" = 8 ]

if ((fail)); then
  for c in full nodata extrasonly tight; do
    echo "--- run_all.sh output ($c):"
    tail -30 "$T/$c/stdout"
  done
fi
echo "test_run_all: $pass passed, $fail failed"
((fail == 0))
