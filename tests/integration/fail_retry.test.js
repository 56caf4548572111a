'use strict';
// ACK and FAIL: error strings, retry / dead / discard (FWP.md §3, §7), and
// the failure bookkeeping seen on a job brought back with MUTATE requeue.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { withServer, makeJob, newJid, parseUtc } = require('../lib/spoold');

// Pushes a job and fetches it, so that it is reserved.
async function pushAndFetch(c, fields = {}) {
  const job = makeJob({ queue: 'fq', ...fields });
  await c.push(job);
  const got = await c.fetch([job.queue]);
  assert.equal(got && got.jid, job.jid, 'the pushed job should be fetched back');
  return got;
}

// Moves one job from `target` (retries/dead/scheduled) back to its queue with
// MUTATE requeue and fetches it, to look at its stored payload.
async function requeueAndFetch(c, target, jid, queue = 'fq') {
  await c.ok('MUTATE ' + JSON.stringify({ cmd: 'requeue', target, filter: { jids: [jid] } }));
  const got = await c.fetch([queue]);
  assert.equal(got && got.jid, jid, `MUTATE requeue of ${jid} from ${target} should make it fetchable from ${queue}`);
  return got;
}

test('ACK of an unknown or already acknowledged jid is +OK', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await c.ack(newJid());
    const job = await pushAndFetch(c);
    await c.ack(job.jid);
    await c.ack(job.jid);
    const info = await c.info();
    assert.equal(info.faktory.total_processed, 1, 'only the real ACK is counted as processed');
  });
});

test('ACK with a bad payload gets -ERR invalid ACK <payload>', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    for (const payload of ['nope', '{}', '{"jid":5}', '{"jid":"abcdefghij"', '["abcdefghij"]']) {
      await c.err('ACK ' + payload, `ERR invalid ACK ${payload}`);
    }
  });
});

test('FAIL moves the job to retries and counts a failure and a processed job', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const job = await pushAndFetch(c);
    let info = await c.info();
    assert.equal(info.faktory.sets.working, 1, 'the fetched job is reserved');
    await c.fail(job.jid, { errtype: 'RuntimeError', message: 'boom', backtrace: ['a.rb:1', 'b.rb:2'] });
    info = await c.info();
    assert.equal(info.faktory.sets.retries, 1, `the failed job should be in retries, sets: ${JSON.stringify(info.faktory.sets)}`);
    assert.equal(info.faktory.sets.working, 0, 'the reservation is gone');
    assert.equal(info.faktory.sets.dead, 0, 'nothing is dead');
    assert.equal(info.faktory.total_failures, 1, 'total_failures counts the FAIL');
    assert.equal(info.faktory.total_processed, 1, 'a failure also counts as processed');
  });
});

test('the failure object records retry_count, remaining, failed_at, next_at and the error', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const job = await pushAndFetch(c, { retry: 5 });
    const t0 = Date.now();
    await c.fail(job.jid, { errtype: 'RuntimeError', message: 'boom', backtrace: ['a.rb:1', 'b.rb:2'] });
    const again = await requeueAndFetch(c, 'retries', job.jid);
    const f = again.failure;
    assert.ok(f && typeof f === 'object', `the requeued job should carry a failure object, got ${JSON.stringify(again)}`);
    assert.equal(f.retry_count, 0, 'first failure: retry_count 0');
    assert.equal(f.remaining, 5, 'first failure: remaining = retry');
    assert.equal(f.errtype, 'RuntimeError', 'errtype');
    assert.equal(f.message, 'boom', 'message');
    assert.deepEqual(f.backtrace, ['a.rb:1', 'b.rb:2'], 'backtrace');
    const failedAt = parseUtc(f.failed_at, 'failure.failed_at');
    const nextAt = parseUtc(f.next_at, 'failure.next_at');
    assert.ok(Math.abs(failedAt - t0) < 3000, `failed_at ${f.failed_at} should be about now`);
    const delay = (nextAt - failedAt) / 1000;
    assert.ok(delay >= 14.9 && delay <= 45, `first retry backoff should be 15..44 s (c^4+15+r*(c+1)), got ${delay} s`);
    assert.equal(again.retry, 5, 'the job keeps its retry');

    // second failure: retry_count 1, remaining 4, failed_at unchanged
    await c.fail(again.jid, { errtype: 'Other', message: 'second' });
    const third = await requeueAndFetch(c, 'retries', job.jid);
    assert.equal(third.failure.retry_count, 1, 'second failure: retry_count 1');
    assert.equal(third.failure.remaining, 4, 'second failure: remaining 4');
    assert.equal(third.failure.message, 'second', 'message replaced');
    assert.equal(third.failure.errtype, 'Other', 'errtype replaced');
    assert.equal(third.failure.failed_at, f.failed_at, 'failed_at is set on the first failure only');
  });
});

test('FAIL cleanses errtype, message and backtrace (trim, unknown, 100/1000 chars, 50 lines)', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const a = await pushAndFetch(c);
    const bt = Array.from({ length: 60 }, (_, k) => `line ${k}`);
    await c.fail(a.jid, { errtype: '  ' + 'E'.repeat(150) + '  ', message: ' ' + 'm'.repeat(2000) + ' ', backtrace: bt });
    const ga = await requeueAndFetch(c, 'retries', a.jid);
    assert.equal(ga.failure.errtype, 'E'.repeat(100), 'errtype trimmed and cut to 100 chars');
    assert.equal(ga.failure.message, 'm'.repeat(1000), 'message trimmed and cut to 1000 chars');
    assert.deepEqual(ga.failure.backtrace, bt.slice(0, 50), 'backtrace capped at 50 lines');

    const b = await pushAndFetch(c);
    await c.ok('FAIL ' + JSON.stringify({ jid: b.jid, errtype: '   ', message: '' }));
    const gb = await requeueAndFetch(c, 'retries', b.jid);
    assert.equal(gb.failure.errtype, 'unknown', 'blank errtype becomes unknown');
    assert.equal(gb.failure.message, 'unknown', 'empty message becomes unknown');
  });
});

test('FAIL errors: invalid FAIL, missing JID, Job not found', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await c.err('FAIL not json', 'ERR invalid FAIL not json');
    await c.err('FAIL {"jid":', 'ERR invalid FAIL {"jid":');
    await c.err('FAIL {"jid":""}', 'ERR missing JID');
    await c.err('FAIL {"errtype":"x","message":"y"}', 'ERR missing JID');
    const unknown = newJid();
    await c.err(`FAIL {"jid":"${unknown}"}`, `ERR Job not found ${unknown}`);
    // a job that was pushed but never fetched has no reservation
    const queued = makeJob();
    await c.push(queued);
    await c.err(`FAIL {"jid":"${queued.jid}"}`, `ERR Job not found ${queued.jid}`);
    // a second FAIL of the same job
    const job = await pushAndFetch(c);
    await c.fail(job.jid);
    await c.err(`FAIL {"jid":"${job.jid}"}`, `ERR Job not found ${job.jid}`);
    const info = await c.info();
    assert.equal(info.faktory.total_failures, 1, 'only the one real FAIL counts');
  });
});

test('FAIL with wrongly typed fields gets -ERR invalid FAIL <payload> and keeps the reservation', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const job = await pushAndFetch(c);
    for (const extra of [{ errtype: 5 }, { message: ['x'] }, { backtrace: 'a.rb:1' }, { backtrace: [1, 2] }]) {
      const payload = JSON.stringify({ jid: job.jid, ...extra });
      await c.err('FAIL ' + payload, `ERR invalid FAIL ${payload}`);
    }
    const f = (await c.info()).faktory;
    assert.equal(f.sets.working, 1, 'a refused FAIL leaves the job reserved');
    assert.equal(f.total_failures, 0, 'a refused FAIL is not counted');
  });
});

test('retry:0 discards on failure, retry:-1 goes straight to dead', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const zero = await pushAndFetch(c, { retry: 0 });
    await c.fail(zero.jid);
    let info = await c.info();
    assert.deepEqual(info.faktory.sets, { scheduled: 0, retries: 0, dead: 0, working: 0 },
      'retry:0 must be discarded: neither retries nor dead');
    assert.equal(info.faktory.total_failures, 1, 'the discarded failure still counts');

    const neg = await pushAndFetch(c, { retry: -1 });
    await c.fail(neg.jid, { message: 'to the morgue' });
    info = await c.info();
    assert.equal(info.faktory.sets.dead, 1, `retry:-1 goes to dead, sets: ${JSON.stringify(info.faktory.sets)}`);
    assert.equal(info.faktory.sets.retries, 0, 'and not to retries');
    const dead = await requeueAndFetch(c, 'dead', neg.jid);
    assert.equal(dead.failure.message, 'to the morgue', 'the dead job keeps its failure');
  });
});

test('retry:1 gives one retry: the second failure goes to dead', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const job = await pushAndFetch(c, { retry: 1 });
    await c.fail(job.jid);
    let info = await c.info();
    assert.equal(info.faktory.sets.retries, 1, 'first failure of retry:1 is retried');
    const again = await requeueAndFetch(c, 'retries', job.jid);
    await c.fail(again.jid);
    info = await c.info();
    assert.equal(info.faktory.sets.retries, 0, 'the retry is used up');
    assert.equal(info.faktory.sets.dead, 1, 'second failure of retry:1 goes to dead');
    assert.equal(info.faktory.total_failures, 2, 'two failures');
    assert.equal(info.faktory.total_processed, 2, 'both failures count as processed');
  });
});
