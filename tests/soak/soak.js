#!/usr/bin/env node
'use strict';
// Soak: mixed load on one data directory for a given time while spoold and
// worker processes are SIGKILLed at random, then a report (docs/operations.md).
//
//   node tests/soak/soak.js [--duration SECONDS] [--seed N] [--workers N]
//                           [--producers N] [--json FILE]
//
// Producers (in this process) push jobs and remember which pushes were
// answered +OK. Workers are separate processes (this file with --worker):
// they FETCH, log "start", work a few ms, log "ack-sent", ACK, and log
// "acked" once +OK arrives, each line written synchronously to their own log
// so a SIGKILL loses nothing already written. spoold runs in its own process
// group (its snapshot child dies with it, as in a machine crash) and is
// restarted on the same data directory after each kill.
//
// The report counts jobs pushed, acknowledged (+OK seen), processed (ACK
// answered +OK), still held by spoold at the end, and lost: acknowledged,
// never processed, and not held. Lost must be 0. A job started more than
// once must be explained: an earlier run's worker was killed before its ACK
// was answered, or the ACK's reply was lost to a spoold kill. A job started
// again after its ACK was answered breaks "an ACKed job is never delivered
// again". Exit status 0 when all of that holds, 1 otherwise.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const READY_RE = /spoold ready fwp=127\.0\.0\.1:(\d+) http=127\.0\.0\.1:(\d+)/;
const QUEUE = 'soak';
const SANITIZER_RE = /AddressSanitizer|LeakSanitizer|runtime error:/;

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

function prng(seed) { // mulberry32: a run can be repeated with --seed
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------
// A minimal FWP connection: one reply parser, requests answered in order.

class Fwp {
  constructor(socket) {
    this.socket = socket;
    this.buf = '';
    this.waiters = [];
    this.closed = false;
    socket.setEncoding('utf8');
    socket.on('data', (d) => { this.buf += d; this._drain(); });
    const fail = () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w.reject(new Error('connection closed'));
    };
    socket.on('close', fail);
    socket.on('error', fail);
  }

  _drain() {
    for (;;) {
      const eol = this.buf.indexOf('\r\n');
      if (eol < 0 || this.waiters.length === 0) return;
      const head = this.buf.slice(0, eol);
      let reply;
      let used;
      if (head[0] === '$') {
        const n = Number(head.slice(1));
        if (n < 0) { reply = null; used = eol + 2; } else {
          if (Buffer.byteLength(this.buf) < eol + 2 + n + 2) return; // jobs here are ASCII
          reply = this.buf.slice(eol + 2, eol + 2 + n);
          used = eol + 2 + n + 2;
        }
      } else if (head[0] === '-') {
        reply = { error: head.slice(1) };
        used = eol + 2;
      } else {
        reply = head.slice(1);
        used = eol + 2;
      }
      this.buf = this.buf.slice(used);
      this.waiters.shift().resolve(reply);
    }
  }

  read(timeoutMs) {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.socket.destroy(); reject(new Error('reply timeout')); }, timeoutMs);
      this.waiters.push({
        resolve: (r) => { clearTimeout(timer); resolve(r); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this._drain();
    });
  }

  send(line) { if (!this.closed) this.socket.write(line + '\r\n'); }

  async cmd(line, timeoutMs = 10000) { this.send(line); return this.read(timeoutMs); }

  static connect(port, hello, timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      const c = new Fwp(s);
      s.once('error', reject);
      s.once('connect', async () => {
        try {
          await c.read(timeoutMs); // +HI
          const r = await c.cmd('HELLO ' + JSON.stringify({ v: 2, hostname: os.hostname(), ...hello }), timeoutMs);
          if (r !== 'OK') throw new Error(`HELLO answered ${JSON.stringify(r)}`);
          resolve(c);
        } catch (e) { s.destroy(); reject(e); }
      });
    });
  }

  close() { this.socket.destroy(); }
}

function readPort(dir) {
  try { return Number(fs.readFileSync(path.join(dir, 'port'), 'utf8')) || 0; } catch { return 0; }
}

// ---------------------------------------------------------------------------
// Worker process: node soak.js --worker DIR ID

async function workerMain(dir, id) {
  const log = fs.openSync(path.join(dir, `worker-${id}.log`), 'a');
  const note = (what, jid, from = '') => fs.writeSync(log, `${what} ${jid} ${process.pid} ${Date.now()} ${from}\n`);
  const wid = `soak-${id}-${process.pid}`;
  let pendingAck = null; // a job whose ACK reply was not seen: re-sent after reconnecting
  const deadline = Date.now() + 30 * 60 * 1000;
  while (Date.now() < deadline) {
    let c;
    try {
      c = await Fwp.connect(readPort(dir), { wid, pid: process.pid });
    } catch {
      await sleep(50);
      continue;
    }
    try {
      for (;;) {
        if (pendingAck) {
          note('ack-sent', pendingAck);
          const r = await c.cmd('ACK ' + JSON.stringify({ jid: pendingAck }));
          if (r !== 'OK') throw new Error(`ACK answered ${JSON.stringify(r)}`);
          note('acked', pendingAck);
          pendingAck = null;
        }
        const fetchedAt = Date.now(); // the reservation may date from any time after this
        const body = await c.cmd(`FETCH ${QUEUE}`, 10000);
        if (body === null) {
          if (fs.existsSync(path.join(dir, 'stop'))) { c.close(); fs.closeSync(log); return; }
          continue;
        }
        const job = JSON.parse(body);
        note('start', job.jid, fetchedAt);
        await sleep(job.args[1]); // the "work"
        pendingAck = job.jid;
      }
    } catch (e) {
      if (process.env.SOAK_DEBUG) console.error(`worker ${id}: ${e.message}`);
      c.close();
      await sleep(20);
    }
  }
  fs.closeSync(log);
}

// ---------------------------------------------------------------------------
// spoold in its own process group.

function launchOnce(bin, dir, args, deadline) {
  const argv = ['-b', '127.0.0.1:0', '-w', '127.0.0.1:0', '-d', path.join(dir, 'data'), ...args];
  const proc = spawn(bin, argv, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  const s = { proc, pgid: proc.pid, status: null, err: '' };
  s.exited = new Promise((r) => proc.on('exit', (code, signal) => { s.status = { code, signal }; r(s.status); }));
  proc.stderr.setEncoding('utf8');
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(s), Math.max(0, deadline - Date.now()));
    proc.stderr.on('data', (d) => {
      s.err += d;
      if (SANITIZER_RE.test(d)) s.sanitizer = true;
      if (s.err.length > 200000) s.err = s.err.slice(-100000);
      const m = READY_RE.exec(s.err);
      if (m && !s.port) { s.port = Number(m[1]); s.httpPort = Number(m[2]); clearTimeout(timer); resolve(s); }
    });
    s.exited.then(() => { clearTimeout(timer); resolve(s); });
  });
}

async function launch(bin, dir, args) {
  const deadline = Date.now() + 30000;
  for (;;) {
    const s = await launchOnce(bin, dir, args, deadline);
    if (s.port) {
      fs.writeFileSync(path.join(dir, 'port.tmp'), String(s.port));
      fs.renameSync(path.join(dir, 'port.tmp'), path.join(dir, 'port'));
      return s;
    }
    if (s.status === null) { try { process.kill(-s.pgid, 'SIGKILL'); } catch { /* gone */ } await s.exited; }
    if (/in use by another spoold/.test(s.err) && Date.now() < deadline) { await sleep(20); continue; }
    throw new Error(`spoold did not become ready: ${JSON.stringify(s.status)}\n${s.err.slice(-3000)}`);
  }
}

// ---------------------------------------------------------------------------
// The run.

function parseArgs(argv) {
  const o = { duration: 60, seed: Date.now() % 1000000, workers: 4, producers: 3, json: null, spoold: process.env.SPOOLD };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => { if (i + 1 >= argv.length) throw new Error(`${a} needs a value`); return argv[++i]; };
    if (a === '--duration') o.duration = Number(v());
    else if (a === '--seed') o.seed = Number(v());
    else if (a === '--workers') o.workers = Number(v());
    else if (a === '--producers') o.producers = Number(v());
    else if (a === '--json') o.json = v();
    else if (a === '--spoold') o.spoold = v();
    else throw new Error(`unknown option ${a} (--duration, --seed, --workers, --producers, --json, --spoold)`);
  }
  for (const k of ['duration', 'seed', 'workers', 'producers']) {
    if (!Number.isFinite(o[k]) || o[k] < (k === 'seed' ? 0 : 1)) throw new Error(`--${k} wants a positive number`);
  }
  if (!o.spoold) o.spoold = path.join(__dirname, '..', '..', 'build', 'bin', 'spoold');
  if (!fs.existsSync(o.spoold)) throw new Error(`no spoold at ${o.spoold}: build it or set SPOOLD`);
  return o;
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  const rnd = prng(opt.seed);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-soak-'));
  const spooldArgs = ['-l', 'info', '--snapshot-every', '262144', '--segment-size', '131072'];
  const t0 = Date.now();
  const say = (m) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}`);
  say(`soak: ${opt.duration} s, seed ${opt.seed}, ${opt.producers} producers, ${opt.workers} workers, dir ${dir}`);

  const groups = new Set();
  const workers = new Map(); // id -> {proc, exited, killed}
  const killedWorkerPids = new Set();
  process.on('exit', () => {
    for (const g of groups) { try { process.kill(-g, 'SIGKILL'); } catch { /* gone */ } }
    for (const w of workers.values()) { try { w.proc.kill('SIGKILL'); } catch { /* gone */ } }
  });

  let srv = await launch(opt.spoold, dir, spooldArgs);
  groups.add(srv.pgid);
  const stats = { spooldKills: 0, workerKills: 0, restarts: 0 };
  const spooldKillTimes = [];
  const sanitizerReports = []; // spoold stderr of runs that printed a sanitizer report

  let nextWorker = 0;
  const startWorker = () => {
    const id = nextWorker++;
    const proc = spawn(process.execPath, [__filename, '--worker', dir, String(id)], { stdio: ['ignore', 'inherit', 'inherit'] });
    const w = { id, proc, exited: new Promise((r) => proc.on('exit', r)) };
    workers.set(id, w);
    w.exited.then(() => workers.delete(id));
  };
  for (let i = 0; i < opt.workers; i++) startWorker();

  // producers
  const sent = new Set();
  const acked = new Set();
  const pushErrors = []; // error replies to PUSH: none expected
  let producing = true;
  const producer = async (p) => {
    let seq = 0;
    while (producing) {
      let c;
      try {
        c = await Fwp.connect(readPort(dir), {});
      } catch (e) {
        if (process.env.SOAK_DEBUG) console.error(`producer ${p} connect: ${e.message}`);
        await sleep(30);
        continue;
      }
      try {
        while (producing) {
          const batch = [];
          for (let k = 0; k < 8; k++) {
            const jid = `soak-${opt.seed}-${p}-${seq++}`;
            batch.push(jid);
            sent.add(jid);
            c.send('PUSH ' + JSON.stringify({ jid, jobtype: 'Soak', queue: QUEUE, args: [p, Math.floor(rnd() * 5)], reserve_for: 60 }));
          }
          for (const jid of batch) {
            const r = await c.read(10000);
            if (r === 'OK') acked.add(jid);
            else {
              pushErrors.push(`${jid}: ${JSON.stringify(r)}`);
              throw new Error(`PUSH answered ${JSON.stringify(r)}`);
            }
          }
          await sleep(Math.floor(rnd() * 4));
          // keep the backlog small enough for the workers to drain at the end
          for (let w = 0; w < 200 && producing && backlog > 400; w++) await sleep(10);
        }
      } catch (e) {
        if (process.env.SOAK_DEBUG) console.error(`producer ${p}: ${e.message}`);
        c.close();
        await sleep(20);
      }
    }
  };
  const producers = Array.from({ length: opt.producers }, (_, p) => producer(p));
  let backlog = 0;
  const monitor = (async () => {
    while (producing) {
      try {
        const m = await Fwp.connect(readPort(dir), {});
        while (producing) {
          backlog = JSON.parse(await m.cmd('INFO', 5000)).faktory.queues[QUEUE] || 0;
          await sleep(100);
        }
        m.close();
      } catch { await sleep(50); }
    }
  })();

  // chaos: every 1.5-4 s kill spoold (restarted at once) or a worker (replaced)
  const end = t0 + opt.duration * 1000;
  while (Date.now() < end) {
    await sleep(Math.min(end - Date.now(), 1500 + Math.floor(rnd() * 2500)));
    if (Date.now() >= end) break;
    if (rnd() < 0.5) {
      process.kill(-srv.pgid, 'SIGKILL');
      spooldKillTimes.push(Date.now());
      await srv.exited;
      if (srv.sanitizer) sanitizerReports.push(srv.err.slice(-4000));
      groups.delete(srv.pgid);
      stats.spooldKills++;
      srv = await launch(opt.spoold, dir, spooldArgs);
      groups.add(srv.pgid);
      stats.restarts++;
      say(`killed spoold, restarted (pushes acknowledged so far: ${acked.size})`);
    } else {
      const ids = [...workers.keys()];
      const w = workers.get(ids[Math.floor(rnd() * ids.length)]);
      if (w) {
        killedWorkerPids.add(w.proc.pid);
        w.proc.kill('SIGKILL');
        await w.exited;
        stats.workerKills++;
        startWorker();
        say(`killed worker pid ${w.proc.pid}, started another`);
      }
    }
  }
  producing = false;
  await Promise.all(producers);
  await monitor;
  say(`load stopped: ${sent.size} pushed, ${acked.size} acknowledged; draining`);

  // drain: until the queue is empty and nothing is reserved but by killed workers
  const c = await Fwp.connect(srv.port, {});
  const listAll = async (target) => {
    const out = [];
    for (let page = 0; page < 100000; page++) {
      const r = JSON.parse(await c.cmd('JOBS ' + JSON.stringify({ target, queue: QUEUE, offset: out.length, limit: 1000 })));
      out.push(...r.jobs);
      if (r.jobs.length < 1000) break;
    }
    return out;
  };
  const drainEnd = Date.now() + Math.max(30000, opt.duration * 500);
  let info;
  for (;;) {
    info = JSON.parse(await c.cmd('INFO'));
    const queued = info.faktory.queues[QUEUE] || 0;
    const working = await listAll('working');
    const live = working.filter((e) => !killedWorkerPids.has(Number(e.wid.split('-')[2])));
    if ((queued === 0 && live.length === 0) || Date.now() > drainEnd) break;
    await sleep(200);
  }
  fs.writeFileSync(path.join(dir, 'stop'), '');
  const held = new Map();
  for (const t of ['queue', 'working', 'retries', 'scheduled', 'dead']) {
    for (const e of await listAll(t)) held.set(e.job.jid, t === 'working' ? `working (wid ${e.wid})` : t);
  }
  c.close();
  await Promise.all([...workers.values()].map((w) => Promise.race([w.exited, sleep(15000).then(() => w.proc.kill('SIGKILL'))])));

  // a clean stop: SIGTERM, exit 0
  srv.proc.kill('SIGTERM');
  const st = await Promise.race([srv.exited, sleep(15000).then(() => null)]);
  groups.delete(srv.pgid);
  const cleanStop = st && st.code === 0;
  if (srv.sanitizer) sanitizerReports.push(srv.err.slice(-4000));

  // read the worker logs: every attempt at a job, in time order
  const attempts = new Map(); // jid -> [{pid, fetched, start, ackSent, acked (ms or 0)}]
  for (const f of fs.readdirSync(dir).filter((n) => n.startsWith('worker-'))) {
    let last = new Map(); // jid -> this worker's latest attempt
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      const [what, jid, pid, at, from] = line.split(' ');
      if (!at) continue;
      if (what === 'start') {
        const a = { pid: Number(pid), start: Number(at), fetched: Number(from), ackSent: false, acked: 0 };
        if (!attempts.has(jid)) attempts.set(jid, []);
        attempts.get(jid).push(a);
        last.set(jid, a);
      } else if (last.has(jid)) {
        if (what === 'ack-sent') last.get(jid).ackSent = true;
        if (what === 'acked') last.get(jid).acked = Number(at);
      }
    }
    last = null;
  }
  // An ACK answered +OK took effect only when spoold was not killed between the
  // FETCH and the reply: a restarted spoold may have lost the reservation (a
  // FETCH reply does not wait for the disk), and then answers a re-sent ACK
  // for a job it no longer holds reserved with +OK too.
  const killedBetween = (from, to) => spooldKillTimes.some((t) => t >= from && t <= to);
  const tookEffect = (a) => a.acked && !killedBetween(a.fetched, a.acked);
  // processed: an ACK that took effect, or an ACK sent for a job spoold no longer holds
  const processed = new Set([...attempts]
    .filter(([jid, l]) => l.some(tookEffect) || (l.some((a) => a.ackSent) && !held.has(jid))).map(([j]) => j));
  const lost = [...acked].filter((j) => !processed.has(j) && !held.has(j));
  const dup = { workerKilled: 0, spooldKilled: 0, unexplained: [] };
  const afterAck = [];
  for (const [jid, list] of attempts) {
    if (list.length < 2) continue;
    list.sort((a, b) => a.start - b.start);
    for (let i = 1; i < list.length; i++) {
      const again = list[i];
      const prev = list[i - 1];
      if (list.slice(0, i).some((a) => tookEffect(a) && a.acked < again.start)) { afterAck.push(jid); continue; }
      if (killedWorkerPids.has(prev.pid)) dup.workerKilled++;
      // the reservation or the ACK went down with a spoold kill before the ACK's reply
      else if (killedBetween(prev.fetched, again.start)) dup.spooldKilled++;
      else dup.unexplained.push(jid);
    }
  }
  const heldBy = {};
  for (const [jid, where] of held) if (acked.has(jid) || sent.has(jid)) heldBy[where.split(' ')[0]] = (heldBy[where.split(' ')[0]] || 0) + 1;
  const report = {
    seed: opt.seed,
    duration_s: opt.duration,
    spoold_kills: stats.spooldKills,
    worker_kills: stats.workerKills,
    pushed: sent.size,
    push_errors: pushErrors.length,
    acknowledged: acked.size,
    processed: processed.size,
    processed_ack_reply_unseen: [...processed].filter((j) => !(attempts.get(j) || []).some(tookEffect)).length,
    processed_without_push_reply: [...processed].filter((j) => !acked.has(j)).length,
    held_at_end: heldBy,
    lost: lost.length,
    processed_twice: { worker_killed: dup.workerKilled, spoold_killed_before_ack_reply: dup.spooldKilled, unexplained: dup.unexplained.length },
    delivered_after_ack: afterAck.length,
    clean_sigterm_exit: !!cleanStop,
  };
  say('report:');
  console.log(JSON.stringify(report, null, 2));
  if (opt.json) fs.writeFileSync(opt.json, JSON.stringify(report, null, 2) + '\n');
  const problems = [];
  if (pushErrors.length) problems.push(`${pushErrors.length} PUSH error replies, e.g. ${pushErrors.slice(0, 3)}`);
  if (lost.length) problems.push(`${lost.length} acknowledged jobs lost, e.g. ${lost.slice(0, 5)}`);
  if (dup.unexplained.length) problems.push(`${dup.unexplained.length} jobs processed twice without a killed worker or a spoold kill before the ACK's reply, e.g. ${dup.unexplained.slice(0, 5)}`);
  if (afterAck.length) problems.push(`${afterAck.length} jobs delivered again after their ACK was answered, e.g. ${afterAck.slice(0, 5)}`);
  if (!cleanStop) problems.push(`spoold did not exit 0 on SIGTERM: ${JSON.stringify(st)}\n${srv.err.slice(-2000)}`);
  if (sanitizerReports.length) problems.push(`spoold printed sanitizer reports:\n${sanitizerReports.join('\n---\n')}`);
  if (acked.size === 0 || processed.size === 0) problems.push('no load went through: nothing acknowledged or processed');
  if (stats.spooldKills === 0 && opt.duration >= 10) problems.push('spoold was never killed: the run tested nothing');
  if (problems.length) {
    console.error('soak FAILED:\n  ' + problems.join('\n  ') + `\n(data kept in ${dir})`);
    process.exitCode = 1;
  } else {
    fs.rmSync(dir, { recursive: true, force: true });
    say('soak passed');
  }
}

if (process.argv[2] === '--worker') {
  workerMain(process.argv[3], process.argv[4]).catch((e) => { console.error(`soak worker: ${e.stack}`); process.exit(1); });
} else {
  main().catch((e) => { console.error(`soak: ${e.stack || e}`); process.exitCode = 1; });
}
