#!/usr/bin/env bash
# Install the Debian packages ManualCNN needs (only those missing), then configure and build.
# Usage: scripts/setup.sh [BUILD_DIR]
#   BUILD_TYPE=Release|Debug (default Release), SANITIZE=ON adds AddressSanitizer + UBSan,
#   NATIVE=OFF builds for a generic x86-64 instead of this CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
packages=(cmake g++ make libeigen3-dev libfmt-dev libboost-test-dev
          libboost-iostreams-dev libboost-filesystem-dev libboost-system-dev
          libgnuplot-iostream-dev gnuplot-nox libcli11-dev nlohmann-json3-dev graphviz)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" \
      -DMCNN_SANITIZE="${SANITIZE:-OFF}" -DMCNN_NATIVE="${NATIVE:-ON}" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
