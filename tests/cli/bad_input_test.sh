#!/usr/bin/env bash
# Bad input, one case per line of docs/RELIABILITY.md's table: every case must
# exit non-zero (and not from a signal), print exactly one line on stderr that
# contains the expected words, and write nothing but inside its own run
# directory. With TABLE=1 it prints "case | message" rows for the docs.
# Usage: bad_input_test.sh VIT_BINARY MAKE_TINY_DATA_BINARY WORK_DIR
set -euo pipefail
vit=$(realpath "$1") make_data=$(realpath "$2") work=$3
rm -rf "$work" && mkdir -p "$work"
"$make_data" "$work/data" > /dev/null
export OMP_NUM_THREADS=2
d=$work/data c10=$work/data/cifar10 c100=$work/data/cifar100
fail() { echo "FAIL: $*" >&2; exit 1; }
cases=0
# case "name" "expected words" cmd...
case_() {
  local name=$1 want=$2; shift 2
  local err rc=0 before after
  before=$(find "$work" -path "$work/runs" -prune -o -print | sort | md5sum)
  err=$(cd "$work" && "$@" 2>&1 >/dev/null) || rc=$?
  after=$(find "$work" -path "$work/runs" -prune -o -print | sort | md5sum)
  ((rc != 0)) || fail "$name: expected a failure: $*"
  ((rc < 128)) || fail "$name: killed by signal $((rc - 128)): $err"
  [[ $(printf '%s\n' "$err" | wc -l) -eq 1 ]] || fail "$name: expected one line, got: $err"
  [[ $err == *"$want"* ]] || fail "$name: expected '$want' in: $err"
  [[ $before == "$after" ]] || fail "$name: files were written outside its run directory"
  cases=$((cases + 1))
  if [[ ${TABLE:-0} == 1 ]]; then printf '| %s | `%s` |\n' "$name" "${err//$work\//}"; else echo "ok: $name"; fi
}
# A copy of the tiny CIFAR-10 set with one file replaced by stdin's bytes.
cifar_with() {  # dir file
  rm -rf "$1" && cp -r "$c10" "$1" && cat > "$1/$2"
}
le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))\\x$(printf %02x $((($1 >> 16) & 255)))\\x$(printf %02x $((($1 >> 24) & 255)))"; }
be32() { printf "\\x$(printf %02x $((($1 >> 24) & 255)))\\x$(printf %02x $((($1 >> 16) & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))\\x$(printf %02x $(($1 & 255)))"; }
# safetensors from a JSON header and a byte count of zeros after it.
st() {  # json nbytes > file
  local h=$1 n=$2
  while (( ${#h} % 8 )); do h+=" "; done
  le32 ${#h}; le32 0; printf '%s' "$h"; head -c "$n" /dev/zero
}
train=("$vit" train --dataset cifar10 --epochs 1 --batch 16 --threads 2)
weights=$work/w/last.safetensors
"$vit" train --dataset cifar10 --data "$c10" --epochs 1 --batch 16 --threads 2 --out "$work/w" > /dev/null 2>&1

# ---- data sets
head -c 3000 "$c10/data_batch_2.bin" | cifar_with "$work/c_trunc" data_batch_2.bin
case_ "CIFAR batch truncated (not a multiple of 3073 bytes)" "not a multiple of the 3073-byte" \
  "${train[@]}" --data "$work/c_trunc" --out runs/1
rm -rf "$work/c_miss" && cp -r "$c10" "$work/c_miss" && rm "$work/c_miss/data_batch_5.bin"
case_ "CIFAR batch missing" "data_batch_5.bin: no such file" "${train[@]}" --data "$work/c_miss" --out runs/2
{ printf '\x0a'; head -c 3072 /dev/zero; } | cifar_with "$work/c_label" test_batch.bin
case_ "CIFAR label byte out of range" "record 0 has label 10, expected < 10" \
  "${train[@]}" --data "$work/c_label" --out runs/3
: | cifar_with "$work/c_empty" data_batch_1.bin
case_ "CIFAR file empty" "data_batch_1.bin: file is empty" "${train[@]}" --data "$work/c_empty" --out runs/4
printf 'a\nb\nc\n' | cifar_with "$work/c_names" batches.meta.txt
case_ "CIFAR class-name file with 3 names" "has 3 class names, expected 10" \
  "${train[@]}" --data "$work/c_names" --out runs/5
case_ "CIFAR-100 directory read as CIFAR-10" "no such file" "${train[@]}" --data "$c100" --out runs/6
mkdir -p "$work/f1"
fm() {  # name: writes $work/<name>/ with Fashion-MNIST files from the functions img/lab
  mkdir -p "$work/$1"
  for s in train t10k; do img > "$work/$1/$s-images-idx3-ubyte"; lab > "$work/$1/$s-labels-idx1-ubyte"; done
}
fmtrain=("$vit" train --dataset fashion-mnist --epochs 1 --batch 4 --threads 2)
img() { be32 0x0803; be32 2; be32 28; be32 28; head -c 1568 /dev/zero; }
lab() { be32 0x0801; be32 2; printf '\x01\x02'; }
fm fm_ok
img() { be32 0x0802; be32 2; be32 28; be32 28; head -c 1568 /dev/zero; }
fm fm_magic
case_ "IDX images with a wrong magic" "IDX magic 0x00000802, expected 0x00000803" \
  "${fmtrain[@]}" --data "$work/fm_magic" --out runs/7
img() { be32 0x0803; be32 2; be32 100000; be32 100000; }
fm fm_huge
case_ "IDX images 100000x100000" "image size 100000x100000 is outside 1..4096" \
  "${fmtrain[@]}" --data "$work/fm_huge" --out runs/8
img() { be32 0x0803; be32 2; be32 28; be32 28; head -c 1000 /dev/zero; }
fm fm_trunc
case_ "IDX images truncated" "(truncated)" "${fmtrain[@]}" --data "$work/fm_trunc" --out runs/9
img() { be32 0x0803; be32 2; be32 28; be32 28; head -c 1568 /dev/zero; }
lab() { be32 0x0801; be32 3; printf '\x01\x02\x03'; }
fm fm_count
case_ "IDX label count differs from image count" "3 labels but" "${fmtrain[@]}" --data "$work/fm_count" --out runs/10
lab() { be32 0x0801; be32 2; printf '\x01\x0c'; }
fm fm_label
case_ "IDX label out of range" "label 12 at index 1 is out of range for 10 classes" \
  "${fmtrain[@]}" --data "$work/fm_label" --out runs/11
cp -r "$work/fm_ok" "$work/fm_gz" && rm "$work/fm_gz/train-images-idx3-ubyte"
gzip -c "$work/fm_ok/train-images-idx3-ubyte" | head -c 40 > "$work/fm_gz/train-images-idx3-ubyte.gz"
case_ "gzip truncated" "truncated gzip" "${fmtrain[@]}" --data "$work/fm_gz" --out runs/12
{ gzip -c "$work/fm_ok/train-images-idx3-ubyte"; printf 'junk'; } > "$work/fm_gz/train-images-idx3-ubyte.gz"
case_ "gzip with trailing garbage" "4 trailing bytes after the gzip stream" \
  "${fmtrain[@]}" --data "$work/fm_gz" --out runs/13
{ printf '\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03'; head -c 64 /dev/urandom; } > "$work/fm_gz/train-images-idx3-ubyte.gz"
case_ "gzip corrupt" "corrupt gzip data" "${fmtrain[@]}" --data "$work/fm_gz" --out runs/14
mkdir -p "$work/fold/cat" "$work/fold/dog"
cp "$d/images/sample0.png" "$work/fold/cat/a.png"
case_ "image folder with an empty class folder" "dog" "$vit" train --dataset folder --data "$work/fold" \
  --model cifar-tiny --out runs/15
printf 'not an image' > "$work/fold/dog/b.jpg"
case_ "undecodable image in a folder" "b.jpg: not a decodable JPEG, PNG or BMP image" \
  "$vit" train --dataset folder --data "$work/fold" --model cifar-tiny --out runs/16
{ printf '\x89PNG\r\n\x1a\n'; be32 13; printf 'IHDR'; be32 20000; be32 20000; printf '\x08\x00\x00\x00\x00'; be32 0; } > "$work/huge.png"
case_ "PNG header claiming 20000x20000" "beyond the limit of 8192 per side" \
  "$vit" predict --weights "$weights" "$work/huge.png"
case_ "image file missing" "nope.png" "$vit" predict --weights "$weights" "$work/nope.png"

# ---- weights and checkpoints
head -c 100 "$weights" > "$work/cut.safetensors"
case_ "checkpoint truncated" "cut.safetensors" "$vit" eval --weights "$work/cut.safetensors" --dataset cifar10 --data "$c10"
{ le32 0; le32 256; } > "$work/big_header.safetensors"
case_ "safetensors header length 2^40 (over the 100 MB cap)" "big_header.safetensors" \
  "$vit" info --weights "$work/big_header.safetensors"
st '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}' 12 > "$work/overlap.safetensors"
case_ "safetensors with overlapping offsets" "overlap.safetensors" "$vit" info --weights "$work/overlap.safetensors"
st '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}' 16 > "$work/dup.safetensors"
case_ "safetensors with a duplicate tensor name" "duplicate" "$vit" info --weights "$work/dup.safetensors"
st '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}' 8 > "$work/shape.safetensors"
case_ "safetensors shape disagreeing with its offsets" "shape.safetensors" "$vit" info --weights "$work/shape.safetensors"
st '{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}' 8 > "$work/dtype.safetensors"
case_ "safetensors with an unknown dtype" "Q4" "$vit" info --weights "$work/dtype.safetensors"
st '{"cls_token":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' 4 > "$work/timm_like.safetensors"
case_ "weights without config and no --model" "name the architecture with --model" \
  "$vit" eval --weights "$work/timm_like.safetensors" --dataset cifar10 --data "$c10"
# NaN in head.bias: the file's last 4 bytes (the largest-offset tensor) set to a NaN.
cp "$work/w/best.safetensors" "$work/nan.safetensors"
printf '\x00\x00\xc0\x7f' | dd of="$work/nan.safetensors" bs=1 seek=$(($(stat -c %s "$work/nan.safetensors") - 4)) conv=notrunc status=none
case_ "NaN weight in a checkpoint" "holds a non-finite value" \
  "$vit" eval --weights "$work/nan.safetensors" --dataset cifar10 --data "$c10"
case_ "weights of another architecture (--model)" "architecture 'vit-b16'" \
  "$vit" eval --weights "$work/w/best.safetensors" --dataset cifar10 --data "$c10" --model vit-b16
case_ "weights for 10 classes on a 100-class data set" "the model has 10 classes" \
  "$vit" eval --weights "$weights" --dataset cifar100 --data "$c100"
printf 'airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\nlorry\n' | cifar_with "$work/c_rename" batches.meta.txt
case_ "data set whose class names differ from the checkpoint's" "was trained with 'truck'" \
  "$vit" eval --weights "$weights" --dataset cifar10 --data "$work/c_rename"
case_ "fine-tuning from weights of another width (--init)" "shape" \
  "$vit" train --dataset cifar10 --data "$c10" --model cifar-small --init "$weights" --epochs 1 --out runs/17

# ---- flags and run directories
case_ "unknown flag" "vit train: unknown flag --lr-max (see --help)" "$vit" train --lr-max 3
case_ "misspelt flag" "vit train: unknown flag --epoch (did you mean --epochs?)" "$vit" train --epoch 1
case_ "misspelt predict flag" "vit predict: unknown flag --weight (did you mean --weights?)" \
  "$vit" predict --weight w.safetensors x.png
printf 'PK\003\004\024\000\000\000\010\000\000\000' > "$work/model.pth"  # a zip, as torch.save writes
case_ "a .pth file as weights" "model.pth: not a safetensors file (it is a zip archive, as PyTorch's torch.save .pth files are; convert it with scripts/pth_to_safetensors.py)" \
  "$vit" info --weights "$work/model.pth"
case_ "unknown model preset" "unknown model preset 'vit-zz'" "${train[@]}" --data "$c10" --model vit-zz --out runs/18
case_ "--batch 0" "--batch" "$vit" train --batch 0
case_ "--lr nan" "--lr: must be a positive number, got 'nan'" "$vit" train --lr nan
case_ "--label-smoothing 1.5" "--label-smoothing: must be a number in [0, 0.999], got '1.5'" "$vit" train --label-smoothing 1.5
case_ "unknown data set" "--dataset" "$vit" train --dataset imagenet
case_ "--out holding a run (no --resume / --force)" "already holds a run" "${train[@]}" --data "$c10" --out "$work/w"
case_ "--resume with nothing to resume" "does not exist (nothing to resume)" "$vit" train --resume --out runs/none
cp -r "$work/w" "$work/w_cfg" && printf '{"lr": ' > "$work/w_cfg/config.json"
case_ "--resume with a corrupt config.json" "config.json: not valid JSON" "$vit" train --resume --out "$work/w_cfg"
case_ "--resume with a run-defining flag" "drop --lr" "$vit" train --resume --out "$work/w" --lr 0.1
case_ "--device cuda on a machine without a GPU" "--device cuda" "${train[@]}" --data "$c10" --device cuda --out runs/19
case_ "eval without --weights" "--weights" "$vit" eval --dataset cifar10 --data "$c10"
echo "all $cases bad-input cases gave one clear line and a non-zero exit"
