#!/usr/bin/env bash
# The console: on a terminal a status bar redrawn in place from before the
# first step, log lines printed above it un-garbled; not on a terminal, plain
# lines and no carriage returns. The run trains with attention dropout
# (--attn-drop), recorded in config.json and the model config.
# Usage: feature_progress.sh VIT_BINARY MAKE_TINY_DATA_BINARY WORK_DIR
set -euo pipefail
vit=$1 make_data=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
"$make_data" "$work/data" > /dev/null
source "$(dirname "$0")/lib.sh"
common=(--dataset cifar10 --data "$work/data/cifar10" --steps 4 --epochs 2 --batch 16 --log-every 2
        --threads 2 --seed 6 --attn-drop 0.1)
command -v script > /dev/null || fail "script (util-linux) is needed to give vit a terminal"

# 1. On a terminal (script runs it on a pseudo-terminal; its output is the terminal's).
script -qec "$(printf '%q ' "$vit" train "${common[@]}" --out "$work/tty")" /dev/null > "$work/tty.txt" \
  || fail "training on a terminal failed: $(cat "$work/tty.txt")"
grep -q $'\r\033\[K\[\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\] 0/4' "$work/tty.txt" ||
  fail "no bar before the first step: $(cat -v "$work/tty.txt" | head -5)"
grep -q 'first step\.\.\.' "$work/tty.txt" || fail "the bar does not say it waits for the first step"
grep -aq $'\[##########..........\] 2/4' "$work/tty.txt" || fail "the bar did not advance to 2/4"
# Every log line starts on a cleared line: the bar is taken off (\r ESC[K) before it.
for line in 'step 2/4' 'step 4/4' 'epoch 1/2' 'done: 4 steps'; do
  grep -aq $'\r\033\[K'"$line" "$work/tty.txt" || fail "'$line' was not printed on a cleared line: $(cat -v "$work/tty.txt")"
done
echo "ok: a status bar on a terminal, log lines above it"

# 2. Not on a terminal: plain lines only.
"$vit" train "${common[@]}" --out "$work/plain" > "$work/plain.txt" 2>&1
if grep -q $'\r' "$work/plain.txt"; then fail "carriage returns in a log file: $(cat -v "$work/plain.txt")"; fi
grep -q '^step 2/4  epoch 1/2' "$work/plain.txt" || fail "no plain step line: $(cat "$work/plain.txt")"
grep -q '^train: loading cifar10' "$work/plain.txt" || fail "nothing said before the data is read"
echo "ok: plain lines when not on a terminal"

# 3. Attention dropout is part of the run and of the model.
grep -q '"attn_drop": 0.1' "$work/plain/config.json" || fail "config.json lacks attn_drop"
grep -q '"attn_drop_rate": 0.1' "$work/plain/config.json" || fail "the model config lacks attn_drop_rate: $(cat "$work/plain/config.json")"
echo "ok: --attn-drop recorded"
