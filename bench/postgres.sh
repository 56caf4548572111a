#!/bin/sh
# The two stores side by side, in one run on one machine: `spool bench` with
# the same load against spoold on its journal (the default) and against
# spoold on PostgreSQL (--store), plain FWP and batched. PostgreSQL is a
# throwaway cluster of Debian's package (tests/pg/cluster.sh), fsync on and
# synchronous_commit on: both stores answer a PUSH only once it is durable.
# Writes a markdown table to stdout and to bench/results/postgres-<time>.md.
#
#   bench/postgres.sh                 # 20000 jobs per phase
#   JOBS=5000 bench/postgres.sh       # quicker
#   BUILD=build-rel bench/postgres.sh # another build directory
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/spoold_start.sh
. "$here/bench/spoold_start.sh"
BUILD=${BUILD:-$here/build}
JOBS=${JOBS:-20000}
work=$(mktemp -d /tmp/spool-pgbench-XXXXXX)
chmod 755 "$work" # PostgreSQL runs as the postgres user under it
pids=""
cleanup() {
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$here/tests/pg/cluster.sh" stop "$work/pg" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

"$here/tests/pg/cluster.sh" start "$work/pg" >/dev/null
base=$(cat "$work/pg/url")

# start_spoold ARGS...: starts spoold (data and log under $work), sets $port
n=0
start_spoold() {
    n=$((n + 1))
    spoold_start "$work/spoold$n.log" 100 "$BUILD/bin/spoold" -b 127.0.0.1:0 -w 127.0.0.1:0 \
        -d "$work/spoold$n-data" "$@"
    pids="$pids $spoold_pid"
    port=$spoold_port
}

run() { # run LABEL STORE-ARGS... -- BENCH-ARGS...
    label=$1
    shift
    sargs=""
    while [ "$1" != "--" ]; do sargs="$sargs $1"; shift; done
    shift
    # shellcheck disable=SC2086
    start_spoold $sargs
    # shellcheck disable=SC2086
    out=$("$BUILD/bin/spool" --url "tcp://127.0.0.1:$port" bench --json "$@")
    kill -TERM "$(echo "$pids" | awk '{print $NF}')" 2>/dev/null || true
    push=$(echo "$out" | sed -n 's/.*"push_per_s":\([0-9.]*\).*/\1/p')
    proc=$(echo "$out" | sed -n 's/.*"process_per_s":\([0-9.]*\).*/\1/p')
    p99=$(echo "$out" | sed -n 's/.*"latency_p99_ms":\([0-9.]*\).*/\1/p')
    printf '| %s | %.0f | %.0f | %.2f |\n' "$label" "$push" "$proc" "$p99"
}

pgstore() { # pgstore N: a fresh database benchN, as --store arguments
    psql -X -q "$base" -c "CREATE DATABASE bench$1" >/dev/null
    echo "--store $(echo "$base" | sed "s|/postgres\$|/bench$1|")"
}

plain="-p 8 -c 8 -n $JOBS --mixed-jobs $((JOBS / 4))"
batched="-p 8 -c 8 -n $JOBS --batch 50 --mixed-jobs $((JOBS / 4))"
paced="-p 4 -c 8 -n 1000 --mixed-jobs 5000 --rate 1000"
{
    echo "# spool: journal store vs PostgreSQL store ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "spoold $("$BUILD/bin/spoold" --version | cut -d' ' -f2), $(psql --version | cut -d' ' -f1-3) (throwaway cluster, fsync on, synchronous_commit on),"
    echo "$(nproc) cores shared by the clients, spoold and PostgreSQL; spool bench, 100-byte payloads."
    echo
    echo "| run | push/s | process/s | p99 push->start (ms) |"
    echo "|---|---|---|---|"
    # shellcheck disable=SC2046,SC2086
    run "journal, plain FWP (8 producers, 8 consumers)" -- $plain
    # shellcheck disable=SC2046,SC2086
    run "postgres, plain FWP (8 producers, 8 consumers)" $(pgstore 1) -- $plain
    # shellcheck disable=SC2046,SC2086
    run "journal, batches of 50 (PUSHB, FETCHN, ACKN)" -- $batched
    # shellcheck disable=SC2046,SC2086
    run "postgres, batches of 50 (PUSHB, FETCHN, ACKN)" $(pgstore 2) -- $batched
    # shellcheck disable=SC2046,SC2086
    run "journal, 1,000 jobs/s paced" -- $paced
    # shellcheck disable=SC2046,SC2086
    run "postgres, 1,000 jobs/s paced" $(pgstore 3) -- $paced
    echo
    echo "push/s: the fill phase; process/s: the drain phase (FETCH and ACK);"
    echo "p99: push call to handler start in the mixed phase (paced rows: at 1,000/s)."
} | tee "$here/bench/results/postgres-$(date -u +%Y-%m-%d-%H%M).md"
