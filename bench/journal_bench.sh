#!/bin/sh
# Journal benchmark: PUSH jobs/s under --fsync always and never (serial,
# 16 serial connections, pipelined), records per fsync, and the time to
# recover 1,000,000 queued jobs (restart and spoold --check). Prints numbers,
# asserts nothing. Everything runs on 127.0.0.1 with temporary data dirs.
#
#   bench/journal_bench.sh                 # builds an optimised spoold in build/bench
#   SPOOLD=/path/to/spoold bench/journal_bench.sh
#   BENCH_SECONDS=3 BENCH_RECOVERY_JOBS=1000000 bench/journal_bench.sh
set -eu
cd "$(dirname "$0")/.."
if [ -z "${SPOOLD:-}" ]; then
    cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build/bench -j "$(nproc 2>/dev/null || echo 2)" --target spoold >/dev/null
    SPOOLD="$PWD/build/bench/bin/spoold"
fi
export SPOOLD
command -v node >/dev/null || { echo "journal_bench: node is needed (scripts/deps --test)" >&2; exit 2; }
# Bounded: throughput phases are timed; the recovery part has its own deadlines.
exec timeout 900 node bench/journal_bench.js
