'use strict';
// Mixed load with the real client: 4 producers push 2,000 jobs over two
// queues while 4 Workers (concurrency 10 each) process them; every 10th job
// throws and carries retry:0, so it is discarded after one failure. At the
// end INFO must agree exactly with what the workers did.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { withServer, requireFaktory, waitFor } = require('../lib/spoold');

const { Client, Worker } = requireFaktory();

const PRODUCERS = 4;
const JOBS = 2000;
const WORKERS = 4;
const CONCURRENCY = 10;
const QUEUES = ['load-a', 'load-b'];
const DEADLINE_MS = 60000;

test('4 producers x 4 workers, 2,000 jobs, 10% failing with retry:0: INFO totals add up', { timeout: 100000 }, async (t) => {
  await withServer(async (srv) => {
    const executions = new Map(); // jid -> times run
    let okRuns = 0;
    let failRuns = 0;
    const failEvents = [];
    const workerErrors = [];

    const registry = {
      Load: async (n, shouldFail) => {
        if (shouldFail) {
          failRuns++;
          const e = new Error(`planned failure ${n}`);
          e.code = 'EPLANNED';
          throw e;
        }
        okRuns++;
      },
    };
    // count executions per jid through middleware (sees ctx.job)
    const countRuns = async (ctx, next) => {
      executions.set(ctx.job.jid, (executions.get(ctx.job.jid) || 0) + 1);
      await next();
    };

    const workers = [];
    for (let k = 0; k < WORKERS; k++) {
      const w = new Worker({
        host: '127.0.0.1',
        port: srv.port,
        queues: k % 2 ? [...QUEUES].reverse() : QUEUES,
        concurrency: CONCURRENCY,
        registry,
        middleware: [countRuns],
      });
      w.on('error', (e) => workerErrors.push(String(e && e.stack ? e.stack : e)));
      w.on('fail', (ev) => failEvents.push(ev.job.jid));
      workers.push(w);
    }
    const producers = Array.from({ length: PRODUCERS }, () => new Client({ host: '127.0.0.1', port: srv.port, poolSize: 8 }));
    const t0 = Date.now();
    try {
      for (const w of workers) await w.work();

      let expectedFailures = 0;
      for (let n = 0; n < JOBS; n++) if (n % 10 === 0) expectedFailures++;
      const pushedJids = [];
      const perProducer = JOBS / PRODUCERS;
      await Promise.all(producers.map(async (client, p) => {
        // 8 pushes in flight per producer
        const lanes = Array.from({ length: 8 }, async (_, lane) => {
          for (let i = lane; i < perProducer; i += 8) {
            const n = p * perProducer + i;
            const shouldFail = n % 10 === 0;
            const job = { jobtype: 'Load', args: [n, shouldFail], queue: QUEUES[n % QUEUES.length] };
            if (shouldFail) job.retry = 0;
            pushedJids.push(await client.push(job));
          }
        });
        await Promise.all(lanes);
      }));
      const pushedMs = Date.now() - t0;
      assert.equal(pushedJids.length, JOBS, 'every push was acknowledged with a jid');
      assert.equal(new Set(pushedJids).size, JOBS, 'jids are unique');

      const info = await producers[0].info();
      let last = info.faktory;
      await waitFor(async () => {
        last = (await producers[0].info()).faktory;
        // a worker emits 'fail' only after spoold answered its FAIL, so wait for those too
        return last.total_processed >= JOBS && last.sets.working === 0 && last.total_enqueued === 0 &&
          failEvents.length >= expectedFailures;
      }, { timeoutMs: Math.max(5000, DEADLINE_MS - (Date.now() - t0)), intervalMs: 100,
        what: `all ${JOBS} jobs to be processed within ${DEADLINE_MS} ms (ran ok=${okRuns} fail=${failRuns})` });
      const doneMs = Date.now() - t0;

      const f = (await producers[0].info()).faktory;
      const summary = `pushed ${JOBS} in ${pushedMs} ms, all processed in ${doneMs} ms; ` +
        `ran ok=${okRuns} failed=${failRuns}; INFO total_processed=${f.total_processed} ` +
        `total_failures=${f.total_failures} queues=${JSON.stringify(f.queues)} sets=${JSON.stringify(f.sets)}`;
      t.diagnostic(summary);
      console.log(summary);

      assert.equal(failRuns, expectedFailures, `each of the ${expectedFailures} failing jobs ran once`);
      assert.equal(okRuns, JOBS - expectedFailures, `each of the ${JOBS - expectedFailures} good jobs ran once`);
      const dup = [...executions].filter(([, n]) => n !== 1);
      assert.deepEqual(dup.slice(0, 10), [], `no job ran more than once (${dup.length} did)`);
      assert.equal(executions.size, JOBS, 'every pushed job ran');
      assert.equal(f.total_processed, okRuns + failRuns, 'INFO total_processed = acked + failed');
      assert.equal(f.total_failures, failRuns, 'INFO total_failures = failures');
      assert.equal(failEvents.length, failRuns, 'the workers FAILed every failing job');
      assert.equal(f.total_enqueued, 0, 'all queues are empty');
      for (const q of QUEUES) assert.equal(f.queues[q] || 0, 0, `queue ${q} is empty`);
      assert.deepEqual(f.sets, { scheduled: 0, retries: 0, dead: 0, working: 0 },
        'retry:0 failures are discarded: no retries, no dead, nothing reserved');
      assert.deepEqual(workerErrors.slice(0, 5), [], `the workers reported no errors (${workerErrors.length})`);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await Promise.all(producers.map((c) => c.close()));
    }
  });
});
