#!/usr/bin/env bash
# Data-parallel scaling on this machine: bench_data_parallel with 1 rank, and
# with 2 ranks at DDP's 25 MB buckets and at 1 MB buckets (1 thread per rank,
# the same per-rank batch), interleaved for ROUNDS rounds. Prints each run's
# JSON, then the medians: global images/s of 2 ranks against 1, and the share
# of the allreduce time hidden behind backward at each bucket size.
# Usage: benchmarks/dist_scaling.sh [BUILD_DIR] [MODEL] [BATCH] [STEPS] [ROUNDS]
set -euo pipefail
build=${1:-build} model=${2:-cifar-tiny} batch=${3:-64} steps=${4:-10} rounds=${5:-3}
bench=$build/bin/bench_data_parallel
[[ -x $bench ]] || { echo "dist_scaling: $bench not built (needs VIT_MPI)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
args=(--model "$model" --batch "$batch" --steps "$steps" --threads 1)
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), $(grep -qw avx512f /proc/cpuinfo && echo AVX-512 || echo AVX2)), $(getconf _NPROCESSORS_ONLN) cores;" \
  "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
field() { sed -E "s/.*\"$1\":(-?[0-9.]+).*/\1/" <<< "$2"; }
one=() two=() hid25=() two1=() hid1=()
for ((r = 1; r <= rounds; ++r)); do
  a=$("$bench" "${args[@]}" | tail -1)
  b=$(mpirun --oversubscribe -np 2 "$bench" "${args[@]}" | tail -1)
  c=$(mpirun --oversubscribe -np 2 "$bench" "${args[@]}" --bucket-mb 1 | tail -1)
  printf '%s\n' "$a" "$b" "$c"
  one+=("$(field img_per_s "$a")") two+=("$(field img_per_s "$b")") hid25+=("$(field hidden "$b")")
  two1+=("$(field img_per_s "$c")") hid1+=("$(field hidden "$c")")
done
python3 - "${one[*]}" "${two[*]}" "${hid25[*]}" "${two1[*]}" "${hid1[*]}" <<'PY'
import statistics as st, sys
one, two, h25, two1, h1 = ([float(x) for x in a.split()] for a in sys.argv[1:6])
m1 = st.median(one)
print(f"1 rank x 1 thread: {m1:.1f} img/s")
for name, t, h in (("25 MB buckets", two, h25), ("1 MB buckets", two1, h1)):
    m2 = st.median(t)
    print(f"2 ranks x 1 thread, {name}: {m2:.1f} img/s, speed-up {m2 / m1:.2f}x "
          f"(efficiency {m2 / m1 / 2:.0%}), allreduce hidden behind backward {st.median(h):.0%}")
print(f"(medians of {len(one)} interleaved rounds)")
PY
