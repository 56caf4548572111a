#!/usr/bin/env node
'use strict';
// Memory per job: pushes N jobs (PUSHB, batches of 1000) of a given args size
// into a fresh spoold and compares its RSS growth with the job memory that
// --max-memory counts (INFO server.limits.job_memory). Numbers, not assertions.
//
//   SPOOLD=build/bin/spoold node bench/memory_bench.js [JOBS] [ARG_BYTES]

const fs = require('node:fs');
const path = require('node:path');
const { startServer } = require('../tests/lib/spoold');

function rssBytes(pid) {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]) * 1024;
}

async function main() {
  const n = Number(process.argv[2] || 200000);
  const argBytes = Number(process.argv[3] || 0);
  if (!process.env.SPOOLD) process.env.SPOOLD = path.join(__dirname, '..', 'build', 'bin', 'spoold');
  const srv = await startServer({});
  try {
    const c = await srv.connect();
    const before = rssBytes(srv.proc.pid);
    const pad = 'x'.repeat(argBytes);
    for (let i = 0; i < n; i += 1000) {
      const batch = [];
      for (let k = i; k < Math.min(n, i + 1000); k++) {
        batch.push({ jid: `mem-${k.toString(36).padStart(8, '0')}`, jobtype: 'Bench', args: [k, pad] });
      }
      await c.cmdJSON('PUSHB ' + JSON.stringify(batch), { timeoutMs: 60000 });
    }
    const info = await c.info();
    const grown = rssBytes(srv.proc.pid) - before;
    const sample = JSON.stringify({ jid: 'mem-00000000', jobtype: 'Bench', args: [0, pad] }).length;
    console.log(`jobs ${n}, pushed JSON ~${sample} bytes each`);
    console.log(`RSS growth ${(grown / 1048576).toFixed(1)} MiB = ${Math.round(grown / n)} bytes/job`);
    console.log(`job_memory (what --max-memory counts) ${Math.round(info.server.limits.job_memory / n)} bytes/job`);
    let disk = 0;
    for (const f of fs.readdirSync(srv.dir)) disk += fs.statSync(path.join(srv.dir, f)).size;
    console.log(`data directory ${(disk / 1048576).toFixed(1)} MiB = ${Math.round(disk / n)} bytes/job (journal, no snapshot yet)`);
  } finally {
    await srv.stop();
  }
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
