#!/usr/bin/env bash
# demo.sh: set up, build, and run crate's main job on shipped defaults:
# complete a Fashion-MNIST test image with 75 % of its patches hidden, using
# the CRATE-MAE that `crate train` trained (models/fmnist-tiny.safetensors).
# Writes reconstruction.png and reconstruction_panel.png, prints PSNR/SSIM.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -d build ]; then meson setup --reconfigure build --buildtype=release >/dev/null
else meson setup build --buildtype=release >/dev/null; fi
ninja -C build
./build/tools/crate reconstruct \
  --model models/fmnist-tiny.safetensors \
  --in data/samples/fmnist-t10k-00000-ankle-boot.png \
  --out reconstruction.png --mask-ratio 0.75 --seed 0 "$@"
echo "wrote reconstruction.png and reconstruction_panel.png"
