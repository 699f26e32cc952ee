#!/usr/bin/env bash
# The main job: set up (Debian packages, incl. the full Fashion-MNIST), build the
# `vit` command line, and train fmnist-tiny on Fashion-MNIST on all cores,
# evaluating on the test split after each epoch. Extra arguments go to
# `vit train` (e.g. --epochs 2 for a short run; --out DIR for the run directory).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target vit_cli
./build/bin/vit train "$@"
