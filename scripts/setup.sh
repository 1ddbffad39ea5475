#!/usr/bin/env bash
# Install the Debian packages ManualCNN needs (only those missing), then configure and build.
# Usage: scripts/setup.sh [BUILD_DIR]
#   BUILD_TYPE=Release|Debug (default Release), SANITIZE=ON adds AddressSanitizer + UBSan (a Debug
#   build with it compiles with DEBUG_FLAGS, default "-O1 -g1": at -O0 Eigen's code runs ten times
#   slower, and line tables are all that reports need), NATIVE=OFF builds for a generic x86-64
#   instead of this CPU, TARGETS="a b" builds only those, MPI=OFF neither installs nor uses MPI
#   (data-parallel training, mpirun; without it everything else builds and runs the same).
#   A clean build compiles the library folder by folder (MCNN_UNITY_BUILD) and precompiles the
#   tests' common headers (MCNN_PRECOMPILE_HEADERS); FAST_BUILD=OFF compiles file by file.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
packages=(cmake g++ make libeigen3-dev libfmt-dev libboost-test-dev
          libboost-iostreams-dev libboost-filesystem-dev libboost-system-dev
          libgnuplot-iostream-dev gnuplot-nox libcli11-dev nlohmann-json3-dev graphviz)
scripts/install-missing.sh setup "${packages[@]}"
if [ "${MPI:-ON}" != OFF ]; then
  # Optional: a machine that cannot install it builds without data-parallel training.
  scripts/install-missing.sh setup libopenmpi-dev openmpi-bin ||
    echo "setup: OpenMPI could not be installed: building without data-parallel training (mpirun)"
fi
options=(-DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" -DMCNN_SANITIZE="${SANITIZE:-OFF}" -DMCNN_NATIVE="${NATIVE:-ON}"
         -DMCNN_UNITY_BUILD="${FAST_BUILD:-ON}" -DMCNN_PRECOMPILE_HEADERS="${FAST_BUILD:-ON}" -DMCNN_MPI="${MPI:-ON}")
if [ "${SANITIZE:-OFF}" = ON ]; then options+=(-DCMAKE_CXX_FLAGS_DEBUG="${DEBUG_FLAGS:--O1 -g1}"); fi
cmake -S . -B "$build_dir" "${options[@]}" >/dev/null
build_args=()
if [ -n "${TARGETS:-}" ]; then
  read -r -a targets <<<"$TARGETS"
  build_args=(--target "${targets[@]}")
fi
cmake --build "$build_dir" -j "$(nproc)" "${build_args[@]}"
