#!/usr/bin/env bash
# Data-parallel `vit train` under mpirun on tiny generated data:
#  - 2 ranks x batch b equal 1 process x batch 2b (5 steps, --no-augment), 3 ranks too;
#  - gradient accumulation: 1 x b x 2 micro-batches and 2 ranks x b/2 x 2 equal 1 x 2b;
#  - two identical 2-rank runs (augmentation, dropout, drop-path) write the same bytes;
#  - a rank killed (or failing) mid-run ends the job within seconds, non-zero, naming it,
#    the last checkpoint intact, and --resume ends bitwise where the uninterrupted run does;
#  - --resume with another number of ranks continues, saying the data order changes;
#  - `vit eval` sharded over 2 and 3 ranks prints and dumps exactly the one-process figures.
# Usage: dist_test.sh VIT MAKE_TINY_DATA COMPARE_WEIGHTS MPIEXEC WORK_DIR
set -euo pipefail
vit=$1 make_data=$2 compare=$3 mpiexec=$4 work=$5
rm -rf "$work" && mkdir -p "$work"
"$make_data" "$work/data"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=1
mpi() { local n=$1; shift; "$mpiexec" --oversubscribe -np "$n" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
data=(--dataset cifar10 --data "$work/data/cifar10" --seed 3 --threads 1 --log-every 1
      --warmup-epochs 1 --epochs 2)
# SGD: the key bias of attention has a zero gradient up to rounding, which Adam
# would turn into steps of +-lr that depend on the order of the sums.
plain=("${data[@]}" --no-augment --steps 5 --optimizer sgd)

# 1. 65 images: 1 x 16 and 2 x 8 (4 steps an epoch), 1 x 15 and 3 x 5.
"$vit" train "${plain[@]}" --batch 16 --out "$work/one16" > /dev/null
mpi 2 "$vit" train "${plain[@]}" --batch 8 --out "$work/two8" > "$work/two8.log"
"$compare" "$work/one16/last.safetensors" "$work/two8/last.safetensors" 1e-5 ||
  fail "2 ranks x 8 differ from 1 x 16"
grep -q '"world_size": 2' "$work/two8/config.json" || fail "config.json lacks world_size 2"
grep -q '"global_batch": 16' "$work/two8/config.json" || fail "config.json lacks global_batch 16"
grep -q "2 ranks" "$work/two8.log" || fail "the log does not state the ranks"
[[ $(grep -c '^train:' "$work/two8.log") -eq 4 ]] || fail "rank 0 alone should print"  # loading, model, ranks, schedule
"$vit" train "${plain[@]}" --batch 15 --out "$work/one15" > /dev/null
mpi 3 "$vit" train "${plain[@]}" --batch 5 --out "$work/three5" > /dev/null
"$compare" "$work/one15/last.safetensors" "$work/three5/last.safetensors" 1e-5 ||
  fail "3 ranks x 5 differ from 1 x 15"
echo "ok: 2 ranks x 8 = 1 x 16 and 3 ranks x 5 = 1 x 15 (within 1e-5)"

# 2. Accumulation: 1 x 8 x 2 and 2 ranks x 4 x 2 equal 1 x 16.
"$vit" train "${plain[@]}" --batch 8 --accum-steps 2 --out "$work/one8x2" > /dev/null
"$compare" "$work/one16/last.safetensors" "$work/one8x2/last.safetensors" 1e-5 ||
  fail "1 x 8 x 2 micro-batches differ from 1 x 16"
mpi 2 "$vit" train "${plain[@]}" --batch 4 --accum-steps 2 --out "$work/two4x2" > /dev/null
"$compare" "$work/one16/last.safetensors" "$work/two4x2/last.safetensors" 1e-5 ||
  fail "2 ranks x 4 x 2 micro-batches differ from 1 x 16"
echo "ok: --accum-steps 2 equals the doubled batch, on 1 and 2 ranks"

# 3. Repeatable: augmentation, dropout and drop-path per rank, the same bits twice.
noisy=("${data[@]}" --batch 8 --dropout 0.1 --drop-path 0.1 --checkpoint-every 3)
t0=$SECONDS
mpi 2 "$vit" train "${noisy[@]}" --out "$work/r1" > /dev/null
full_run_s=$((SECONDS - t0))
mpi 2 "$vit" train "${noisy[@]}" --out "$work/r2" > /dev/null
cmp "$work/r1/last.safetensors" "$work/r2/last.safetensors" || fail "two 2-rank runs differ"
cmp "$work/r1/best.safetensors" "$work/r2/best.safetensors" || fail "two 2-rank best weights differ"
echo "ok: two identical 2-rank runs write bitwise-equal checkpoints"

# 4. Rank 1 killed after step 6 (last checkpoint: step 4, an epoch end): the job ends at
#    once, non-zero, naming the rank; resumed, it ends bitwise where r1 did.
rc=0 t0=$SECONDS
VIT_INJECT_KILL_AT_STEP=6 VIT_INJECT_KILL_RANK=1 timeout 300 \
  "$mpiexec" --oversubscribe -np 2 "$vit" train "${noisy[@]}" --out "$work/k" > "$work/k.log" 2>&1 || rc=$?
(( rc != 0 && rc != 124 )) || fail "killing rank 1 did not end the job (rc $rc)"
# It ends at once: within the time of the whole run (which has more steps) plus 10 s.
(( SECONDS - t0 <= full_run_s + 10 )) ||
  fail "the job took $((SECONDS - t0)) s to end after the kill (the whole run: ${full_run_s} s)"
grep -qi "rank 1" "$work/k.log" || fail "the job's exit does not name rank 1: $(cat "$work/k.log")"
"$compare" "$work/k/last.safetensors" "$work/k/last.safetensors" 0 > /dev/null ||
  fail "the last checkpoint does not load"
mpi 2 "$vit" train --resume --out "$work/k" > /dev/null
cmp "$work/r1/last.safetensors" "$work/k/last.safetensors" || fail "resumed 2-rank run differs"
echo "ok: a killed rank ends the job (rc $rc), the checkpoint is intact, --resume is bitwise"

# 5. A rank that fails says so in one line naming itself, and the job stops.
rc=0
VIT_INJECT_THROW_AT_STEP=2 VIT_INJECT_KILL_RANK=1 timeout 300 \
  "$mpiexec" --oversubscribe -np 2 "$vit" train "${noisy[@]}" --out "$work/t" > /dev/null 2> "$work/t.err" || rc=$?
(( rc != 0 && rc != 124 )) || fail "a failing rank did not end the job (rc $rc)"
grep -q "^vit: rank 1 of 2: injected failure after step 2" "$work/t.err" ||
  fail "no line naming rank 1: $(cat "$work/t.err")"
echo "ok: a failing rank ends the job: $(grep '^vit: rank' "$work/t.err")"

# 6. Another number of ranks on --resume: model and optimizer continue, one line says so.
VIT_INJECT_KILL_AT_STEP=5 "$mpiexec" --oversubscribe -np 2 "$vit" train "${noisy[@]}" \
  --out "$work/n3" > /dev/null 2>&1 || true
mpi 3 "$vit" train --resume --out "$work/n3" > /dev/null 2> "$work/n3.err"
[[ $(grep -c "the data order changes" "$work/n3.err") -eq 1 ]] ||
  fail "resuming on 3 ranks should say once that the data order changes: $(cat "$work/n3.err")"
grep -aq 'world_size\\":3' "$work/n3/last.safetensors" || fail "the checkpoint does not record 3 ranks"
echo "ok: --resume on 3 ranks of a 2-rank run: $(grep 'data order' "$work/n3.err")"

# 7. Sharded evaluation: the same line and the same logits as one process.
ev=(eval --weights "$work/r1/last.safetensors" --dataset cifar10 --data "$work/data/cifar10"
    --batch 6 --threads 1 --out "$work/eval_out")
"$vit" "${ev[@]}" --dump-logits "$work/l1.csv" > "$work/e1.txt"
mpi 2 "$vit" "${ev[@]}" --dump-logits "$work/l2.csv" > "$work/e2.txt"
mpi 3 "$vit" "${ev[@]}" --dump-logits "$work/l3.csv" > "$work/e3.txt"
cmp "$work/e1.txt" "$work/e2.txt" || fail "2-rank eval differs: $(cat "$work/e1.txt" "$work/e2.txt")"
cmp "$work/e1.txt" "$work/e3.txt" || fail "3-rank eval differs: $(cat "$work/e1.txt" "$work/e3.txt")"
cmp "$work/l1.csv" "$work/l2.csv" && cmp "$work/l1.csv" "$work/l3.csv" || fail "sharded logits differ"
echo "ok: sharded eval on 2 and 3 ranks is exactly the one-process eval: $(cat "$work/e1.txt")"
echo "all data-parallel CLI tests passed"
