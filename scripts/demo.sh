#!/usr/bin/env bash
# demo.sh: set up, build, and run crate's main job on shipped defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -d build ]; then meson setup --reconfigure build --buildtype=release >/dev/null
else meson setup build --buildtype=release >/dev/null; fi
ninja -C build
./build/tools/crate gmm denoise "$@"
