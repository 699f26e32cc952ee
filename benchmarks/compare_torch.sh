#!/usr/bin/env bash
# compare_torch.sh: the same ViT training step in vit (build/bin/bench_train_step)
# and in PyTorch (benchmarks/torch_train_step.py), back to back, same model,
# batch, threads, steps and warm-up.
#
# Interpreters: Debian's /usr/bin/python3 (python3-torch 1.13, OpenBLAS) and,
# if VIT_TORCH_VENV is set, $VIT_TORCH_VENV/bin/python (e.g. a current PyPI torch).
# For each, runs are interleaved vit, torch, vit, torch, ... (--repeat R pairs)
# so that load from other work on a shared machine hits both sides alike; the
# summary reports the median of the R per-pair ratios.
#
# Prints every JSON line as it comes, then one summary line per interpreter:
#   summary: ... img/s vit/torch = X (median of R) ... peak_rss vit/torch = Y
# Exits 1 with a message if the binary is missing, torch cannot be imported,
# or a run fails; 2 on bad arguments.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: benchmarks/compare_torch.sh [--model PRESET] [--batch B] [--threads T] [--steps S]
                                   [--warmup W] [--repeat R]
  defaults: --model cifar-tiny --batch 128 --threads 2 --steps 10 --warmup 2 --repeat 1
  env: VIT_TORCH_VENV=/path/to/venv   also compare against that venv's torch
       VIT_BENCH_BIN=/path/to/bench_train_step   (default: build/bin/bench_train_step)
EOF
}

die() { echo "compare_torch.sh: $*" >&2; exit 1; }
bad() { echo "compare_torch.sh: $* (see --help)" >&2; exit 2; }

model=cifar-tiny batch=128 threads=2 steps=10 warmup=2 repeat=1
while [[ $# -gt 0 ]]; do
  opt=$1
  case $opt in
    -h|--help) usage; exit 0 ;;
    --*=*) val=${opt#*=}; opt=${opt%%=*}; shift ;;
    --*) [[ $# -ge 2 ]] || bad "$opt needs a value"; val=$2; shift 2 ;;
    *) bad "unexpected argument '$opt'" ;;
  esac
  case $opt in
    --model) model=$val ;;
    --batch) batch=$val ;;
    --threads) threads=$val ;;
    --steps) steps=$val ;;
    --warmup) warmup=$val ;;
    --repeat) repeat=$val ;;
    *) bad "unknown option '$opt'" ;;
  esac
done
for pair in "batch:$batch" "threads:$threads" "steps:$steps" "repeat:$repeat"; do
  [[ ${pair#*:} =~ ^[1-9][0-9]*$ ]] || bad "--${pair%%:*} expects a positive integer, got '${pair#*:}'"
done
[[ $warmup =~ ^[0-9]+$ ]] || bad "--warmup expects a non-negative integer, got '$warmup'"
[[ $model =~ ^[A-Za-z0-9_.-]+$ ]] || bad "--model expects a preset name, got '$model'"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${VIT_BENCH_BIN:-$root/build/bin/bench_train_step}
script=$root/benchmarks/torch_train_step.py
[[ -x $bin ]] || die "$bin not found or not executable; build it first:
  cmake -B build -S . && cmake --build build -j2 --target bench_train_step"
[[ -f $script ]] || die "$script not found"

pythons=(/usr/bin/python3)
if [[ -n ${VIT_TORCH_VENV:-} ]]; then
  pythons+=("$VIT_TORCH_VENV/bin/python")
fi
for py in "${pythons[@]}"; do
  [[ -x $py ]] || die "python interpreter $py not found"
  "$py" -c 'import torch' 2>/dev/null ||
    die "torch is not importable by $py (Debian: apt-get install python3-torch; venv: pip install torch)"
done

# Both sides get the same thread settings; OpenBLAS (Debian's torch) reads its own variable.
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads

common=(--model "$model" --batch "$batch" --threads "$threads" --steps "$steps" --warmup "$warmup")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run NAME CMD...: runs CMD, prints and stores its last line (the JSON object).
run() {
  local name=$1; shift
  if ! "$@" >"$tmp/out" 2>&1; then
    cat "$tmp/out" >&2
    die "$name run failed: $*"
  fi
  local json
  json=$(tail -n 1 "$tmp/out")
  [[ $json == \{* ]] || { cat "$tmp/out" >&2; die "$name run printed no JSON last line"; }
  echo "$json"
  echo "$json" >>"$tmp/$name.jsonl"
}

summaries=()
for py in "${pythons[@]}"; do
  rm -f "$tmp/vit.jsonl" "$tmp/torch.jsonl"
  echo "# $py: $repeat x (vit, torch) with ${common[*]}"
  for ((r = 1; r <= repeat; ++r)); do
    run vit "$bin" "${common[@]}"
    run torch "$py" "$script" "${common[@]}"
  done
  summaries+=("$("$py" - "$tmp/vit.jsonl" "$tmp/torch.jsonl" "$py" <<'EOF'
import json, statistics, sys
vit = [json.loads(l) for l in open(sys.argv[1])]
tor = [json.loads(l) for l in open(sys.argv[2])]
speed = [v["img_per_s"] / t["img_per_s"] for v, t in zip(vit, tor)]
rss = [v["peak_rss_mb"] / t["peak_rss_mb"] for v, t in zip(vit, tor)]
med = statistics.median
t0 = tor[0]
print(f"summary: {t0['model']} batch {t0['batch']} threads {t0['threads']} steps {t0['steps']}, "
      f"torch {t0['torch']} ({sys.argv[3]}): "
      f"img/s vit {med(v['img_per_s'] for v in vit):.1f} torch {med(t['img_per_s'] for t in tor):.1f} "
      f"-> vit/torch = {med(speed):.3f} (median of {len(speed)}: "
      + " ".join(f"{s:.3f}" for s in speed) + "); "
      f"peak_rss MB vit {med(v['peak_rss_mb'] for v in vit):.0f} torch {med(t['peak_rss_mb'] for t in tor):.0f} "
      f"-> vit/torch = {med(rss):.3f}")
EOF
  )")
done
printf '%s\n' "${summaries[@]}"
