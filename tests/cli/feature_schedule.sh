#!/usr/bin/env bash
# Learning-rate schedules as the tutorials use them, read back from
# metrics.csv: StepLR (`--schedule step --step-size E --gamma G`), and the
# default warmup of a short run, capped at a tenth of it (`--epochs 1` trains
# at full lr from its first step; epochs are numbered from 1).
# Usage: feature_schedule.sh VIT_BINARY MAKE_TINY_DATA_BINARY WORK_DIR
set -euo pipefail
vit=$1 make_data=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
"$make_data" "$work/data" > /dev/null
source "$(dirname "$0")/lib.sh"
# 65 images / 16 = 4 steps per epoch.
common=(--dataset cifar10 --data "$work/data/cifar10" --batch 16 --log-every 1 --threads 2 --seed 4)
# lr_of RUN STEP: the lr column of that step's row.
lr_of() { awk -F, -v s="$2" '$1 == "step" && $2 == s { print $5 }' "$1/metrics.csv"; }
epoch_of() { awk -F, -v s="$2" '$1 == "step" && $2 == s { print $3 }' "$1/metrics.csv"; }

# 1. StepLR: lr x 0.5 every epoch (4 steps), no warmup, over 3 epochs.
"$vit" train "${common[@]}" --epochs 3 --lr 0.01 --schedule step --step-size 1 --gamma 0.5 \
  --warmup-epochs 0 --out "$work/step" > /dev/null
for pair in 1:0.01 4:0.01 5:0.005 8:0.005 9:0.0025 12:0.0025; do
  step=${pair%%:*} want=${pair#*:}
  got=$(lr_of "$work/step" "$step")
  awk -v a="$got" -v b="$want" 'BEGIN { exit !(a > 0 && (a - b) / b < 1e-9 && (b - a) / b < 1e-9) }' ||
    fail "step $step: lr $got, expected $want"
done
grep -q '"step_size": 1' "$work/step/config.json" || fail "config.json lacks step_size"
grep -q '"gamma": 0.5' "$work/step/config.json" || fail "config.json lacks gamma"
echo "ok: --schedule step --step-size 1 --gamma 0.5 halves the lr every epoch"

# 2. --step-size in epochs, fractional: every 2 steps.
"$vit" train "${common[@]}" --epochs 1 --lr 0.01 --schedule step --step-size 0.5 --gamma 0.1 \
  --warmup-epochs 0 --out "$work/half" > /dev/null
[[ $(lr_of "$work/half" 2) == 0.01 && $(lr_of "$work/half" 3) == 0.001 ]] ||
  fail "--step-size 0.5: lr $(lr_of "$work/half" 2), $(lr_of "$work/half" 3)"
echo "ok: --step-size counts epochs"

# 3. The default warmup of a one-epoch run is capped at a tenth of it: the
#    first step trains at the peak lr (cosine from there), not at 0.
"$vit" train "${common[@]}" --epochs 1 --out "$work/short" > /dev/null
[[ $(lr_of "$work/short" 1) == 0.001 ]] || fail "--epochs 1 starts at lr $(lr_of "$work/short" 1), expected 0.001"
[[ $(epoch_of "$work/short" 1) == 1 && $(epoch_of "$work/short" 4) == 1 ]] || fail "step rows of epoch 1 say epoch $(epoch_of "$work/short" 1)"
grep -q '"warmup_epochs": 0.1' "$work/short/config.json" || fail "config.json: warmup not capped at 0.1 epochs"
# A longer run keeps timm's warmup, starting from 1e-5 (timm's --warmup-lr).
"$vit" train "${common[@]}" --epochs 2 --steps 1 --warmup-epochs 1 --out "$work/warm" > /dev/null
[[ $(lr_of "$work/warm" 1) == 1e-05 ]] || fail "warmup starts at lr $(lr_of "$work/warm" 1), expected 1e-05"
echo "ok: short runs are not all warmup; warmup starts at 1e-5; epochs numbered from 1"
