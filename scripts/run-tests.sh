#!/usr/bin/env bash
# The test command, what CI runs: install what is missing, build (Release), run the whole suite
# through CTest; then a sanitizer build (Debug, AddressSanitizer + UBSan) of the library and the
# test programs only, in BUILD_DIR-sanitize, running the fast suites (CTest label "fast") and the
# fuzz corpus replay. That build is at -O0: it compiles in half the time of -O1, and the fast
# suites still run in seconds.
# Usage: scripts/run-tests.sh [BUILD_DIR]
#   BUILD_TYPE=Debug SANITIZE=ON: the whole suite in a sanitizer build (and no second build);
#   FAST_SANITIZE=OFF: no sanitizer build. Other build options: see scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
scripts/setup.sh "$build_dir"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)"
if [ "${SANITIZE:-OFF}" != ON ] && [ "${FAST_SANITIZE:-ON}" != OFF ]; then
  echo "run-tests: the fast suites and the fuzz corpus under AddressSanitizer + UBSan ($build_dir-sanitize)"
  BUILD_TYPE=Debug SANITIZE=ON DEBUG_FLAGS="-O0 -g1" TARGETS="mcnn_tests fuzz_replay" \
    scripts/setup.sh "$build_dir-sanitize"
  ctest --test-dir "$build_dir-sanitize" -L fast --output-on-failure -j "$(nproc)"
fi
