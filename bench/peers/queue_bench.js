'use strict';
// queue_bench.js: measures one job system through its Node.js client, for the
// peer comparison (bench/compare.sh). Systems: bee-queue and bullmq (against
// a Redis server) and faktory (the npm faktory-worker client against any FWP
// server: spoold, or Faktory itself).
//
// Three phases, in one Node process:
//   enqueue  --producers async loops, each with one push in flight, push
//            --jobs jobs; jobs/s = jobs / wall time.
//   process  a worker with --concurrency jobs in flight runs the jobs the
//            enqueue phase left (handler does nothing); timed until the last
//            job is acknowledged (bee-queue: stored as succeeded; BullMQ:
//            moved to completed; faktory-worker: ACK answered).
//   latency  the same worker keeps running while jobs are pushed at --rate
//            jobs/s for --seconds; push->start is the time from just before
//            the push call to the start of the handler (one process, one
//            clock), reported as p50/p99/p99.9.
// For each phase the client's CPU use (% of one core) is reported, and the
// server's when --server-pid is given (from /proc), to show which side is
// the limit. Prints one JSON object on stdout; exits 1 with a message naming
// what went wrong. Bounded: --timeout seconds for the whole run.

const fs = require('node:fs');
const { performance } = require('node:perf_hooks');

const USAGE = `Usage: node queue_bench.js --system bee-queue|bullmq|faktory --port PORT [options]
  --host HOST          server address (default 127.0.0.1)
  --port PORT          Redis port (bee-queue, bullmq) or FWP port (faktory)
  --producers N        concurrent producers, one push in flight each (default 8)
  --jobs N             jobs for the enqueue and process phases (default 20000)
  --concurrency N      worker jobs in flight (default 50)
  --payload BYTES      size of the string argument of each job (default 64)
  --rate N             jobs/s in the latency phase (default 1000; 0 skips it)
  --seconds S          length of the latency phase (default 5)
  --server-pid PID     also report the server's CPU use
  --queue NAME         queue name (default spool-bench)
  --timeout S          give up after this long (default 300)`;

function fail(msg) {
  process.stderr.write(`queue_bench: ${msg}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const o = {
    system: null, host: '127.0.0.1', port: 0, producers: 8, jobs: 20000, concurrency: 50,
    payload: 64, rate: 1000, seconds: 5, serverPid: 0, queue: 'spool-bench', timeout: 300,
  };
  const ints = {
    '--port': ['port', 1, 65535], '--producers': ['producers', 1, 1000], '--jobs': ['jobs', 1, 1e8],
    '--concurrency': ['concurrency', 1, 10000], '--payload': ['payload', 0, 1 << 20],
    '--rate': ['rate', 0, 1e6], '--seconds': ['seconds', 1, 3600], '--server-pid': ['serverPid', 1, 1 << 30],
    '--timeout': ['timeout', 1, 86400],
  };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') { process.stdout.write(USAGE + '\n'); process.exit(0); }
    const v = argv[i + 1];
    if (v === undefined) fail(`${a} needs a value\n${USAGE}`);
    i++;
    if (ints[a]) {
      const [key, min, max] = ints[a];
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) fail(`${a} must be an integer from ${min} to ${max}, got "${v}"`);
      o[key] = n;
    } else if (a === '--system') {
      if (!['bee-queue', 'bullmq', 'faktory'].includes(v)) fail(`--system must be bee-queue, bullmq or faktory, got "${v}"`);
      o.system = v;
    } else if (a === '--host') {
      o.host = v;
    } else if (a === '--queue') {
      if (!/^[A-Za-z0-9_.-]{1,100}$/.test(v)) fail(`--queue must be 1-100 letters, digits, '_', '.' or '-', got "${v}"`);
      o.queue = v;
    } else {
      fail(`unknown option "${a}"\n${USAGE}`);
    }
  }
  if (!o.system) fail(`--system is required\n${USAGE}`);
  if (!o.port) fail(`--port is required\n${USAGE}`);
  return o;
}

// CPU seconds (user + system) of a process, from /proc/PID/stat.
function procCpuS(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields after the command: state(0) ... utime(11) stime(12), in clock ticks
  return (Number(f[11]) + Number(f[12])) / 100;
}

function cpuMeter(serverPid) {
  const c0 = process.cpuUsage();
  const s0 = serverPid ? procCpuS(serverPid) : 0;
  const t0 = performance.now();
  return () => {
    const wall = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    const out = { client_cpu_pct: Math.round(((c.user + c.system) / 1e6 / wall) * 100) };
    if (serverPid) out.server_cpu_pct = Math.round(((procCpuS(serverPid) - s0) / wall) * 100);
    return out;
  };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Math.round(sorted[Math.max(0, i)] * 1000) / 1000;
}

// Each adapter: producer() -> {push(data), close()}; worker(concurrency,
// onStart(data), onDone()) -> {close()}; version().
function beeQueueAdapter(o) {
  const Queue = require('bee-queue');
  const redis = { host: o.host, port: o.port };
  const common = { redis, getEvents: false, sendEvents: false, removeOnSuccess: true, removeOnFailure: true };
  return {
    version: () => require('bee-queue/package.json').version,
    async producer() {
      const q = new Queue(o.queue, { ...common, isWorker: false, storeJobs: false });
      await q.ready();
      return {
        push: (data) => q.createJob(data).save(),
        close: () => q.close(),
      };
    },
    async worker(concurrency, onStart, onDone) {
      const q = new Queue(o.queue, { ...common, isWorker: true });
      await q.ready();
      q.on('succeeded', () => onDone());
      q.on('failed', (job, err) => fail(`bee-queue job ${job.id} failed: ${err.message}`));
      q.on('error', (err) => fail(`bee-queue worker: ${err.message}`));
      q.process(concurrency, async (job) => { onStart(job.data); });
      return { close: () => q.close(10000) };
    },
  };
}

function bullmqAdapter(o) {
  const { Queue, Worker } = require('bullmq');
  const connection = { host: o.host, port: o.port, maxRetriesPerRequest: null };
  return {
    version: () => require('bullmq/package.json').version,
    async producer() {
      const q = new Queue(o.queue, {
        connection,
        defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
      });
      await q.waitUntilReady();
      return {
        push: (data) => q.add('bench', data),
        close: () => q.close(),
      };
    },
    async worker(concurrency, onStart, onDone) {
      const w = new Worker(o.queue, async (job) => { onStart(job.data); }, { connection, concurrency });
      w.on('completed', () => onDone());
      w.on('failed', (job, err) => fail(`BullMQ job ${job && job.id} failed: ${err.message}`));
      w.on('error', (err) => fail(`BullMQ worker: ${err.message}`));
      await w.waitUntilReady();
      return { close: () => w.close() };
    },
  };
}

function faktoryAdapter(o) {
  const { Client, Worker } = require('faktory-worker');
  return {
    version: () => require('faktory-worker/package.json').version,
    async producer() {
      // The client's default connection pool (20), as an application gets it.
      const c = new Client({ host: o.host, port: o.port });
      await c.connect();
      return {
        push: (data) => c.job('bench', data).push(),
        close: () => c.close(),
      };
    },
    async worker(concurrency, onStart, onDone) {
      const w = new Worker({
        host: o.host, port: o.port, concurrency, queues: ['default'],
        registry: { bench: async (data) => { onStart(data); } },
      });
      w.on('error', (err) => fail(`faktory-worker: ${err.message}`));
      // handle() resolves after the ACK has been answered; count those.
      const handle = w.handle.bind(w);
      w.handle = async (job) => {
        const r = await handle(job);
        if (r !== 'done') fail(`faktory-worker: job ${job.jid} ended with "${r}", expected "done"`);
        onDone();
        return r;
      };
      await w.work();
      return { close: () => w.stop() };
    },
  };
}

// Resolves when cond() is true; polls every 5 ms; rejects after ms.
function waitUntil(cond, ms, what) {
  const deadline = performance.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (cond()) return resolve();
      if (performance.now() > deadline) return reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

async function main() {
  const o = parseArgs(process.argv);
  const killer = setTimeout(() => fail(`--timeout ${o.timeout} s reached`), o.timeout * 1000);
  killer.unref();
  const sys = { 'bee-queue': beeQueueAdapter, bullmq: bullmqAdapter, faktory: faktoryAdapter }[o.system](o);
  const pad = 'x'.repeat(o.payload);
  const out = {
    system: o.system, client_version: sys.version(), producers: o.producers, jobs: o.jobs,
    concurrency: o.concurrency, payload: o.payload, rate: o.rate,
  };

  // Enqueue: producers loops, one push in flight each.
  const prod = await sys.producer();
  let next = 0;
  let meter = cpuMeter(o.serverPid);
  let t0 = performance.now();
  await Promise.all(Array.from({ length: o.producers }, async () => {
    while (next < o.jobs) {
      next++;
      await prod.push({ p: pad, t: 0 });
    }
  }));
  let secs = (performance.now() - t0) / 1000;
  out.enqueue_s = Math.round(secs * 1000) / 1000;
  out.push_per_s = Math.round(o.jobs / secs);
  out.enqueue_cpu = meter();

  // Process: start the worker on the jobs already queued.
  let started = 0;
  let done = 0;
  const lat = [];
  let inLatency = false;
  meter = cpuMeter(o.serverPid);
  t0 = performance.now();
  const worker = await sys.worker(o.concurrency, (data) => {
    started++;
    if (inLatency && data.t > 0) lat.push(performance.now() - data.t);
  }, () => { done++; });
  await waitUntil(() => done >= o.jobs, o.timeout * 1000, `${o.jobs} jobs processed (done: ${done})`);
  secs = (performance.now() - t0) / 1000;
  out.process_s = Math.round(secs * 1000) / 1000;
  out.process_per_s = Math.round(o.jobs / secs);
  out.process_cpu = meter();
  if (done !== o.jobs) fail(`process phase: ${done} jobs done, expected ${o.jobs}`);

  // Latency: push at a fixed rate while the worker runs.
  if (o.rate > 0) {
    inLatency = true;
    const total = o.rate * o.seconds;
    const doneBefore = done;
    let pushed = 0;
    let pushErr = null;
    meter = cpuMeter(o.serverPid);
    t0 = performance.now();
    await new Promise((resolve) => {
      const tick = () => {
        const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * o.rate));
        while (pushed < due) {
          pushed++;
          prod.push({ p: pad, t: performance.now() }).catch((e) => { pushErr = e; });
        }
        if (pushed >= total) return resolve();
        setTimeout(tick, 1);
      };
      tick();
    });
    await waitUntil(() => done - doneBefore >= total || pushErr, 30000, `${total} latency jobs processed`);
    if (pushErr) fail(`push failed in the latency phase: ${pushErr.message}`);
    out.latency_cpu = meter();
    out.latency_achieved_rate = Math.round(total / ((performance.now() - t0) / 1000));
    lat.sort((a, b) => a - b);
    out.latency_samples = lat.length;
    out.latency_p50_ms = percentile(lat, 50);
    out.latency_p99_ms = percentile(lat, 99);
    out.latency_p999_ms = percentile(lat, 99.9);
    if (lat.length !== total) fail(`latency phase: ${lat.length} jobs started, expected ${total}`);
  }

  await worker.close();
  await prod.close();
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
