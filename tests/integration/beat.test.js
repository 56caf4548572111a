'use strict';
// BEAT, worker process registration and the quiet/terminate state machine
// (FWP.md §2.6, §3 BEAT, FETCH from a quiet process).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { withServer, makeJob, newJid, waitFor } = require('../lib/spoold');

test('BEAT for an unregistered wid gets -ERR unknown worker <wid>', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await c.err('BEAT {"wid":"nobody"}', 'ERR unknown worker nobody');
  });
});

test('BEAT with bad JSON gets -ERR invalid BEAT <payload>', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect({ hello: { wid: 'w-bad' } });
    await c.err('BEAT nope', 'ERR invalid BEAT nope');
    await c.err('BEAT {"wid":', 'ERR invalid BEAT {"wid":');
  });
});

test('BEAT states: +OK while running, bulk {"state":...} after, and the machine is one-way', async () => {
  await withServer(async (srv) => {
    const wid = 'w-' + newJid().slice(0, 8);
    const c = await srv.connect({ hello: { wid, pid: 4242, labels: ['a', 'b'] } });
    const beat = (extra = {}) => c.cmdTyped('BEAT ' + JSON.stringify({ wid, rss_kb: 1234, ...extra }));
    const quiet = { type: 'bulk', value: '{"state":"quiet"}' };
    const terminate = { type: 'bulk', value: '{"state":"terminate"}' };

    assert.deepEqual(await beat(), { type: 'simple', value: 'OK' }, 'a running process gets +OK');
    assert.deepEqual(await beat({ current_state: '' }), { type: 'simple', value: 'OK' }, 'an empty current_state changes nothing');
    assert.deepEqual(await beat({ current_state: 'bogus' }), { type: 'simple', value: 'OK' }, 'an unknown current_state changes nothing');
    assert.deepEqual(await beat({ current_state: 'quiet' }), quiet, 'current_state quiet');
    assert.deepEqual(await beat(), quiet, 'quiet stays quiet on a plain BEAT');
    assert.deepEqual(await beat({ current_state: 'running' }), quiet, 'cannot go back from quiet to running');
    assert.deepEqual(await beat({ current_state: 'terminate' }), terminate, 'quiet -> terminate');
    assert.deepEqual(await beat({ current_state: 'quiet' }), terminate, 'cannot go back from terminate to quiet');
    assert.deepEqual(await beat(), terminate, 'terminate stays');
  });
});

test('running -> terminate directly is allowed', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect({ hello: { wid: 'w-term' } });
    assert.deepEqual(await c.cmdTyped('BEAT {"wid":"w-term","current_state":"terminate"}'),
      { type: 'bulk', value: '{"state":"terminate"}' }, 'running -> terminate');
  });
});

test('a state set through one connection of a wid is seen by the others; producers can BEAT a live wid', async () => {
  await withServer(async (srv) => {
    const a = await srv.connect({ hello: { wid: 'w-shared' } });
    const b = await srv.connect({ hello: { wid: 'w-shared' } });
    const producer = await srv.connect();
    await a.ok('BEAT {"wid":"w-shared"}');
    assert.deepEqual(await b.cmdTyped('BEAT {"wid":"w-shared","current_state":"quiet"}'),
      { type: 'bulk', value: '{"state":"quiet"}' }, 'set quiet through b');
    assert.deepEqual(await a.cmdTyped('BEAT {"wid":"w-shared"}'),
      { type: 'bulk', value: '{"state":"quiet"}' }, 'a shares the process record and sees quiet');
    assert.deepEqual(await producer.cmdTyped('BEAT {"wid":"w-shared"}'),
      { type: 'bulk', value: '{"state":"quiet"}' }, 'BEAT from another connection about a live wid');
  });
});

test('the process record lives while any of its connections does', async () => {
  await withServer(async (srv) => {
    const a = await srv.connect({ hello: { wid: 'w-life' } });
    const b = await srv.connect({ hello: { wid: 'w-life' } });
    const producer = await srv.connect();
    a.destroy();
    // b still holds the process: BEAT keeps working while the server notices a's close
    await producer.ok('BEAT {"wid":"w-life"}');
    await b.ok('BEAT {"wid":"w-life"}');
    await b.ok('END');
    await waitFor(async () => {
      const r = await producer.cmd('BEAT {"wid":"w-life"}');
      return r && r.error === 'ERR unknown worker w-life';
    }, { timeoutMs: 5000, what: 'the process record of w-life to be removed after its last connection closed' });
  });
});

test('FETCH from a quiet process returns $-1 after ~2 s and leaves the job queued', async () => {
  await withServer(async (srv) => {
    const w = await srv.connect({ hello: { wid: 'w-quiet' } });
    const producer = await srv.connect();
    const job = makeJob({ queue: 'qq' });
    await producer.push(job);
    assert.equal((await w.cmd('BEAT {"wid":"w-quiet","current_state":"quiet"}')), '{"state":"quiet"}', 'quiet');
    const t0 = Date.now();
    const r = await w.cmdTyped('FETCH qq', { timeoutMs: 6000 });
    const dt = Date.now() - t0;
    assert.deepEqual(r, { type: 'null', value: null }, 'a quiet process gets no jobs');
    assert.ok(dt >= 1500 && dt <= 3500, `FETCH from a quiet process should take ~2 s, took ${dt} ms`);
    const info = await producer.info();
    assert.equal(info.faktory.queues.qq, 1, 'the job stays in the queue');
    const got = await producer.fetch(['qq']);
    assert.equal(got && got.jid, job.jid, 'a producer connection (no wid) can still fetch it');
  });
});
