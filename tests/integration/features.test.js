'use strict';
// Enterprise-style features over the wire (docs/features.md): expiring jobs
// (custom.expires_at / expires_in), unique jobs (custom.unique_for /
// unique_until, -NOTUNIQUE on PUSH and in PUSHB's error map) and TRACK
// GET/SET, including what survives a restart.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { withServer, startServer, makeJob, makeTempDir, removeDir, parseUtc, isPostgres } = require('../lib/spoold');

// Unique jobs and TRACK are journal-store features for now (docs/postgres.md).
const journalOnly = { skip: isPostgres() && 'TRACK and restarts: journal store only (docs/postgres.md)' };

const past = () => new Date(Date.now() - 60e3).toISOString();
const future = (ms) => new Date(Date.now() + ms).toISOString();

test('an expired job is discarded instead of fetched and counted in INFO', async () => {
  await withServer({}, async (srv) => {
    const c = await srv.connect();
    const gone = makeJob({ queue: 'xq', custom: { expires_at: past() } });
    const kept = makeJob({ queue: 'xq', custom: { expires_in: '1h' } });
    const kept2 = makeJob({ queue: 'xq', custom: { expires_in: 3600 } });
    for (const j of [gone, kept, kept2]) await c.push(j);
    assert.equal((await c.fetch(['xq'])).jid, kept.jid, 'the expired job is skipped; the next one is fetched');
    assert.equal((await c.fetch(['xq'])).jid, kept2.jid, 'expires_in as a number of seconds');
    const f = (await c.info()).faktory;
    assert.equal(f.expired_jobs, 1, `INFO faktory.expired_jobs counts the discarded job: ${JSON.stringify(f)}`);
    assert.equal(f.queues.xq, 0, 'nothing left in the queue');
    await c.err('PUSH ' + JSON.stringify(makeJob({ custom: { expires_in: 'soon' } })), /^ERR invalid custom\.expires_in/);
    await c.err('PUSH ' + JSON.stringify(makeJob({ custom: { expires_at: 'tomorrow' } })),
      /^ERR invalid timestamp for 'expires_at': "tomorrow"/);
  });
});

test('a unique job refuses twins with -NOTUNIQUE until it succeeds', async () => {
  await withServer({}, async (srv) => {
    const c = await srv.connect();
    const custom = { unique_for: 60 };
    const a = makeJob({ queue: 'uq', args: [1, 'x'], custom });
    await c.push(a);
    const twin = makeJob({ queue: 'uq', args: [1, 'x'], custom });
    const r = await c.cmdTyped('PUSH ' + JSON.stringify(twin));
    assert.deepEqual(r, { type: 'error', value: `NOTUNIQUE job ${a.jid} is already queued with the same jobtype, args and queue` },
      'the error code is NOTUNIQUE, not ERR');
    await c.push(makeJob({ queue: 'uq', args: [2, 'x'], custom })); // other args: another lock
    await c.push(a); // the same job again is still an idempotent +OK

    const other = makeJob({ queue: 'uq', args: [3], custom });
    const errs = await c.cmdJSON('PUSHB ' + JSON.stringify([twin, other]));
    assert.deepEqual(Object.keys(errs), [twin.jid], `PUSHB reports only the twin: ${JSON.stringify(errs)}`);
    assert.match(errs[twin.jid], /^NOTUNIQUE /, 'PUSHB error text starts with the code');

    assert.equal((await c.fetch(['uq'])).jid, a.jid);
    await c.err('PUSH ' + JSON.stringify(twin), /^NOTUNIQUE /); // until success: still held while working
    await c.ack(a.jid);
    await c.push(twin);

    const s1 = makeJob({ queue: 'sq', args: [9], custom: { unique_for: 60, unique_until: 'start' } });
    const s2 = makeJob({ queue: 'sq', args: [9], custom: { unique_for: 60, unique_until: 'start' } });
    await c.push(s1);
    await c.err('PUSH ' + JSON.stringify(s2), /^NOTUNIQUE /);
    assert.equal((await c.fetch(['sq'])).jid, s1.jid);
    await c.push(s2); // until start: released by the FETCH
    await c.err('PUSH ' + JSON.stringify(makeJob({ custom: { unique_until: 'never' } })), /^ERR invalid custom\.unique_until/);
  });
});

test('TRACK SET stores progress and extends a reservation; TRACK GET reports it', journalOnly, async () => {
  await withServer({}, async (srv) => {
    const c = await srv.connect();
    await c.err('TRACK SET ' + JSON.stringify({ jid: 'nosuchjob1', percent: 5 }), 'ERR Job not found nosuchjob1');
    await c.err('TRACK SET {"percent":5}', /^ERR invalid TRACK SET/);
    await c.err('TRACK SET ' + JSON.stringify({ jid: 'x', reserve_until: 'later' }), /^ERR invalid TRACK SET/);
    await c.err('TRACK', /^ERR TRACK needs/);
    await c.err('TRACK FOO x', /^ERR no such TRACK subcommand: FOO/);
    const unknown = await c.cmdJSON('TRACK GET nosuchjob1');
    assert.deepEqual(unknown, { jid: 'nosuchjob1', percent: null, desc: null, state: 'unknown', updated_at: null });

    const j = makeJob({ queue: 'tq', reserve_for: 600 });
    await c.push(j);
    assert.equal((await c.cmdJSON('TRACK GET ' + j.jid)).state, 'enqueued');
    assert.equal((await c.fetch(['tq'])).jid, j.jid);
    const until = future(2 * 3600e3);
    await c.ok('TRACK SET ' + JSON.stringify({ jid: j.jid, percent: 40, desc: 'reading', reserve_until: until }));
    const g = await c.cmdJSON('TRACK GET ' + j.jid);
    assert.equal(g.state, 'working');
    assert.equal(g.percent, 40);
    assert.equal(g.desc, 'reading');
    assert.ok(Math.abs(parseUtc(g.updated_at, 'updated_at') - Date.now()) < 60e3, 'updated_at is about now');
    const page = await c.cmdJSON('JOBS ' + JSON.stringify({ target: 'working' }));
    assert.equal(page.jobs.length, 1);
    assert.ok(Math.abs(parseUtc(page.jobs[0].at, 'working at') - Date.parse(until)) < 1000,
      `the reservation now ends at reserve_until: ${page.jobs[0].at} vs ${until}`);
    await c.ack(j.jid);
    const done = await c.cmdJSON('TRACK GET ' + j.jid);
    assert.equal(done.state, 'success', 'a recently finished job reports success');
    assert.equal(done.percent, 40, 'and keeps its last progress');
  });
});

test('unique locks, tracking and the expired count survive a restart', journalOnly, async () => {
  const dir = makeTempDir();
  try {
    const custom = { unique_for: 3600 };
    const holder = makeJob({ queue: 'rq', args: ['lock'], custom });
    const tracked = makeJob({ queue: 'rt' });
    const s1 = await startServer({ dir });
    try {
      const c = await s1.connect();
      await c.push(holder);
      await c.push(tracked);
      await c.ok('TRACK SET ' + JSON.stringify({ jid: tracked.jid, percent: 12, desc: 'early' }));
      await c.push(makeJob({ queue: 'rx', custom: { expires_at: past() } }));
      assert.equal(await c.fetch(['rx']), null, 'the expired job is never handed out');
      assert.equal((await c.info()).faktory.expired_jobs, 1);
    } finally {
      await s1.stop();
    }
    const s2 = await startServer({ dir });
    try {
      const c = await s2.connect();
      await c.err('PUSH ' + JSON.stringify(makeJob({ queue: 'rq', args: ['lock'], custom })),
        `NOTUNIQUE job ${holder.jid} is already queued with the same jobtype, args and queue`);
      const g = await c.cmdJSON('TRACK GET ' + tracked.jid);
      assert.deepEqual([g.state, g.percent, g.desc], ['enqueued', 12, 'early'], `tracking survives: ${JSON.stringify(g)}`);
      assert.equal((await c.info()).faktory.expired_jobs, 1, 'expired_jobs survives');
      assert.equal((await c.fetch(['rq'])).jid, holder.jid);
      await c.ack(holder.jid);
      await c.push(makeJob({ queue: 'rq', args: ['lock'], custom }));
    } finally {
      await s2.stop();
    }
  } finally {
    removeDir(dir);
  }
});
