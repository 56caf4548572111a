'use strict';
// faktory-worker 4.7.1's Worker against spoold: registered job functions over
// several queues, failures landing in retries with message and errtype,
// heartbeats, and quiet/terminate pushed from the server side through BEAT.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { withServer, requireFaktory, newJid, waitFor } = require('../lib/spoold');

const { Client, Worker } = requireFaktory();

// Starts a Worker; the returned stop() is idempotent and always awaited.
async function startWorker(srv, opts) {
  const worker = new Worker({ host: '127.0.0.1', port: srv.port, ...opts });
  const errors = [];
  worker.on('error', (e) => errors.push(e));
  let stopped = null;
  const origStop = worker.stop.bind(worker);
  worker.stopCalls = 0;
  worker.stop = () => {
    worker.stopCalls++;
    if (!stopped) stopped = origStop();
    return stopped;
  };
  await worker.work();
  return { worker, errors, stop: () => worker.stop() };
}

test('a Worker runs registered jobs from several queues with their args and ACKs them', async () => {
  await withServer(async (srv) => {
    const client = new Client({ host: '127.0.0.1', port: srv.port });
    const ran = [];
    const registry = {
      Add: async (a, b) => { ran.push({ type: 'Add', args: [a, b], sum: a + b }); },
      Echo: (...args) => async (ctx) => { ran.push({ type: 'Echo', args, jid: ctx.job.jid, queue: ctx.job.queue }); },
    };
    const w = await startWorker(srv, { queues: ['critical', 'default', 'low'], concurrency: 4, registry });
    try {
      const pushed = [];
      pushed.push(await client.push({ jobtype: 'Add', args: [1, 2], queue: 'critical' }));
      pushed.push(await client.push({ jobtype: 'Echo', args: ['x', { y: [1] }], queue: 'low' }));
      pushed.push(await client.push({ jobtype: 'Add', args: [40, 2] }));
      const e = client.job('Echo', 'via job.push');
      e.queue = 'critical';
      pushed.push(await e.push());
      await waitFor(async () => {
        const f = (await client.info()).faktory;
        return f.total_processed === 4 && f.sets.working === 0 ? f : null;
      }, { timeoutMs: 15000, what: 'the worker to process and ACK all 4 jobs (INFO total_processed 4, working 0)' });
      assert.equal(ran.length, 4, `each job ran once, ran: ${JSON.stringify(ran)}`);
      const sums = ran.filter((r) => r.type === 'Add').map((r) => r.sum).sort((x, y) => x - y);
      assert.deepEqual(sums, [3, 42], 'Add jobs got their args');
      const echoes = ran.filter((r) => r.type === 'Echo');
      assert.deepEqual(echoes.find((r) => r.queue === 'low').args, ['x', { y: [1] }], 'Echo from low got its args');
      assert.deepEqual(echoes.find((r) => r.queue === 'critical').args, ['via job.push'], 'Echo from critical got its args');
      const info = await client.info();
      assert.equal(info.faktory.total_failures, 0, 'no failures');
      assert.equal(info.faktory.total_enqueued, 0, 'queues drained');
      assert.deepEqual(w.errors.map(String), [], 'the worker reported no errors');
    } finally {
      await w.stop();
      await client.close();
    }
  });
});

test('a throwing job lands in retries with its message and errtype', async () => {
  await withServer(async (srv) => {
    const client = new Client({ host: '127.0.0.1', port: srv.port });
    try {
      const failures = [];
      const registry = {
        Explode: async (what) => {
          const e = new Error(`exploded: ${what}`);
          e.code = 'EEXPLODE';
          throw e;
        },
      };
      const w = await startWorker(srv, { queues: ['boom'], concurrency: 2, registry });
      w.worker.on('fail', ({ job, error }) => failures.push({ jid: job.jid, message: error.message }));
      let jid;
      try {
        jid = await client.push({ jobtype: 'Explode', args: ['kaboom'], queue: 'boom', retry: 3 });
        // the worker emits 'fail' once spoold has answered its FAIL, so wait for both
        await waitFor(async () => failures.length === 1 && (await client.info()).faktory.sets.retries === 1,
          { timeoutMs: 15000, what: 'the worker to FAIL the job and the job to appear in INFO sets.retries' });
        assert.deepEqual(failures, [{ jid, message: 'exploded: kaboom' }], 'the worker FAILed the job once');
        const f = (await client.info()).faktory;
        assert.equal(f.total_failures, 1, 'one failure counted');
        assert.equal(f.sets.working, 0, 'no reservation left');
        assert.deepEqual(w.errors.map(String), [], 'the worker reported no errors');
      } finally {
        await w.stop();
      }
      // with the worker gone, bring the job back and inspect its failure
      await client.retries.withJids(jid).requeue();
      const job = await client.fetch('boom');
      assert.ok(job, 'the requeued job is fetchable');
      assert.equal(job.jid, jid, 'it is the failed job');
      assert.equal(job.failure.message, 'exploded: kaboom', 'failure.message is the thrown message');
      assert.equal(job.failure.errtype, 'EEXPLODE', 'failure.errtype is what faktory-worker sends (the error code)');
      assert.equal(job.failure.retry_count, 0, 'first failure');
      assert.equal(job.failure.remaining, 3, 'remaining = retry');
      assert.ok(job.failure.backtrace.some((l) => l.includes('exploded: kaboom')), 'the stack trace is kept as backtrace');
    } finally {
      await client.close();
    }
  });
});

test('the server sees a Worker\'s heartbeat process, and quiet/terminate set via BEAT reach it', async () => {
  await withServer(async (srv) => {
    const wid = 'cw-' + newJid().slice(0, 8);
    const w = await startWorker(srv, { wid, queues: ['hb'], concurrency: 2, beatInterval: 0.2, registry: { Noop: () => {} } });
    const ops = await srv.connect();
    try {
      // work() has sent its first BEAT: the process is registered
      assert.equal(await ops.cmd(`BEAT {"wid":"${wid}"}`), 'OK', 'the worker\'s wid is a known, running process');
      const before = (await ops.info()).server.connections;
      assert.ok(before >= 2, `the worker holds at least one connection, connections=${before}`);

      assert.equal(await ops.cmd(`BEAT {"wid":"${wid}","current_state":"quiet"}`), '{"state":"quiet"}', 'operator sets quiet');
      await waitFor(() => w.worker.quieted === true, { timeoutMs: 5000, what: 'the worker to go quiet after its next heartbeat' });
      assert.equal(w.worker.stopCalls, 0, 'quiet does not stop the worker');

      assert.equal(await ops.cmd(`BEAT {"wid":"${wid}","current_state":"terminate"}`), '{"state":"terminate"}', 'operator sets terminate');
      await waitFor(() => w.worker.stopCalls > 0, { timeoutMs: 5000, what: 'the worker to stop after it sees terminate' });
      await w.stop();
      // all of the worker's connections are closed; only ops is left
      await waitFor(async () => (await ops.info()).server.connections === 1,
        { timeoutMs: 5000, what: 'the stopped worker\'s connections to close (INFO server.connections back to 1)' });
      await waitFor(async () => {
        const r = await ops.cmd(`BEAT {"wid":"${wid}"}`);
        return r && r.error === `ERR unknown worker ${wid}`;
      }, { timeoutMs: 5000, what: 'the process record to go away with the worker\'s last connection' });
      assert.deepEqual(w.errors.map(String), [], 'the worker reported no errors');
    } finally {
      await w.stop();
    }
  });
});
