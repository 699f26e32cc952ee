#!/usr/bin/env bash
# Disk full and unwritable run directories: writing a checkpoint or metrics
# must fail with one clear line and a non-zero exit, leave the previous
# checkpoint intact (bitwise) and leave no temp file behind.
#  - file size limit (ulimit -f: writes fail with EFBIG): always runs;
#  - a small tmpfs that fills up (ENOSPC), then remounted read-only (EROFS):
#    needs permission to mount, and is reported as skipped without it.
# Usage: disk_full_test.sh VIT_BINARY MAKE_TINY_DATA_BINARY WORK_DIR
set -euo pipefail
vit=$1 make_data=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
"$make_data" "$work/data" > /dev/null
export OMP_NUM_THREADS=2
args=(--dataset cifar10 --data "$work/data/cifar10" --epochs 2 --batch 16 --seed 4 --threads 2
      --warmup-epochs 1)
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_error "what it must say" cmd...: non-zero exit, not by a signal, and
# exactly one error line ("vit: ...") on stderr containing it (a resume also
# reports where it resumes from).
expect_error() {
  local want=$1; shift
  local err rc=0
  err=$("$@" 2>&1 >/dev/null) || rc=$?
  [[ $rc -ne 0 && $rc -lt 128 ]] || fail "expected a clean failure (rc $rc): $*"
  err=$(printf '%s\n' "$err" | grep -v '^resume: ')
  [[ $(printf '%s\n' "$err" | wc -l) -eq 1 && $err == "vit: "* ]] || fail "expected one error line, got: $err"
  [[ $err == *"$want"* ]] || fail "expected '$want' in: $err"
  echo "ok (error): $err"
}
no_temp_files() { ! compgen -G "$1/.*.tmp.*" > /dev/null || fail "temp files left in $1: $(ls -a "$1")"; }

# A run killed at step 3: its last.safetensors is the checkpoint of step 2.
rc=0
(VIT_INJECT_KILL_AT_STEP=3 exec "$vit" train "${args[@]}" --out "$work/k3" --checkpoint-every 2 \
  > /dev/null 2>&1) 2>/dev/null || rc=$?
[[ $rc -eq 137 ]] || fail "the injected kill did not happen (rc $rc)"
ck=$(stat -c %s "$work/k3/last.safetensors")

# 1. File size limit: resuming, the epoch end at step 4 writes best.safetensors
#    (weights only, about a third of the checkpoint) and then last.safetensors
#    (with the optimizer moments), which the limit refuses.
cp -r "$work/k3" "$work/fsize"
(
  trap '' XFSZ  # get EFBIG from write() instead of being killed by SIGXFSZ
  ulimit -f $((ck * 2 / 3 / 1024))
  expect_error "File too large" "$vit" train --resume --out "$work/fsize"
)
cmp "$work/k3/last.safetensors" "$work/fsize/last.safetensors" ||
  fail "file size limit: the previous checkpoint (step 2) was not left intact"
no_temp_files "$work/fsize"
echo "ok: file size limit leaves the step-2 checkpoint intact"

# 2. A tmpfs that holds one checkpoint, not two: the write of step 4's
#    checkpoint (its temp file beside step 2's) runs out of space.
mnt=$work/mnt
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=$((ck + ck / 2)) tmpfs "$mnt" 2> "$work/mount.err"; then
  echo "skipped: tmpfs disk-full and read-only checks (cannot mount: $(head -1 "$work/mount.err"))"
  exit 0
fi
trap 'umount "$mnt" 2>/dev/null || true' EXIT
expect_error "No space left on device" "$vit" train "${args[@]}" --out "$mnt/run" --checkpoint-every 2
cmp "$work/k3/last.safetensors" "$mnt/run/last.safetensors" ||
  fail "disk full: the previous checkpoint (step 2) was not left intact"
no_temp_files "$mnt/run"
echo "ok: disk full leaves the step-2 checkpoint intact"

# 3. The same run directory remounted read-only: resuming cannot write.
mount -o remount,ro "$mnt"
expect_error "Read-only file system" "$vit" train --resume --out "$mnt/run"
cmp "$work/k3/last.safetensors" "$mnt/run/last.safetensors" || fail "read-only: checkpoint changed"
expect_error "--out" "$vit" train "${args[@]}" --out "$mnt/new"
echo "ok: read-only run directory"
