'use strict';
// Job features on the PostgreSQL store that go beyond the shared conformance
// suite (docs/features.md): expiring jobs.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('pg');
const { withServer, makeJob, createDatabase, dropDatabase, pgDatabaseUrl } = require('../lib/spoold');

test('FETCH skips expired jobs even when more than a batch of them head the queue', async () => {
  const db = createDatabase('spool_feat');
  const url = pgDatabaseUrl(db);
  try {
    await withServer({ store: url }, async (srv) => {
      const client = new Client({ connectionString: url });
      await client.connect();
      try {
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
      } finally {
        await client.end();
      }
    });
  } finally {
    dropDatabase(db);
  }
});
