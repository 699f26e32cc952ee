#!/usr/bin/env bash
# End-to-end test of the `vit` command line on tiny generated data sets:
# train, kill + resume (bitwise), eval with logits, predict with an attention
# map, info, fine-tuning, non-finite steps, and one-line errors on bad input.
# Usage: test_cli.sh VIT_BINARY MAKE_TINY_DATA_BINARY WORK_DIR
set -euo pipefail
vit=$1 make_data=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
"$make_data" "$work/data"
export OMP_NUM_THREADS=2
common=(--dataset cifar10 --data "$work/data/cifar10" --epochs 2 --batch 16 --log-every 1
        --seed 3 --dropout 0.1 --drop-path 0.1 --threads 2 --warmup-epochs 1)
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_error "what it must say" cmd...: non-zero exit, exactly one line on stderr containing it.
expect_error() {
  local want=$1; shift
  local err rc=0
  err=$("$@" 2>&1 >/dev/null) || rc=$?
  [[ $rc -ne 0 ]] || fail "expected failure: $*"
  [[ $(printf '%s\n' "$err" | wc -l) -eq 1 ]] || fail "expected one line, got: $err"
  [[ $err == *"$want"* ]] || fail "expected '$want' in: $err"
  echo "ok (error): $err"
}

# 1. An uninterrupted run: 65 images / 16 = 4 steps per epoch, 8 steps.
"$vit" train "${common[@]}" --out "$work/a" --checkpoint-every 3 > "$work/a.log"
for f in config.json metrics.jsonl metrics.csv last.safetensors best.safetensors curves.png; do
  [[ -s $work/a/$f ]] || fail "run a lacks $f"
done
[[ $(grep -c '"kind":"epoch"' "$work/a/metrics.jsonl") -eq 2 ]] || fail "expected 2 epoch rows"
[[ $(grep -c '^step,' "$work/a/metrics.csv") -eq 8 ]] || fail "expected 8 step rows"
echo "ok: training run with all outputs"

# 2. Killed after step 5 (last checkpoint at 4: the epoch end), resumed: bitwise the same files.
rc=0
VIT_INJECT_KILL_AT_STEP=5 "$vit" train "${common[@]}" --out "$work/b" --checkpoint-every 3 > /dev/null 2>&1 || rc=$?
[[ $rc -eq 137 ]] || fail "the injected kill did not happen (rc $rc)"
"$vit" train --resume --out "$work/b" > "$work/b.log"
cmp "$work/a/last.safetensors" "$work/b/last.safetensors" || fail "resumed weights differ"
cmp "$work/a/best.safetensors" "$work/b/best.safetensors" || fail "resumed best weights differ"
[[ $(grep -c '^step,' "$work/b/metrics.csv") -eq 8 ]] || fail "resumed metrics should hold 8 step rows"
echo "ok: kill at step 5 + resume is bitwise identical"

# 3. A run directory is never silently overwritten.
expect_error "already holds a run; --resume continues it, --force replaces it" \
  "$vit" train "${common[@]}" --out "$work/a"
expect_error "drop --lr" "$vit" train --resume --out "$work/a" --lr 0.1
"$vit" train "${common[@]}" --out "$work/b" --force --steps 1 > /dev/null
echo "ok: --force replaces a run"

# 4. Eval: accuracy line and one CSV row of 10 logits per test record.
"$vit" eval --weights "$work/a/last.safetensors" --dataset cifar10 --data "$work/data/cifar10" \
  --dump-logits "$work/logits.csv" | grep -q "top-1" || fail "eval printed no accuracy"
[[ $(wc -l < "$work/logits.csv") -eq 20 ]] || fail "expected 20 logit rows"
[[ $(head -1 "$work/logits.csv" | tr ',' '\n' | wc -l) -eq 10 ]] || fail "expected 10 logit columns"
echo "ok: eval and --dump-logits"

# 5. Predict with class names from the checkpoint and an attention map; info.
"$vit" predict --weights "$work/a/best.safetensors" "$work/data/images/sample0.png" \
  "$work/data/images/sample1.bmp" --attention-map "$work/map.png" > "$work/predict.log"
grep -q "airplane\|automobile\|bird\|cat\|deer\|dog\|frog\|horse\|ship\|truck" "$work/predict.log" \
  || fail "predict printed no class names"
[[ -s $work/map-0.png && -s $work/map-1.png ]] || fail "attention maps missing"
"$vit" info --weights "$work/a/last.safetensors" --batch 64 | grep -q "parameters   1806538" \
  || fail "info: wrong parameter count"
echo "ok: predict, attention maps, info"

# 6. Fine-tune on CIFAR-100 from the CIFAR-10 weights: new head, frozen backbone.
"$vit" train --dataset cifar100 --data "$work/data/cifar100" --init "$work/a/best.safetensors" \
  --freeze-backbone --out "$work/ft" --epochs 1 --batch 8 --threads 2 > "$work/ft.log" 2>&1
grep -q "head re-initialised for 100 classes" "$work/ft.log" || fail "no head re-initialisation"
echo "ok: fine-tuning with a new head"

# 7. Non-finite steps: one is skipped and counted; three in a row stop the run.
VIT_INJECT_NAN_STEPS=2 "$vit" train "${common[@]}" --out "$work/nan1" > /dev/null
grep -q '"nonfinite":1' "$work/nan1/metrics.jsonl" || fail "the NaN step was not counted"
cp "$work/a/last.safetensors" "$work/before.safetensors"
VIT_INJECT_NAN_STEPS=2,3,4 expect_error "stopping: 3 consecutive steps with a non-finite loss (the last was step 4); no checkpoint had been written yet" \
  "$vit" train "${common[@]}" --out "$work/nan3" --max-nonfinite 3
[[ ! -e $work/nan3/last.safetensors ]] || fail "a stopped run wrote a checkpoint of bad state"
VIT_INJECT_NAN_STEPS=3,4,5 expect_error "the last good checkpoint is $work/nan4/last.safetensors, untouched" \
  "$vit" train "${common[@]}" --out "$work/nan4" --max-nonfinite 3 --checkpoint-every 1
"$vit" info --weights "$work/nan4/last.safetensors" > /dev/null || fail "the last good checkpoint does not load"
echo "ok: non-finite steps"

# 8. Bad input: one line naming the file or argument, non-zero exit.
mkdir -p "$work/bad" && cp "$work/data/cifar10/"* "$work/bad/"
head -c 3000 "$work/data/cifar10/data_batch_2.bin" > "$work/bad/data_batch_2.bin"
expect_error "data_batch_2.bin" "$vit" train --dataset cifar10 --data "$work/bad" --out "$work/x"
expect_error "unknown model preset 'vit-zz'" "$vit" train --dataset cifar10 --data "$work/data/cifar10" --model vit-zz --out "$work/y"
head -c 100 "$work/a/last.safetensors" > "$work/cut.safetensors"
expect_error "cut.safetensors" "$vit" eval --weights "$work/cut.safetensors" --dataset cifar10 --data "$work/data/cifar10"
expect_error "--batch" "$vit" train --batch 0
expect_error "cifar100" "$vit" eval --weights "$work/a/last.safetensors" --dataset cifar100 --data "$work/data/cifar100"
printf 'not an image' > "$work/junk.png"
expect_error "junk.png" "$vit" predict --weights "$work/a/last.safetensors" "$work/junk.png"
expect_error "--device cuda" "$vit" train --dataset cifar10 --data "$work/data/cifar10" --device cuda --out "$work/z"
echo "all CLI checks passed"
