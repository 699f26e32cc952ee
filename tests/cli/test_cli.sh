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
source "$(dirname "$0")/lib.sh"

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
  --dump-logits "$work/logits.csv" --out "$work" | grep "top-1" > /dev/null || fail "eval printed no accuracy"
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
grep -q '"lr": 0.0001,' "$work/ft/config.json" || fail "fine-tuning did not default to a tenth of the lr"
grep -q '"lr": 0.001,' "$work/a/config.json" || fail "training from scratch did not default to lr 1e-3"
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
[[ ! -e $work/y ]] || fail "a run that failed before training left its directory behind"
head -c 100 "$work/a/last.safetensors" > "$work/cut.safetensors"
expect_error "cut.safetensors" "$vit" eval --weights "$work/cut.safetensors" --dataset cifar10 --data "$work/data/cifar10"
expect_error "--batch" "$vit" train --batch 0
expect_error "cifar100" "$vit" eval --weights "$work/a/last.safetensors" --dataset cifar100 --data "$work/data/cifar100"
printf 'not an image' > "$work/junk.png"
expect_error "junk.png" "$vit" predict --weights "$work/a/last.safetensors" "$work/junk.png"
expect_error "--device cuda" "$vit" train --dataset cifar10 --data "$work/data/cifar10" --device cuda --out "$work/z"
echo "ok: bad input"

# 9. Resume after a skipped non-finite step: the optimizer counts only the
#    updates it made (Adam's bias correction), so resuming is still bitwise.
rc=0
VIT_INJECT_NAN_STEPS=2 VIT_INJECT_KILL_AT_STEP=5 "$vit" train "${common[@]}" --out "$work/nan1r" > /dev/null 2>&1 || rc=$?
[[ $rc -eq 137 ]] || fail "the injected kill did not happen (rc $rc)"
"$vit" train --resume --out "$work/nan1r" > /dev/null
cmp "$work/nan1/last.safetensors" "$work/nan1r/last.safetensors" || fail "resume after a NaN step differs"
echo "ok: resume after a skipped step is bitwise identical"

# 10. --force with a typo keeps the old run: nothing is removed before the
#     preset, the data and --init have been read.
cp -r "$work/a" "$work/keep"
expect_error "unknown model preset 'vit-zz'" "$vit" train "${common[@]}" --out "$work/keep" --force --model vit-zz
cmp "$work/a/last.safetensors" "$work/keep/last.safetensors" || fail "--force with a bad preset touched the old run"
cmp "$work/a/config.json" "$work/keep/config.json" || fail "--force with a bad preset touched config.json"
echo "ok: a failed --force keeps the old run"

# 11. --steps stops early while the schedule spans --epochs: the first three
#     rows (step, epoch, lr, loss, accuracy) are run a's.
"$vit" train "${common[@]}" --out "$work/s3" --steps 3 > /dev/null
[[ $(grep -c '^step,' "$work/s3/metrics.csv") -eq 3 ]] || fail "--steps 3 did not stop after 3 steps"
diff <(grep '^step,' "$work/a/metrics.csv" | head -3 | cut -d, -f1-3,5-7) \
     <(grep '^step,' "$work/s3/metrics.csv" | cut -d, -f1-3,5-7) || fail "--steps changed the schedule or the steps"
echo "ok: --steps keeps the schedule of --epochs"

# 12. Resuming with other data is refused (the cursor would mean something else).
cp -r "$work/data/cifar10" "$work/fewer"
head -c $((3 * 3073)) "$work/data/cifar10/data_batch_5.bin" > "$work/fewer/data_batch_5.bin"
expect_error "batches per epoch" "$vit" train --resume --out "$work/s3" --data "$work/fewer"
echo "ok: resume with other data is refused"

# 13. CIFAR-100 with the 20 coarse labels.
"$vit" train --dataset cifar100-coarse --data "$work/data/cifar100" --out "$work/coarse" --steps 1 --batch 8 \
  --threads 2 > /dev/null 2>&1
"$vit" info --weights "$work/coarse/last.safetensors" | grep -q "classes 20$" || fail "cifar100-coarse: not 20 classes"
echo "ok: cifar100-coarse"

# 14. An image folder end to end: one subfolder per class, PNG and BMP,
#     train/val split, class names carried into predict.
mkdir -p "$work/folder/square" "$work/folder/corner"
for i in 0 1 2 3 4; do
  cp "$work/data/images/sample0.png" "$work/folder/square/s$i.png"
  cp "$work/data/images/sample1.bmp" "$work/folder/corner/c$i.bmp"
done
"$vit" train --dataset folder --data "$work/folder" --model cifar-tiny --steps 2 --batch 4 --threads 2 \
  --out "$work/fold" > /dev/null 2>&1 || fail "training on an image folder failed"
"$vit" predict --weights "$work/fold/last.safetensors" "$work/data/images/sample0.png" | grep -q "square" \
  || fail "predict on folder weights printed no folder class names"
echo "ok: image folder training and predict"

# 15. --dump-logits rows are the test records in file order: their argmax
#     against the label bytes of test_batch.bin is eval's top-1.
labels=$(for i in $(seq 0 19); do od -An -tu1 -j $((i * 3073)) -N1 "$work/data/cifar10/test_batch.bin"; done)
top1=$("$vit" eval --weights "$work/a/last.safetensors" --dataset cifar10 --data "$work/data/cifar10" \
  --dump-logits "$work/logits.csv" --out "$work" | sed -n 's/.*top-1 \([0-9.]*\)%.*/\1/p')
mine=$(paste -d, <(printf '%s\n' $labels) "$work/logits.csv" | awk -F, '{
  best = 2; for (c = 3; c <= NF; ++c) if ($c > $best) best = c
  hits += (best - 2 == $1) } END { printf "%.2f", 100 * hits / NR }')
[[ -n $top1 && $mine == "$top1" ]] || fail "logits argmax accuracy $mine% is not eval's top-1 $top1%"
echo "ok: dumped logits agree with eval's top-1 ($top1%)"

echo "all CLI checks passed"
