#!/usr/bin/env bash
# Fuzzes the parsers of outside input (fuzz/<harness>.cpp) with libFuzzer under AddressSanitizer and
# UndefinedBehaviorSanitizer: builds the harnesses with clang in their own build folder, then runs
# each for a fixed time from the kept seed corpus (tests/fuzz-corpus/<harness>/, only read) and
# prints executions and findings per harness. New interesting inputs go to OUT/<harness>/corpus,
# findings (crash-*, leak-*, timeout-*, oom-*) to OUT/<harness>/findings; neither touches the kept
# corpus. With MERGE=1, each run ends with a minimised corpus (seeds + new) in OUT/<harness>/minimised,
# to copy into tests/fuzz-corpus by hand where it adds coverage worth keeping.
#
# Usage: scripts/fuzz.sh [SECONDS_EACH] [HARNESS...]   (default 300 s each; all harnesses; 0: build only)
# Environment: BUILD_DIR (default build-fuzz), OUT (default fuzz-out), JOBS (build, default nproc),
#              FAST_BUILD=OFF (library file by file, see scripts/setup.sh), MERGE=1,
#              FUZZ_FLAGS (more libFuzzer flags). Exit status 1 when any harness found something.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
shift || true
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(safetensors cifar10 config log)
build_dir=${BUILD_DIR:-build-fuzz}
out=${OUT:-fuzz-out}

packages=(clang libclang-rt-dev libomp-dev)  # libFuzzer and the sanitizer runtimes; clang's OpenMP
scripts/install-missing.sh fuzz "${packages[@]}"

# Debug at -O1: Eigen's and the library's assertions stay on, and the fuzzer still runs fast.
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build_dir" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
      -DMCNN_FUZZ=ON -DMCNN_UNITY_BUILD="${FAST_BUILD:-ON}" -DMCNN_BUILD_TESTS=OFF -DMCNN_BUILD_APPS=OFF -DMCNN_BUILD_BENCH=OFF -DMCNN_INSTALL=OFF \
      "${launcher[@]}" >/dev/null
cmake --build "$build_dir" -j "${JOBS:-$(nproc)}" --target "${harnesses[@]/#/fuzz_}"
[ "$seconds" != 0 ] || exit 0

# A CIFAR-10 record is 3,073 bytes: let inputs hold a few. The others' seeds are under 4 KB.
max_len_of() { [ "$1" = cifar10 ] && echo 10000 || echo 4096; }
# The format's words (fuzz/<harness>.dict), so that mutations reach past the JSON or CSV syntax.
dict_of() { [ -f "fuzz/$1.dict" ] && echo "-dict=fuzz/$1.dict" || true; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
summary=()
found_any=0
for h in "${harnesses[@]}"; do
  mkdir -p "$out/$h/corpus" "$out/$h/findings"
  before=$(find "$out/$h/findings" -type f | wc -l)
  log="$out/$h/fuzz.log"
  echo "fuzz: $h for ${seconds} s (log: $log)"
  start=$(date +%s)
  set +e
  # shellcheck disable=SC2086
  "$build_dir/fuzz/fuzz_$h" "$out/$h/corpus" "tests/fuzz-corpus/$h" -max_total_time="$seconds" \
      -max_len="$(max_len_of "$h")" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$out/$h/findings/" $(dict_of "$h") ${FUZZ_FLAGS:-} >"$log" 2>&1
  rc=$?
  set -e
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  findings=$(( $(find "$out/$h/findings" -type f | wc -l) - before ))
  if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then found_any=1; fi
  summary+=("$(printf '%-12s %12s executions  %7s exec/s  %5s s  %s finding(s)  rc %s' \
                "$h" "${execs:-?}" "${rate:-?}" "$took" "$findings" "$rc")")
  if [ "$rc" -ne 0 ]; then grep -E "ERROR|runtime error|fuzz check failed|Test unit written" "$log" | head -5 || true; fi
  if [ "${MERGE:-0}" = 1 ]; then
    rm -rf "$out/$h/minimised" && mkdir -p "$out/$h/minimised"
    "$build_dir/fuzz/fuzz_$h" -merge=1 -max_len="$(max_len_of "$h")" "$out/$h/minimised" "tests/fuzz-corpus/$h" \
        "$out/$h/corpus" >"$out/$h/merge.log" 2>&1 || echo "fuzz: $h: merge failed (see $out/$h/merge.log)"
  fi
done
echo
echo "fuzz: ${seconds} s each, clang $(clang++ -dumpversion), -fsanitize=fuzzer,address,undefined"
printf '%s\n' "${summary[@]}"
exit "$found_any"
