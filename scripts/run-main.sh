#!/usr/bin/env bash
# The main job: install what is missing, build, then run ManualCNN's example (SimpleCNN as a
# graph, forward, backward and a numerical check of every gradient).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
build/apps/example "$@"
