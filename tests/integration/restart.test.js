'use strict';
// State survives a restart on the same data directory: after a clean
// SIGTERM and after kill -9 (DESIGN invariant 1: a PUSH answered +OK is never
// lost; FWP.md §5: reservations are rebuilt so ACK/FAIL work after a restart;
// §3: pause flags are persisted).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, makeJob, makeTempDir, removeDir, waitFor } = require('../lib/spoold');

const HOUR = 3600e3;

// Builds a known state; returns what to look for after the restart.
async function buildState(c) {
  const queued = [
    makeJob({ queue: 'rq1', args: [1, 'a\u00e9'], custom: { k: 'v' } }),
    makeJob({ queue: 'rq1', args: [2] }),
    makeJob({ queue: 'rq2', args: [3], retry: 4 }),
  ];
  for (const j of queued) await c.push(j);
  const scheduled = makeJob({ queue: 'rq3', at: new Date(Date.now() + HOUR).toISOString() });
  await c.push(scheduled);
  const retried = makeJob({ queue: 'rtmp' });
  const dead = makeJob({ queue: 'rtmp', retry: -1 });
  const held = makeJob({ queue: 'rtmp', reserve_for: 3600 });
  const acked = makeJob({ queue: 'rtmp' });
  for (const j of [retried, dead, held, acked]) {
    await c.push(j);
    assert.equal((await c.fetch(['rtmp'])).jid, j.jid, 'fetch in push order');
  }
  await c.fail(retried.jid, { message: 'will retry' });
  await c.fail(dead.jid, { message: 'dead now' });
  await c.ack(acked.jid);
  await c.ok('QUEUE PAUSE rq2');
  const info = (await c.info()).faktory;
  assert.deepEqual(info.sets, { scheduled: 1, retries: 1, dead: 1, working: 1 }, 'state before the restart');
  return { queued, scheduled, retried, dead, held, acked, info };
}

async function checkState(c, st, how) {
  const f = (await c.info()).faktory;
  assert.equal(f.queues.rq1, 2, `${how}: rq1 keeps its 2 jobs: ${JSON.stringify(f.queues)}`);
  assert.equal(f.queues.rq2, 1, `${how}: rq2 keeps its job`);
  assert.deepEqual(f.sets, { scheduled: 1, retries: 1, dead: 1, working: 1 },
    `${how}: scheduled, retries, dead and working survive`);
  assert.equal(f.total_processed, st.info.total_processed, `${how}: total_processed survives`);
  assert.equal(f.total_failures, st.info.total_failures, `${how}: total_failures survives`);

  const a = await c.fetch(['rq1']);
  const b = await c.fetch(['rq1']);
  assert.deepEqual([a.jid, b.jid], [st.queued[0].jid, st.queued[1].jid], `${how}: rq1 keeps FIFO order`);
  assert.deepEqual(a.args, st.queued[0].args, `${how}: args survive`);
  assert.deepEqual(a.custom, { k: 'v' }, `${how}: custom survives`);
  assert.equal(a.retry, 25, `${how}: defaults survive`);
  // rq2 is still paused: its job is skipped
  const other = makeJob({ queue: 'rq4' });
  await c.push(other);
  assert.equal((await c.fetch(['rq2', 'rq4'])).jid, other.jid, `${how}: the pause flag on rq2 survives`);
  await c.ok('QUEUE RESUME rq2');
  const r2 = await c.fetch(['rq2']);
  assert.equal(r2.jid, st.queued[2].jid, `${how}: rq2's job survives`);
  assert.equal(r2.retry, 4, `${how}: explicit retry survives`);
  for (const j of [a, b, r2]) await c.ack(j.jid);
  await c.ack(other.jid);

  // the reservation made before the restart can still be FAILed / ACKed
  await c.fail(st.held.jid, { message: 'after restart' });
  const g = (await c.info()).faktory;
  assert.equal(g.sets.retries, 2, `${how}: a FAIL of a job reserved before the restart works`);
  assert.equal(g.sets.working, 0, `${how}: the old reservation is gone`);

  await c.ok('MUTATE ' + JSON.stringify({ cmd: 'requeue', target: 'dead' }));
  const d = await c.fetch(['rtmp']);
  assert.equal(d.jid, st.dead.jid, `${how}: the dead job survives`);
  assert.equal(d.failure.message, 'dead now', `${how}: its failure survives`);
  await c.ok('MUTATE ' + JSON.stringify({ cmd: 'requeue', target: 'scheduled' }));
  assert.equal((await c.fetch(['rq3'])).jid, st.scheduled.jid, `${how}: the scheduled job survives`);
}

test('queues, sets, reservations, counters and pause flags survive a clean restart', async () => {
  const dir = makeTempDir();
  try {
    const s1 = await startServer({ dir });
    let st;
    try {
      st = await buildState(await s1.connect());
    } finally {
      await s1.stop();
    }
    const s2 = await startServer({ dir });
    try {
      await checkState(await s2.connect(), st, 'after SIGTERM and restart');
    } finally {
      await s2.stop();
    }
  } finally {
    removeDir(dir);
  }
});

test('every PUSH answered +OK survives kill -9, as does the rest of the state', async () => {
  const dir = makeTempDir();
  try {
    const s1 = await startServer({ dir });
    let st;
    const burst = [];
    try {
      const c = await s1.connect();
      st = await buildState(c);
      // a burst of pipelined pushes: every one that got +OK must survive
      for (let k = 0; k < 200; k++) burst.push(makeJob({ queue: 'burst', args: [k] }));
      c.send(burst.map((j) => 'PUSH ' + JSON.stringify(j) + '\r\n').join(''));
      for (let k = 0; k < burst.length; k++) {
        const r = await c.readTyped();
        assert.deepEqual(r, { type: 'simple', value: 'OK' }, `burst PUSH ${k}`);
      }
    } finally {
      await s1.kill9();
    }
    const s2 = await startServer({ dir });
    try {
      const c = await s2.connect();
      assert.equal((await c.info()).faktory.queues.burst, burst.length, 'all acknowledged burst pushes survive kill -9');
      await checkState(c, st, 'after kill -9 and restart');
    } finally {
      await s2.stop();
    }
  } finally {
    removeDir(dir);
  }
});

test('SIGTERM during a burst of PUSHes: every stored job was answered +OK, every +OK was stored', async () => {
  const dir = makeTempDir();
  try {
    const s1 = await startServer({ dir });
    const burst = [];
    let answered = 0;
    try {
      const c = await s1.connect();
      for (let k = 0; k < 300; k++) burst.push(makeJob({ queue: 'term', args: [k] }));
      c.send(burst.map((j) => 'PUSH ' + JSON.stringify(j) + '\r\n').join(''));
      s1.proc.kill('SIGTERM'); // while the pushes are read, journaled and answered
      for (;;) {
        let r;
        try {
          r = await c.readTyped(5000);
        } catch {
          break; // closed by the shutdown: the rest was never taken
        }
        assert.deepEqual(r, { type: 'simple', value: 'OK' }, `PUSH ${answered}`);
        answered++;
      }
      await waitFor(() => !s1.alive(), { timeoutMs: 10000, what: 'spoold to exit after SIGTERM' });
      assert.deepEqual(s1.exitStatus(), { code: 0, signal: null }, 'a clean exit');
    } finally {
      await s1.kill9(); // already gone; keeps the directory
    }
    const s2 = await startServer({ dir });
    try {
      const c = await s2.connect();
      const stored = (await c.info()).faktory.queues.term ?? 0;
      // Replies held for the journal's last write leave before the exit: a job
      // on disk whose +OK never came would be pushed again by its client.
      assert.equal(stored, answered, `${answered} of ${burst.length} pushes were answered, ${stored} stored`);
      for (let k = 0; k < stored; k++) {
        assert.equal((await c.fetch(['term'])).jid, burst[k].jid, `the answered pushes, in order (${k})`);
      }
    } finally {
      await s2.stop();
    }
  } finally {
    removeDir(dir);
  }
});
