'use strict';
// TLS benchmark (measures and prints; asserts nothing). Run through
// bench/tls_bench.sh, which builds an optimised spoold first. The same
// spoold is started twice, plaintext and with TLS (a P-256 certificate from
// tests/lib/tls_certs.sh), both with --fsync never so the disk does not hide
// the cost of TLS:
//
//   1. Connections per second: connect, (TLS handshake,) +HI, HELLO, +OK,
//      close; one at a time.
//   2. PUSH jobs/s: one connection serial, and pipelined (256 in flight).
//   3. spoold's resident memory per idle connection (500 open connections).
//
// Everything runs on 127.0.0.1 with port 0 and temporary directories.
// Environment: SPOOLD (required), BENCH_SECONDS (per phase, default 3).

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const tls = require('node:tls');
const { startServer, rawConnect, readGreeting, sendHello, makeTempDir, removeDir, Conn } = require('../tests/lib/spoold');

const PHASE_MS = Number(process.env.BENCH_SECONDS || 3) * 1000;
const IDLE_CONNS = 500;
let jidSeq = 0;

function job(tag) {
  const k = jidSeq++;
  return { jid: `${tag}-${k.toString(36).padStart(8, '0')}`, jobtype: 'Bench', args: [k, 'x'] };
}

function open(srv, ca) {
  if (!ca) return rawConnect(srv.port, srv);
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: srv.port, servername: 'localhost', ca });
    s.once('error', reject);
    s.once('secureConnect', () => { s.removeListener('error', reject); s.setNoDelay(true); resolve(new Conn(s, srv)); });
  });
}

async function handshake(srv, ca) {
  const c = await open(srv, ca);
  await readGreeting(c);
  const r = await sendHello(c);
  if (r.type !== 'simple') throw new Error(`HELLO failed: ${JSON.stringify(r)}`);
  return c;
}

function rssKb(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

async function measure(label, args, ca) {
  const s = await startServer({ args: ['--fsync', 'never', ...args], logLevel: 'info' });
  const out = { label };
  try {
    // 1. connections per second
    let t0 = Date.now();
    let n = 0;
    while (Date.now() - t0 < PHASE_MS) {
      const c = await handshake(s, ca);
      c.destroy();
      n++;
    }
    out.connsPerS = n / ((Date.now() - t0) / 1000);
    // 2. PUSH serial and pipelined
    const c = await handshake(s, ca);
    t0 = Date.now();
    n = 0;
    while (Date.now() - t0 < PHASE_MS) {
      const r = await c.cmdTyped('PUSH ' + JSON.stringify(job('s')), { timeoutMs: 30000 });
      if (r.type !== 'simple') throw new Error(`PUSH failed: ${JSON.stringify(r)}`);
      n++;
    }
    out.serial = n / ((Date.now() - t0) / 1000);
    t0 = Date.now();
    const deadline = t0 + PHASE_MS;
    const line = () => 'PUSH ' + JSON.stringify(job('p')) + '\r\n';
    c.send(Array.from({ length: 256 }, line).join(''));
    let sent = 256;
    let got = 0;
    while (got < sent) {
      const r = await c.readTyped(30000);
      if (r.type !== 'simple') throw new Error(`PUSH failed: ${JSON.stringify(r)}`);
      got++;
      if (Date.now() < deadline) { c.send(line()); sent++; }
    }
    out.pipelined = got / ((Date.now() - t0) / 1000);
    c.destroy();
    // 3. memory per idle connection
    const before = rssKb(s.proc.pid);
    const idle = [];
    for (let k = 0; k < IDLE_CONNS; k++) idle.push(await handshake(s, ca));
    const after = rssKb(s.proc.pid);
    out.kbPerConn = (after - before) / IDLE_CONNS;
    for (const x of idle) x.destroy();
  } finally {
    await s.stop();
  }
  return out;
}

async function main() {
  const dir = makeTempDir('spool-tls-bench-');
  try {
    const r = spawnSync(path.join(__dirname, '..', 'tests', 'lib', 'tls_certs.sh'), [dir], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tls_certs.sh failed: ${r.stderr}`);
    const ca = fs.readFileSync(path.join(dir, 'ca.pem'));
    const rows = [
      await measure('plaintext', [], null),
      await measure('TLS', ['-c', path.join(dir, 'conf')], ca),
    ];
    console.log(`TLS benchmark (${PHASE_MS / 1000} s per phase, --fsync never, Node.js client over loopback)`);
    console.log('  mode        conns/s   PUSH/s serial   PUSH/s pipelined   KB RSS per idle conn');
    for (const x of rows) {
      console.log(`  ${x.label.padEnd(10)} ${x.connsPerS.toFixed(0).padStart(8)} ${x.serial.toFixed(0).padStart(15)} ` +
        `${x.pipelined.toFixed(0).padStart(18)} ${x.kbPerConn.toFixed(1).padStart(22)}`);
    }
  } finally {
    removeDir(dir);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
