#!/usr/bin/env bash
# Kill test: trains with a checkpoint after every step and SIGKILLs the process
# at random moments, then resumes, again and again, until at least KILLS kills
# have landed. After every kill the checkpoint on disk must load; every chain
# of kill + resume must end with files bitwise identical to an uninterrupted
# run (last and best checkpoints, and the same metrics rows). Kills that land
# while a file is being written are recognised by the temp file left behind
# (io::AtomicFile's ".<name>.tmp.<pid>") and counted.
# Usage: kill_test.sh VIT_BINARY MAKE_TINY_DATA_BINARY WORK_DIR [KILLS] [SEED]
set -euo pipefail
vit=$1 make_data=$2 work=$3 kills_wanted=${4:-50} seed=${5:-1}
RANDOM=$seed
rm -rf "$work" && mkdir -p "$work"
"$make_data" "$work/data" > /dev/null
export OMP_NUM_THREADS=2
# 65 images / 16 = 4 steps per epoch, 12 steps, a checkpoint after each.
args=(--dataset cifar10 --data "$work/data/cifar10" --epochs 3 --batch 16 --log-every 1 --seed 5
      --dropout 0.1 --drop-path 0.1 --threads 2 --warmup-epochs 1 --checkpoint-every 1)
fail() { echo "FAIL: $*" >&2; exit 1; }

start=$(date +%s.%N)
"$vit" train "${args[@]}" --out "$work/ref" > /dev/null 2>&1
ref_ms=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%d", (e - s) * 1000 }')
echo "reference run: ${ref_ms} ms"

kills=0 mid_write=0 chains=0 resumes=0 window_ms=$((ref_ms / 2))
while ((kills < kills_wanted)); do
  chains=$((chains + 1))
  run=$work/run$chains
  cmd=("$vit" train "${args[@]}" --out "$run")
  chain_kills=0
  while :; do
    "${cmd[@]}" > "$work/last.log" 2>&1 &
    pid=$!
    # A chain ends with one run left alone (after 10 kills, or the last one
    # wanted): the resume from the last kill must finish the run.
    if ((chain_kills == 10 || kills == kills_wanted)); then
      rc=0
      wait "$pid" || rc=$?
      ((rc == 0)) || { cat "$work/last.log" >&2; fail "chain $chains: the final resume failed (rc $rc)"; }
      break
    fi
    if ((RANDOM % 2)); then
      # Half the kills aim at a write: as soon as this process's temp file
      # (".<name>.tmp.<pid>") shows up.
      until compgen -G "$run/.*.tmp.$pid" > /dev/null || ! kill -0 "$pid" 2>/dev/null; do :; done
    else
      # The others anywhere in a run's life, start-up (before config.json)
      # included. A run that finishes before its kill shrinks the window (the
      # machine may be faster now than during the reference run).
      delay_ms=$((RANDOM % (window_ms + 1)))
      sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    fi
    kill -9 "$pid" 2>/dev/null || true
    rc=0
    wait "$pid" || rc=$?
    if ((rc == 0)); then  # finished before the kill came
      window_ms=$((window_ms * 2 / 3 > 100 ? window_ms * 2 / 3 : 100))
      break
    fi
    ((rc == 137)) || { cat "$work/last.log" >&2; fail "chain $chains: exit code $rc, not a kill"; }
    kills=$((kills + 1)) chain_kills=$((chain_kills + 1))
    if compgen -G "$run/.*.tmp.*" > /dev/null; then mid_write=$((mid_write + 1)); fi
    if [[ -e $run/last.safetensors ]]; then
      "$vit" info --weights "$run/last.safetensors" > /dev/null 2>"$work/info.err" ||
        fail "kill $kills: the checkpoint on disk does not load: $(cat "$work/info.err")"
    fi
    # Killed before config.json was written: nothing to resume, start over.
    if [[ -e $run/config.json ]]; then
      cmd=("$vit" train --resume --out "$run")
      resumes=$((resumes + 1))
    else
      cmd=("$vit" train "${args[@]}" --out "$run" --force)
    fi
  done
  for f in last.safetensors best.safetensors; do
    cmp -s "$work/ref/$f" "$run/$f" || fail "chain $chains: $f differs from the uninterrupted run"
  done
  diff <(cut -d, -f1-3,5-10,13 "$work/ref/metrics.csv") <(cut -d, -f1-3,5-10,13 "$run/metrics.csv") \
    > /dev/null || fail "chain $chains: metrics rows differ from the uninterrupted run"
  ! compgen -G "$run/.*.tmp.*" > /dev/null || fail "chain $chains: temp files left in $run"
  rm -rf "$run"
done
echo "ok: $kills kills ($mid_write while a file was being written) in $chains chains," \
  "$resumes resumes; every checkpoint loaded, every chain ended bitwise identical"
