#!/usr/bin/env bash
# The test command: install what is missing, build (Release), run the whole suite through CTest.
# Usage: scripts/run-tests.sh [BUILD_DIR]   (BUILD_TYPE=Debug SANITIZE=ON for a sanitizer build)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
scripts/setup.sh "$build_dir"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)"
