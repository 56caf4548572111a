'use strict';
// Transactional enqueue on the PostgreSQL store (docs/postgres.md): a job
// pushed with spool.push() inside an application's transaction exists, and
// wakes blocked fetchers, only if that transaction commits. Also runs the
// examples in examples/postgres so they cannot rot.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { withServer, makeJob, newJid, within, sleep, withPgDatabase, withPgClient } = require('../lib/spoold');

const EXAMPLES = process.env.SPOOL_EXAMPLES || path.join(__dirname, '..', '..', 'examples', 'postgres');

/** Starts spoold on a fresh database and hands fn the server and a pg client on the same database. */
function withStore(fn) {
  return withPgDatabase('spool_txn', (url) =>
    withServer({ store: url }, (srv) => withPgClient(url, (client) => fn(srv, client, url))));
}

async function jobCount(client, jid) {
  const { rows } = await client.query('SELECT count(*)::int AS n FROM spool.jobs WHERE jid = $1', [jid]);
  return rows[0].n;
}

test('a push in a rolled-back transaction leaves no job', async () => {
  await withStore(async (srv, client) => {
    const job = makeJob({ queue: 'txq' });
    await client.query('BEGIN');
    const { rows } = await client.query('SELECT spool.push($1::jsonb) AS jid', [JSON.stringify(job)]);
    assert.equal(rows[0].jid, job.jid, 'spool.push returns the jid');
    assert.equal(await jobCount(client, job.jid), 1, 'inside the transaction the row is there');
    await client.query('ROLLBACK');
    assert.equal(await jobCount(client, job.jid), 0, 'after ROLLBACK spool.jobs has no such jid');
    const c = await srv.connect();
    assert.equal(await c.fetch(['txq']), null, 'a FETCH of the queue finds nothing');
    const info = await c.info();
    assert.equal(info.faktory.queues.txq, undefined, 'the rolled-back push did not even create the queue');
  });
});

test('a blocked FETCH is woken at COMMIT, not before', async () => {
  await withStore(async (srv, client) => {
    const c = await srv.connect();
    const job = makeJob({ queue: 'txw', args: ['hello'] });
    await client.query('BEGIN');
    await client.query('SELECT spool.push($1::jsonb)', [JSON.stringify(job)]);
    let fetched = null;
    const t0 = Date.now();
    const pending = c.fetch(['txw']).then((j) => { fetched = j; return j; });
    await sleep(400);
    assert.equal(fetched, null, 'the FETCH must not see an uncommitted job');
    const tCommit = Date.now();
    await client.query('COMMIT');
    const got = await within(pending, 3000, 'timeout');
    assert.notEqual(got, 'timeout', 'the FETCH should answer after COMMIT');
    assert.ok(got, `the FETCH should get the job after COMMIT, got ${JSON.stringify(got)} after ${Date.now() - t0} ms`);
    assert.equal(got.jid, job.jid);
    assert.deepEqual(got.args, ['hello']);
    assert.ok(Date.now() - tCommit < 1000, `woken within a second of COMMIT (took ${Date.now() - tCommit} ms)`);
    await c.ack(got.jid);
  });
});

test('spool.push refuses bad jobs with an SQL error that names the field', async () => {
  await withStore(async (srv, client) => {
    const cases = [
      [{ args: [] }, /jobtype must be a non-empty string/],
      [{ jobtype: 'X', args: 'nope' }, /args must be an array/],
      [{ jobtype: 'X', args: [], jid: 'short' }, /jid must be a string of at least 8 characters/],
      [{ jobtype: 'X', args: [], queue: 'no spaces' }, /queue name no spaces is not valid/],
      [{ jobtype: 'X', args: [], at: 'tomorrow' }, /at must be an RFC 3339 time, not tomorrow/],
      [[1, 2], /a job must be a JSON object/],
    ];
    for (const [job, re] of cases) {
      await assert.rejects(client.query('SELECT spool.push($1::jsonb)', [JSON.stringify(job)]), re,
        `spool.push(${JSON.stringify(job)}) should fail with ${re}`);
    }
    const jid = newJid();
    await client.query('SELECT spool.push($1::jsonb)', [JSON.stringify({ jid, jobtype: 'X', args: [1] })]);
    await client.query('SELECT spool.push($1::jsonb)', [JSON.stringify({ jid, jobtype: 'X', args: [1] })]);
    assert.equal(await jobCount(client, jid), 1, 'the same job pushed twice is stored once');
    await assert.rejects(client.query('SELECT spool.push($1::jsonb)', [JSON.stringify({ jid, jobtype: 'Y', args: [1] })]),
      (e) => e.code === '23505' && /already in use by a different job/.test(e.message),
      'a different job under that jid is refused with SQLSTATE 23505');
    const { rows } = await client.query(`SELECT spool.push('{"jobtype":"Gen","args":[]}') AS jid`);
    assert.match(rows[0].jid, /^[0-9a-f]{32}$/, 'a jid is generated when absent');
    const c = await srv.connect();
    const scheduled = makeJob({ at: new Date(Date.now() + 3600e3).toISOString() });
    await client.query('SELECT spool.push($1::jsonb)', [JSON.stringify(scheduled)]);
    assert.equal((await c.info()).faktory.sets.scheduled, 1, '"at" in the future schedules the job');
  });
});

test('the examples: an order and its job commit together; a failed order leaves no job', async () => {
  await withStore(async (srv, client, url) => {
    const run = (args) => spawnSync(process.execPath, [path.join(EXAMPLES, 'enqueue.js'), ...args],
      { env: { ...process.env, DATABASE_URL: url }, encoding: 'utf8', timeout: 30000 });
    let r = run(['42', 'ada@example.com']);
    assert.equal(r.status, 0, `enqueue.js should succeed: ${r.stderr}`);
    assert.match(r.stdout, /order 42 stored, receipt job [0-9a-f]{32} enqueued/);
    r = run(['42', 'again@example.com']);
    assert.equal(r.status, 1, 'a second order 42 breaks the primary key');
    assert.match(r.stderr, /enqueue failed: .*duplicate key/);
    const c = await srv.connect();
    const job = await c.fetch(['mail']);
    assert.ok(job, 'the committed order\'s job is there');
    assert.equal(job.jobtype, 'SendReceipt');
    assert.deepEqual(job.args, [42]);
    await c.ack(job.jid);
    const { rows } = await client.query("SELECT count(*)::int AS n FROM spool.jobs WHERE queue = 'mail'");
    assert.equal(rows[0].n, 0, 'the rolled-back second order left no job behind');

    const sql = spawnSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', url, '-f', path.join(EXAMPLES, 'enqueue.sql')],
      { encoding: 'utf8', timeout: 30000 });
    assert.equal(sql.status, 0, `enqueue.sql should run: ${sql.stderr}`);
    const info = await c.info();
    assert.equal(info.faktory.queues.mail, 1, 'enqueue.sql enqueued its receipt');
    assert.equal(info.faktory.sets.scheduled, 1, 'and scheduled its survey');
  });
});
