#!/usr/bin/env bash
# GPU call 2: benchmarks/cuda/run_all.sh on the carried binaries and the CIFAR
# subset, then: graph vs op-by-op bitwise, the 20-epoch CIFAR run, eval and
# predict on the GPU.
set -u
ROOT=$PWD
export VIT_SKIP_BUILD=1 VIT_BUILD_DIR=$ROOT/.gpu VIT_CIFAR_DIR=$ROOT/.gpu/cifar
export VIT_RUN_BUDGET_S=${VIT_RUN_BUDGET_S:-380} VIT_SANITIZER_S=45 VIT_RACECHECK_S=60
bash benchmarks/cuda/run_all.sh > /tmp/run_all_stdout.log 2>&1
echo "run_all rc=$?"
B=$ROOT/.gpu/bin; W=/tmp/extra; C=$ROOT/.gpu/cifar; mkdir -p $W
X=$OUT/vit_train.log
{
echo "===== extras: graph vs op by op, dropout 0.1 + drop-path 0.1, 60 steps"
common=(train --device cuda --dataset cifar10 --data $C --model cifar-tiny --steps 60 --dropout 0.1 --drop-path 0.1 --log-every 20)
timeout 60 $B/vit "${common[@]}" --out $W/graph 2>&1 | tail -3
timeout 60 $B/vit "${common[@]}" --no-cuda-graph --out $W/eager 2>&1 | tail -3
cmp $W/graph/last.safetensors $W/eager/last.safetensors && echo "GRAPH_VS_EAGER: bitwise equal" || echo "GRAPH_VS_EAGER: DIFFERENT"
timeout 60 $B/vit "${common[@]}" --out $W/graph2 > /dev/null 2>&1
cmp $W/graph/last.safetensors $W/graph2/last.safetensors && echo "REPEAT: bitwise equal" || echo "REPEAT: DIFFERENT"
echo "===== extras: CIFAR subset, cifar-tiny, 20 epochs, seed 0 (2026-12-04 at cc8badb: 54.77% in 7.8 s)"
t0=$SECONDS; timeout 120 $B/vit train --device cuda --dataset cifar10 --data $C --model cifar-tiny --epochs 20 --log-every 39 --out $W/c20 2>&1 | tail -3; echo "wall $((SECONDS - t0)) s"
tail -2 $W/c20/metrics.csv
echo "===== extras: eval and predict on the GPU and the CPU"
timeout 60 $B/vit eval --device cuda --weights $W/c20/best.safetensors --dataset cifar10 --data $C 2>&1 | tail -1
timeout 120 $B/vit eval --device cpu --weights $W/c20/best.safetensors --dataset cifar10 --data $C 2>&1 | tail -1
timeout 60 $B/vit predict --device cuda --weights $W/c20/best.safetensors $W/c20/curves.png --attention-map $W/map.png 2>&1 | tail -7
timeout 60 $B/vit predict --device cpu --weights $W/c20/best.safetensors $W/c20/curves.png 2>&1 | tail -6
ls -la $W/map.png
} 2>&1 | tee -a $X
echo "===== summary.md"
cat $OUT/summary.md | tail -80
