#!/usr/bin/env bash
# The main job: install what is missing, build, then train SimpleCNN on CIFAR-10 with the
# notebook's settings (SGD lr 0.001, momentum 0.9, batch 4, 2 epochs). Extra arguments go to the
# train app (see build/apps/train --help); the run folder is printed at the start.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
exec build/apps/train --model simple --epochs 2 --batch 4 --lr 0.001 --momentum 0.9 --seed 0 "$@"
