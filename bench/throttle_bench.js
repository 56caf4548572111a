'use strict';
// Queue throttle benchmark (measures and prints; asserts nothing).
//
//   1. FETCH+ACK throughput of 8 workers on one queue: without a throttle,
//      and with a concurrency throttle of 1000 (never reached: the cost of
//      the check) and of 4 (binding).
//   2. Rate accuracy: a queue limited to BENCH_RATE jobs per 1 s, 8 workers
//      fetching as fast as they can for BENCH_SECONDS. From the server's
//      reservation times (GET /api/v1/sets/working): the most hand-outs in
//      any 1 s window (sliding over every hand-out) and the achieved rate.
//   3. Concurrency: limit 4, 16 workers holding each job 1-5 ms: the most
//      jobs held at once as the workers saw it, and INFO's in_flight sampled.
//
// Everything runs on 127.0.0.1 with port 0, --fsync never and temporary
// directories. Run: SPOOLD=build/bin/spoold node bench/throttle_bench.js
// Environment: BENCH_SECONDS (default 4), BENCH_RATE (default 200).

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { startServer, makeTempDir, removeDir } = require('../tests/lib/spoold');

const PHASE_MS = Number(process.env.BENCH_SECONDS || 4) * 1000;
const RATE = Number(process.env.BENCH_RATE || 200);
let seq = 0;

function getJSON(port, p) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
    }).on('error', reject);
  });
}

async function withConfig(throttles, fn) {
  const cfg = makeTempDir('spool-thr-bench-');
  if (throttles) fs.writeFileSync(path.join(cfg, 'throttles.json'), JSON.stringify(throttles));
  const srv = await startServer({ args: ['-c', cfg, '--fsync', 'never'] });
  try {
    return await fn(srv);
  } finally {
    await srv.stop();
    removeDir(cfg);
  }
}

async function fill(srv, queue, n) {
  const c = await srv.connect();
  for (let off = 0; off < n; off += 1000) {
    const jobs = [];
    for (let i = off; i < Math.min(n, off + 1000); i++) {
      jobs.push({ jid: `b-${(seq++).toString(36).padStart(10, '0')}`, jobtype: 'Bench', args: [], queue });
    }
    const r = await c.cmdTyped('PUSHB ' + JSON.stringify(jobs), { timeoutMs: 30000 });
    if (r.type !== 'bulk' && r.type !== 'simple') throw new Error(`PUSHB: ${JSON.stringify(r)}`);
  }
  c.close();
}

async function throughput(label, throttles) {
  await withConfig(throttles, async (srv) => {
    await fill(srv, 'bq', 60000);
    const workers = [];
    for (let i = 0; i < 8; i++) workers.push(await srv.connect({ hello: { wid: `bw-${i}` } }));
    const deadline = Date.now() + PHASE_MS;
    const t0 = Date.now();
    const counts = await Promise.all(workers.map(async (w) => {
      let n = 0;
      while (Date.now() < deadline) {
        const job = await w.fetch(['bq'], { timeoutMs: 10000 });
        if (!job) continue;
        await w.ack(job.jid);
        n++;
      }
      return n;
    }));
    const total = counts.reduce((a, b) => a + b, 0);
    console.log(`throughput ${label}: ${Math.round(total / ((Date.now() - t0) / 1000))} FETCH+ACK/s (8 workers)`);
  });
}

function ns(s) {
  return BigInt(Date.parse(s.slice(0, 19) + 'Z')) * 1000000n + BigInt((s.slice(20, -1) + '000000000').slice(0, 9));
}

async function rateAccuracy() {
  await withConfig({ rq: { rate: { limit: RATE, period: 1 } } }, async (srv) => {
    const want = Math.min(1000, Math.ceil(RATE * PHASE_MS / 1000) + RATE);
    await fill(srv, 'rq', want + 100);
    const workers = [];
    for (let i = 0; i < 8; i++) workers.push(await srv.connect({ hello: { wid: `rw-${i}` } }));
    const deadline = Date.now() + PHASE_MS;
    let taken = 0;
    await Promise.all(workers.map(async (w) => {
      while (Date.now() < deadline && taken < 1000) {
        const job = await w.fetch(['rq'], { timeoutMs: 10000 });
        if (job) taken++; // not ACKed: the reservation keeps its time for the listing
      }
    }));
    const ws = await getJSON(srv.httpPort, '/api/v1/sets/working?limit=1000');
    const t = ws.jobs.map((e) => ns(e.reserved_at)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    let maxIn = 0;
    for (let i = 0, j = 0; i < t.length; i++) {
      while (t[i] - t[j] >= 1000000000n) j++;
      maxIn = Math.max(maxIn, i - j + 1);
    }
    const span = Number(t[t.length - 1] - t[0]) / 1e9;
    console.log(`rate ${RATE}/1s: ${t.length} hand-outs over ${span.toFixed(3)} s = ` +
      `${(t.length > 1 ? (t.length - 1) / span : 0).toFixed(1)}/s; most in any 1 s window: ${maxIn} (limit ${RATE})`);
  });
}

async function concurrency() {
  const LIMIT = 4;
  await withConfig({ cq: { concurrency: LIMIT } }, async (srv) => {
    await fill(srv, 'cq', 20000);
    const workers = [];
    for (let i = 0; i < 16; i++) workers.push(await srv.connect({ hello: { wid: `cw-${i}` } }));
    const watch = await srv.connect();
    let holding = 0;
    let maxHolding = 0;
    let infoMax = 0;
    let samples = 0;
    let done = 0;
    const deadline = Date.now() + PHASE_MS;
    const watcher = (async () => {
      while (Date.now() < deadline) {
        const t = (await watch.info()).faktory.throttles.cq;
        infoMax = Math.max(infoMax, t.in_flight);
        samples++;
      }
    })();
    await Promise.all(workers.map(async (w, i) => {
      while (Date.now() < deadline) {
        const job = await w.fetch(['cq'], { timeoutMs: 10000 });
        if (!job) continue;
        holding++;
        maxHolding = Math.max(maxHolding, holding);
        await new Promise((r) => setTimeout(r, 1 + (i % 5)));
        holding--;
        await w.ack(job.jid);
        done++;
      }
    }));
    await watcher;
    console.log(`concurrency ${LIMIT}, 16 workers: ${done} jobs; most held at once (workers' view) ${maxHolding}; ` +
      `INFO in_flight max ${infoMax} over ${samples} samples`);
  });
}

(async () => {
  await throughput('no throttle', null);
  await throughput('concurrency 1000 (not reached)', { bq: { concurrency: 1000 } });
  await throughput('concurrency 4 (binding)', { bq: { concurrency: 4 } });
  await rateAccuracy();
  await concurrency();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
