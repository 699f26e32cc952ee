#!/usr/bin/env bash
# Data-parallel scaling on this machine: bench_data_parallel with 1 rank and
# with 2 ranks (1 thread each, same per-rank batch), interleaved for ROUNDS
# rounds; prints each run's JSON and the median ratio of global images/s and
# the median share of the allreduce time hidden behind backward.
# Usage: benchmarks/dist_scaling.sh [BUILD_DIR] [MODEL] [BATCH] [STEPS] [ROUNDS]
set -euo pipefail
build=${1:-build} model=${2:-cifar-tiny} batch=${3:-64} steps=${4:-10} rounds=${5:-3}
bench=$build/bin/bench_data_parallel
[[ -x $bench ]] || { echo "dist_scaling: $bench not built (needs VIT_MPI)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
args=(--model "$model" --batch "$batch" --steps "$steps" --threads 1)
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
one=() two=() hidden=()
for ((r = 1; r <= rounds; ++r)); do
  a=$("$bench" "${args[@]}" | tail -1)
  b=$(mpirun --oversubscribe -np 2 "$bench" "${args[@]}" | tail -1)
  echo "$a"; echo "$b"
  one+=("$(sed -E 's/.*"img_per_s":([0-9.]+).*/\1/' <<< "$a")")
  two+=("$(sed -E 's/.*"img_per_s":([0-9.]+).*/\1/' <<< "$b")")
  hidden+=("$(sed -E 's/.*"hidden":(-?[0-9.]+).*/\1/' <<< "$b")")
done
python3 - "${one[*]}" "${two[*]}" "${hidden[*]}" <<'PY'
import statistics as st, sys
one, two, hid = ([float(x) for x in a.split()] for a in sys.argv[1:4])
m1, m2 = st.median(one), st.median(two)
print(f"1 rank x 1 thread: {m1:.1f} img/s; 2 ranks x 1 thread: {m2:.1f} img/s; "
      f"speed-up {m2 / m1:.2f}x (efficiency {m2 / m1 / 2:.0%}); "
      f"allreduce hidden behind backward: {st.median(hid):.0%} (median of {len(one)} rounds)")
PY
