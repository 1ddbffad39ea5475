#!/usr/bin/env bash
# Command-line behaviour of the apps: flags, exit codes and error messages; and of a user's program
# with its own models over the library's command line (tests/cli_user_model.cpp).
# Usage: tests/apps.sh BIN_DIR [BENCH [USER_PROGRAM]]
#   (the folder holding train, gradcheck, summary, visualize; the bench app; cli_user_model)
set -u
bin=$1
bench=${2:-}
user=${3:-}
data="$(cd "$(dirname "$0")" && pwd)/../../shared/cifar10/cifar-10-batches-bin"
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
            --conv --normalization --max-batches --data --run-dir --threads --summary --detect-anomaly; do
  expect 0 "$flag" -- "$bin/train" --help
done
expect 0 "Registered models:" -- "$bin/train" --help
expect 0 "manual +input \[3, 32, 32\], 10 classes" -- "$bin/train" --help
expect nonzero "epochs" -- "$bin/train" --epochs 0
expect nonzero "batch" -- "$bin/train" --batch -3
expect nonzero "lr" -- "$bin/train" --lr abc
expect nonzero "unknown model 'nope'; known models: simple, tuned, manual" -- "$bin/train" --model nope
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

# train --detect-anomaly: a run that diverges (lr 10) stops at the first NaN or inf, naming the op that
# made it and the step; the switch is of this invocation, not a setting stored in config.json
if [ -f "$data/test_batch.bin" ]; then
  expect 1 "detect_anomaly: (forward|backward) of '[a-z_0-9]+' \(tape entry [0-9]+ of [0-9]+.* is -?(nan|inf).*; at epoch 1, batch [0-9]+ \(step [0-9]+\)" -- \
    "$bin/train" --lr 10 --max-batches 50 --epochs 1 --detect-anomaly --no-plots --run-dir "$tmp/anomaly" --data "$data"
  expect 0 "^ok$" -- bash -c "grep -q anomaly '$tmp/anomaly/config.json' || echo ok"
else
  echo "train --detect-anomaly: real CIFAR-10 not found in $data; its run is skipped"
fi

# gradcheck: passes on the nodes and models, fails (exit 1) naming the faulty parameter
expect 0 "notebook_layer +[0-9]+ .* ok" -- "$bin/gradcheck" --node all
expect 1 "parameter 'kernels'" -- "$bin/gradcheck" --node notebook_fault_kernel_grad
expect 1 "parameter 'bias'" -- "$bin/gradcheck" --node notebook_fault_bias_grad
expect 2 "no gradient check named 'nope'" -- "$bin/gradcheck" --node nope
expect 2 "--node NAME" -- "$bin/gradcheck"
expect nonzero "unknown model 'resnet'; known models: simple, tuned, manual" -- "$bin/gradcheck" --model resnet
expect 0 "PASSED" -- "$bin/gradcheck" --model manual --max-elements 20
expect 0 "PASSED" -- "$bin/gradcheck" --model tuned --max-elements 4

# bench: one short case gives a RESULT line with a speed and the split of a step; bad cases are refused
if [ -n "$bench" ]; then
  expect 0 "sgemm" -- "$bench" --help
  expect 1 "unknown case 'nope'; known cases: simple-b4" -- "$bench" --case nope
  expect 1 "no CIFAR-10" -- "$bench" --case simple-b4 --threads 1 --data "$tmp/none"
  expect 1 "case 'resnet-b4': unknown model 'resnet'; known models: simple" -- "$bench" --case resnet-b4
  expect 1 "unknown case 'simple-b0'" -- "$bench" --case simple-b0
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
expect nonzero "unknown model 'nope'" -- "$bin/visualize" --model nope

# summary: the registered input shape or --input; --graph writes the .dot (and the PNG with Graphviz)
expect 0 "Total parameters: 62,006" -- "$bin/summary"
expect 0 "input \[-1, 3, 32, 32\]" -- "$bin/summary" --model tuned
expect 0 "Total parameters: 68,288" -- "$bin/summary" --model manual --conv im2col
expect 1 "cannot take a batch of shape \[2, 3, 40, 40\]" -- "$bin/summary" --input 3,40,40
expect 1 "input shape '3,a' is not C,H,W" -- "$bin/summary" --input 3,a
expect 1 "give a file ending in .png, .svg or .dot" -- "$bin/summary" --graph "$tmp/g.jpg"
expect 0 "wrote $tmp/g.dot" -- "$bin/summary" --graph "$tmp/g.dot"
expect 0 "softmax_cross_entropy" -- cat "$tmp/g.dot"
expect 0 "wrote $tmp/g.dot; Graphviz's dot is not installed" -- env PATH="$tmp/no-such-bin" "$bin/summary" --graph "$tmp/g.png"
if command -v dot >/dev/null; then
  expect 0 "wrote $tmp/simple.png and $tmp/simple.dot" -- "$bin/summary" --graph "$tmp/simple.png"
  expect 0 "PNG" -- head -c 4 "$tmp/simple.png"
else
  echo "summary: Graphviz's dot is not installed; the PNG of --graph is not checked"
fi

# A user's program: its own models in every command, through run_command_line
if [ -n "$user" ]; then
  expect 2 "Commands:" -- "$user"
  expect 2 "user-tiny +input \[3, 32, 32\], 10 classes" -- "$user"
  expect 2 "unknown command 'frobnicate'" -- "$user" frobnicate
  expect 0 "summary +a model's layers" -- "$user" help
  for command in train gradcheck summary visualize bench; do
    expect 0 "user-gray +input \[1, 12, 12\], 3 classes" -- "$user" $command --help
  done
  expect 0 "Total parameters: 2,274" -- "$user" summary --model user-tiny
  expect 0 "Total parameters: 173" -- "$user" summary --model user-gray
  expect 0 "wrote $tmp/tiny" -- "$user" summary --model user-tiny --graph "$tmp/tiny.png"
  expect 0 "conv.weight.n\[4, 3, 5, 5\]" -- cat "$tmp/tiny.dot"
  expect 0 "PASSED" -- "$user" gradcheck --model user-tiny --max-elements 5
  expect 0 "user-gray model, batch 2, 173 parameters" -- "$user" gradcheck --model user-gray --max-elements 5
  expect 0 "RESULT case=user-gray-b8 threads=1 batch=8 img_per_s=[1-9].* data=random" -- \
    "$user" bench --case user-gray-b8 --steps 2 --warmup 1 --threads 1
  # two cases: each in a process of its own, started as `PROGRAM bench --case ...`
  expect 0 "RESULT case=user-gray-infer-b16 threads=1 batch=16 " -- \
    "$user" bench --case user-gray-b8 --case user-gray-infer-b16 --steps 2 --warmup 1 --threads 1
  if [ -f "$data/test_batch.bin" ]; then
    expect 0 "Training: 24 images" -- "$user" train --model user-tiny --epochs 1 --max-batches 3 --batch 8 \
      --run-dir "$tmp/user-run" --no-plots --data "$data"
    expect 0 "checkpoint.safetensors" -- ls "$tmp/user-run"
    expect 0 "RESULT case=user-tiny-b8 threads=1 batch=8 img_per_s=[1-9].* data=cifar10" -- \
      "$user" bench --case user-tiny-b8 --steps 2 --warmup 1 --threads 1 --data "$data"
    expect 0 "wrote $tmp/user-pics/kernels.png" -- "$user" visualize --model user-tiny --what all --images 2 \
      --predictions 8 --out "$tmp/user-pics" --data "$data"
  else
    echo "user program: real CIFAR-10 not found in $data; its train, bench and visualize runs are skipped"
  fi
  # bad input: unknown models, a model whose output is not batch x classes, models the tools cannot take
  expect nonzero "unknown model 'nope'; known models: simple, tuned, manual, user-tiny, user-gray" -- "$user" gradcheck --model nope
  expect nonzero "unknown model 'nope'; known models: .*user-wrong" -- "$user" summary --model nope
  expect 1 "case 'nope-b8': unknown model 'nope'; known models: .*user-tiny" -- "$user" bench --case nope-b8
  wrong="model 'user-wrong' maps a batch of shape \[2, 3, 32, 32\] to \[2, 7\]; expected batch x classes = \[2, 10\]"
  expect 2 "$wrong" -- "$user" gradcheck --model user-wrong
  expect 1 "$wrong" -- "$user" summary --model user-wrong
  expect 1 "$wrong" -- "$user" train --model user-wrong --run-dir "$tmp/wrong-run"
  expect 1 "$wrong" -- "$user" bench --case user-wrong-b8 --steps 1 --threads 1
  expect 1 "$wrong" -- "$user" visualize --model user-wrong --what kernels --out "$tmp/pics"
  expect 1 "model 'user-gray' takes examples of shape \[1, 12, 12\] with 3 classes, but CIFAR-10" -- \
    "$user" train --model user-gray --run-dir "$tmp/gray-run"
  expect 1 "model 'user-dense' has no Conv2d layer" -- "$user" visualize --model user-dense --what kernels --out "$tmp/pics"
  expect 1 "first conv layer \(conv\) takes 1 channels" -- "$user" visualize --model user-gray --what kernels --out "$tmp/pics"
  expect 1 "only --what kernels can draw it" -- "$user" visualize --model user-gray --what forward --out "$tmp/pics"
fi

echo "apps: $passed passed, $failures failed"
[ $failures -eq 0 ]
