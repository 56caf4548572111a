#!/bin/sh
# Starts a fresh spoold (own temp data directory, loopback, port 0), runs
# `spool bench` against it with the arguments given, prints its output, and
# stops the server. BUILD selects the build directory (default: build).
#
#   bench/spool_bench.sh --producers 4 --consumers 4 --jobs 20000 --batch 100
#   SPOOLD_ARGS="--fsync never" bench/spool_bench.sh --rate 1000 --jobs 10000
set -eu
BUILD=${BUILD:-build}
dir=$(mktemp -d /tmp/spool-bench-XXXXXX)
# shellcheck disable=SC2086
"$BUILD/bin/spoold" -b 127.0.0.1:0 -w 127.0.0.1:0 -d "$dir/data" -l info ${SPOOLD_ARGS:-} 2>"$dir/log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
port=
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*spoold ready fwp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/log" | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "spoold did not start" >&2; cat "$dir/log" >&2; exit 1; }
"$BUILD/bin/spool" --url "tcp://127.0.0.1:$port" bench "$@"
