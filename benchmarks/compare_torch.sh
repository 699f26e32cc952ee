#!/usr/bin/env bash
# compare_torch.sh: the same ViT workloads in vit (build/bin/bench_train_step)
# and in PyTorch (benchmarks/torch_train_step.py), side by side, same model,
# batch, threads, steps and warm-up, in one command.
#
# Rows (issue 17; --rows picks a subset):
#   train fp32  cifar-tiny, fmnist-tiny, batch 128   vit fp32        vs torch eager fp32
#   train bf16  cifar-tiny, fmnist-tiny, batch 128   vit --precision bf16 (MixedPrecision)
#                                                    vs torch eager under autocast(cpu, bf16)
#   infer fp32  cifar-tiny, fmnist-tiny, batch 256   vit eval forward without autograd
#                                                    vs torch eval under inference_mode()
#   infer bf16  cifar-tiny, fmnist-tiny, batch 256   vit's bf16 twin forward
#                                                    vs torch inference_mode() + autocast bf16
# or, with any of --model --batch --mode --precision, one custom row.
#
# Interpreters: Debian's /usr/bin/python3 (python3-torch 1.13, OpenBLAS; left out
# with VIT_TORCH_DEBIAN=0) and, if VIT_TORCH_VENV is set, $VIT_TORCH_VENV/bin/python
# (e.g. a current PyPI torch).
# For each row, R times (--repeat): vit, then torch under each interpreter, so
# that load from other work on a shared machine hits all sides alike; a row's
# ratio for an interpreter is the median of the R per-pair ratios
# (vit run r / that interpreter's torch run r).
#
# Bars (a verdict per row in the summary; a missed bar does not change the exit
# code) apply to the VIT_TORCH_VENV torch only; Debian's rows are reported
# without bars:
#   train bf16: img/s vit/torch >= 1.5     train fp32: >= 2
#   infer (fp32 and bf16): >= 1.5          train rows: peak RSS vit < torch
#
# A torch run that fails or exceeds --torch-timeout makes that row "n/a (why)"
# for that interpreter (its remaining repeats are skipped); the rest goes on.
#
# Prints every JSON line as it comes, then one markdown summary table.
# Exits 1 with a message if the binary is missing, torch cannot be imported,
# or a vit run fails; 2 on bad arguments.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: benchmarks/compare_torch.sh [--rows SET] [--threads T] [--steps S] [--warmup W]
                                   [--repeat R] [--torch-timeout SEC]
       benchmarks/compare_torch.sh [--model PRESET] [--batch B] [--mode train|infer]
                                   [--precision fp32|bf16] [--threads T] [--steps S]
                                   [--warmup W] [--repeat R] [--torch-timeout SEC]
  First form: the rows of issue 17 (2 models x train/infer x fp32/bf16).
    --rows SET   all (default), train, infer, or a comma list of
                 train-fp32, train-bf16, infer-fp32, infer-bf16
                 (each for cifar-tiny and fmnist-tiny; train batch 128, infer batch 256)
  Second form: any of --model --batch --mode --precision makes one custom row
    (defaults --model cifar-tiny --mode train --precision fp32, --batch 128 for
    train and 256 for infer); it cannot be combined with --rows.
  Both: --threads 2 --steps 10 --warmup 2 --repeat 1 --torch-timeout 900 (seconds per
    torch run; one that fails or runs over shows as n/a in its row)
  env: VIT_TORCH_VENV=/path/to/venv   also compare against that venv's torch (the bars
                                      are judged against it)
       VIT_TORCH_DEBIAN=0                  leave Debian's torch 1.13 (/usr/bin/python3) out
       VIT_BENCH_BIN=/path/to/bench_train_step   (default: build/bin/bench_train_step)
EOF
}

die() { echo "compare_torch.sh: $*" >&2; exit 1; }
bad() { echo "compare_torch.sh: $* (see --help)" >&2; exit 2; }

rows_opt="" model="" batch="" mode="" precision=""
threads=2 steps=10 warmup=2 repeat=1 torch_timeout=900
while [[ $# -gt 0 ]]; do
  opt=$1
  case $opt in
    -h|--help) usage; exit 0 ;;
    --*=*) val=${opt#*=}; opt=${opt%%=*}; shift ;;
    --*) [[ $# -ge 2 ]] || bad "$opt needs a value"; val=$2; shift 2 ;;
    *) bad "unexpected argument '$opt'" ;;
  esac
  case $opt in
    --rows) rows_opt=$val ;;
    --model) model=$val ;;
    --batch) batch=$val ;;
    --mode) mode=$val ;;
    --precision) precision=$val ;;
    --threads) threads=$val ;;
    --steps) steps=$val ;;
    --warmup) warmup=$val ;;
    --repeat) repeat=$val ;;
    --torch-timeout) torch_timeout=$val ;;
    *) bad "unknown option '$opt'" ;;
  esac
done
for pair in "threads:$threads" "steps:$steps" "repeat:$repeat" "torch-timeout:$torch_timeout"; do
  [[ ${pair#*:} =~ ^[1-9][0-9]*$ ]] || bad "--${pair%%:*} expects a positive integer, got '${pair#*:}'"
done
[[ $warmup =~ ^[0-9]+$ ]] || bad "--warmup expects a non-negative integer, got '$warmup'"

# rows: one "mode precision model batch" per entry.
rows=()
custom=0
[[ -n $model || -n $batch || -n $mode || -n $precision ]] && custom=1
if ((custom)); then
  [[ -z $rows_opt ]] || bad "--rows cannot be combined with --model/--batch/--mode/--precision (one custom row)"
  model=${model:-cifar-tiny} mode=${mode:-train} precision=${precision:-fp32}
  [[ $mode == train || $mode == infer ]] || bad "--mode expects train or infer, got '$mode'"
  [[ $precision == fp32 || $precision == bf16 ]] || bad "--precision expects fp32 or bf16, got '$precision'"
  if [[ -z $batch ]]; then
    if [[ $mode == train ]]; then batch=128; else batch=256; fi
  fi
  [[ $batch =~ ^[1-9][0-9]*$ ]] || bad "--batch expects a positive integer, got '$batch'"
  [[ $model =~ ^[A-Za-z0-9_.-]+$ ]] || bad "--model expects a preset name, got '$model'"
  rows=("$mode $precision $model $batch")
else
  kinds=()
  IFS=, read -r -a picks <<<"${rows_opt:-all}"
  ((${#picks[@]})) || bad "--rows expects all, train, infer or a comma list of train-fp32, train-bf16, infer-fp32, infer-bf16, got ''"
  for p in "${picks[@]}"; do
    case $p in
      all) kinds+=(train-fp32 train-bf16 infer-fp32 infer-bf16) ;;
      train) kinds+=(train-fp32 train-bf16) ;;
      infer) kinds+=(infer-fp32 infer-bf16) ;;
      train-fp32|train-bf16|infer-fp32|infer-bf16) kinds+=("$p") ;;
      *) bad "--rows expects all, train, infer or a comma list of train-fp32, train-bf16, infer-fp32, infer-bf16, got '$p'" ;;
    esac
  done
  declare -A seen=()
  for k in "${kinds[@]}"; do
    [[ -z ${seen[$k]:-} ]] || continue
    seen[$k]=1
    m=${k%-*} p=${k#*-} b=128
    [[ $m == infer ]] && b=256
    rows+=("$m $p cifar-tiny $b" "$m $p fmnist-tiny $b")
  done
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${VIT_BENCH_BIN:-$root/build/bin/bench_train_step}
script=$root/benchmarks/torch_train_step.py
[[ -x $bin ]] || die "$bin not found or not executable; build it first:
  cmake -B build -S . && cmake --build build -j2 --target bench_train_step"
[[ -f $script ]] || die "$script not found"

pythons=()
# Debian's 1.13 can be left out where it is unusably slow (on a Zen 3 its
# training step took 29 s against 2.15's 1 s): VIT_TORCH_DEBIAN=0.
[[ ${VIT_TORCH_DEBIAN:-1} == 0 ]] || pythons+=(/usr/bin/python3)
bars_for=""  # the interpreter whose torch the bars are judged against
if [[ -n ${VIT_TORCH_VENV:-} ]]; then
  pythons+=("$VIT_TORCH_VENV/bin/python")
  bars_for=$VIT_TORCH_VENV/bin/python
fi
((${#pythons[@]})) || die "VIT_TORCH_DEBIAN=0 leaves no torch to compare against: set VIT_TORCH_VENV too"
versions=()  # per interpreter: "<torch version> sdpa|explicit attention"
for py in "${pythons[@]}"; do
  [[ -x $py ]] || die "python interpreter $py not found"
  v=$("$py" -c 'import torch, torch.nn.functional as F
print(torch.__version__, "sdpa" if hasattr(F, "scaled_dot_product_attention") else "explicit-attn")' 2>/dev/null) ||
    die "torch is not importable by $py (Debian: apt-get install python3-torch; venv: pip install torch)"
  versions+=("$v")
done

# Every side gets the same thread settings; OpenBLAS (Debian's torch) reads its own variable.
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run_vit FILE CMD...: runs CMD, prints its last line (the JSON object) and appends it to FILE.
run_vit() {
  local file=$1; shift
  if ! "$@" >"$tmp/out" 2>&1; then
    cat "$tmp/out" >&2
    die "vit run failed: $*"
  fi
  local json
  json=$(tail -n 1 "$tmp/out")
  [[ $json == \{* ]] || { cat "$tmp/out" >&2; die "vit run printed no JSON last line: $*"; }
  echo "$json"
  echo "$json" >>"$file"
}

# run_torch FILE NAFILE CMD...: as run_vit, but a failure or a timeout writes
# the reason to NAFILE (the row becomes n/a for this interpreter) instead of exiting.
run_torch() {
  local file=$1 na=$2; shift 2
  local rc=0
  timeout --kill-after=10 "$torch_timeout" "$@" >"$tmp/out" 2>&1 || rc=$?
  local json
  json=$(tail -n 1 "$tmp/out")
  if ((rc == 0)) && [[ $json == \{* ]]; then
    echo "$json"
    echo "$json" >>"$file"
    return
  fi
  local why
  if ((rc == 124 || rc == 137)); then
    why="torch run exceeded --torch-timeout ${torch_timeout} s"
  else
    why="torch run failed (exit $rc): $(grep -v '^[[:space:]]*$' "$tmp/out" | tail -n 1 | cut -c1-160)"
  fi
  echo "# n/a: $why" >&2
  tail -n 5 "$tmp/out" >&2
  echo "$why" >"$na"
}

common=(--threads "$threads" --steps "$steps" --warmup "$warmup")
echo "# compare_torch.sh: ${#rows[@]} row(s) x $repeat pair(s), ${common[*]}; interpreters: ${pythons[*]}"
for ((i = 0; i < ${#rows[@]}; ++i)); do
  read -r m p mdl b <<<"${rows[$i]}"
  echo "# row $((i + 1))/${#rows[@]}: $m $p $mdl batch $b"
  args=(--model "$mdl" --batch "$b" --mode "$m" --precision "$p" "${common[@]}")
  for ((r = 1; r <= repeat; ++r)); do
    run_vit "$tmp/row$i.vit.jsonl" "$bin" "${args[@]}"
    for ((j = 0; j < ${#pythons[@]}; ++j)); do
      [[ -e $tmp/row$i.py$j.na ]] && continue  # failed or timed out once: not again
      run_torch "$tmp/row$i.py$j.jsonl" "$tmp/row$i.py$j.na" "${pythons[$j]}" "$script" "${args[@]}"
    done
  done
done

# The summary: one markdown table, rows grouped by interpreter (standard library only).
printf '%s\n' "${rows[@]}" >"$tmp/rows.txt"
for ((j = 0; j < ${#pythons[@]}; ++j)); do
  printf '%s\t%s\n' "${pythons[$j]}" "${versions[$j]}"
done >"$tmp/pythons.txt"
/usr/bin/python3 - "$tmp" "$bars_for" "$threads" "$steps" "$warmup" "$repeat" <<'EOF'
import json, os, statistics, sys

tmp, bars_for, threads, steps, warmup, repeat = sys.argv[1:7]
rows = [l.split() for l in open(os.path.join(tmp, "rows.txt")).read().splitlines() if l]
pythons = [l.split("\t") for l in open(os.path.join(tmp, "pythons.txt")).read().splitlines() if l]
med = statistics.median


def load(name):
    path = os.path.join(tmp, name)
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else []


def speed_bar(mode, prec):
    return 1.5 if mode == "infer" or prec == "bf16" else 2.0


def cell(s):
    return str(s).replace("|", "\\|")


print()
print(f"## compare_torch.sh summary: threads {threads}, steps {steps}, warm-up {warmup}, "
      f"{repeat} pair(s) per row")
print()
print("ratio = median over pairs of (vit img/s / torch img/s), each pair run back to back; "
      "RSS = peak RSS (ru_maxrss) of each process, medians.")
if bars_for:
    print(f"Bars are judged against {bars_for}; the other interpreters are reported only.")
else:
    print("No bars judged: VIT_TORCH_VENV is not set (the bars are against its torch).")
print()
print("| torch | row | vit img/s | torch img/s | ratio (median; per pair) | RSS MB vit / torch "
      "| bar | verdict |")
print("|---|---|---:|---:|---|---|---|---|")
# The interpreter the bars are judged against first.
order = sorted(range(len(pythons)), key=lambda j: pythons[j][0] != bars_for)
for j in order:
    py, version = pythons[j]
    for i, (mode, prec, model, batch) in enumerate(rows):
        vit = load(f"row{i}.vit.jsonl")
        tor = load(f"row{i}.py{j}.jsonl")
        label = f"{mode} {prec} {model} b{batch}"
        vit_ips = med(v["img_per_s"] for v in vit)
        vit_rss = med(v["peak_rss_mb"] for v in vit)
        judged = py == bars_for
        sb = speed_bar(mode, prec)
        bar = (f"≥ {sb:g}x" + (", RSS vit < torch" if mode == "train" else "")) if judged else "—"
        na_path = os.path.join(tmp, f"row{i}.py{j}.na")
        who = f"{version} ({py})"
        if not tor:
            why = open(na_path).read().strip() if os.path.exists(na_path) else "no torch run"
            print(f"| {cell(who)} | {label} | {vit_ips:.1f} | n/a ({cell(why)}) | n/a | "
                  f"{vit_rss:.0f} / n/a | {bar} | {'FAIL (not measured)' if judged else '—'} |")
            continue
        pairs = list(zip(vit, tor))
        ratios = [v["img_per_s"] / t["img_per_s"] for v, t in pairs]
        ratio = med(ratios)
        tor_ips = med(t["img_per_s"] for t in tor)
        tor_rss = med(t["peak_rss_mb"] for t in tor)
        note = ""
        if os.path.exists(na_path):
            note = f" (then n/a: {open(na_path).read().strip()})"
        verdict = "—"
        if judged:
            missed = []
            if ratio < sb:
                missed.append(f"img/s {ratio:.2f}x < {sb:g}x")
            if mode == "train" and not vit_rss < tor_rss:
                missed.append(f"RSS {vit_rss:.0f} ≥ {tor_rss:.0f} MB")
            verdict = "PASS" if not missed else "FAIL (" + "; ".join(missed) + ")"
        print(f"| {cell(who)} | {label} | {vit_ips:.1f} | {tor_ips:.1f} | {ratio:.3f} "
              f"({', '.join(f'{r:.3f}' for r in ratios)}){cell(note)} | "
              f"{vit_rss:.0f} / {tor_rss:.0f} | {bar} | {verdict} |")
peaks = [v.get("peak_fp32_gflops", v.get("peak_gflops")) for i in range(len(rows))
         for v in load(f"row{i}.vit.jsonl")]
peaks = [p for p in peaks if p is not None]
if peaks:
    print()
    print(f"vit's FP32 FMA peak measured after each of its runs: {min(peaks):.0f} to {max(peaks):.0f} "
          f"GFLOP/s on {threads} threads (a low one means other work had the cores: rerun with "
          "--repeat 3 or more before quoting a ratio)")
EOF
