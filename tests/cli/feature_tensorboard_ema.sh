#!/usr/bin/env bash
# --tensorboard and --model-ema end to end on tiny generated data: the event
# files read back record by record (framing, both CRC-32C checksums, Events
# parsed with the trainer's protocol buffers: tool_read_tfevents.cpp) with the
# expected tags at the expected steps; ema.safetensors beside the run, loaded
# by `vit eval` with the trainer's EMA figures; epochs numbered from 1; the
# confusion matrix of the last epoch; and a kill + resume that ends bitwise
# where the uninterrupted run does, EMA included, its new event file telling
# TensorBoard to drop the killed run's records after the checkpoint.
# Usage: feature_tensorboard_ema.sh VIT_BINARY MAKE_TINY_DATA_BINARY WORK_DIR
set -euo pipefail
vit=$1 make_data=$2 work=$3
read_tfevents=$(dirname "$make_data")/read_tfevents
rm -rf "$work" && mkdir -p "$work"
"$make_data" "$work/data" > /dev/null
export OMP_NUM_THREADS=2
# 65 images / 8 = 8 steps, one epoch; a checkpoint every 4 steps.
common=(--dataset cifar10 --data "$work/data/cifar10" --epochs 1 --batch 8 --log-every 1
        --seed 5 --dropout 0.1 --threads 2 --warmup-epochs 0.25 --checkpoint-every 4 --model-ema
        --model-ema-decay 0.99 --tensorboard)
source "$(dirname "$0")/lib.sh"
# scalars EVENTS TAG: the steps a tag was logged at, on one line.
steps_of() { awk -v t="$2" '$1 == "scalar" && $2 == t { printf "%s ", $3 }' "$1"; }
# value_of EVENTS TAG STEP
value_of() { awk -v t="$2" -v s="$3" '$1 == "scalar" && $2 == t && $3 == s { print $4 }' "$1"; }

# 1. An uninterrupted run with both.
"$vit" train "${common[@]}" --out "$work/a" > "$work/a.log"
for f in ema.safetensors confusion.csv confusion.png curves.png; do
  [[ -s $work/a/$f ]] || fail "run a lacks $f"
done
grep -q '^step 1/8  epoch 1/1 ' "$work/a.log" || fail "step 1 should be in epoch 1/1"
grep -q '^epoch 1/1  step 8 .* EMA test loss' "$work/a.log" || fail "no EMA figures in the epoch line"
[[ $(awk -F, '$1 == "step" { printf "%s", $3 }' "$work/a/metrics.csv") == 11111111 ]] \
  || fail "metrics.csv: the step rows should be in epoch 1"
[[ $(awk -F, '$1 == "epoch" { printf "%s ", $3 }' "$work/a/metrics.csv") == "1 " ]] \
  || fail "metrics.csv: the epoch row should be epoch 1"
[[ $(grep -c '"ema_test_top1"' "$work/a/metrics.jsonl") -eq 1 ]] || fail "expected an EMA row"
echo "ok: epochs numbered from 1, EMA evaluated at the epoch end, confusion matrix written"

files=("$work"/a/tensorboard/events.out.tfevents.*)
[[ ${#files[@]} -eq 1 ]] || fail "expected one event file, got ${#files[@]}"
"$read_tfevents" "${files[0]}" > "$work/a.events" || fail "event file damaged"
[[ $(head -1 "$work/a.events") == "file_version brain.Event:2" ]] || fail "no file version first"
for tag in train/loss train/top1 train/lr train/img_per_s; do
  [[ $(steps_of "$work/a.events" $tag) == "1 2 3 4 5 6 7 8 " ]] || fail "$tag not at steps 1..8"
done
for tag in test/loss test/top1 test/top5 ema/test_loss ema/test_top1 ema/test_top5 \
           train/epoch_loss train/epoch_top1; do
  [[ $(steps_of "$work/a.events" $tag) == "8 " ]] || fail "$tag not at step 8"
done
# The same figures as the log: the EMA's last test top-1 (%, 2 decimals there).
ema_top1=$(value_of "$work/a.events" ema/test_top1 8)
grep -q "EMA test loss [0-9.]* top-1 $(printf '%5.2f' "$ema_top1")%" "$work/a.log" \
  || fail "ema/test_top1 $ema_top1 is not the log's"
echo "ok: event records framed, checksummed and tagged as expected"

# ema.safetensors: timm names, loadable on its own, the trainer's EMA figures.
"$vit" eval --weights "$work/a/ema.safetensors" --dataset cifar10 --data "$work/data/cifar10" --out "$work/eval_out" \
  > "$work/eval.log"
grep -q "top-1 $(printf '%.2f' "$ema_top1")%" "$work/eval.log" \
  || fail "eval of ema.safetensors: $(cat "$work/eval.log") (trainer: $ema_top1)"
grep -aq '"vit.crop_pct":"0.875"' "$work/a/ema.safetensors" || fail "no vit.crop_pct metadata"
echo "ok: ema.safetensors evaluates as the trainer's EMA did"

# 2. Killed after step 6 (checkpoint at 4, step 5 logged), resumed: bitwise, EMA too.
rc=0
VIT_INJECT_KILL_AT_STEP=6 "$vit" train "${common[@]}" --out "$work/b" > /dev/null 2>&1 || rc=$?
[[ $rc -eq 137 ]] || fail "the injected kill did not happen (rc $rc)"
"$vit" train --resume --out "$work/b" > "$work/b.log" 2>&1
for f in last best ema; do
  cmp "$work/a/$f.safetensors" "$work/b/$f.safetensors" || fail "resumed $f.safetensors differs"
done
files=("$work"/b/tensorboard/events.out.tfevents.*)
[[ ${#files[@]} -eq 2 ]] || fail "a resume should start a second event file"
"$read_tfevents" "${files[0]}" > "$work/b0.events" || fail "killed run's event file damaged"
"$read_tfevents" "${files[1]}" > "$work/b1.events" || fail "resumed run's event file damaged"
[[ $(steps_of "$work/b0.events" train/loss) == "1 2 3 4 5 " ]] || fail "killed run: steps 1..5"
[[ $(sed -n 2p "$work/b1.events") == "session_log START 5" ]] \
  || fail "the resumed file should start by dropping steps from 5 on"
[[ $(steps_of "$work/b1.events" train/loss) == "5 6 7 8 " ]] || fail "resumed run: steps 5..8"
[[ $(value_of "$work/b1.events" train/loss 8) == $(value_of "$work/a.events" train/loss 8) ]] \
  || fail "resumed run logged another loss at step 8"
echo "ok: kill + resume with EMA and TensorBoard is bitwise, the event files say so"

# 3. A run with --model-ema whose checkpoint lacks the EMA is refused, named.
"$vit" train --dataset cifar10 --data "$work/data/cifar10" --epochs 1 --batch 8 --steps 1 \
  --threads 2 --out "$work/c" > /dev/null
sed -i 's/"model_ema": false/"model_ema": true/' "$work/c/config.json"
err=$("$vit" train --resume --out "$work/c" 2>&1 >/dev/null) && fail "resume without EMA state ran"
[[ $err == *"holds no EMA of the weights, but the run trains with --model-ema"* ]] || fail "got: $err"
echo "ok (error): $err"
