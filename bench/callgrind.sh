#!/bin/sh
# Instructions spoold executes per job on the push -> fetch -> ack path,
# counted by valgrind's callgrind (repeatable, unlike wall time): spoold runs
# under callgrind twice, once for N1 and once for N2 jobs pushed, fetched and
# acknowledged by `spool bench` (fill and drain phases), and the difference
# divided by N2 - N1 leaves start-up and shutdown out.
#
# usage: bench/callgrind.sh [BUILD_DIR] [BATCH] [N1] [N2]
#   BATCH 0 = plain FWP (PUSH, FETCH, ACK), N = PUSHB/FETCHN/ACKN of N jobs.
# Prints one line: batch, instructions per job, and the two totals.
# Keeps the callgrind.out files in $OUT (default: a temp dir) for
# callgrind_annotate.
set -eu
BUILD=${1:-build}
BATCH=${2:-0}
N1=${3:-5000}
N2=${4:-15000}
OUT=${OUT:-$(mktemp -d /tmp/spool-callgrind-XXXXXX)}
SPOOLD=$BUILD/bin/spoold
SPOOL=$BUILD/bin/spool
# shellcheck source=bench/spoold_start.sh
. "$(dirname "$0")/spoold_start.sh"

run() { # $1 = jobs; prints the total instruction count
  dir=$(mktemp -d /tmp/spool-cg-data-XXXXXX)
  spoold_start "$dir.log" 300 valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.$BATCH.$1" \
    "$SPOOLD" -b 127.0.0.1:0 -w 127.0.0.1:0 -d "$dir" -l info
  pid=$spoold_pid
  "$SPOOL" --url "tcp://127.0.0.1:$spoold_port" bench --jobs "$1" --batch "$BATCH" --payload 100 \
    --mixed-jobs 0 --json >"$OUT/bench.$BATCH.$1.json"
  kill -TERM "$pid"
  wait "$pid" || true
  rm -rf "$dir" "$dir.log"
  sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$OUT/callgrind.out.$BATCH.$1"
}

I1=$(run "$N1")
I2=$(run "$N2")
echo "batch=$BATCH instructions_per_job=$(( (I2 - I1) / (N2 - N1) )) total_$N1=$I1 total_$N2=$I2 out=$OUT"
