# shellcheck shell=sh
# Sourced by the bench scripts: starts spoold and waits for its ready line.
#
# spoold_start LOG TRIES COMMAND...
#   Runs COMMAND (a spoold command line with -b 127.0.0.1:0, possibly under
#   valgrind) in the background with stderr to LOG, and waits up to TRIES
#   tenths of a second for "spoold ready fwp=127.0.0.1:PORT". Sets
#   spoold_pid and spoold_port; exits the script with LOG shown if spoold
#   never gets ready.
spoold_start() {
    _ss_log=$1
    _ss_tries=$2
    shift 2
    "$@" 2>"$_ss_log" &
    spoold_pid=$!
    spoold_port=
    for _ in $(seq 1 "$_ss_tries"); do
        spoold_port=$(sed -n 's/.*spoold ready fwp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$_ss_log" | head -1)
        [ -n "$spoold_port" ] && return 0
        sleep 0.1
    done
    echo "spoold did not start: $*" >&2
    cat "$_ss_log" >&2
    kill "$spoold_pid" 2>/dev/null
    exit 1
}
