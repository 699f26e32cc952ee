#!/usr/bin/env bash
# The main job: set up, build, and train a small ViT on synthetic images,
# printing the loss as it falls.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target quickstart
./build/bin/quickstart "$@"
