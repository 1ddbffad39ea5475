#!/usr/bin/env bash
# Command-line behaviour of the apps: flags, exit codes and error messages.
# Usage: tests/apps.sh BIN_DIR   (the folder holding train, gradcheck, visualize)
set -u
bin=$1
failures=0
passed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect CODE PATTERN -- COMMAND...: the exit status is CODE ("nonzero" for any failure) and the
# combined output matches the extended regular expression PATTERN.
expect() {
  local code=$1 pattern=$2
  shift 3
  "$@" >"$tmp/out" 2>&1
  local rc=$?
  local ok=1
  if [ "$code" = nonzero ]; then [ "$rc" -ne 0 ] || ok=0; else [ "$rc" -eq "$code" ] || ok=0; fi
  grep -Eq -- "$pattern" "$tmp/out" || ok=0
  if [ $ok -eq 1 ]; then
    passed=$((passed + 1))
  else
    failures=$((failures + 1))
    echo "FAILED: $* (exit $rc, expected $code, pattern '$pattern')"
    sed 's/^/    /' "$tmp/out" | head -20
  fi
}

# train: help lists every flag; bad settings are refused before any work
expect 0 "--resume" -- "$bin/train" --help
for flag in --model --epochs --batch --lr --momentum --weight-decay --seed --report-every --validation \
            --conv --normalization --max-batches --data --run-dir --threads --summary; do
  expect 0 "$flag" -- "$bin/train" --help
done
expect nonzero "epochs" -- "$bin/train" --epochs 0
expect nonzero "batch" -- "$bin/train" --batch -3
expect nonzero "lr" -- "$bin/train" --lr abc
expect nonzero "nope" -- "$bin/train" --model nope
expect nonzero "conv" -- "$bin/train" --conv sideways
expect nonzero "--run-dir" -- "$bin/train" --resume "$tmp/a" --run-dir "$tmp/b"
expect 1 "--data $tmp/none: no CIFAR-10" -- "$bin/train" --data "$tmp/none" --run-dir "$tmp/run"
expect 1 "cannot read .*config.json" -- "$bin/train" --resume "$tmp/no-such-run"
expect 0 "Total parameters: 62,006" -- "$bin/train" --summary
expect 0 "Total parameters: 1,187,978" -- "$bin/train" --summary --model tuned
expect 0 "Total parameters: 68,288" -- "$bin/train" --summary --model manual

# gradcheck: passes on the nodes and models, fails (exit 1) naming the faulty parameter
expect 0 "notebook_layer +[0-9]+ .* ok" -- "$bin/gradcheck" --node all
expect 1 "parameter 'kernels'" -- "$bin/gradcheck" --node notebook_fault_kernel_grad
expect 1 "parameter 'bias'" -- "$bin/gradcheck" --node notebook_fault_bias_grad
expect 2 "no gradient check named 'nope'" -- "$bin/gradcheck" --node nope
expect 2 "--node NAME" -- "$bin/gradcheck"
expect nonzero "model" -- "$bin/gradcheck" --model resnet
expect 0 "PASSED" -- "$bin/gradcheck" --model manual --max-elements 20
expect 0 "PASSED" -- "$bin/gradcheck" --model tuned --max-elements 4

# visualize: bad flags are refused
expect nonzero "what" -- "$bin/visualize" --what everything
expect nonzero "" -- "$bin/visualize" --checkpoint "$tmp/missing.safetensors" --what kernels --out "$tmp/pics"

echo "apps: $passed passed, $failures failed"
[ $failures -eq 0 ]
