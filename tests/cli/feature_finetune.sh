#!/usr/bin/env bash
# The fine-tuning tutorial end to end: a generated 2-class photo folder with
# train/ and val/, weights arriving as a PyTorch .pth (written without torch,
# in torch.save's format) and converted by scripts/pth_to_safetensors.py,
# `--init` from them with `--freeze-backbone` and EMA on, the confusion
# matrix in the run directory, and `predict` naming the folder's classes.
# Usage: feature_finetune.sh VIT_BINARY MAKE_TINY_DATA_BINARY WORK_DIR
set -euo pipefail
vit=$1 make_data=$2 work=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$work" && mkdir -p "$work"
"$make_data" "$work/data"
"$make_data" "$work/data" --folder
source "$(dirname "$0")/lib.sh"
photos=$work/data/flowers

# 1. "Pretrained" weights: a few steps of cifar-tiny on the 10-class CIFAR
#    stand-in, then handed over as a DataParallel-prefixed .pth checkpoint.
"$vit" train --dataset cifar10 --data "$work/data/cifar10" --model cifar-tiny --steps 2 --batch 16 \
  --threads 2 --seed 1 --out "$work/pre" > "$work/pre.log"
python3 "$here/tests/scripts/pth_fixture.py" "$work/pre.pth" "$work/pre/best.safetensors" \
  --wrap state_dict --prefix module.
python3 "$here/scripts/pth_to_safetensors.py" "$work/pre.pth" "$work/pre_converted.safetensors" \
  > "$work/convert.log"
echo "ok: .pth converted"

# 2. Fine-tune on the folder: new 2-class head, backbone frozen, EMA kept.
"$vit" train --dataset folder --data "$photos" --model cifar-tiny \
  --init "$work/pre_converted.safetensors" --freeze-backbone --model-ema --model-ema-decay 0.9 \
  --epochs 2 --batch 4 --threads 2 --seed 2 --out "$work/ft" > "$work/ft.log" 2>&1 \
  || { cat "$work/ft.log" >&2; fail "fine-tuning failed"; }
grep -q "init: " "$work/ft.log" || fail "no init line: $(cat "$work/ft.log")"
grep -qi "head" "$work/ft.log" || fail "the re-initialised head is not reported"
for f in config.json best.safetensors last.safetensors ema.safetensors confusion.csv confusion.png curves.png; do
  [[ -s $work/ft/$f ]] || fail "the fine-tuning run lacks $f"
done
# The frozen backbone did not move (raw and EMA); the head did; the classes are the folder's.
python3 - "$work/pre_converted.safetensors" "$work/ft/last.safetensors" "$work/ft/ema.safetensors" <<'PY'
import json, struct, sys
def read(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    return {k: data[v['data_offsets'][0]:v['data_offsets'][1]] for k, v in header.items()
            if k != '__metadata__'}, header.get('__metadata__', {})
pre, _ = read(sys.argv[1])
ft, meta = read(sys.argv[2])
ema, _ = read(sys.argv[3])
frozen = [k for k in pre if k.startswith('blocks.') or k.startswith('patch_embed.')]
assert frozen, 'no backbone tensors in the converted file'
for k in frozen:
    assert ft[k] == pre[k], f'frozen {k} moved'
    assert ema[k] == pre[k], f'EMA of frozen {k} differs'
assert ft['head.weight'] != ema['head.weight'], 'EMA equals the raw head'
assert json.loads(meta['vit.classes']) == ['a', 'b'], meta['vit.classes']
print(f'ok: {len(frozen)} backbone tensors unchanged, EMA head differs from the raw one')
PY
head -1 "$work/ft/confusion.csv" | grep -q "a" || fail "confusion.csv has no class names"
cells=$(tail -n +2 "$work/ft/confusion.csv" | wc -l)
[[ $cells -eq 2 ]] || fail "confusion.csv should have 2 class rows, has $cells"
echo "ok: fine-tuned with --init from .pth, frozen backbone, EMA, confusion matrix"

# 3. predict names the folder's classes; eval works on the EMA weights and val/.
img=$(find "$photos/val/a" -name '*.png' | head -1)
"$vit" predict --weights "$work/ft/best.safetensors" "$img" --top 2 > "$work/predict.log"
grep -Eq '^ +1\. (a|b) ' "$work/predict.log" || fail "predict does not name the classes: $(cat "$work/predict.log")"
"$vit" eval --weights "$work/ft/ema.safetensors" --dataset folder --data "$photos" \
  --out "$work/eval_ema" > "$work/eval.log" 2>&1 || { cat "$work/eval.log" >&2; fail "eval of ema.safetensors failed"; }
[[ -s $work/eval_ema/confusion.csv ]] || fail "eval wrote no confusion.csv"
echo "ok: predict with class names, eval of the EMA weights"
