#!/usr/bin/env bash
# (Re)writes the seed files of the fuzz corpus, tests/fuzz-corpus/<harness>/, with the library's own
# writers (fuzz/seed_corpus.cpp: valid files and damaged copies). Files of the same name are
# overwritten; others (findings added by hand, named finding-*) are kept.
# Usage: scripts/fuzz-corpus.sh [BUILD_DIR]   (default: build, a configured build with the tests)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
[ -f "$build_dir/CMakeCache.txt" ] || cmake -S . -B "$build_dir" >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target fuzz_seed_corpus
"$build_dir/fuzz/fuzz_seed_corpus" tests/fuzz-corpus
du -sh tests/fuzz-corpus
