'use strict';
// Several spoold on one PostgreSQL database (docs/postgres.md): a job pushed
// through one is fetched through another, a blocked FETCH on one is woken by
// a push on the other (LISTEN/NOTIFY), and killing one with SIGKILL in the
// middle of a load loses no job whose PUSH was answered +OK. The survivor
// takes over the maintenance (the leader lock) and brings back the jobs the
// dead server's workers held once their reservations expire.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, makeJob, within, sleep, waitFor, withPgDatabase, pgQuery } = require('../lib/spoold');

/** Two servers on one fresh database; fn(a, b, url); both stopped (or already killed) at the end. */
function withPair(fn) {
  return withPgDatabase('spool_pair', async (url) => {
    const servers = [];
    try {
      servers.push(await startServer({ store: url }));
      servers.push(await startServer({ store: url }));
      await fn(servers[0], servers[1], url);
      for (const s of servers) if (s.alive()) await s.stop();
    } finally {
      for (const s of servers) if (s.alive()) s.proc.kill('SIGKILL');
    }
  });
}

test('push on one server, fetch and ACK on the other; a blocked FETCH is woken across servers', async () => {
  await withPair(async (a, b) => {
    const ca = await a.connect();
    const cb = await b.connect();
    const job = makeJob({ queue: 'pair', args: [1, 'two'] });
    await ca.push(job);
    const got = await cb.fetch(['pair']);
    assert.equal(got && got.jid, job.jid, 'B fetches the job A stored');
    await cb.ack(got.jid);
    assert.equal((await ca.info()).faktory.total_processed, 1, 'A sees the ACK made through B');

    const waiting = cb.fetch(['pair2']);
    await sleep(300); // B's FETCH is now blocked on an empty queue
    const t0 = Date.now();
    const second = makeJob({ queue: 'pair2' });
    await ca.push(second);
    const woken = await within(waiting, 1500, 'timeout');
    assert.notEqual(woken, 'timeout', 'the FETCH blocked on B should be answered after the push on A');
    assert.equal(woken && woken.jid, second.jid);
    assert.ok(Date.now() - t0 < 1000, `woken by NOTIFY within a second (took ${Date.now() - t0} ms)`);
    await cb.ack(woken.jid);
  });
});

test('SIGKILL of one server mid-load loses no acknowledged push; the other takes over maintenance', async () => {
  await withPair(async (a, b, url) => {
    const PER_PRODUCER = 300;
    const accepted = new Set(); // pushes answered +OK
    const processed = new Set(); // jobs a worker ACKed with +OK
    // ACKs sent whose answer never came (their server died): PostgreSQL may
    // have committed them, so such a job is done, not lost.
    const ackInDoubt = new Set();
    let stop = false;

    async function producer(srv, name) {
      const c = await srv.connect();
      for (let i = 0; i < PER_PRODUCER; i++) {
        const job = makeJob({ queue: 'load', args: [name, i], reserve_for: 60 });
        try {
          await c.push(job);
        } catch (e) {
          return; // the server died: this push's fate is unknown, and it is not counted
        }
        accepted.add(job.jid);
      }
    }
    async function worker(srv) {
      let c;
      try {
        c = await srv.connect({ hello: { wid: `w-${Math.random().toString(36).slice(2)}` } });
      } catch (e) {
        return;
      }
      for (let k = 0; k < 5000 && !stop; k++) {
        let job;
        try {
          job = await c.fetch(['load'], { timeoutMs: 4000 });
          if (!job) continue;
          ackInDoubt.add(job.jid);
          await c.ack(job.jid);
          ackInDoubt.delete(job.jid);
        } catch (e) {
          return; // its server died holding (perhaps) a job: the reservation brings it back
        }
        processed.add(job.jid);
      }
    }

    const producers = [producer(a, 'a1'), producer(a, 'a2'), producer(b, 'b1'), producer(b, 'b2')];
    const workers = [worker(a), worker(a), worker(b), worker(b), worker(b)];
    await waitFor(() => accepted.size >= 300, { timeoutMs: 30000, what: '300 pushes accepted before the kill' });
    const wasLeader = a.stderr().includes('leader lock taken');
    await a.kill9();
    await Promise.all(producers);
    assert.ok(accepted.size >= 600, `B's producers went on after A died (${accepted.size} accepted)`);

    if (wasLeader) {
      await waitFor(() => b.stderr().includes('leader lock taken'), {
        timeoutMs: 10000, what: 'B to take the leader lock after A was killed' });
    }

    // Jobs A's workers held stay reserved until reserve_for (60 s) passes:
    // let it pass at once, then let B's maintenance expire them.
    await waitFor(() => processed.size + Number(pgQuery(url,
      "SELECT count(*) FROM spool.jobs WHERE state IN ('enqueued', 'working')")) >= accepted.size,
    { timeoutMs: 30000, what: 'the queue to drain into the working set' });
    pgQuery(url, "UPDATE spool.jobs SET reserved_until = now() WHERE state = 'working'");
    await waitFor(() => Number(pgQuery(url, "SELECT count(*) FROM spool.jobs WHERE state = 'working'")) === 0,
      { timeoutMs: 10000, what: 'B to expire the dead server\'s reservations' });
    // Expired reservations are failures: they wait in retries with backoff. Bring them back now.
    const cb = await b.connect();
    await cb.ok('MUTATE ' + JSON.stringify({ cmd: 'requeue', target: 'retries', filter: { jobtype: 'TestJob' } }));
    await waitFor(() => Number(pgQuery(url, 'SELECT count(*) FROM spool.jobs')) === 0,
      { timeoutMs: 30000, what: 'B\'s workers to process every job left' });
    stop = true;
    await Promise.all(workers);

    const lost = [...accepted].filter((jid) => !processed.has(jid) && !ackInDoubt.has(jid));
    assert.deepEqual(lost.slice(0, 10), [],
      `every accepted push was processed: ${lost.length} of ${accepted.size} lost ` +
      `(${ackInDoubt.size} ACKs were cut off by the kill)`);
    assert.ok(ackInDoubt.size <= 2, `at most one ACK in flight per worker of A (${ackInDoubt.size})`);
    const info = await cb.info();
    assert.ok(info.faktory.total_processed >= accepted.size, 'the database counted them all');
  });
});
