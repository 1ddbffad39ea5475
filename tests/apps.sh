#!/usr/bin/env bash
# Command-line behaviour of the apps: flags, exit codes and error messages.
# Usage: tests/apps.sh BIN_DIR [BENCH]   (the folder holding train, gradcheck, visualize; the bench app)
set -u
bin=$1
bench=${2:-}
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
expect nonzero "conv" -- "$bin/train" --conv fast --summary   # the old names are for old run folders only
expect nonzero "--run-dir" -- "$bin/train" --resume "$tmp/a" --run-dir "$tmp/b"
expect 1 "--data $tmp/none: no CIFAR-10" -- "$bin/train" --data "$tmp/none" --run-dir "$tmp/run"
expect 1 "cannot read .*config.json" -- "$bin/train" --resume "$tmp/no-such-run"
expect 0 "Total parameters: 62,006" -- "$bin/train" --summary
expect 0 "Total parameters: 1,187,978" -- "$bin/train" --summary --model tuned
expect 0 "Total parameters: 68,288" -- "$bin/train" --summary --model manual
for conv in auto plain correlate2d im2col automatic; do
  expect 0 "Total parameters: 62,006" -- "$bin/train" --summary --conv $conv
done

# gradcheck: passes on the nodes and models, fails (exit 1) naming the faulty parameter
expect 0 "notebook_layer +[0-9]+ .* ok" -- "$bin/gradcheck" --node all
expect 1 "parameter 'kernels'" -- "$bin/gradcheck" --node notebook_fault_kernel_grad
expect 1 "parameter 'bias'" -- "$bin/gradcheck" --node notebook_fault_bias_grad
expect 2 "no gradient check named 'nope'" -- "$bin/gradcheck" --node nope
expect 2 "--node NAME" -- "$bin/gradcheck"
expect nonzero "model" -- "$bin/gradcheck" --model resnet
expect 0 "PASSED" -- "$bin/gradcheck" --model manual --max-elements 20
expect 0 "PASSED" -- "$bin/gradcheck" --model tuned --max-elements 4

# bench: one short case gives a RESULT line with a speed and the split of a step; bad cases are refused
if [ -n "$bench" ]; then
  expect 0 "sgemm" -- "$bench" --help
  expect 1 "unknown case 'nope'; known cases: simple-b4" -- "$bench" --case nope
  expect 1 "no CIFAR-10" -- "$bench" --case simple-b4 --threads 1 --data "$tmp/none"
  data="$(cd "$(dirname "$0")" && pwd)/../../shared/cifar10/cifar-10-batches-bin"
  if [ -f "$data/test_batch.bin" ]; then
    expect 0 "^RESULT case=simple-b4 threads=1 batch=4 img_per_s=[1-9][0-9]*\.[0-9] .*conv_fwd_ms=[0-9.]+ conv_bwd_ms=" -- \
      "$bench" --case simple-b4 --threads 1 --steps 5 --warmup 1 --data "$data"
    expect 0 "^RESULT case=tuned-infer-b500 threads=1 batch=500 img_per_s=[1-9]" -- \
      "$bench" --case tuned-infer-b500 --threads 1 --steps 1 --warmup 0 --data "$data"
  else
    echo "bench: real CIFAR-10 not found in $data; its runs are skipped"
  fi
fi

# visualize: bad flags are refused
expect nonzero "what" -- "$bin/visualize" --what everything
expect nonzero "" -- "$bin/visualize" --checkpoint "$tmp/missing.safetensors" --what kernels --out "$tmp/pics"

echo "apps: $passed passed, $failures failed"
[ $failures -eq 0 ]
