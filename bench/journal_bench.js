'use strict';
// Journal benchmark (measures and prints; asserts nothing). Run through
// bench/journal_bench.sh, which builds an optimised spoold first.
//
//   1. PUSH throughput under --fsync always and --fsync never: one connection
//      serial (one command, one reply), 16 connections serial at once, and one
//      connection pipelined (256 in flight); with records per fsync from
//      INFO's server.journal counters.
//   2. Recovery of 1,000,000 queued jobs: pushed with PUSHB in batches of
//      1000 over one connection (--fsync never), stopped with SIGTERM, then
//      the restart timed until the "spoold ready" line, and spoold --check
//      timed on the same directory.
//
// Everything runs on 127.0.0.1 with port 0 and temporary data directories.
// Environment: SPOOLD (required), BENCH_SECONDS (per throughput phase, default
// 3), BENCH_RECOVERY_JOBS (default 1000000).

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { startServer, makeTempDir, removeDir } = require('../tests/lib/spoold');

const PHASE_MS = Number(process.env.BENCH_SECONDS || 3) * 1000;
const RECOVERY_JOBS = Number(process.env.BENCH_RECOVERY_JOBS || 1000000);
let jidSeq = 0;

function job(tag) {
  const k = jidSeq++;
  return { jid: `${tag}-${k.toString(36).padStart(8, '0')}`, jobtype: 'Bench', args: [k, 'x'] };
}

async function journalStats(c) {
  const info = await c.info();
  const j = info.server && info.server.journal;
  return j ? { records: j.records, fsyncs: j.fsyncs, batches: j.batches, fsyncMs: j.fsync_ms_avg } : null;
}

function perFsync(a, b) {
  if (!a || !b) return 'n/a (INFO has no server.journal)';
  const rec = b.records - a.records;
  const fsy = b.fsyncs - a.fsyncs;
  return fsy ? `${(rec / fsy).toFixed(1)} records/fsync (${fsy} fsyncs, avg ${b.fsyncMs.toFixed(3)} ms)` : `${rec} records, no fsync`;
}

async function serial(c, tag, deadline) {
  let n = 0;
  while (Date.now() < deadline) {
    const r = await c.cmdTyped('PUSH ' + JSON.stringify(job(tag)), { timeoutMs: 30000 });
    if (r.type !== 'simple') throw new Error(`PUSH failed: ${JSON.stringify(r)}`);
    n++;
  }
  return n;
}

async function pipelined(c, tag, deadline, window) {
  let sent = 0;
  let got = 0;
  const line = () => 'PUSH ' + JSON.stringify(job(tag)) + '\r\n';
  c.send(Array.from({ length: window }, line).join(''));
  sent = window;
  while (got < sent) {
    const r = await c.readTyped(30000);
    if (r.type !== 'simple') throw new Error(`PUSH failed: ${JSON.stringify(r)}`);
    got++;
    if (Date.now() < deadline) {
      c.send(line());
      sent++;
    }
  }
  return got;
}

async function throughput(policy) {
  const s = await startServer({ args: ['--fsync', policy], logLevel: 'info' });
  const out = [];
  try {
    const info = await s.connect();
    // 1 connection, serial
    let a = await journalStats(info);
    let t0 = Date.now();
    const c1 = await s.connect();
    let n = await serial(c1, `s1${policy}`, t0 + PHASE_MS);
    let dt = (Date.now() - t0) / 1000;
    let b = await journalStats(info);
    out.push([policy, '1 conn serial', n, n / dt, perFsync(a, b)]);
    // 16 connections, each serial
    const conns = [];
    for (let k = 0; k < 16; k++) conns.push(await s.connect());
    a = await journalStats(info);
    t0 = Date.now();
    const counts = await Promise.all(conns.map((c, k) => serial(c, `s16${policy}${k}`, t0 + PHASE_MS)));
    dt = (Date.now() - t0) / 1000;
    b = await journalStats(info);
    n = counts.reduce((x, y) => x + y, 0);
    out.push([policy, '16 conns serial', n, n / dt, perFsync(a, b)]);
    for (const c of conns) c.destroy();
    // 1 connection, pipelined
    a = await journalStats(info);
    t0 = Date.now();
    n = await pipelined(c1, `p${policy}`, t0 + PHASE_MS, 256);
    dt = (Date.now() - t0) / 1000;
    b = await journalStats(info);
    out.push([policy, '1 conn pipelined (256 in flight)', n, n / dt, perFsync(a, b)]);
    c1.destroy();
    info.destroy();
  } finally {
    await s.stop();
  }
  return out;
}

function dirBytes(dir) {
  let total = 0;
  for (const f of fs.readdirSync(dir)) total += fs.statSync(path.join(dir, f)).size;
  return total;
}

async function recovery() {
  const dir = makeTempDir('spool-bench-recovery-');
  const res = {};
  try {
    const s = await startServer({ dir, args: ['--fsync', 'never'], logLevel: 'info' });
    try {
      const c = await s.connect();
      const t0 = Date.now();
      const BATCH = 1000;
      // Two PUSHB in flight keep the connection busy without unbounded buffering.
      let sent = 0;
      let done = 0;
      const batch = () => {
        const jobs = [];
        for (let k = 0; k < BATCH && sent < RECOVERY_JOBS; k++, sent++) jobs.push(job('r'));
        return 'PUSHB ' + JSON.stringify(jobs) + '\r\n';
      };
      c.send(batch());
      if (sent < RECOVERY_JOBS) c.send(batch());
      let inflight = sent > BATCH ? 2 : 1;
      while (inflight) {
        const r = await c.readTyped(120000);
        inflight--;
        if (r.type !== 'bulk' || r.value !== '{}') throw new Error(`PUSHB failed: ${JSON.stringify(r).slice(0, 300)}`);
        done += BATCH;
        if (sent < RECOVERY_JOBS) {
          c.send(batch());
          inflight++;
        }
      }
      res.pushSeconds = (Date.now() - t0) / 1000;
      const info = await c.info();
      res.queued = info.faktory.queues.default;
      res.rssMb = info.server.used_memory_mb;
      c.destroy();
    } finally {
      await s.stop(); // SIGTERM: the journal is flushed and closed
    }
    res.dirMb = dirBytes(dir) / 1048576;
    res.files = fs.readdirSync(dir).filter((f) => f !== 'LOCK').length;

    const t1 = process.hrtime.bigint();
    const s2 = await startServer({ dir, readyTimeoutMs: 600000, logLevel: 'info' });
    res.restartMs = Number(process.hrtime.bigint() - t1) / 1e6;
    try {
      const m = /msg="recovered"[^\n]*/.exec(s2.stderr());
      res.recoveredLine = m ? m[0] : '(no "recovered" line)';
      const c = await s2.connect();
      res.queuedAfter = (await c.info()).faktory.queues.default;
      c.destroy();
    } finally {
      await s2.stop();
    }

    const t2 = process.hrtime.bigint();
    const chk = spawnSync(process.env.SPOOLD, ['--check', '-d', dir], { encoding: 'utf8', timeout: 600000 });
    res.checkMs = Number(process.hrtime.bigint() - t2) / 1e6;
    res.checkCode = chk.status;
    res.checkOut = (chk.stdout || '') + (chk.stderr || '');
  } finally {
    removeDir(dir);
  }
  return res;
}

(async () => {
  console.log(`spoold: ${process.env.SPOOLD}`);
  console.log(`host: ${require('node:os').cpus().length} CPUs, data in ${require('node:os').tmpdir()}`);
  console.log(`\nPUSH throughput (${PHASE_MS / 1000} s per row, loopback, jobs of ~70 bytes)`);
  const rows = [...await throughput('always'), ...await throughput('never')];
  for (const [policy, how, n, rate, pf] of rows) {
    console.log(`  fsync=${policy.padEnd(6)} ${how.padEnd(34)} ${String(n).padStart(8)} jobs  ${rate.toFixed(0).padStart(8)} jobs/s  ${pf}`);
  }
  console.log(`\nRecovery of ${RECOVERY_JOBS} queued jobs (pushed with PUSHB x1000, --fsync never, SIGTERM)`);
  const r = await recovery();
  console.log(`  push: ${r.pushSeconds.toFixed(1)} s (${(RECOVERY_JOBS / r.pushSeconds).toFixed(0)} jobs/s), ` +
    `${r.queued} queued, spoold RSS ${r.rssMb} MB, data dir ${r.dirMb.toFixed(1)} MB in ${r.files} files`);
  console.log(`  restart until ready: ${(r.restartMs / 1000).toFixed(2)} s; ${r.queuedAfter} queued after; ${r.recoveredLine}`);
  console.log(`  spoold --check: ${(r.checkMs / 1000).toFixed(2)} s, exit ${r.checkCode}`);
  for (const l of r.checkOut.trim().split('\n')) console.log(`    ${l}`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
