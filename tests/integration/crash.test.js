'use strict';
// Crash tests against the real spoold (DESIGN invariants 1 and 3 under
// --fsync always): one data directory, many cycles of start / load / kill -9 /
// restart; then the data directory lock, spoold --check and --repair, and
// torn tails cut at start.
//
// spoold is started by a small helper here rather than tests/lib's
// startServer: the crash cycles need their own process group (so that a
// kill can also take the forked snapshot child, as a machine crash would) and
// a restart that waits while an orphaned snapshot child of the killed server
// still holds the directory lock.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const {
  connect, makeTempDir, removeDir, startServer, spooldPath, sleep, within, makeJob,
} = require('../lib/spoold');

const READY_RE = /spoold ready fwp=127\.0\.0\.1:(\d+) http=127\.0\.0\.1:(\d+)/;
const SANITIZER_RE = /AddressSanitizer|LeakSanitizer|runtime error:/;
const SEED = Number(process.env.CRASH_SEED || 20240229);

function childEnv() {
  const env = { ...process.env };
  delete env.SPOOL_PASSWORD;
  delete env.FAKTORY_PASSWORD;
  return env;
}

// Process groups we started; killed if the test process exits early.
const liveGroups = new Set();
process.on('exit', () => {
  for (const pgid of liveGroups) {
    try { process.kill(-pgid, 'SIGKILL'); } catch { /* gone */ }
  }
});

// Deterministic pseudo-random numbers (mulberry32), so a failing run can be repeated with CRASH_SEED.
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Starts spoold once in its own process group; resolves when ready, or when it exits first. */
function launchOnce(dir, args, deadline) {
  const argv = ['-b', '127.0.0.1:0', '-w', '127.0.0.1:0', '-d', dir, '-l', 'info', ...args];
  const proc = spawn(spooldPath(), argv, { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  liveGroups.add(proc.pid);
  let errText = '';
  const server = {
    proc,
    argv,
    pgid: proc.pid,
    port: 0,
    status: null,
    stderr: () => errText,
  };
  server.exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      server.status = { code, signal };
      resolve(server.status);
    });
  });
  proc.on('error', (e) => { errText += `\nspawn error: ${e.message}`; });
  proc.stdout.resume();
  proc.stderr.setEncoding('utf8');
  return new Promise((resolve) => {
    let done = false;
    const finish = (ready) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      server.ready = ready;
      resolve(server);
    };
    proc.stderr.on('data', (chunk) => {
      errText += chunk;
      const m = READY_RE.exec(errText);
      if (m && !server.port) {
        server.port = Number(m[1]);
        finish(true);
      }
    });
    server.exited.then(() => finish(false));
    const timer = setTimeout(() => finish(false), Math.max(0, deadline - Date.now()));
  });
}

/**
 * Starts spoold on dir and waits for its ready line. While the snapshot child
 * of a server killed alone still holds the directory lock, the start is
 * refused; that is retried until the deadline.
 */
async function launch(dir, args = [], { readyTimeoutMs = 20000 } = {}) {
  const deadline = Date.now() + readyTimeoutMs;
  for (let attempt = 1; ; attempt++) {
    const s = await launchOnce(dir, args, deadline);
    if (s.ready) {
      s.attempts = attempt;
      return s;
    }
    if (s.status === null) {
      process.kill(-s.pgid, 'SIGKILL');
      await s.exited;
    }
    liveGroups.delete(s.pgid); // it exited before it could fork anything
    if (/in use by another spoold/.test(s.stderr()) && Date.now() < deadline) {
      await sleep(20); // poll: the orphaned snapshot child exits on its own
      continue;
    }
    throw new Error(`spoold ${s.argv.join(' ')} did not become ready ` +
      `(status ${JSON.stringify(s.status)}, attempt ${attempt})\n--- spoold stderr ---\n${s.stderr().slice(-4000)}`);
  }
}

/** SIGKILL: the whole process group (a machine crash) or only the server (its snapshot child lives on). */
async function kill9(s, wholeGroup) {
  if (s.status === null) {
    if (wholeGroup) process.kill(-s.pgid, 'SIGKILL');
    else s.proc.kill('SIGKILL');
  }
  await s.exited;
  assert.equal(s.status.signal, 'SIGKILL', `spoold should die of SIGKILL, got ${JSON.stringify(s.status)}\n` +
    `--- spoold stderr ---\n${s.stderr().slice(-3000)}`);
}

/** SIGTERM and a clean exit (code 0), within 10 s. */
async function stopClean(s) {
  if (s.status === null) s.proc.kill('SIGTERM');
  const st = await within(s.exited, 10000, null);
  if (st === null) {
    process.kill(-s.pgid, 'SIGKILL');
    await s.exited;
    assert.fail(`spoold should exit within 10 s of SIGTERM\n--- spoold stderr ---\n${s.stderr().slice(-3000)}`);
  }
  assert.equal(st.code, 0, `spoold should exit 0 after SIGTERM, got ${JSON.stringify(st)}\n` +
    `--- spoold stderr ---\n${s.stderr().slice(-3000)}`);
}

function assertNoSanitizer(text, what) {
  assert.ok(!SANITIZER_RE.test(text), `${what}: spoold output should contain no sanitizer report\n${text.slice(-20000)}`);
}

function jobsHeld(info) {
  const f = info.faktory;
  let n = 0;
  for (const v of Object.values(f.queues)) n += v;
  return n + f.sets.scheduled + f.sets.retries + f.sets.dead + f.sets.working;
}

function runSpoold(args, timeoutMs = 60000) {
  const r = spawnSync(spooldPath(), args, { env: childEnv(), encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, signal: r.signal, out: (r.stdout || '') + (r.stderr || '') };
}

// ---------------------------------------------------------------------------

test('kill -9 at random moments: no acknowledged push is lost, no acknowledged ACK is redelivered', async () => {
  const CYCLES = 24;
  const TIME_BUDGET_MS = 55000; // cycles stop early (but never below 20) past this
  const rnd = prng(SEED);
  const dir = makeTempDir('spool-crash-');
  const pushSent = new Set();
  const pushedOk = new Set();
  const ackSent = new Set();
  const ackedOk = new Set();
  const deliveries = new Map(); // jid -> how many times FETCH returned it
  const violations = [];
  const t0 = Date.now();
  let cycle = 0;
  let tornCuts = 0;
  let lockWaits = 0;
  let srv = null;
  let allStderr = '';

  const noteDelivery = (jid, where) => {
    if (ackedOk.has(jid)) violations.push(`${jid} was delivered again (${where}) after its ACK was answered +OK`);
    if (!pushSent.has(jid)) violations.push(`${jid} was delivered (${where}) but never pushed`);
    deliveries.set(jid, (deliveries.get(jid) || 0) + 1);
  };

  async function producer(c, tag, stop) {
    for (let k = 0; !stop.v && k < 100000; k++) {
      const jid = `${tag}-${k}`;
      pushSent.add(jid);
      let r;
      try {
        r = await c.cmdTyped('PUSH ' + JSON.stringify({ jid, jobtype: 'Crash', args: [k], retry: -1 }), { timeoutMs: 15000 });
      } catch {
        return; // the server died: this push may or may not have been stored
      }
      if (r.type === 'simple' && r.value === 'OK') pushedOk.add(jid);
      else { violations.push(`PUSH ${jid} should be answered +OK, got ${JSON.stringify(r)}`); return; }
    }
  }

  async function worker(c, stop) {
    for (let k = 0; !stop.v && k < 100000; k++) {
      let r;
      try {
        r = await c.cmdTyped('FETCH default', { timeoutMs: 15000 });
      } catch {
        return;
      }
      if (r.type === 'null') continue;
      if (r.type !== 'bulk') { violations.push(`FETCH should return a job or $-1, got ${JSON.stringify(r)}`); return; }
      const jid = JSON.parse(r.value).jid;
      noteDelivery(jid, `cycle ${cycle}`);
      ackSent.add(jid);
      try {
        r = await c.cmdTyped('ACK ' + JSON.stringify({ jid }), { timeoutMs: 15000 });
      } catch {
        return; // the ACK may or may not have been stored
      }
      if (r.type === 'simple' && r.value === 'OK') ackedOk.add(jid);
      else { violations.push(`ACK ${jid} should be answered +OK, got ${JSON.stringify(r)}`); return; }
    }
  }

  // What INFO must show after a restart: every acknowledged push not (possibly) acked
  // is held; nothing whose ACK was answered is; processed counts every answered ACK.
  async function checkAfterRestart(c, when) {
    const info = await c.info();
    const held = jobsHeld(info);
    let mustHold = 0;
    for (const jid of pushedOk) if (!ackSent.has(jid)) mustHold++;
    let mayHold = 0;
    for (const jid of pushSent) if (!ackedOk.has(jid)) mayHold++;
    assert.ok(held >= mustHold && held <= mayHold,
      `${when}: spoold should hold between ${mustHold} (pushes answered +OK and never ACKed) and ${mayHold} ` +
      `(pushes sent minus ACKs answered +OK) jobs, INFO shows ${held}: ${JSON.stringify(info.faktory)}`);
    const processed = info.faktory.total_processed;
    assert.ok(processed >= ackedOk.size && processed <= ackSent.size,
      `${when}: total_processed should be between ${ackedOk.size} (ACKs answered) and ${ackSent.size} (ACKs sent), got ${processed}`);
  }

  try {
    srv = await launch(dir, ['--fsync', 'always', '--snapshot-every', '65536']);
    for (cycle = 0; cycle < CYCLES; cycle++) {
      if (cycle >= 20 && Date.now() - t0 > TIME_BUDGET_MS) break;
      if (cycle > 0) {
        const c = await connect(srv.port);
        await checkAfterRestart(c, `after crash ${cycle}`);
        c.destroy();
      }
      const stop = { v: false };
      const conns = [];
      const loops = [];
      for (let p = 0; p < 4; p++) {
        const c = await connect(srv.port);
        conns.push(c);
        loops.push(producer(c, `c${cycle}p${p}s${SEED}`, stop));
      }
      for (let w = 0; w < 3; w++) {
        const c = await connect(srv.port, { hello: { wid: `crash-w${w}-${cycle}`, pid: process.pid } });
        conns.push(c);
        loops.push(worker(c, stop));
      }
      // Most cycles die 100-600 ms in; every third runs past a 1 s tick so that
      // snapshots (forked) start and the kill may land in the middle of one.
      const killAt = cycle % 3 === 2 ? 1100 + Math.floor(rnd() * 600) : 100 + Math.floor(rnd() * 500);
      await sleep(killAt); // the moment of the crash, not a wait for state
      const wholeGroup = cycle % 2 === 0;
      await kill9(srv, wholeGroup);
      stop.v = true;
      for (const c of conns) c.destroy();
      await Promise.allSettled(loops);
      allStderr += srv.stderr();
      // Killed alone, its snapshot child (if any) lives on holding the lock:
      // the restart below waits for it. The group is kept for cleanup.
      if (wholeGroup) liveGroups.delete(srv.pgid);
      const tl = Date.now();
      srv = await launch(dir, ['--fsync', 'always', '--snapshot-every', '65536']);
      if (srv.attempts > 1) lockWaits++;
      if (process.env.CRASH_VERBOSE) {
        console.log(`cycle ${cycle}: killed at ${killAt} ms (${wholeGroup ? 'group' : 'server alone'}), ` +
          `restart took ${Date.now() - tl} ms (${srv.attempts} attempts); pushed ${pushedOk.size}, acked ${ackedOk.size}; ` +
          (/msg="recovered"[^\n]*/.exec(srv.stderr()) || [''])[0]);
      }
      if (/cut a torn last record/.test(srv.stderr())) tornCuts++;
    }
    const cycles = cycle;
    assert.equal(violations.length, 0, `invariant violations during the cycles:\n${violations.slice(0, 20).join('\n')}`);

    // Final check: bring every job back into the queue and drain it.
    const c = await connect(srv.port);
    await checkAfterRestart(c, 'after the last crash');
    // Jobs reserved before a crash sit in the working set (for reserve_for),
    // including some whose FETCH reply never reached the worker (the
    // reservation was journaled, the reply died with the server). FAIL by jid
    // moves any of them (retry -1) to the dead set; MUTATE requeues them. So
    // FAIL every jid that may still be held, pipelined in chunks.
    let failedBack = 0;
    let reservedUnseen = 0;
    const candidates = [...pushSent].filter((jid) => !ackedOk.has(jid));
    for (let i = 0; i < candidates.length; i += 500) {
      const chunk = candidates.slice(i, i + 500);
      c.send(chunk.map((jid) => 'FAIL ' + JSON.stringify({ jid, errtype: 'Crash', message: 'reserved before a crash' }) + '\r\n').join(''));
      for (const jid of chunk) {
        const r = await c.readTyped(15000);
        if (r.type === 'simple' && r.value === 'OK') {
          failedBack++;
          if (!deliveries.has(jid)) reservedUnseen++;
        } else assert.match(String(r.value), /^ERR Job not found/, `FAIL ${jid} should be +OK or "Job not found", got ${JSON.stringify(r)}`);
      }
    }
    await c.ok('MUTATE ' + JSON.stringify({ cmd: 'requeue', target: 'dead' }));
    const before = (await c.info()).faktory;
    assert.deepEqual(before.sets, { scheduled: 0, retries: 0, dead: 0, working: 0 },
      'after FAIL and requeue every job should be back in its queue');
    const drained = new Set();
    const queued = before.queues.default || 0;
    // Pipelined in chunks: FETCH x n, then ACK x n (replies come in command order).
    for (let done = 0; done < queued;) {
      const n = Math.min(250, queued - done);
      c.send('FETCH default\r\n'.repeat(n));
      const jids = [];
      for (let k = 0; k < n; k++) {
        const r = await c.readTyped(15000);
        assert.equal(r.type, 'bulk', `FETCH ${done + k + 1} of ${queued} should return a job, got ${JSON.stringify(r)}`);
        const jid = JSON.parse(r.value).jid;
        assert.ok(!drained.has(jid), `${jid} should be in the queue once, the drain saw it twice`);
        drained.add(jid);
        noteDelivery(jid, 'final drain');
        jids.push(jid);
      }
      c.send(jids.map((jid) => 'ACK ' + JSON.stringify({ jid }) + '\r\n').join(''));
      for (const jid of jids) {
        const r = await c.readTyped(15000);
        assert.deepEqual(r, { type: 'simple', value: 'OK' }, `ACK ${jid} in the drain should be +OK`);
      }
      done += n;
    }
    const after = (await c.info()).faktory;
    assert.equal(jobsHeld({ faktory: after }), 0, `the drain should empty spoold: ${JSON.stringify(after)}`);
    c.destroy();
    await stopClean(srv);
    allStderr += srv.stderr();
    liveGroups.delete(srv.pgid);
    srv = null;

    const lost = [...pushedOk].filter((jid) => !ackSent.has(jid) && !drained.has(jid));
    let redelivered = 0;
    for (const n of deliveries.values()) if (n > 1) redelivered++;
    let unackedAcks = 0;
    for (const jid of ackSent) if (!ackedOk.has(jid)) unackedAcks++;
    console.log(`crash test (seed ${SEED}): ${cycles} kill -9 cycles in ${((Date.now() - t0) / 1000).toFixed(1)} s; ` +
      `pushes sent ${pushSent.size}, pushed-acknowledged ${pushedOk.size}, acked ${ackedOk.size} ` +
      `(+${unackedAcks} ACKs without reply), delivered ${deliveries.size} jids, ` +
      `redelivered-after-crash-without-ack ${redelivered}, reservations failed back ${failedBack} (${reservedUnseen} whose FETCH reply never arrived), ` +
      `drained ${drained.size}, lost=${lost.length}; snapshots written ${(allStderr.match(/snapshot written/g) || []).length}, ` +
      `torn tails cut ${tornCuts}, restarts that waited for the lock ${lockWaits}`);

    assert.equal(violations.length, 0, `invariant violations:\n${violations.slice(0, 20).join('\n')}`);
    assert.deepEqual(lost.slice(0, 20), [],
      `every push answered +OK and never ACKed should survive every kill -9; ${lost.length} are missing`);
    const strangers = [...drained].filter((jid) => !pushSent.has(jid));
    assert.deepEqual(strangers, [], 'the drain should find only jobs this test pushed');
    assert.ok(cycles >= 20, `at least 20 crash cycles should run, ran ${cycles}`);
    assert.ok(pushedOk.size > 500 && ackedOk.size > 100,
      `the load should be real: ${pushedOk.size} pushes and ${ackedOk.size} ACKs acknowledged`);
    assert.ok(/snapshot written/.test(allStderr), 'snapshots should be written during the run (--snapshot-every 65536)');
    assertNoSanitizer(allStderr, 'crash cycles');
  } finally {
    if (srv && srv.status === null) {
      process.kill(-srv.pgid, 'SIGKILL');
      await srv.exited;
    }
    for (const pgid of [...liveGroups]) {
      try { process.kill(-pgid, 'SIGKILL'); } catch { /* gone */ }
      liveGroups.delete(pgid);
    }
    removeDir(dir);
  }
});

test('a second spoold on the same data directory refuses to start and names the pid', async () => {
  const dir = makeTempDir('spool-lock-');
  try {
    const s1 = await startServer({ dir });
    try {
      const r = runSpoold(['-b', '127.0.0.1:0', '-w', '127.0.0.1:0', '-d', dir], 20000);
      assert.notEqual(r.code, 0, `a second spoold on ${dir} should exit non-zero, got ${r.code} / ${r.signal}\n${r.out}`);
      assert.match(r.out, new RegExp(`in use by another spoold \\(pid ${s1.proc.pid}\\)`),
        `the refusal should name the running spoold's pid ${s1.proc.pid}:\n${r.out}`);
      // and the first one is unharmed
      const c = await s1.connect();
      await c.push(makeJob());
      c.destroy();
    } finally {
      await s1.stop();
    }
  } finally {
    removeDir(dir);
  }
});

// Journal segments of dir, in order, with their frames: [{file, size, frames: [{off, len}]}].
function readSegments(dir) {
  return fs.readdirSync(dir).filter((n) => /^journal-\d{20}\.log$/.test(n)).sort().map((name) => {
    const buf = fs.readFileSync(path.join(dir, name));
    assert.equal(buf.toString('latin1', 0, 8), 'SPOOLJNL', `${name} should start with the magic SPOOLJNL`);
    const frames = [];
    let off = 16;
    while (off + 8 <= buf.length) {
      const len = buf.readUInt32LE(off);
      if (off + 8 + len > buf.length) break;
      frames.push({ off, len });
      off += 8 + len;
    }
    return { file: path.join(dir, name), name, size: buf.length, frames };
  });
}

// A data directory holding n queued jobs written by a real spoold, stopped cleanly.
async function preparedDir(n, prefix) {
  const dir = makeTempDir(prefix);
  try {
    const s = await startServer({ dir });
    try {
      const c = await s.connect();
      for (let k = 0; k < n; k++) await c.push(makeJob({ queue: 'chk', args: [k] }));
      c.destroy();
    } finally {
      await s.stop();
    }
  } catch (e) {
    removeDir(dir);
    throw e;
  }
  return dir;
}

test('spoold --check passes a good directory, names a corrupt record, and --repair lets spoold start', async () => {
  const dir = await preparedDir(20, 'spool-check-');
  try {
    let r = runSpoold(['--check', '-d', dir]);
    assert.equal(r.code, 0, `spoold --check on a good directory should exit 0, got ${r.code}:\n${r.out}`);
    assert.match(r.out, /: OK\n/, `--check should say OK:\n${r.out}`);
    assert.match(r.out, /jobs 20: queued 20/, `--check should count the 20 queued jobs:\n${r.out}`);

    const seg = readSegments(dir).find((s) => s.frames.length >= 2);
    assert.ok(seg, 'some journal segment should hold several records');
    const at = seg.frames[0].off;
    const buf = fs.readFileSync(seg.file);
    buf[at + 8 + 3] ^= 0x20; // a byte inside the first record's payload
    fs.writeFileSync(seg.file, buf);

    r = runSpoold(['--check', '-d', dir]);
    assert.equal(r.code, 1, `spoold --check should exit 1 for a corrupt record in the middle, got ${r.code}:\n${r.out}`);
    assert.ok(r.out.includes(seg.name) && r.out.includes(`offset ${at}`),
      `--check should name ${seg.name} and offset ${at}:\n${r.out}`);
    assert.deepEqual(fs.readFileSync(seg.file), buf, '--check alone should change nothing on disk');

    // spoold itself refuses to start on it
    const bad = runSpoold(['-b', '127.0.0.1:0', '-w', '127.0.0.1:0', '-d', dir], 20000);
    assert.notEqual(bad.code, 0, `spoold should refuse to start on a corrupt journal:\n${bad.out}`);
    assert.ok(bad.out.includes(seg.name) && bad.out.includes(`offset ${at}`) && /--repair/.test(bad.out),
      `the refusal should name the file, the offset and the way out (--check --repair):\n${bad.out}`);

    r = runSpoold(['--check', '--repair', '-d', dir]);
    assert.equal(r.code, 0, `spoold --check --repair should exit 0, got ${r.code}:\n${r.out}`);
    assert.match(r.out, /REPAIRED/, `--repair should say it repaired:\n${r.out}`);
    assert.ok(r.out.includes(`offset ${at}`), `--repair should say where it cut (offset ${at}):\n${r.out}`);
    assert.equal(fs.statSync(seg.file).size, at, `${seg.name} should be cut at offset ${at}`);
    assertNoSanitizer(r.out, '--check --repair');

    const s = await startServer({ dir });
    try {
      const c = await s.connect();
      const info = await c.info();
      assert.ok(info.faktory, 'spoold should start and answer INFO after --repair');
      c.destroy();
    } finally {
      await s.stop();
    }
  } finally {
    removeDir(dir);
  }
});

for (const tear of ['garbage appended', 'last record cut']) {
  test(`a torn tail (${tear}) is cut at start with a log line, and spoold starts`, async () => {
    const dir = await preparedDir(10, 'spool-torn-');
    try {
      const segs = readSegments(dir);
      const seg = [...segs].reverse().find((s) => s.frames.length > 0);
      assert.ok(seg, 'a journal segment should hold the pushes');
      const last = seg.frames[seg.frames.length - 1];
      let cutAt;
      if (tear === 'garbage appended') {
        // Only the last segment may be torn; the pushes are in the last one with records.
        assert.equal(seg, segs[segs.length - 1], 'the records should be in the last segment');
        fs.appendFileSync(seg.file, Buffer.from([0x33, 0x00, 0x00, 0x00, 0xde, 0xad]));
        cutAt = seg.size;
      } else {
        assert.equal(seg, segs[segs.length - 1], 'the records should be in the last segment');
        fs.truncateSync(seg.file, seg.size - 5);
        cutAt = last.off;
      }
      const s = await startServer({ dir });
      try {
        const log = s.stderr();
        assert.ok(log.includes('cut a torn last record') && log.includes(seg.name) && log.includes(`offset ${cutAt}`),
          `spoold should log that it cut the torn tail of ${seg.name} at offset ${cutAt}:\n${log}`);
        const c = await s.connect();
        const q = (await c.info()).faktory.queues.chk;
        const want = tear === 'garbage appended' ? 10 : 9; // the cut record is the last push
        assert.equal(q, want, `the ${want} jobs before the torn tail should be back, INFO shows ${q}`);
        c.destroy();
      } finally {
        await s.stop();
      }
      assert.equal(fs.statSync(seg.file).size, cutAt, `${seg.name} should be cut to ${cutAt} bytes`);
    } finally {
      removeDir(dir);
    }
  });
}

// A crash between creating a segment and writing its 16-byte header leaves an
// empty journal file. The next start accepts it; the start after that must too.
test('an empty journal segment left by a crash does not stop the start after next', async () => {
  const dir = await preparedDir(5, 'spool-empty-');
  try {
    const segs = readSegments(dir);
    const next = Number(segs[segs.length - 1].name.slice(8, 28)) + 1;
    const empty = path.join(dir, `journal-${String(next).padStart(20, '0')}.log`);
    fs.writeFileSync(empty, '');
    const s1 = await startServer({ dir });
    try {
      const c = await s1.connect();
      assert.equal((await c.info()).faktory.queues.chk, 5, 'the first start after the crash should recover the 5 jobs');
      await c.push(makeJob({ queue: 'chk' }));
      c.destroy();
    } finally {
      await s1.stop();
    }
    let s2;
    try {
      s2 = await startServer({ dir });
    } catch (e) {
      assert.fail(`spoold should start again on a directory where a crash once left an empty segment ` +
        `(${path.basename(empty)}); it refused:\n${e.message.slice(0, 1500)}`);
    }
    try {
      const c = await s2.connect();
      assert.equal((await c.info()).faktory.queues.chk, 6, 'all 6 acknowledged pushes should be there');
      c.destroy();
    } finally {
      await s2.stop();
    }
  } finally {
    removeDir(dir);
  }
});
