#!/usr/bin/env bash
# A failed rank ends the whole data-parallel job within seconds, with a message, never a hang; the
# last checkpoint stays intact (it loads).
# Usage: failing_rank.sh FAILING_RANK_PROGRAM MPIEXEC [MPIEXEC FLAGS...]   (e.g. mpiexec -n 2 --oversubscribe)
set -u
program=$1
shift
mpirun=("$@")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
status=0
bad() { echo "FAIL: $*"; status=1; }
now() { echo $(($(date +%s%N) / 1000000)); }  # milliseconds
seconds_since() { local ms=$(($(now) - $1)); printf '%d.%03d' $((ms / 1000)) $((ms % 1000)); }

# 1. An exception on rank 1 (in its 13th step, after two checkpoints): the job ends at once.
start=$(now)
timeout 120 "${mpirun[@]}" "$program" throw "$dir/throw" >"$dir/throw.out" 2>&1
rc=$?
took=$(seconds_since "$start")
echo "exception on rank 1: mpirun exited $rc after $took s"
[ "$rc" -ne 0 ] || bad "mpirun exited 0"
[ "$rc" -ne 124 ] || bad "the job hung (killed by timeout after 120 s)"
grep -q "fit: error on rank 1 of 2: the test model fails on rank 1 in step 13" "$dir/throw.out" ||
  bad "no message naming rank 1 and its error; output: $(cat "$dir/throw.out")"
((${took%.*} < 30)) || bad "took $took s (want seconds)"
"$program" check "$dir/throw" || bad "the checkpoint does not load after the exception"

# 2. Rank 1 killed (SIGKILL) once a checkpoint exists: mpirun ends the others.
timeout 120 "${mpirun[@]}" "$program" kill "$dir/kill" >"$dir/kill.out" 2>&1 &
job=$!
for _ in $(seq 600); do
  [ -f "$dir/kill/checkpoint.safetensors" ] && [ -s "$dir/kill.rank1.pid" ] && break
  sleep 0.1
done
[ -f "$dir/kill/checkpoint.safetensors" ] || bad "no checkpoint after 60 s"
sleep 0.5
start=$(now)
kill -9 "$(cat "$dir/kill.rank1.pid")"
wait "$job"
rc=$?
took=$(seconds_since "$start")
echo "rank 1 killed: mpirun exited $rc, $took s after the kill"
[ "$rc" -ne 0 ] || bad "mpirun exited 0"
[ "$rc" -ne 124 ] || bad "the job hung (killed by timeout after 120 s); output: $(cat "$dir/kill.out")"
((${took%.*} < 15)) || bad "took $took s after the kill (want seconds)"
"$program" check "$dir/kill" || bad "the checkpoint does not load after the kill"
exit $status
