#!/bin/sh
# A throwaway PostgreSQL cluster for the tests and benchmarks, from Debian's
# postgresql package (scripts/deps --test installs it).
#   tests/pg/cluster.sh start DIR   initdb in DIR, start on 127.0.0.1 and a free
#                                   port, write the base URL to DIR/url
#   tests/pg/cluster.sh stop DIR    stop it and remove DIR
# initdb and postgres refuse to run as root: as root they run as the
# postgres system user (created by the package), with DIR owned by it.
# Starting again over a DIR left by a killed run stops what is left first.
set -eu

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
fi

bindir=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
        bindir=$d
        break
    fi
done
if [ -z "$bindir" ]; then
    echo "cluster.sh: PostgreSQL's server binaries are not installed (/usr/lib/postgresql/*/bin);" \
         "run scripts/deps --test (Debian package postgresql)" >&2
    exit 1
fi

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

stop() {
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

case "$cmd" in
stop)
    stop
    ;;
start)
    stop
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            echo "cluster.sh: running as root needs the postgres system user (Debian package postgresql)" >&2
            exit 1
        fi
        chown postgres "$dir"
        if ! runuser -u postgres -- test -w "$dir"; then
            echo "cluster.sh: the postgres user cannot reach $dir: every directory above it must be" \
                 "searchable by others (chmod o+x)" >&2
            exit 1
        fi
    fi
    as_owner "$bindir/initdb" -D "$dir/data" -A trust -U spool --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
    # A free port: ask the kernel for one, then hand it to postgres (a race
    # with another program taking it in between is retried below).
    tries=0
    while :; do
        port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
        if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=on" \
            start >/dev/null 2>&1; then
            break
        fi
        tries=$((tries + 1))
        if [ "$tries" -ge 3 ]; then
            echo "cluster.sh: PostgreSQL did not start; its log:" >&2
            cat "$dir/server.log" >&2 || true
            exit 1
        fi
    done
    echo "postgres://spool@127.0.0.1:$port/postgres" >"$dir/url"
    echo "cluster.sh: PostgreSQL running at $(cat "$dir/url")"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
