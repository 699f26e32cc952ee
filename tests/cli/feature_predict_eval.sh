#!/usr/bin/env bash
# `vit eval`'s per-class table and confusion matrix files, and `vit predict`
# through the library's Classifier: class names, one block's or one head's
# attention map, one-line errors for bad --attention-layer/--attention-head,
# and the note (once) when a grey picture is converted for an RGB model.
# Usage: feature_predict_eval.sh VIT_BINARY MAKE_TINY_DATA_BINARY WORK_DIR
set -euo pipefail
vit=$1 make_data=$2 work=$3
tools=$(dirname "$make_data")
rm -rf "$work" && mkdir -p "$work"
"$make_data" "$work/data"
source "$(dirname "$0")/lib.sh"
classes=(airplane automobile bird cat deer dog frog horse ship truck)

# A tiny CIFAR-10 run (2 steps of 16 images): weights with class names.
"$vit" train --dataset cifar10 --data "$work/data/cifar10" --epochs 1 --steps 2 --batch 16 --seed 3 \
  --threads 2 --out "$work/run" > "$work/train.log"
w=$work/run/last.safetensors

# 1. eval: the per-class table on stdout, confusion.csv and confusion.png in --out.
"$vit" eval --weights "$w" --dataset cifar10 --data "$work/data/cifar10" --threads 2 \
  --out "$work/ev" > "$work/eval.log"
grep -q "top-1" "$work/eval.log" || fail "eval printed no accuracy"
grep -Eq "class +images +correct +accuracy +precision" "$work/eval.log" || fail "no per-class header"
for c in "${classes[@]}"; do
  grep -Eq "^  $c +2 +[0-9]+ +[0-9.]+%" "$work/eval.log" || fail "no per-class row for $c (2 test images each)"
done
grep -q "mean per-class accuracy" "$work/eval.log" || fail "no mean per-class accuracy"
csv=$work/ev/confusion.csv
[[ $(head -1 "$csv") == 'true\predicted,airplane,automobile,bird,cat,deer,dog,frog,horse,ship,truck' ]] \
  || fail "confusion.csv header: $(head -1 "$csv")"
[[ $(wc -l < "$csv") -eq 11 ]] || fail "confusion.csv should have 1 + 10 rows"
total=$(tail -n +2 "$csv" | awk -F, '{ for (i = 2; i <= NF; ++i) s += $i } END { print s }')
[[ $total -eq 20 ]] || fail "confusion.csv counts sum to $total, not the 20 test images"
# The diagonal is top-1: its share of the 20 images is the accuracy eval printed.
diag=$(tail -n +2 "$csv" | awk -F, '{ d += $(NR + 1) } END { printf "%.2f", 100 * d / 20 }')
top1=$(sed -n 's/.*top-1 \([0-9.]*\)%.*/\1/p' "$work/eval.log")
[[ $diag == "$top1" ]] || fail "confusion diagonal $diag% is not top-1 $top1%"
[[ $(head -c 8 "$work/ev/confusion.png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] \
  || fail "confusion.png is not a PNG"
[[ $(ls -A "$work/ev" | tr '\n' ' ') == "confusion.csv confusion.png " ]] \
  || fail "--out should hold the two files only: $(ls -A "$work/ev")"
echo "ok: eval per-class table, confusion.csv ($top1% on the diagonal) and confusion.png"

# 2. predict: class names, and one forward for several images (same answers as one by one).
"$vit" predict --weights "$w" --threads 2 "$work/data/images/sample0.png" \
  "$work/data/images/sample1.bmp" --top 3 > "$work/predict.log"
grep -Eq "^  1\. (airplane|automobile|bird|cat|deer|dog|frog|horse|ship|truck) " "$work/predict.log" \
  || fail "predict printed no class names"
[[ $(grep -c '^  [0-9]\.' "$work/predict.log") -eq 6 ]] || fail "expected 3 classes for each of 2 images"
"$vit" predict --weights "$w" --threads 2 "$work/data/images/sample1.bmp" --top 3 > "$work/one.log"
diff <(tail -n 4 "$work/predict.log") "$work/one.log" > /dev/null || fail "batched predict differs from one image"
echo "ok: predict with class names, batch == single"

# 3. One block's attention: a head, or the mean of the heads; rollout stays the default.
"$vit" predict --weights "$w" --threads 2 "$work/data/images/sample0.png" \
  --attention-map "$work/head.png" --attention-layer 1 --attention-head 2 > "$work/head.log"
"$vit" predict --weights "$w" --threads 2 "$work/data/images/sample0.png" \
  --attention-map "$work/layer.png" --attention-layer 0 > /dev/null
"$vit" predict --weights "$w" --threads 2 "$work/data/images/sample0.png" \
  --attention-map "$work/roll.png" > /dev/null
for f in head layer roll; do
  [[ $(head -c 8 "$work/$f.png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] || fail "$f.png is not a PNG"
done
cmp -s "$work/head.png" "$work/roll.png" && fail "the head map is the rollout map"
grep -q "attention map: $work/head.png" "$work/head.log" || fail "predict did not name the map"
echo "ok: attention maps of one head, one layer, and the rollout"

# 4. Bad layer or head: one line each, naming the range.
expect_error "--attention-layer 6: the model has 6 blocks (0 to 5)" \
  "$vit" predict --weights "$w" "$work/data/images/sample0.png" --attention-map "$work/x.png" --attention-layer 6
expect_error "--attention-head 3: the model has 3 heads per block (0 to 2)" \
  "$vit" predict --weights "$w" "$work/data/images/sample0.png" --attention-map "$work/x.png" \
  --attention-layer 0 --attention-head 3
expect_error "--attention-head: needs --attention-layer" \
  "$vit" predict --weights "$w" "$work/data/images/sample0.png" --attention-map "$work/x.png" --attention-head 0
expect_error "--attention-layer: needs --attention-map" \
  "$vit" predict --weights "$w" "$work/data/images/sample0.png" --attention-layer 0
[[ ! -e $work/x.png ]] || fail "a refused run wrote a map"

# 5. Grey pictures into the RGB model: converted, and said once on stderr.
"$tools/grey_png" "$work/grey1.png" 64 48
"$tools/grey_png" "$work/grey2.png" 40 40
"$vit" predict --weights "$w" --threads 2 "$work/grey1.png" "$work/grey2.png" \
  > "$work/grey.log" 2> "$work/grey.err"
[[ $(grep -c '^  1\.' "$work/grey.log") -eq 2 ]] || fail "grey pictures were not classified"
[[ $(wc -l < "$work/grey.err") -eq 1 ]] || fail "expected one note, got: $(cat "$work/grey.err")"
grep -q "note: $work/grey1.png: grey 64x48 image converted to the model's RGB 32x32 input" "$work/grey.err" \
  || fail "conversion note: $(cat "$work/grey.err")"
echo "ok: grey to RGB conversion noted once"

echo "all predict/eval checks passed"
