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

# refuse PATTERN -- COMMAND...: a bad flag value. The exit status is non-zero, the output matches
# PATTERN, and it holds neither CLI11's 300-digit range bounds nor an unsigned wrap-around.
refuse() {
  expect nonzero "$@"
  if grep -Eq '[0-9]{30}|18446744073709551615' "$tmp/out"; then
    failures=$((failures + 1))
    echo "FAILED: ${*:3}: the message shows a huge number"
    sed 's/^/    /' "$tmp/out" | head -5
  fi
}

# run_limited KB COMMAND...: COMMAND with its address space limited to KB kilobytes (ulimit -v).
run_limited() {
  local kb=$1
  shift
  bash -c 'ulimit -v "$0" && exec "$@"' "$kb" "$@"
}

# train: help lists every flag; bad settings are refused before any work
expect 0 "--resume" -- "$bin/train" --help
for flag in --model --epochs --batch --lr --momentum --weight-decay --seed --report-every --validation \
            --conv --normalization --max-batches --data --run-dir --threads --summary --reset-optimizer --detect-anomaly \
            --optimizer --decoupled-weight-decay --beta1 --beta2 --eps --lr-scale-1d --weight-decay-1d --schedule --warmup \
            --schedule-epochs --start-factor --final-factor --step-every --step-gamma --shards --reduce --model-option; do
  expect 0 "$flag" -- "$bin/train" --help
done
expect 0 "Registered models:" -- "$bin/train" --help
expect 0 "manual +input \[3, 32, 32\], 10 classes" -- "$bin/train" --help
expect nonzero "epochs" -- "$bin/train" --epochs 0
expect nonzero "batch" -- "$bin/train" --batch -3
expect nonzero "lr" -- "$bin/train" --lr abc
# numbers are read whole and strictly, with readable ranges: no wrap-around, no NaN, no 300 digits
refuse "^--epochs must be an integer >= 1, got '0'" -- "$bin/train" --epochs 0
refuse "^--batch must be an integer >= 1, got '0'" -- "$bin/train" --batch 0
refuse "^--batch must be an integer >= 1, got '-3'" -- "$bin/train" --batch -3
refuse "^--batch must be an integer >= 1, got '4.5'" -- "$bin/train" --batch 4.5
refuse "^--batch must be an integer >= 1, got '0x10'" -- "$bin/train" --batch 0x10
refuse "^--epochs must be an integer >= 1, got '99999999999999999999'" -- "$bin/train" --epochs 99999999999999999999
refuse "^--seed must be an integer >= 0, got '-1'" -- "$bin/train" --seed -1 --summary
refuse "^--max-batches must be an integer >= 0, got '-1'" -- "$bin/train" --max-batches -1
refuse "^--validation must be an integer >= 0, got '-1'" -- "$bin/train" --validation -1
refuse "^--report-every must be an integer >= 1, got '0'" -- "$bin/train" --report-every 0
refuse "^--eval-batch must be an integer >= 1, got '2147483648'" -- "$bin/train" --eval-batch 2147483648
refuse "^--threads must be an integer >= 0, got '-2'" -- "$bin/train" --threads -2
refuse "^--lr must be a finite number > 0, got '0'" -- "$bin/train" --lr 0
refuse "^--lr must be a finite number > 0, got 'nan'" -- "$bin/train" --lr nan
refuse "^--lr must be a finite number > 0, got 'inf'" -- "$bin/train" --lr inf
refuse "^--lr must be a finite number > 0, got '1e999'" -- "$bin/train" --lr 1e999
refuse "^--lr must be a finite number > 0, got 'abc'" -- "$bin/train" --lr abc
refuse "^--momentum must be a finite number >= 0, got '-0.5'" -- "$bin/train" --momentum -0.5
refuse "^--weight-decay must be a finite number >= 0, got '-inf'" -- "$bin/train" --weight-decay -inf
expect 0 "--batch INT=4 +images per mini-batch, .*\(>= 1\)" -- "$bin/train" --help
expect 0 "--lr FLOAT=0.001 +base learning rate \(of SGD, Adam or AdamW\) \(> 0\)" -- "$bin/train" --help
expect nonzero "--optimizer: rmsprop not in \{sgd,adam,adamw\}" -- "$bin/train" --optimizer rmsprop
expect nonzero "--schedule: linear not in" -- "$bin/train" --schedule linear
refuse "^--shards must be an integer >= 1, got '0'" -- "$bin/train" --shards 0
expect nonzero "--reduce: tree not in \{fast,ordered\}" -- "$bin/train" --reduce tree
refuse "^--warmup must be a finite number >= 0, got '-1'" -- "$bin/train" --warmup -1
expect nonzero "adam: Nesterov momentum, dampening and decoupled weight decay are SGD settings" -- "$bin/train" --optimizer adam --nesterov
expect 0 "more than the cores is capped" -- "$bin/train" --help
# more threads than cores: capped, with a one-line notice (here before the missing data stops the run)
expect 1 "^train: --threads 100000 is more than the [0-9]+ cores? of this machine: using [0-9]+$" -- \
  "$bin/train" --threads 100000 --data "$tmp/none" --run-dir "$tmp/run"
expect nonzero "unknown model 'nope'; known models: simple, tuned, manual" -- "$bin/train" --model nope
expect nonzero "conv" -- "$bin/train" --conv sideways
expect nonzero "conv" -- "$bin/train" --conv fast --summary   # the old names are for old run folders only
expect nonzero "--run-dir" -- "$bin/train" --resume "$tmp/a" --run-dir "$tmp/b"
expect 1 "--data $tmp/none: no CIFAR-10" -- "$bin/train" --data "$tmp/none" --run-dir "$tmp/run"
expect 1 "cannot resume $tmp/no-such-run: the run's settings '$tmp/no-such-run/config.json' does not exist" -- \
  "$bin/train" --resume "$tmp/no-such-run"
expect 0 "Total parameters: 62,006" -- "$bin/train" --summary
expect 0 "Total parameters: 1,187,978" -- "$bin/train" --summary --model tuned
expect 0 "Total parameters: 68,288" -- "$bin/train" --summary --model manual
for conv in auto plain correlate2d im2col automatic; do
  expect 0 "Total parameters: 62,006" -- "$bin/train" --summary --conv $conv
done

# train --resume keeps the run's settings: flags that would change them are refused, not ignored
keeps="--resume keeps the run's settings \(config.json in the run folder\), so"
expect 1 "$keeps --batch, --lr cannot be given with it; with --resume only --epochs, --eval-batch, --threads, --data, --no-plots, --reset-optimizer, --detect-anomaly, --shards, --reduce may be given" -- \
  "$bin/train" --resume "$tmp/no-such-run" --lr 0.1 --batch 8 --epochs 3 --threads 1
for flag in "--model tuned" "--momentum 0" "--weight-decay 0.1" "--nesterov" "--seed 2" "--report-every 5" \
            "--validation 100" "--conv plain" "--normalization dataset" "--max-batches 3" "--summary"; do
  expect 1 "$keeps ${flag%% *} cannot be given with it" -- "$bin/train" --resume "$tmp/no-such-run" $flag
done
expect 1 "--reset-optimizer applies with --resume only" -- "$bin/train" --reset-optimizer --run-dir "$tmp/reset-run"
# the run folder's files must be regular files: a FIFO is refused at once, never waited on
mkdir -p "$tmp/fifo-run" && mkfifo "$tmp/fifo-run/config.json"
expect 1 "config.json' is a FIFO \(named pipe\), not a regular file" -- timeout 20 "$bin/train" --resume "$tmp/fifo-run"
if [ -f "$data/test_batch.bin" ]; then
  quick=(--max-batches 20 --validation 100 --no-plots --threads 1 --data "$data")
  expect 0 "Training: 80 images" -- "$bin/train" --epochs 1 --run-dir "$tmp/run1" "${quick[@]}"
  cp "$tmp/run1/checkpoint.safetensors" "$tmp/good.safetensors"
  expect 0 "Resuming with --eval-batch 50 \(the run evaluated in batches of 500\)" -- \
    "$bin/train" --resume "$tmp/run1" --epochs 1 --eval-batch 50 --threads 1 --no-plots --data "$data"
  for name in checkpoint.safetensors log.csv; do
    mv "$tmp/run1/$name" "$tmp/kept"
    mkfifo "$tmp/run1/$name"
    expect 1 "$name' is a FIFO \(named pipe\), not a regular file" -- timeout 60 "$bin/train" --resume "$tmp/run1" --data "$data"
    rm "$tmp/run1/$name"
    mv "$tmp/kept" "$tmp/run1/$name"
  done
  sed -i 's/$/\r/' "$tmp/run1/log.csv"  # CRLF line endings are read as LF
  expect 0 "Resuming $tmp/run1 after epoch 1 \(step 20\)" -- "$bin/train" --resume "$tmp/run1" --epochs 2 --data "$data"
  # a diverged run exits non-zero naming the first non-finite tensor; its last good checkpoint stays as it was
  cp "$tmp/run1/checkpoint.safetensors" "$tmp/good.safetensors"
  sed -i -E 's/"lr": [0-9.e+-]+/"lr": 1000.0/' "$tmp/run1/config.json"
  expect 1 "training diverged.*[:;] model/[a-z0-9_.]+ holds -?(nan|inf) at element [0-9]+ .*the last good checkpoint, $tmp/run1/checkpoint.safetensors \(after epoch 2, step 40\), is left as it was" -- \
    "$bin/train" --resume "$tmp/run1" --epochs 3 --data "$data"
  expect 0 "^same$" -- sh -c 'cmp "$1" "$2" && echo same' - "$tmp/good.safetensors" "$tmp/run1/checkpoint.safetensors"
  expect 1 "training diverged.*[:;] model/[a-z0-9_.]+ holds -?(nan|inf) at element .*no checkpoint was written" -- \
    "$bin/train" --lr 10 --max-batches 50 --epochs 2 --run-dir "$tmp/run2" --validation 100 --no-plots --threads 1 --data "$data"
  expect 0 "^absent$" -- sh -c 'test ! -e "$1" && echo absent' - "$tmp/run2/checkpoint.safetensors"
else
  echo "train: real CIFAR-10 not found in $data; its resume and divergence runs are skipped"
fi

# tune: help lists every flag; bad searches are refused before any work; a tiny search on real data,
# extended with --resume; the settings stay the stored ones
for flag in --space --search --trials --budget-minutes --grid-points --search-seed --eta --min-epochs --no-pruning \
            --retrain-best --search-dir --resume --model-option --validation; do
  expect 0 "$flag" -- "$bin/tune" --help
done
expect 0 "options \(--model-option NAME=VALUE\): conv1=6 \(1\.\.1024, channels of conv1\); conv2=16" -- "$bin/tune" --help
refuse "unknown name 'colour'; tune knows .*model.NAME" -- "$bin/tune" --space colour=linear:0:1 --trials 1
refuse "a log scale needs LO > 0, got 0" -- "$bin/tune" --space lr=log:0:1 --trials 1
refuse "--search: grid not in|random not in|bogus not in \{random,grid\}|bogus" -- "$bin/tune" --search bogus
refuse "--trials must be an integer >= 0, got '-1'" -- "$bin/tune" --trials -1
expect 1 "a validation split held out of the training set; it cannot be 0 images" -- \
  "$bin/tune" --validation 0 --trials 1 --search-dir "$tmp/tune0" --data "$tmp/none"
expect 1 "--eval-every cannot be given to tune" -- "$bin/tune" --eval-every 2 --trials 1 --search-dir "$tmp/tune0" --data "$tmp/none"
expect 1 "a random search needs a number of trials or a budget" -- "$bin/tune" --search-dir "$tmp/tune0" --data "$tmp/none"
expect 1 "model 'simple' has no option 'depth'; its options: conv1, conv2, fc1, fc2" -- \
  "$bin/tune" --trials 1 --space model.depth=int:1:3 --search-dir "$tmp/tune0" --data "$tmp/none"
expect 1 "--resume keeps the search's settings \(search.json in its folder\), so --lr cannot be given with it" -- \
  "$bin/tune" --resume "$tmp/tune0" --lr 0.1
if [ -f "$data/test_batch.bin" ]; then
  tiny=(--epochs 2 --max-batches 3 --batch 8 --validation 100 --eval-batch 100 --no-plots --threads 1 --data "$data")
  expect 0 "tune: 2 trials in .* sorted by validation accuracy" -- \
    "$bin/tune" --trials 2 --space lr=log:0.001:0.01 --space model.conv1=choice:4,8 --search-dir "$tmp/tune1" "${tiny[@]}"
  expect 0 "^3$" -- sh -c 'wc -l < "$1"' - "$tmp/tune1/results.csv"
  expect 0 "^absent$" -- sh -c 'grep -q "^test," "$1"/trial-00*/log.csv || echo absent' - "$tmp/tune1"
  expect 1 "already holds a search; resume it" -- \
    "$bin/tune" --trials 2 --space lr=log:0.001:0.01 --space model.conv1=choice:4,8 --search-dir "$tmp/tune1" "${tiny[@]}"
  expect 0 "tune: trial 3 " -- "$bin/tune" --resume "$tmp/tune1" --trials 3 --retrain-best --threads 1 --data "$data"
  expect 0 "^4$" -- sh -c 'wc -l < "$1"' - "$tmp/tune1/results.csv"
  expect 0 "\"test_accuracy\"" -- sh -c 'cat "$1"/best-trial-00*/metrics.json' - "$tmp/tune1"
else
  echo "tune: real CIFAR-10 not found in $data; its search runs are skipped"
fi
# resources: a batch larger than the training set, or than the memory can hold, is refused before
# the first step; running out of memory ends with a message (exit 1), never an abort (exit 134)
if [ -f "$data/test_batch.bin" ]; then
  expect 1 "^train: error: fit: batch 60000 is larger than the training set \(50000 examples\): use a batch of at most 50000" -- \
    "$bin/train" --batch 60000 --data "$data" --run-dir "$tmp/big" --no-plots
  expect 1 "batch 100000 is larger than the training set" -- \
    run_limited 3000000 "$bin/train" --batch 100000 --data "$data" --run-dir "$tmp/big" --no-plots
  expect 1 "^train: error: batch 40000 needs about [0-9.]+ GB for activations and gradients; the address-space limit \(ulimit -v, 3.1 GB\) leaves this process [0-9.]+ [GM]B: use a smaller --batch" -- \
    run_limited 3000000 "$bin/train" --batch 40000 --data "$data" --run-dir "$tmp/oom" --no-plots
else
  echo "train: real CIFAR-10 not found in $data; the batch and memory checks of train are skipped"
fi
if [ -n "$user" ]; then  # bench has no estimate: its allocation fails (random examples need no data)
  expect 1 "^bench: error: out of memory while running bench \(an allocation failed; the address-space limit \(ulimit -v\) is 3.1 GB; this machine has [0-9.]+ [GM]B available\): use a smaller batch" -- \
    run_limited 3000000 "$user" bench --case user-gray-infer-b5000000 --steps 1 --warmup 0 --threads 1
fi
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
refuse "^--batch must be an integer from 1 to 64, got '0'" -- "$bin/gradcheck" --model simple --batch 0
refuse "^--seed must be an integer >= 0, got '-1'" -- "$bin/gradcheck" --node all --seed -1
refuse "^--max-elements must be an integer >= 0, got '-1'" -- "$bin/gradcheck" --node all --max-elements -1
refuse "^--eps must be a finite number > 0, got '0'" -- "$bin/gradcheck" --node all --eps 0
refuse "^--min-eps must be a finite number > 0, got 'nan'" -- "$bin/gradcheck" --node all --min-eps nan
refuse "^--atol must be a finite number >= 0, got '-1'" -- "$bin/gradcheck" --node all --atol -1
refuse "^--rtol must be a finite number >= 0, got 'inf'" -- "$bin/gradcheck" --node all --rtol inf

# example: its flags are strict too
refuse "^--batch must be an integer from 1 to 64, got '0'" -- "$bin/example" --batch 0
expect nonzero "^--seed must be an integer from 0 to [0-9]+, got '-1'" -- "$bin/example" --seed -1

# bench: one short case gives a RESULT line with a speed and the split of a step; bad cases are refused
if [ -n "$bench" ]; then
  expect 0 "sgemm" -- "$bench" --help
  expect 1 "unknown case 'nope'; known cases: fma-peak, simple-b4" -- "$bench" --case nope
  expect 1 "no CIFAR-10" -- "$bench" --case simple-b4 --threads 1 --data "$tmp/none"
  expect 1 "case 'resnet-b4': unknown model 'resnet'; known models: simple" -- "$bench" --case resnet-b4
  expect 1 "unknown case 'simple-b0'" -- "$bench" --case simple-b0
  refuse "^--threads must be an integer >= 1, got '0'" -- "$bench" --case sgemm --threads 1 0
  refuse "^--seconds must be a finite number > 0, got '0'" -- "$bench" --seconds 0
  refuse "^--steps must be an integer >= 0, got '-1'" -- "$bench" --steps -1
  refuse "^--warmup must be an integer >= 0, got '-1'" -- "$bench" --warmup -1
  refuse "^--sgemm-size must be an integer from 1 to 16384, got '0'" -- "$bench" --sgemm-size 0
  # fma-peak: the cores' FMA peak with the widest instructions this CPU has (chosen at run time)
  expect 0 "^fma peak \((avx512f|avx2\+fma|portable), independent chains, 1 thread\): [1-9][0-9]*\.[0-9] GFLOP/s" -- \
    "$bench" --case fma-peak --threads 1
  expect 0 "^RESULT case=fma-peak threads=1 isa=(avx512f|avx2\+fma|portable) gflops=(0\.[0-9]*[1-9]|[1-9][0-9]*\.[0-9]+)" -- \
    "$bench" --case fma-peak --threads 1
  expect 0 "bench: --threads 100000 is more than the [0-9]+ cores? of this machine: using [0-9]+" -- \
    "$bench" --case sgemm --sgemm-size 64 --threads 100000
  if [ -f "$data/test_batch.bin" ]; then
    expect 0 "^RESULT case=simple-b4 threads=1 batch=4 img_per_s=[1-9][0-9]*\.[0-9] .*fma_peak_gflops=[1-9][0-9.]* conv_fwd_peak_pct=[0-9.]+ conv_bwd_peak_pct=[0-9.]+ .*conv_fwd_ms=[0-9.]+ conv_bwd_ms=" -- \
      "$bench" --case simple-b4 --threads 1 --steps 5 --warmup 1 --data "$data"
    expect 0 "^RESULT case=tuned-infer-b500 threads=1 batch=500 img_per_s=[1-9]" -- \
      "$bench" --case tuned-infer-b500 --threads 1 --steps 1 --warmup 0 --data "$data"
  else
    echo "bench: real CIFAR-10 not found in $data; its runs are skipped"
  fi
fi

# visualize: bad flags are refused
expect nonzero "what" -- "$bin/visualize" --what everything
expect 1 "checkpoint '$tmp/missing.safetensors' does not exist" -- \
  "$bin/visualize" --checkpoint "$tmp/missing.safetensors" --what kernels --out "$tmp/pics"
mkfifo "$tmp/fifo.safetensors"  # a FIFO would block a reader forever: refused without opening it
expect 1 "checkpoint '$tmp/fifo.safetensors' is a FIFO \(named pipe\), not a regular file" -- \
  timeout 20 "$bin/visualize" --checkpoint "$tmp/fifo.safetensors" --what kernels --out "$tmp/pics"
expect nonzero "unknown model 'nope'" -- "$bin/visualize" --model nope
refuse "^--images must be an integer from 1 to 64, got '0'" -- "$bin/visualize" --images 0
refuse "^--predictions must be an integer from 1 to 256, got '257'" -- "$bin/visualize" --predictions 257
refuse "^--columns must be an integer from 1 to 100, got '-1'" -- "$bin/visualize" --columns -1
refuse "^--seed must be an integer >= 0, got '-1'" -- "$bin/visualize" --seed -1

# summary: the registered input shape or --input; --graph writes the .dot (and the PNG with Graphviz)
expect 0 "Total parameters: 62,006" -- "$bin/summary"
expect 0 "input \[-1, 3, 32, 32\]" -- "$bin/summary" --model tuned
expect 0 "Total parameters: 68,288" -- "$bin/summary" --model manual --conv im2col
expect 1 "cannot take a batch of shape \[2, 3, 40, 40\]" -- "$bin/summary" --input 3,40,40
expect 1 "input shape '3,a' is not C,H,W" -- "$bin/summary" --input 3,a
refuse "^--seed must be an integer >= 0, got '-1'" -- "$bin/summary" --seed -1
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
  for command in train tune gradcheck summary visualize bench; do
    expect 0 "user-gray +input \[1, 12, 12\], 3 classes" -- "$user" $command --help
  done
  expect 0 "Total parameters: 2,274" -- "$user" summary --model user-tiny
  expect 0 "Total parameters: 173" -- "$user" summary --model user-gray
  expect 0 "Total parameters: 2,274" -- "$user" train --model user-wide --summary    # width 4, the default
  expect 0 "Total parameters: 3,406" -- "$user" train --model user-wide --model-option width=6 --summary
  expect 1 "model 'user-wide': option width must be from 1 to 64, got 65" -- \
    "$user" train --model user-wide --model-option width=65 --run-dir "$tmp/wide-run"
  refuse "--model-option: expected NAME=VALUE" -- "$user" train --model user-wide --model-option width
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
    expect 0 "tune: 2 trials in " -- "$user" tune --model user-wide --search grid --epochs 1 --max-batches 3 --batch 8 \
      --validation 50 --eval-batch 50 --space model.width=choice:2,6 --search-dir "$tmp/user-tune" --no-plots --threads 1 --data "$data"
    expect 0 "\"width\": 6" -- cat "$tmp/user-tune/trial-002/config.json"
    expect 0 "RESULT case=user-tiny-b8 threads=1 batch=8 img_per_s=[1-9].* data=cifar10" -- \
      "$user" bench --case user-tiny-b8 --steps 2 --warmup 1 --threads 1 --data "$data"
    expect 0 "wrote $tmp/user-pics/kernels.png" -- "$user" visualize --model user-tiny --what all --images 2 \
      --predictions 8 --out "$tmp/user-pics" --data "$data"
  else
    echo "user program: real CIFAR-10 not found in $data; its train, bench and visualize runs are skipped"
  fi
  # bad input: unknown models, a model whose output is not batch x classes, models the tools cannot take
  expect nonzero "unknown model 'nope'; known models: simple, tuned, manual, fast, user-tiny, user-gray" -- "$user" gradcheck --model nope
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

# train, when a run is disturbed: SIGINT in the middle of an epoch saves that point and exits 130,
# and --resume then ends bit-exact with an unbroken run; a second signal ends the process at once; a
# checkpoint that cannot be written (the file-size limit) leaves the last one intact and no
# temporary file; a run folder that a process trains in is refused, naming its PID.
# check WHAT COMMAND...: passes when COMMAND succeeds.
check() {
  local what=$1
  shift
  if "$@"; then passed=$((passed + 1)); else failures=$((failures + 1)); echo "FAILED: $what"; fi
}
# wait_for PATTERN FILE: until a line of FILE matches (false after ~60 s).
wait_for() {
  for _ in $(seq 1200); do grep -Eq -- "$1" "$2" && return 0; sleep 0.05; done
  return 1
}
# The tensors of a checkpoint: its data section (the header holds timings, which differ).
tensors() { tail -c +$((9 + $(od -An -tu8 -N8 "$1" | tr -d ' '))) "$1"; }
if [ -f "$data/test_batch.bin" ]; then
  quick=(--max-batches 600 --batch 4 --epochs 1 --report-every 100 --no-plots --threads 1 --data "$data")
  expect 0 "Test accuracy" -- "$bin/train" "${quick[@]}" --run-dir "$tmp/unbroken"
  # A script's background commands ignore SIGINT (and train leaves an ignored signal ignored): undo that.
  ( trap - INT; exec "$bin/train" "${quick[@]}" --run-dir "$tmp/stopped" ) >"$tmp/stopped.out" 2>&1 &
  pid=$!
  wait_for "^\[1, +100\]" "$tmp/stopped.out"
  kill -INT $pid
  wait $pid
  rc=$?
  check "SIGINT: exit 130, got $rc" [ $rc -eq 130 ]
  check "SIGINT: says where it stopped" grep -Eq "^Stopped by SIGINT (in epoch 1 after batch [0-9]+ of 600|after epoch 1), step [0-9]+; saved to $tmp/stopped/checkpoint.safetensors" "$tmp/stopped.out"
  check "SIGINT: says how to go on" grep -q -- "--resume $tmp/stopped" "$tmp/stopped.out"
  grep -q "in epoch 1 after batch" "$tmp/stopped.out" || echo "note: SIGINT came after the epoch's steps, not in the middle"
  expect 0 "Resuming $tmp/stopped" -- "$bin/train" --resume "$tmp/stopped" --threads 1 --data "$data"
  check "SIGINT then --resume: the tensors equal the unbroken run's, bit for bit" \
    cmp -s <(tensors "$tmp/unbroken/checkpoint.safetensors") <(tensors "$tmp/stopped/checkpoint.safetensors")
  check "SIGINT then --resume: the same log rows (speed and time aside)" \
    cmp -s <(cut -d, -f1-6 "$tmp/unbroken/log.csv") <(cut -d, -f1-6 "$tmp/stopped/log.csv")
  check "SIGINT then --resume: the same test metrics" \
    cmp -s <(grep -E '"test_(loss|accuracy)"' "$tmp/unbroken/metrics.json") <(grep -E '"test_(loss|accuracy)"' "$tmp/stopped/metrics.json")

  # Two signals: the second ends the process at once (SIGINT and SIGTERM arrive together while it
  # is stopped; the first is handled, the second then has its default action).
  ( trap - INT; exec "$bin/train" "${quick[@]}" --run-dir "$tmp/twice" ) >"$tmp/twice.out" 2>&1 &
  pid=$!
  wait_for "^\[1, +100\]" "$tmp/twice.out"
  kill -STOP $pid; kill -INT $pid; kill -TERM $pid; kill -CONT $pid
  wait $pid
  rc=$?
  check "a second signal ends the process at once: exit 143 (SIGTERM), got $rc" [ $rc -eq 143 ]
  check "a second signal ends the process at once: nothing more printed" [ "$(grep -c 'Stopped by' "$tmp/twice.out")" = 0 ]

  # The file-size limit: the checkpoint of epoch 2 cannot be written.
  cp "$tmp/unbroken/checkpoint.safetensors" "$tmp/before.safetensors"
  expect 1 "checkpoint.safetensors.tmp failed after [0-9]+ bytes: File too large" -- \
    bash -c 'ulimit -f 200; exec "$@"' limit "$bin/train" --resume "$tmp/unbroken" --epochs 2 --threads 1 --data "$data"
  check "a failed checkpoint names the one left" \
    grep -q "the last one, $tmp/unbroken/checkpoint.safetensors (after epoch 1, step 600), is left as it was" "$tmp/out"
  check "a failed checkpoint leaves no temporary file" [ -z "$(find "$tmp/unbroken" -name '*.tmp')" ]
  check "a failed checkpoint leaves the last one as it was" cmp -s "$tmp/before.safetensors" "$tmp/unbroken/checkpoint.safetensors"

  # The run-folder lock: a second train or resume is refused while a process trains there.
  "$bin/train" --resume "$tmp/stopped" --epochs 40 --threads 1 --data "$data" >"$tmp/holder.out" 2>&1 &
  holder=$!
  wait_for "^Resuming" "$tmp/holder.out"
  expect 1 "in use by another training process \(PID $holder\)" -- "$bin/train" --resume "$tmp/stopped" --threads 1 --data "$data"
  expect 1 "in use by another training process \(PID $holder\)" -- "$bin/train" "${quick[@]}" --run-dir "$tmp/stopped"
  kill -KILL $holder
  wait $holder 2>/dev/null
  if command -v flock >/dev/null; then
    check "kill -9 leaves no stale lock" flock -n "$tmp/stopped/.lock" true
  fi
else
  echo "train: real CIFAR-10 not found in $data; the signal, write-error and lock runs are skipped"
fi

echo "apps: $passed passed, $failures failed"
[ $failures -eq 0 ]
