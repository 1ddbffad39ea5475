#!/usr/bin/env bash
# FastNet with airbench94's recipe (see the README's "Modern training"): installs what is missing
# and builds like run-main.sh, then trains. Extra arguments go to the train app; one that names a
# recipe flag (--epochs 4, --seed 1, --validation 5000, ...) replaces the recipe's value.
#
# The recipe, in mean-loss terms (airbench sums the loss over its batch of 1024; its lr 11.5 and
# weight decay 0.0153 "per 1024 examples" with momentum 0.85 become lr 1.5 and weight decay
# 1.3304e-3 here): Nesterov SGD momentum 0.85, batch 1024; batch-norm biases at 64x the lr with
# 1/64 of the weight decay; the lr from 0.2x up to 1x at 23 % of the run, then down to 0.07x;
# label smoothing 0.2; random 2-pixel translation (reflect padding) and alternating flips; the
# final test with flip + translate test-time augmentation.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build

declare -A recipe=([--model]=fast [--epochs]=10 [--batch]=1024 [--lr]=1.5 [--momentum]=0.85 [--weight-decay]=1.3304e-3
    [--lr-scale-1d]=64 [--weight-decay-1d]=2.0788e-5 [--group-1d]='*norm*.bias' [--schedule]=onecycle [--start-factor]=0.2
    [--final-factor]=0.07 [--label-smoothing]=0.2 [--crop-pad]=2 [--crop-padding]=reflect [--flip]=alternate
    [--tta]=flip-translate [--normalization]=dataset [--eval-batch]=1000 [--report-every]=10 [--seed]=0)
args=("$@")
epochs=10
for ((i = 0; i < ${#args[@]}; ++i)); do
    flag=${args[i]%%=*}
    if [[ $flag == --epochs ]]; then
        if [[ ${args[i]} == *=* ]]; then epochs=${args[i]#*=}; else epochs=${args[i + 1]:-10}; fi
    fi
    unset "recipe[$flag]"  # the user's value replaces the recipe's
done
# the lr's peak at 23 % of the run (unless --warmup is given)
[[ " ${args[*]} " == *" --warmup"* ]] || recipe[--warmup]=$(awk -v e="$epochs" 'BEGIN { printf "%g", 0.23 * e }')
flags=(--nesterov)
for flag in "${!recipe[@]}"; do flags+=("$flag" "${recipe[$flag]}"); done
exec build/apps/train "${flags[@]}" "$@"
