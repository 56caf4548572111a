'use strict';
// The npm client faktory-worker 4.7.1 as a producer and low-level client:
// connect (host/port and FAKTORY_URL-style URLs), push / job.push /
// pushBulk, fetch / ack / fail, info, flush, the Mutation API, beat, and
// password authentication.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { withServer, requireFaktory, newJid } = require('../lib/spoold');

const faktory = requireFaktory();
const { Client } = faktory;

// Runs fn(client) with a client that is always closed afterwards.
async function withClient(opts, fn) {
  const client = new Client(opts);
  try {
    await fn(client);
  } finally {
    await client.close();
  }
}

test('client.push, job.push and pushBulk store jobs that client.fetch returns intact', async () => {
  await withServer(async (srv) => {
    await withClient({ host: '127.0.0.1', port: srv.port }, async (client) => {
      await client.connect();
      const jid1 = await client.push({ jobtype: 'Add', args: [1, 2], queue: 'compat' });
      assert.equal(typeof jid1, 'string', 'client.push resolves with the jid');

      const job = client.job('Greet', 'world', { loud: true });
      job.queue = 'compat';
      job.custom = { trace: 'abc' };
      job.reserveFor = 120;
      const jid2 = await job.push();
      assert.equal(jid2, job.jid, 'job.push resolves with its jid');

      const bulk = [
        { jobtype: 'Bulk', args: [1], queue: 'compat' },
        { jobtype: 'Bulk', args: [2], queue: 'compat' },
        { jid: 'short', jobtype: 'Bulk', args: [3], queue: 'compat' },
      ];
      const rejected = await client.pushBulk(bulk);
      assert.deepEqual(Object.keys(rejected), ['short'], `pushBulk should reject only the short jid, got ${JSON.stringify(rejected)}`);
      assert.equal(rejected.short.reason, 'jobs must have a reasonable jid parameter', 'the reason is the server message');

      const info = await client.info();
      assert.equal(info.faktory.queues.compat, 4, `four jobs in compat, INFO: ${JSON.stringify(info.faktory.queues)}`);

      const a = await client.fetch('compat');
      assert.equal(a.jid, jid1, 'FIFO: first pushed first');
      assert.deepEqual(a.args, [1, 2], 'args of client.push');
      assert.equal(a.jobtype, 'Add', 'jobtype');
      // faktory-worker sends priority:5 (legacy); spool keeps unknown fields, Faktory would drop it
      const b = await client.fetch('compat');
      assert.equal(b.jid, jid2, 'second');
      assert.deepEqual(b.args, ['world', { loud: true }], 'args of job.push');
      assert.deepEqual(b.custom, { trace: 'abc' }, 'custom of job.push');
      assert.equal(b.reserve_for, 120, 'reserve_for of job.push');
      await client.ack(a.jid);
      await client.fail(b.jid, Object.assign(new Error('kaput'), { code: 'EKAPUT' }));
      const after = await client.info();
      assert.equal(after.faktory.total_processed, 2, 'ack and fail both count as processed');
      assert.equal(after.faktory.total_failures, 1, 'one failure');
      assert.equal(after.faktory.sets.retries, 1, 'the failed job is in retries');

      // Mutation API: bring the failed job back and look at its failure data
      await client.retries.withJids(b.jid).requeue();
      const again = await client.fetch('compat', 'other');
      // the two Bulk jobs are ahead of it in compat; find it
      const seen = [again, await client.fetch('compat'), await client.fetch('compat')];
      const back = seen.find((j) => j && j.jid === b.jid);
      assert.ok(back, `the requeued job should be fetchable, got ${JSON.stringify(seen.map((j) => j && j.jid))}`);
      assert.equal(back.failure.message, 'kaput', 'failure message from client.fail');
      assert.equal(back.failure.errtype, 'EKAPUT', 'errtype from client.fail (the error code)');
      assert.ok(Array.isArray(back.failure.backtrace) && back.failure.backtrace.length > 0, 'backtrace lines are kept');

      assert.equal(await client.flush(), 'OK', 'FLUSH through the client');
      const flushed = await client.info();
      assert.equal(flushed.faktory.total_enqueued, 0, 'nothing left after FLUSH');
    });
  });
});

test('a Client configured by URL (FAKTORY_URL form, with a password) connects and pushes', async () => {
  await withServer({ password: 'p@ss word' }, async (srv) => {
    const url = `tcp://:${encodeURIComponent('p@ss word')}@127.0.0.1:${srv.port}`;
    await withClient({ url }, async (client) => {
      await client.connect();
      await client.push({ jobtype: 'ViaUrl', args: [] });
      const info = await client.info();
      assert.equal(info.faktory.queues.default, 1, 'the job pushed through a URL-configured client arrived');
    });
  });
});

test('password authentication: the right password works, a wrong one is refused', async () => {
  await withServer({ password: 's3cret' }, async (srv) => {
    await withClient({ host: '127.0.0.1', port: srv.port, password: 's3cret' }, async (client) => {
      await client.connect();
      const jid = await client.push({ jobtype: 'Auth', args: ['ok'] });
      const job = await client.fetch('default');
      assert.equal(job.jid, jid, 'authenticated client pushes and fetches');
      await client.ack(jid);
    });
    const bad = new Client({ host: '127.0.0.1', port: srv.port, password: 'wrong' });
    await assert.rejects(bad.connect(), (e) => /Invalid password/.test(String(e && e.message)),
      'connect with a wrong password should reject with the server\'s "Invalid password" error');
    const none = new Client({ host: '127.0.0.1', port: srv.port });
    await assert.rejects(none.connect(), (e) => /Invalid password/.test(String(e && e.message)),
      'connect without a password should be refused when the server has one');
  });
});

test('client.beat for a worker client: OK while running, then the state set by another connection', async () => {
  await withServer(async (srv) => {
    const wid = 'cw-' + newJid().slice(0, 8);
    await withClient({ host: '127.0.0.1', port: srv.port, wid, labels: ['compat'] }, async (client) => {
      await client.connect(); // opens and closes one connection
      // the pool keeps a connection open after the first command
      assert.equal(await client.info().then(() => client.beat()), 'OK', 'BEAT of a running worker');
      const ops = await srv.connect();
      assert.equal(await ops.cmd(`BEAT {"wid":"${wid}","current_state":"quiet"}`), '{"state":"quiet"}', 'operator sets quiet');
      assert.equal(await client.beat(), 'quiet', 'the client sees quiet on its next BEAT');
      assert.equal(await ops.cmd(`BEAT {"wid":"${wid}","current_state":"terminate"}`), '{"state":"terminate"}', 'operator sets terminate');
      assert.equal(await client.beat(), 'terminate', 'the client sees terminate');
    });
  });
});
