#!/usr/bin/env bash
# Model options of issue 16 through the CLI: the in21k presets in `vit info`,
# a run with --pos-embed sincos --gelu tanh --representation-size (the table
# stays MAE's formula after training; the config says so), and a .pth written
# in torch's format converted by scripts/pth_to_safetensors.py into --init.
# Usage: feature_model_options.sh VIT_BINARY MAKE_TINY_DATA_BINARY WORK_DIR
set -euo pipefail
vit=$1 make_data=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
root=$here/../..
rm -rf "$work" && mkdir -p "$work"
"$make_data" "$work/data"
source "$(dirname "$0")/lib.sh"

# 1. The ImageNet-21k presets, by vit name and timm alias: timm 0.4's shapes and counts.
"$vit" info --model vit-b16-in21k > "$work/info.txt"
grep -q "classes 21843" "$work/info.txt" || fail "vit-b16-in21k: not 21843 classes"
grep -q "pre-logits   768" "$work/info.txt" || fail "vit-b16-in21k: no 768-wide pre-logits"
grep -q "parameters   103186515 " "$work/info.txt" || fail "vit-b16-in21k: parameter count"
"$vit" info --model vit_huge_patch14_224_in21k | grep -q "parameters   660385363 " ||
  fail "vit_huge_patch14_224_in21k: parameter count"
echo "ok: in21k presets"

# 2. sin-cos position embedding, tanh GELU and a pre-logits layer on a small run.
common=(--dataset cifar10 --data "$work/data/cifar10" --model cifar-tiny --epochs 1 --batch 16
        --steps 2 --threads 2 --seed 1)
"$vit" train "${common[@]}" --pos-embed sincos --gelu tanh --representation-size 16 \
  --out "$work/sincos" > /dev/null 2>&1 || fail "training with --pos-embed sincos failed"
"$vit" info --weights "$work/sincos/last.safetensors" > "$work/info2.txt"
grep -q "fixed 2-D sin-cos" "$work/info2.txt" || fail "the checkpoint's config lost pos_embed"
grep -q "pre-logits   16" "$work/info2.txt" || fail "the checkpoint's config lost representation_size"
python3 - "$work/sincos/last.safetensors" "$root/tests/scripts" <<'EOF' || fail "pos_embed moved in training"
import math, sys
sys.path.insert(0, sys.argv[2])
import pth_fixture as fx
meta, t = fx.read_safetensors(sys.argv[1])
assert '"pos_embed":"sincos"' in meta["vit.config"] and '"gelu":"tanh"' in meta["vit.config"]
dtype, shape, raw = t["pos_embed"]
assert shape == [1, 65, 192], shape
v = fx.values(dtype, raw)
G, D, Q = 8, 192, 48
for i in range(G):
    for j in range(G):
        row = v[(1 + i * G + j) * D:(2 + i * G + j) * D]
        for k in range(Q):
            w = 10000.0 ** (-k / Q)
            want = (math.sin(j * w), math.cos(j * w), math.sin(i * w), math.cos(i * w))
            for part in range(4):
                assert abs(row[part * Q + k] - want[part]) < 1e-6, (i, j, k, part)
assert all(x == 0 for x in v[:D])
EOF
expect_error "sincos" "$vit" train "${common[@]}" --pos-embed rope --out "$work/rope"
echo "ok: --pos-embed sincos stays MAE's table through training; --gelu, --representation-size recorded"

# 3. A .pth in torch's format (DDP prefix, checkpoint dict) -> safetensors -> --init.
python3 "$root/tests/scripts/pth_fixture.py" "$work/w.pth" "$work/sincos/best.safetensors" \
  --wrap state_dict --prefix module.
python3 "$root/scripts/pth_to_safetensors.py" "$work/w.pth" "$work/w.safetensors" --quiet
"$vit" train "${common[@]}" --pos-embed sincos --gelu tanh --init "$work/w.safetensors" \
  --freeze-backbone --out "$work/ft" > /dev/null 2> "$work/ft.err" || fail "--init from a converted .pth failed"
grep -q "pre-logits layer dropped" "$work/ft.err" || fail "fine-tuning without pre-logits should drop it"
expect_error "not a PyTorch checkpoint" python3 "$root/scripts/pth_to_safetensors.py" \
  "$work/info.txt" "$work/never.safetensors"
[[ ! -e $work/never.safetensors ]] || fail "a failed conversion left its output"
echo "ok: .pth -> pth_to_safetensors.py -> --init"
