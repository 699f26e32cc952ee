#!/usr/bin/env bash
# Installs what vit needs from Debian 12's packages, only what is missing.
# Idempotent and quick when everything is present (one dpkg query).
set -euo pipefail

packages=(
  g++ cmake make              # toolchain
  libeigen3-dev               # GEMM and vectorised math
  catch2                      # tests (v2)
  libbenchmark-dev            # op microbenchmarks
  nlohmann-json3-dev          # safetensors headers, config.json
  zlib1g-dev                  # gzipped IDX files
  libstb-dev                  # JPEG/PNG/BMP decoding, PNG writing
  libcli11-dev                # the vit command line
  libprotobuf-dev protobuf-compiler  # TensorBoard event files (vit train --tensorboard)
  python3                     # scripts/pth_to_safetensors.py and its test
  libopenmpi-dev openmpi-bin  # multi-process jobs (vit::mpi) and their tests (mpirun)
  dataset-fashion-mnist       # the README's main job trains on it
)
# Extra packages for the PyTorch side-by-side benchmark (not for building or testing).
if [[ "${VIT_WITH_TORCH:-0}" == 1 ]]; then
  packages+=(python3-torch libopenblas0-pthread)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "setup: installing ${missing[*]}" >&2
sudo=""
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
