#!/usr/bin/env bash
# An image folder laid out as ImageNet is (DIR/train/<class>, DIR/val/<class>),
# photos of several aspect ratios, trained with timm's fine-tuning pipeline
# (RandomResizedCrop --scale/--ratio, --color-jitter, erasing with its area,
# --mean/--std, --crop-pct): config.json and the checkpoint record them, and
# train and eval use val/ as given. Also the --data hint for CIFAR.
# Usage: feature_folder_layout.sh VIT_BINARY MAKE_TINY_DATA_BINARY WORK_DIR
set -euo pipefail
vit=$1 make_data=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
"$make_data" "$work/data" --folder
source "$(dirname "$0")/lib.sh"
data=$work/data/flowers
[[ -d $data/train/a && -d $data/val/b ]] || fail "make_tiny_data --folder wrote no train/val layout"

# 1. Train a few steps of a 32-pixel model on it with every pipeline flag.
"$vit" train --dataset folder --data "$data" --model cifar-tiny --steps 3 --batch 4 --threads 2 \
  --seed 5 --scale 0.2 0.9 --ratio 0.5 2 --color-jitter 0.4 --erasing 0.5 --erasing-area 0.1 0.4 \
  --mean 0.4 0.45 0.5 --std 0.2 0.25 0.3 --crop-pct 0.9 --val-ratio 0.5 --no-hflip --out "$work/run" > "$work/train.log" 2>&1 \
  || { cat "$work/train.log" >&2; fail "training on the train/val folder failed"; }
python3 - "$work/run/config.json" "$work/run/last.safetensors" <<'PY' || fail "config.json or the checkpoint lacks the pipeline"
import json, struct, sys
c = json.load(open(sys.argv[1]))
want = {"scale": [0.2, 0.9], "ratio": [0.5, 2.0], "color_jitter": 0.4, "erasing": 0.5,
        "erasing_area": [0.1, 0.4], "mean": [0.4, 0.45, 0.5], "std": [0.2, 0.25, 0.3], "crop_pct": 0.9,
        "hflip": False}
for k, v in want.items():
    assert c.get(k) == v, f"config.json {k}: {c.get(k)!r}, expected {v!r}"
with open(sys.argv[2], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    meta = json.loads(f.read(n))["__metadata__"]
norm = json.loads(meta["vit.normalization"])
assert [round(x, 6) for x in norm["mean"]] == [0.4, 0.45, 0.5], norm
assert [round(x, 6) for x in norm["std"]] == [0.2, 0.25, 0.3], norm
PY
echo "ok: train/val folder with the fine-tuning pipeline flags, recorded in config.json"

# 2. eval reads DIR/val (4 images), not a split of the whole folder.
"$vit" eval --weights "$work/run/last.safetensors" --dataset folder --data "$data" --out "$work/eval_out" > "$work/eval.log" \
  || fail "eval on the train/val folder failed"
grep -q "(4 images)" "$work/eval.log" || fail "eval did not use val/'s 4 images: $(cat "$work/eval.log")"
echo "ok: eval uses DIR/val"

# 3. Defaults on a random split of one class folder still work (aspect ratios kept).
"$vit" train --dataset folder --data "$data/train" --model cifar-tiny --steps 2 --batch 4 --threads 2 \
  --out "$work/split" > /dev/null 2>&1 || fail "training on a plain class folder failed"
echo "ok: plain class folder with a --val-ratio split"

# 4. A 224-pixel preset on a folder defaults to ImageNet's statistics (timm's fine-tuning recipe).
"$vit" train --dataset folder --data "$data" --model vit-ti16 --steps 1 --batch 2 --threads 2 \
  --out "$work/ti" > /dev/null 2>&1 || fail "training vit-ti16 on the folder failed"
python3 - "$work/ti/last.safetensors" <<'PY' || fail "vit-ti16 on a folder should default to ImageNet's mean/std"
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    meta = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))["__metadata__"]
norm = json.loads(meta["vit.normalization"])
assert [round(x, 4) for x in norm["mean"]] == [0.485, 0.456, 0.406], norm
assert [round(x, 4) for x in norm["std"]] == [0.229, 0.224, 0.225], norm
PY
echo "ok: ImageNet statistics by default for a 224 preset on a folder"

# 5. Clear errors: half a layout, a val class train lacks, --mean of the wrong length, CIFAR without --data.
mkdir -p "$work/half/train/a" && cp "$data/train/a/10.png" "$work/half/train/a/"
expect_error "has train/ but no val/" "$vit" train --dataset folder --data "$work/half" \
  --model cifar-tiny --steps 1 --out "$work/x1"
mkdir -p "$work/extra" && cp -r "$data/train" "$data/val" "$work/extra/"
mkdir -p "$work/extra/val/zebra" && cp "$data/val/a/10.png" "$work/extra/val/zebra/"
expect_error "class 'zebra' has no folder in" "$vit" train --dataset folder --data "$work/extra" \
  --model cifar-tiny --steps 1 --out "$work/x2"
expect_error "--mean: 2 values for a model with 3 channels" "$vit" train --dataset folder \
  --data "$data" --model cifar-tiny --steps 1 --mean 0.5 0.5 --std 0.2 0.2 --out "$work/x3"
expect_error "scripts/fetch_cifar.sh cifar10 DIR" "$vit" train --dataset cifar10 --steps 1 --out "$work/x4"
echo "ok: folder layout errors"
