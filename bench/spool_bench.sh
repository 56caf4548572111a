#!/bin/sh
# Starts a fresh spoold (own temp data directory, loopback, port 0), runs
# `spool bench` against it with the arguments given, prints its output, and
# stops the server. BUILD selects the build directory (default: build).
#
#   bench/spool_bench.sh --producers 4 --consumers 4 --jobs 20000 --batch 100
#   SPOOLD_ARGS="--fsync never" bench/spool_bench.sh --rate 1000 --jobs 10000
set -eu
BUILD=${BUILD:-build}
# shellcheck source=bench/spoold_start.sh
. "$(dirname "$0")/spoold_start.sh"
dir=$(mktemp -d /tmp/spool-bench-XXXXXX)
trap 'kill -TERM $spoold_pid 2>/dev/null; wait $spoold_pid 2>/dev/null; rm -rf "$dir"' EXIT
# shellcheck disable=SC2086
spoold_start "$dir/log" 100 "$BUILD/bin/spoold" -b 127.0.0.1:0 -w 127.0.0.1:0 -d "$dir/data" -l info ${SPOOLD_ARGS:-}
"$BUILD/bin/spool" --url "tcp://127.0.0.1:$spoold_port" bench "$@"
