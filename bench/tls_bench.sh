#!/bin/sh
# TLS benchmark: handshakes/s, PUSH jobs/s (serial and pipelined) and memory
# per idle connection, plaintext against TLS. Prints numbers, asserts
# nothing. Everything runs on 127.0.0.1 with temporary directories.
#
#   bench/tls_bench.sh                 # builds an optimised spoold in build/bench
#   SPOOLD=/path/to/spoold BENCH_SECONDS=5 bench/tls_bench.sh
set -eu
cd "$(dirname "$0")/.."
if [ -z "${SPOOLD:-}" ]; then
    cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build/bench -j "$(nproc 2>/dev/null || echo 2)" --target spoold >/dev/null
    SPOOLD="$PWD/build/bench/bin/spoold"
fi
export SPOOLD
command -v node >/dev/null || { echo "tls_bench: node is needed (scripts/deps --test)" >&2; exit 2; }
command -v openssl >/dev/null || { echo "tls_bench: openssl is needed (scripts/deps)" >&2; exit 2; }
exec timeout 300 node bench/tls_bench.js
