'use strict';
// Slow clocks, run side by side to keep the wall time near one minute:
// a failed job comes back from retries at its failure.next_at, and an
// expired reservation (reserve_for is raised to the 60 s minimum) is failed
// with ReservationExpired; spool promises both within 1 s of due
// (FWP.md §6, §7, §12). A worker silent for 60 s is reaped (FWP.md §3 BEAT;
// Faktory checks every 15 s, so 60..75 s).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { withServer, makeJob, parseUtc, waitFor } = require('../lib/spoold');

const LATE_MS = 1000;

test('retries, reservation expiry and heartbeat reaping happen on time', { timeout: 110000, concurrency: 3 }, async (t) => {
  await Promise.all([
    t.test('a failed job is re-enqueued within 1 s of failure.next_at', { timeout: 80000 }, async () => {
      await withServer(async (srv) => {
        const c = await srv.connect();
        const w = await srv.connect();
        const job = makeJob({ queue: 'rt', retry: 2 });
        await c.push(job);
        assert.equal((await c.fetch(['rt'])).jid, job.jid, 'fetched');
        const failedAt = Date.now();
        await c.fail(job.jid, { errtype: 'Flaky', message: 'try again' });
        // block in FETCH until the retry comes back (backoff is 15..44 s)
        let got = null;
        for (let k = 0; k < 40 && !got && Date.now() - failedAt < 60000; k++) got = await w.fetch(['rt']);
        const gotAt = Date.now();
        assert.ok(got, `the retried job should come back within 60 s of the FAIL (backoff 15..44 s), waited ${gotAt - failedAt} ms`);
        assert.equal(got.jid, job.jid, 'the retried job');
        const nextAt = parseUtc(got.failure.next_at, 'failure.next_at');
        assert.ok(gotAt >= nextAt - 50, `the retry was delivered ${nextAt - gotAt} ms before failure.next_at ${got.failure.next_at}`);
        assert.ok(gotAt - nextAt <= LATE_MS, `the retry should be delivered within ${LATE_MS} ms of failure.next_at, was ${gotAt - nextAt} ms late`);
        assert.equal(got.failure.retry_count, 0, 'retry_count after the first failure');
        assert.equal(got.failure.message, 'try again', 'failure message');
        const enq = parseUtc(got.enqueued_at, 'enqueued_at');
        assert.ok(enq >= nextAt - 50, `enqueued_at (${got.enqueued_at}) is rewritten when the retry is enqueued`);
        const f = (await c.info()).faktory;
        assert.equal(f.sets.retries, 0, 'the retries set is empty again');
      });
    }),
    t.test('an expired reservation is failed with ReservationExpired within 1 s of reserved_at + 60 s', { timeout: 80000 }, async () => {
      await withServer(async (srv) => {
        const c = await srv.connect();
        const job = makeJob({ queue: 'rsv', reserve_for: 1 }); // raised to the 60 s minimum
        const keep = makeJob({ queue: 'rsv', reserve_for: 3600 });
        await c.push(job);
        await c.push(keep);
        const fetchedAt = Date.now();
        assert.equal((await c.fetch(['rsv'])).jid, job.jid, 'fetched the short reservation');
        assert.equal((await c.fetch(['rsv'])).jid, keep.jid, 'fetched the long reservation');
        const due = fetchedAt + 60000;
        // poll INFO (bounded) until the short reservation has expired into retries
        let f;
        let movedAt = null;
        for (let k = 0; k < 2000 && movedAt === null && Date.now() < due + 10000; k++) {
          f = (await c.info()).faktory;
          if (f.sets.retries === 1) movedAt = Date.now();
          else await new Promise((r) => setTimeout(r, Date.now() < due - 2000 ? 500 : 25));
        }
        assert.ok(movedAt !== null, `the reservation should expire about 60 s after FETCH; INFO after ${Date.now() - fetchedAt} ms: ${JSON.stringify(f)}`);
        assert.ok(movedAt >= due - 1000, `reserve_for 1 must be raised to 60 s, but the job expired after ${movedAt - fetchedAt} ms`);
        assert.ok(movedAt - due <= LATE_MS + 500, `the expiry should happen within ${LATE_MS} ms of due, was ${movedAt - due} ms late`);
        assert.equal(f.sets.working, 1, 'the long reservation is still held');
        assert.equal(f.total_failures, 1, 'the expiry counts as a failure');
        // ACK after expiry is a silent +OK; FAIL after expiry finds nothing
        await c.ack(job.jid);
        await c.err(`FAIL {"jid":"${job.jid}"}`, `ERR Job not found ${job.jid}`);
        assert.equal((await c.info()).faktory.sets.retries, 1, 'the late ACK does not take the job out of retries');
        await c.ok('MUTATE ' + JSON.stringify({ cmd: 'requeue', target: 'retries', filter: { jids: [job.jid] } }));
        const back = await c.fetch(['rsv']);
        assert.equal(back.jid, job.jid, 'the expired job is in retries');
        assert.equal(back.failure.errtype, 'ReservationExpired', 'errtype of an expired reservation');
        assert.equal(back.failure.message, 'Faktory job reservation expired', 'message of an expired reservation');
        await c.ack(back.jid);
        await c.ack(keep.jid);
      });
    }),
    t.test('a worker process silent for over 60 s is reaped and its connections closed (FWP §3 BEAT)', { timeout: 90000 }, async () => {
      await withServer(async (srv) => {
        const silent = await srv.connect({ hello: { wid: 'w-silent' } });
        const alive = await srv.connect({ hello: { wid: 'w-alive' } });
        const ops = await srv.connect();
        const t0 = Date.now();
        await ops.ok('BEAT {"wid":"w-silent"}'); // w-silent is registered; its last heartbeat is now
        // w-alive beats every 5 s; nothing is sent for w-silent after this
        let closedAt = null;
        silent.closedPromise.then(() => { closedAt = Date.now(); });
        for (let k = 0; k < 20 && closedAt === null && Date.now() - t0 < 80000; k++) {
          await alive.ok('BEAT {"wid":"w-alive"}');
          await silent.waitClosed(5000);
        }
        assert.ok(closedAt !== null, `the silent worker's connection should be closed 60..75 s after its last heartbeat, still open after ${Date.now() - t0} ms`);
        const dt = closedAt - t0;
        assert.ok(dt >= 55000, `a worker must not be reaped before 60 s of silence, it was after ${dt} ms`);
        assert.ok(dt <= 76000, `the silent worker should be reaped within 60 s + the 15 s reaper period, took ${dt} ms`);
        await waitFor(async () => (await ops.cmd('BEAT {"wid":"w-silent"}')).error === 'ERR unknown worker w-silent',
          { what: 'the reaped process record to be gone' });
        await alive.ok('BEAT {"wid":"w-alive"}');
      });
    }),
  ]);
});
