#!/usr/bin/env bash
# GPU call 1: the [cuda] suite, memcheck over it, and the train step with graphs.
set -u
B=${B:-.gpu/bin}
L=$OUT/run1.log
exec > >(tee -a "$L") 2>&1
nvidia-smi -L; date
echo "== vit_cuda_tests"
timeout 200 $B/vit_cuda_tests --durations yes > $OUT/cuda_tests.txt 2>&1; echo "rc=$?"
grep -v "^[0-9.]* s: " $OUT/cuda_tests.txt | tail -100
grep "^[0-9.]* s: " $OUT/cuda_tests.txt | sort -rn | head -12
echo "== bench_cuda_train_step"
timeout 120 $B/bench_cuda_train_step --configs cifar-tiny:128,cifar-tiny:512 --precisions fp32,fp32-graph,tf32,tf32-graph --steps 30 2>&1 | tail -25
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
echo "== memcheck ($SAN)"
timeout 150 $SAN --tool memcheck --error-exitcode 86 $B/vit_cuda_tests '~GPU out of memory names the allocation size' '~cuda attention matches the CPU op at N 1024' 2>&1 | tail -15
echo "rc=${PIPESTATUS[0]}"; date
