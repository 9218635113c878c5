#!/usr/bin/env bash
# setup.sh: install everything crate needs on a fresh Debian 12 machine.
# Idempotent: packages already present are left alone.  Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  build-essential meson ninja-build pkgconf
  libopenblas-dev liblapack-dev libfftw3-dev libpng-dev zlib1g-dev
  libjansson-dev libcmocka-dev
  dataset-fashion-mnist python3
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
