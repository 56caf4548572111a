#!/bin/sh
# cmake --install into a temp DESTDIR, build the examples with the installed
# spool.pc, run the producer against a live spoold. Args: build-dir src-dir.
set -eu
build=$1; src=$2
tmp=$(mktemp -d /tmp/spool-install-test-XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
prefix=/opt/spooltest
DESTDIR=$tmp/root cmake --install "$build" --prefix "$prefix" >/dev/null
root=$tmp/root
pcdir=$(dirname "$(find "$root" -name spool.pc | head -n1)")
test -f "$pcdir/spool.pc"
test -f "$root$prefix/include/spool/spool.h"
export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$root"
libdir=$(dirname "$pcdir")
cp "$src/examples/producer.c" "$src/examples/worker.c" "$src/examples/Makefile" "$tmp/"
make -s -C "$tmp" CFLAGS="-O0 -Wall -Werror -Wno-unused-parameter ${EXAMPLE_CFLAGS:-}" >/dev/null
# the systemd unit: installed under PREFIX/lib/systemd/system, naming the installed spoold
unit=$root$prefix/lib/systemd/system/spoold.service
test -f "$unit" || { echo "install_test: no $unit"; exit 1; }
grep -q "^ExecStart=$prefix/bin/spoold " "$unit" || { echo "install_test: ExecStart does not name $prefix/bin/spoold"; cat "$unit"; exit 1; }
grep -q '^Type=notify$' "$unit" || { echo "install_test: the unit is not Type=notify"; exit 1; }
if command -v systemd-analyze >/dev/null 2>&1; then
  # verify wants the binaries where the unit says: point it into DESTDIR
  mkdir "$tmp/unit"
  sed "s|$prefix/|$root$prefix/|g" "$unit" >"$tmp/unit/spoold.service"
  warnings=$(systemd-analyze verify "$tmp/unit/spoold.service" 2>&1 || echo "systemd-analyze verify failed")
  [ -z "$warnings" ] || { echo "install_test: systemd-analyze verify: $warnings"; exit 1; }
fi
# run against a live spoold on port 0
mkdir "$tmp/data"
"$SPOOLD" -b 127.0.0.1:0 -w 127.0.0.1:0 -d "$tmp/data" 2>"$tmp/log" &
pid=$!
i=0
until grep -q 'spoold ready' "$tmp/log"; do
  i=$((i+1)); [ $i -lt 200 ] || { cat "$tmp/log"; exit 1; }
  sleep 0.05
done
port=$(sed -n 's/.*spoold ready fwp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/log" | head -n1)
out=$(SPOOL_URL="tcp://127.0.0.1:$port" LD_LIBRARY_PATH="$libdir" "$tmp/producer" hello '["x"]')
echo "$out"
echo "$out" | grep -q '^pushed '
