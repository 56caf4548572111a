'use strict';
// Job features on the PostgreSQL store that go beyond the shared conformance
// suite (docs/features.md): expiring jobs, and unique locks that hold across
// several spoold on one database and for spool.push from SQL.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { withServer, makeJob, withPgDatabase, withPgClient, sleep } = require('../lib/spoold');

const NOTUNIQUE = /^NOTUNIQUE job \S+ is already queued with the same jobtype, args and queue$/;

test('FETCH skips expired jobs even when more than a batch of them head the queue', async () => {
  await withPgDatabase('spool_feat', (url) => withServer({ store: url }, (srv) => withPgClient(url, async (client) => {
    // 150 jobs already expired, ahead of one live job, in the same queue.
    await client.query(`SELECT count(spool.push(jsonb_build_object(
                          'jobtype', 'Stale', 'args', '[]'::jsonb, 'queue', 'exq',
                          'custom', jsonb_build_object('expires_at', '2000-01-01T00:00:00Z'))))
                        FROM generate_series(1, 150)`);
    const live = makeJob({ queue: 'exq', jobtype: 'Live' });
    await client.query('SELECT spool.push($1::jsonb)', [JSON.stringify(live)]);

    const c = await srv.connect();
    const got = await c.fetch(['exq']);
    assert.ok(got, 'FETCH returns a job');
    assert.equal(got.jid, live.jid, 'the job fetched is the live one, not an expired one');
    assert.equal(await c.fetch(['exq']), null, 'nothing else is fetchable: the rest had expired');

    const { rows } = await client.query(
      "SELECT count(*)::int AS n FROM spool.jobs WHERE queue = 'exq' AND state = 'enqueued'");
    assert.equal(rows[0].n, 0, 'every expired job was deleted by the two FETCHes');
    const info = await c.info();
    assert.equal(info.faktory.expired_jobs, 150, 'INFO counts each discarded job once');
  })));
});

test('a unique lock holds across two servers and for spool.push, until ACK or expiry', async () => {
  await withPgDatabase('spool_feat', (url) => withServer({ store: url }, (a) => withServer({ store: url }, (b) =>
    withPgClient(url, async (client) => {
      const ca = await a.connect();
      const cb = await b.connect();
      const custom = { unique_for: 60 };
      const first = makeJob({ queue: 'uq2', args: [{ b: 2, a: 1 }, 'x'], custom });
      await ca.push(first);
      const twin = makeJob({ queue: 'uq2', args: [{ a: 1, b: 2 }, 'x'], custom });
      const r = await cb.cmdTyped('PUSH ' + JSON.stringify(twin));
      assert.equal(r.type, 'error', 'the other server refuses the twin');
      assert.equal(r.value, `NOTUNIQUE job ${first.jid} is already queued with the same jobtype, args and queue`);
      await assert.rejects(client.query('SELECT spool.push($1::jsonb)', [JSON.stringify(twin)]),
        (e) => e.code === 'SP001' && NOTUNIQUE.test(e.message), 'spool.push refuses it too');

      // Fetched on B, still held until success; the ACK on B frees it for A.
      assert.equal((await cb.fetch(['uq2'])).jid, first.jid);
      await ca.err('PUSH ' + JSON.stringify(twin), NOTUNIQUE);
      await cb.ack(first.jid);
      await ca.push(twin);

      // Racing pushes of one key through both servers: exactly one wins.
      const racers = [];
      for (let i = 0; i < 10; i++) {
        const job = makeJob({ queue: 'race', args: ['same'], custom });
        racers.push((i % 2 ? ca : cb).cmdTyped('PUSH ' + JSON.stringify(job)));
      }
      const replies = await Promise.all(racers);
      const oks = replies.filter((x) => x.type !== 'error');
      assert.equal(oks.length, 1, `one push wins: ${JSON.stringify(replies)}`);
      for (const x of replies.filter((y) => y.type === 'error')) assert.match(x.value, NOTUNIQUE);

      // A push in an open transaction holds the key; at COMMIT it is held.
      const held = makeJob({ queue: 'tq', args: [7], custom });
      await client.query('BEGIN');
      await client.query('SELECT spool.push($1::jsonb)', [JSON.stringify(held)]);
      const waiting = ca.cmdTyped('PUSH ' + JSON.stringify(makeJob({ queue: 'tq', args: [7], custom })),
        { timeoutMs: 10000 });
      await sleep(300);
      await client.query('COMMIT');
      const w = await waiting;
      assert.equal(w.type, 'error', 'the push that waited for the transaction is refused');
      assert.equal(w.value, `NOTUNIQUE job ${held.jid} is already queued with the same jobtype, args and queue`);

      // A rolled-back push holds nothing.
      const gone = makeJob({ queue: 'rq', args: [8], custom });
      await client.query('BEGIN');
      await client.query('SELECT spool.push($1::jsonb)', [JSON.stringify(gone)]);
      await client.query('ROLLBACK');
      await cb.push(makeJob({ queue: 'rq', args: [8], custom }));

      // The lock lasts unique_for seconds at most.
      await ca.push(makeJob({ queue: 'eq', args: [1], custom: { unique_for: 1 } }));
      await cb.err('PUSH ' + JSON.stringify(makeJob({ queue: 'eq', args: [1], custom: { unique_for: 1 } })),
        NOTUNIQUE);
      await sleep(1200);
      await cb.push(makeJob({ queue: 'eq', args: [1], custom: { unique_for: 1 } }));

      await assert.rejects(client.query('SELECT spool.push($1::jsonb)',
        [JSON.stringify(makeJob({ custom: { unique_for: 'soon' } }))]), /invalid custom\.unique_for/);
    }))));
});
