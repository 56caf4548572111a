'use strict';
// Scheduled jobs (`at`): spool moves due jobs within 1 s of their due time
// (FWP.md §12), and a due job wakes a blocked FETCH.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { withServer, makeJob, parseUtc } = require('../lib/spoold');

const LATE_MS = 1000; // spool's promise: moved within 1 s of due

test('a job scheduled 1.5 s ahead moves to its queue within 1 s of its due time (seen by INFO)', async (t) => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const due = Date.now() + 1500;
    const job = makeJob({ queue: 'sched', at: new Date(due).toISOString() });
    await c.push(job);
    let f = (await c.info()).faktory;
    assert.equal(f.sets.scheduled, 1, 'the job is scheduled, not enqueued');
    assert.ok(!f.queues.sched, `the job must not be enqueued before it is due: ${JSON.stringify(f.queues)}`);
    // poll INFO every 20 ms (bounded) until the job is in its queue
    let movedAt = null;
    for (let k = 0; k < 500 && movedAt === null; k++) {
      f = (await c.info()).faktory;
      if (f.queues.sched === 1) movedAt = Date.now();
      else await new Promise((r) => setTimeout(r, 20));
      if (Date.now() > due + 5000) break;
    }
    assert.ok(movedAt !== null, `the scheduled job should be enqueued after its due time; INFO: ${JSON.stringify(f)}`);
    t.diagnostic(`moved ${movedAt - due} ms after due`);
    assert.ok(movedAt >= due - 50, `the job was enqueued ${due - movedAt} ms before it was due`);
    assert.ok(movedAt - due <= LATE_MS, `the job was enqueued ${movedAt - due} ms after it was due (limit ${LATE_MS} ms)`);
    assert.equal(f.sets.scheduled, 0, 'the scheduled set is empty once the job moved');
    const got = await c.fetch(['sched']);
    assert.equal(got.jid, job.jid, 'the scheduled job is fetched');
    assert.equal(got.at, job.at, 'the at field is kept in the payload');
    const enq = parseUtc(got.enqueued_at, 'enqueued_at');
    assert.ok(enq >= due - 50, `enqueued_at (${got.enqueued_at}) is set when the job is moved, not at push`);
  });
});

test('a blocked FETCH receives a scheduled job within 1 s of its due time', async (t) => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const w = await srv.connect();
    const due = Date.now() + 1500;
    const job = makeJob({ queue: 'sched2', at: new Date(due).toISOString() });
    await c.push(job);
    let got = null;
    // Each FETCH blocks up to ~2 s; a few rounds cover due + slack.
    for (let k = 0; k < 4 && !got; k++) got = await w.fetch(['sched2']);
    const at = Date.now();
    assert.ok(got, 'the blocked FETCH should get the scheduled job');
    t.diagnostic(`delivered ${at - due} ms after due`);
    assert.equal(got.jid, job.jid, 'it is the scheduled job');
    assert.ok(at >= due - 50, `the job was delivered ${due - at} ms early`);
    assert.ok(at - due <= LATE_MS, `a blocked FETCH should get the job within ${LATE_MS} ms of due, took ${at - due} ms`);
  });
});

test('`at` with a numeric offset is honoured, not read as UTC wall time', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    // wall clock now-1h written in -03:00 is really now+2h: must be scheduled
    // (read as UTC it would be an hour in the past and enqueued)
    const wallPast = new Date(Date.now() - 3600e3).toISOString().replace('Z', '-03:00');
    await c.push(makeJob({ queue: 'tz', at: wallPast }));
    // wall clock now+1h written in +03:00 is really now-2h: must be enqueued now
    const wallFuture = new Date(Date.now() + 3600e3).toISOString().replace('Z', '+03:00');
    await c.push(makeJob({ queue: 'tz', at: wallFuture }));
    const f = (await c.info()).faktory;
    assert.equal(f.sets.scheduled, 1, `exactly the -03:00 job (2 h ahead) should be scheduled (at ${wallPast}); INFO ${JSON.stringify(f)}`);
    assert.equal(f.queues.tz, 1, `exactly the +03:00 job (2 h ago, at ${wallFuture}) should be enqueued now`);
  });
});
