#!/bin/bash
# Peer comparison: spool and the job servers a user could pick instead,
# measured on this machine in one run, each with its durable settings.
#
#   bench/compare.sh            # about 5-10 minutes
#   bench/compare.sh --quick    # about 2 minutes, fewer jobs, shorter latency phase
#
# Installs what it needs (Debian: beanstalkd, redis-server; npm ci in
# bench/peers), builds spoold (make build), the beanstalkd driver and the
# loopback ceiling probe (bench/peers/loopback_ceiling.c), measures that
# ceiling first, starts every server on 127.0.0.1 with a free port and a
# temporary data directory, runs the drivers, stops every server it
# started, and writes
# bench/results/<UTC date and time>.md (also printed). Prints numbers,
# asserts nothing.
#
# Three measures for each system (see bench/README.md for the method):
#   enqueue jobs/s  8 producers
#   process jobs/s  50 jobs in flight
#   p99 push->start at 1,000 jobs/s
#
# Environment overrides: BENCH_JOBS (jobs for systems that group their
# fsyncs or sync once a second), BENCH_JOBS_SYNC (jobs for settings that
# fsync every write one by one: beanstalkd -f0, Redis appendfsync always),
# BENCH_LAT_SECONDS, BENCH_RATE, BENCH_PAYLOAD, SPOOLD (a spoold binary; by
# default build/bin/spoold from `make build`), SPOOL (the spool CLI).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

quick=0
for a in "$@"; do
    case "$a" in
        --quick) quick=1 ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare.sh: unknown argument '$a' (use --quick or --help)" >&2; exit 2 ;;
    esac
done

if [ "$quick" = 1 ]; then
    JOBS=${BENCH_JOBS:-5000}; JOBS_SYNC=${BENCH_JOBS_SYNC:-1000}; LAT_SECONDS=${BENCH_LAT_SECONDS:-3}
else
    JOBS=${BENCH_JOBS:-50000}; JOBS_SYNC=${BENCH_JOBS_SYNC:-5000}; LAT_SECONDS=${BENCH_LAT_SECONDS:-10}
fi
RATE=${BENCH_RATE:-1000}
PAYLOAD=${BENCH_PAYLOAD:-64}
for v in JOBS JOBS_SYNC LAT_SECONDS RATE PAYLOAD; do
    case "${!v}" in
        ''|*[!0-9]*) echo "compare.sh: BENCH_$v must be a whole number, got '${!v}'" >&2; exit 2 ;;
    esac
done
PRODUCERS=8
IN_FLIGHT=50
DRIVER_TIMEOUT=300 # seconds; each driver gives up after this long

log() { echo "compare: $*" >&2; }
die() { echo "compare: $*" >&2; exit 1; }

# --- what it needs -----------------------------------------------------------
missing=()
command -v beanstalkd >/dev/null 2>&1 || missing+=(beanstalkd)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v node >/dev/null 2>&1 || die "node is needed (scripts/deps installs it)"
if [ ! -d bench/peers/node_modules/bullmq ] ||
   [ bench/peers/package-lock.json -nt bench/peers/node_modules/.package-lock.json ]; then
    log "npm ci in bench/peers"
    (cd bench/peers && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
if [ -z "${SPOOLD:-}" ]; then
    log "make build"
    make build >/dev/null
    SPOOLD=$root/build/bin/spoold
fi
SPOOL=${SPOOL:-$(dirname "$SPOOLD")/spool}
[ -x "$SPOOLD" ] || die "no spoold at $SPOOLD"

tmp=$(mktemp -d /tmp/spool-compare.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make -s -C bench/peers OUT="$tmp" >/dev/null
BS_BENCH=$tmp/beanstalk_bench
QB=(node "$root/bench/peers/queue_bench.js")

# --- servers -----------------------------------------------------------------
free_port() {
    node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})'
}

# wait_port PORT PID NAME: polls until PORT accepts a connection (10 s).
wait_port() {
    local port=$1 pid=$2 name=$3 _
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || die "$name exited before listening on port $port (log: $(tail -3 "$tmp/$name.log" 2>/dev/null))"
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    die "$name did not listen on 127.0.0.1:$port within 10 s"
}

server_pid=""
server_port=""
# start NAME COMMAND...: COMMAND may use @PORT@ and @DIR@.
start() {
    local name=$1; shift
    local port dir args=() a
    port=$(free_port)
    dir=$tmp/$name.data
    mkdir -p "$dir"
    for a in "$@"; do a=${a//@PORT@/$port}; args+=("${a//@DIR@/$dir}"); done
    "${args[@]}" >"$tmp/$name.log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    server_port=$port
    wait_port "$port" "$server_pid" "$name"
}

stop() {
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    local keep=() p
    for p in "${pids[@]}"; do [ "$p" = "$server_pid" ] || keep+=("$p"); done
    pids=("${keep[@]+"${keep[@]}"}")
}

# --- rows ----------------------------------------------------------------------
rows=$tmp/rows.jsonl
: >"$rows"
# row SYSTEM VERSION SETTINGS CLIENT RESULT_FILE [LATENCY_FILE] [NOTE]
row() {
    node -e '
const fs = require("fs");
const [system, version, settings, client, resFile, latFile, note] = process.argv.slice(1);
const read = (f) => { try { const t = fs.readFileSync(f, "utf8").trim().split("\n").pop(); return JSON.parse(t); } catch { return null; } };
const errOf = (f) => { try { return fs.readFileSync(f.replace(/\.json$/, ".err"), "utf8").trim().split("\n").slice(-2).join(" / ").slice(0, 300); } catch { return "no output"; } };
const result = read(resFile);
const latency = latFile ? read(latFile) : null;
const out = { system, version, settings, client, result, latency, error: result ? null : errOf(resFile) };
if (note) out.note = note;
if (latFile && !latency && result) out.note = (note ? note + "; " : "") + "latency run failed: " + errOf(latFile);
console.log(JSON.stringify(out));' -- "$@" >>"$rows"
}

# measure NAME COMMAND...: runs a driver, its JSON to $tmp/NAME.json.
measure() {
    local name=$1; shift
    log "run $name"
    if ! "$@" >"$tmp/$name.json" 2>"$tmp/$name.err"; then
        log "$name failed: $(tail -2 "$tmp/$name.err")"
    fi
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)

# The loopback ceiling for the client shape of the serial rows: one thread per
# connection, one command in flight, against a server that only answers.
CEIL_THREADS=$((PRODUCERS + IN_FLIGHT))
measure loopback-ceiling "$tmp/loopback_ceiling" --threads "$CEIL_THREADS" --seconds 3
ceiling=$(node -e 'try{console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).round_trips_per_s)}catch{console.log("")}' \
    "$tmp/loopback-ceiling.json")

# beanstalkd: the default binlog fsync (-f 50 ms) and -f0 (fsync each write).
bs_version=$(beanstalkd -v 2>&1 | awk '{print $2}')
for f in default f0; do
    if [ "$f" = default ]; then
        flags=(); settings="-b DIR (fsync at most every 50 ms, default)"; n=$JOBS
    else
        flags=(-f0); settings="-b DIR -f0 (fsync every write)"; n=$JOBS_SYNC
    fi
    for mode in pipelined serial; do
        start "beanstalkd-$f-$mode" beanstalkd -l 127.0.0.1 -p @PORT@ -b @DIR@ "${flags[@]+"${flags[@]}"}"
        if [ "$mode" = pipelined ]; then
            args=(--consumers 5 --depth 10); client="C, pipelined: 10 commands in flight per connection, 5 consumers"
        else
            args=(--consumers "$IN_FLIGHT"); client="C, 1 command in flight per connection, $IN_FLIGHT consumers"
        fi
        measure "bs-$f-$mode" "$BS_BENCH" --port "$server_port" --server-pid "$server_pid" --mode "$mode" \
            --producers "$PRODUCERS" --jobs "$n" --payload "$PAYLOAD" --timeout "$DRIVER_TIMEOUT" "${args[@]}"
        stop
        row beanstalkd "$bs_version" "$settings" "$client" "$tmp/bs-$f-$mode.json"
    done
done

# Redis AOF with appendfsync everysec and always; a fresh server per client.
redis_version=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
bee_version=$(node -p 'require("./bench/peers/node_modules/bee-queue/package.json").version')
bull_version=$(node -p 'require("./bench/peers/node_modules/bullmq/package.json").version')
fw_version=$(node -p 'require("./bench/peers/node_modules/faktory-worker/package.json").version')
node_version=$(node --version)
for fs_policy in everysec always; do
    if [ "$fs_policy" = always ]; then n=$JOBS_SYNC; else n=$JOBS; fi
    for sys in bee-queue bullmq; do
        start "redis-$fs_policy-$sys" redis-server --bind 127.0.0.1 --port @PORT@ --dir @DIR@ \
            --appendonly yes --appendfsync "$fs_policy" --save '' --daemonize no
        measure "$sys-$fs_policy" "${QB[@]}" --system "$sys" --port "$server_port" --server-pid "$server_pid" \
            --producers "$PRODUCERS" --concurrency "$IN_FLIGHT" --jobs "$n" --payload "$PAYLOAD" \
            --rate "$RATE" --seconds "$LAT_SECONDS" --timeout "$DRIVER_TIMEOUT"
        stop
        if [ "$sys" = bee-queue ]; then v=$bee_version; name="bee-queue"; else v=$bull_version; name="BullMQ"; fi
        row "$name on Redis" "$v, Redis $redis_version" "appendonly yes, appendfsync $fs_policy" \
            "Node $node_version, $sys $v" "$tmp/$sys-$fs_policy.json"
    done
done

# spool: spoold --fsync always, through the npm faktory-worker client.
spool_version="$("$SPOOLD" --version | awk '{print $2}') ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
start spoold "$SPOOLD" -b 127.0.0.1:@PORT@ -w 127.0.0.1:0 -d @DIR@ --fsync always -l warn
measure spool-fw "${QB[@]}" --system faktory --port "$server_port" --server-pid "$server_pid" \
    --producers "$PRODUCERS" --concurrency "$IN_FLIGHT" --jobs "$JOBS" --payload "$PAYLOAD" \
    --rate "$RATE" --seconds "$LAT_SECONDS" --timeout "$DRIVER_TIMEOUT"
stop
row spool "$spool_version" "spoold -d DIR --fsync always (default)" \
    "Node $node_version, faktory-worker $fw_version" "$tmp/spool-fw.json"

# spool through its own C load generator, when this build has `spool bench`.
if [ -x "$SPOOL" ] && "$SPOOL" help bench >/dev/null 2>&1; then
    for batch in 0 100; do
        start "spoold-bench-$batch" "$SPOOLD" -b 127.0.0.1:@PORT@ -w 127.0.0.1:0 -d @DIR@ --fsync always -l warn
        url=tcp://127.0.0.1:$server_port
        measure "spool-bench-$batch" timeout "$DRIVER_TIMEOUT" "$SPOOL" --url "$url" bench \
            --producers "$PRODUCERS" --consumers "$IN_FLIGHT" --jobs "$JOBS" --payload "$PAYLOAD" --batch "$batch" --json
        measure "spool-bench-$batch-rate" timeout "$DRIVER_TIMEOUT" "$SPOOL" --url "$url" bench \
            --producers "$PRODUCERS" --consumers "$IN_FLIGHT" --jobs $((RATE * LAT_SECONDS)) --payload "$PAYLOAD" \
            --batch "$batch" --rate "$RATE" --json
        wide=""
        if [ "$batch" = 0 ]; then
            # Plain FWP with as many connections as the loopback ceiling's threads,
            # split evenly: the producers' fsync waits overlap more.
            wide=$tmp/spool-bench-0-wide.json
            measure spool-bench-0-wide timeout "$DRIVER_TIMEOUT" "$SPOOL" --url "$url" bench \
                --producers $((CEIL_THREADS / 2)) --consumers $((CEIL_THREADS - CEIL_THREADS / 2)) \
                --jobs "$JOBS" --payload "$PAYLOAD" --batch 0 --json
        fi
        stop
        if [ "$batch" = 0 ]; then client="C spool bench, plain FWP (1 command in flight per connection)"
        else client="C spool bench, batches of $batch"; fi
        # shellcheck disable=SC2016 # JavaScript, not shell
        note=$(CEILING="$ceiling" node -e 'try{const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));
            const n=[]; if(r.server_rss_mb!=null) n.push(`server RSS ${r.server_rss_mb} MB with ${r.jobs} jobs queued, ${r.bytes_per_job} bytes/job`);
            const ceil=Number(process.env.CEILING);
            if(r.mixed_per_s!=null) n.push(`pushing and processing at once (${r.producers} producers, ${r.consumers} consumers): ${r.mixed_per_s} jobs/s`+
              (r.mode==="plain"&&ceil>0?`, ${3*r.mixed_per_s} round trips/s, ${Math.round(300*r.mixed_per_s/ceil)} % of the loopback ceiling`:""));
            try { const w=JSON.parse(require("fs").readFileSync(process.argv[3],"utf8"));
              n.push(`with ${w.producers} producers and ${w.consumers} consumers: push ${w.push_per_s}/s, process ${w.process_per_s}/s, at once ${w.mixed_per_s} jobs/s`+
                (ceil>0?` (${3*w.mixed_per_s} round trips/s, ${Math.round(300*w.mixed_per_s/ceil)} % of the loopback ceiling)`:"")); } catch {}
            for (const f of process.argv.slice(1)) { try { const x=JSON.parse(require("fs").readFileSync(f,"utf8"));
              if (x.complete===false) n.push(`INCOMPLETE run (${f.replace(/.*\//,"")}): ${x.error||"deadline"}`); } catch {} }
            console.log(n.join("; "));}catch{}' \
            "$tmp/spool-bench-$batch.json" "$tmp/spool-bench-$batch-rate.json" "$wide")
        row spool "$spool_version" "spoold -d DIR --fsync always (default)" "$client" \
            "$tmp/spool-bench-$batch.json" "$tmp/spool-bench-$batch-rate.json" "$note"
    done
    spool_bench_note="spool's own load generator: \`spool bench\` ($SPOOL)."
else
    spool_bench_note="\`spool bench\` is not in this build ($SPOOL help bench fails), so spool is measured only through the Node faktory-worker client."
fi

# The Node faktory-worker client against a server that does nothing: its ceiling.
start null_fwp node "$root/bench/peers/null_fwp.js" @PORT@
measure null-fw "${QB[@]}" --system faktory --port "$server_port" --server-pid "$server_pid" \
    --producers "$PRODUCERS" --concurrency "$IN_FLIGHT" --jobs "$JOBS" --payload "$PAYLOAD" \
    --rate "$RATE" --seconds "$LAT_SECONDS" --timeout "$DRIVER_TIMEOUT"
stop
row "null FWP server (no storage)" "bench/peers/null_fwp.js" "in memory, answers at once" \
    "Node $node_version, faktory-worker $fw_version" "$tmp/null-fw.json" "" \
    "the Node client's own ceiling: no server can look faster through this client"

# --- report --------------------------------------------------------------------
t_end=$(date +%s)
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
stamp=$(date -u +%Y-%m-%d-%H%M)
mkdir -p bench/results
out=bench/results/$stamp.md
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
tmp_fs=$(df -T "$tmp" | awk 'NR==2 {print $2}')
{
    echo "# Peer comparison, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "\`bench/compare.sh$([ "$quick" = 1 ] && echo ' --quick')\` on $(nproc) cores ($cpu_model), Linux $(uname -r),"
    echo "data directories on $tmp_fs (/tmp). Clients and servers share the cores."
    echo "Load average (1, 5, 15 min) at the start: $load_start; at the end: $load_end."
    echo "Run time $((t_end - t_start)) s. Jobs per run: $JOBS ($JOBS_SYNC for beanstalkd -f0 and Redis"
    echo "appendfsync always); payload $PAYLOAD bytes; $PRODUCERS producers; $IN_FLIGHT jobs in flight"
    echo "while processing; latency at $RATE jobs/s for $LAT_SECONDS s."
    echo "$spool_bench_note"
    if [ -n "$ceiling" ]; then
        echo "Loopback ceiling: $ceiling round trips/s between $CEIL_THREADS client threads (one connection each,"
        echo "one 220-byte line in flight) and a C server that only answers \`+OK\` (bench/peers/loopback_ceiling.c):"
        echo "with this client shape no server can go faster here. A plain FWP job is three round trips,"
        echo "so at most $((ceiling / 3)) jobs/s."
    fi
    echo
    echo "spool's promise (\`--fsync always\`: a PUSH is answered only once it is on disk) is matched by"
    echo "beanstalkd \`-f0\` and Redis \`appendfsync always\`; beanstalkd's default and \`everysec\` can lose"
    echo "up to 50 ms / 1 s of acknowledged jobs on a crash of the machine."
} >"$tmp/header.md"
node bench/peers/report.js "$rows" "$tmp/header.md" >"$out"
cat "$out"
log "wrote $out"
