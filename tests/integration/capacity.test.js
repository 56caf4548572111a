'use strict';
// Push limits (--max-jobs, --max-memory; docs/operations.md): a push over the
// limit is refused with an error naming the flag, by FWP PUSH and PUSHB, by
// the HTTP API (503) and for cron firings; nothing already held is dropped
// (also not at a restart with a lower limit); pushes work again once jobs
// drain; INFO and /metrics show the limits and the use.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { withServer, startServer, makeJob, httpGet, httpRequest, waitFor, makeTempDir, removeDir, runSpooldSync } = require('../lib/spoold');

function post(port, urlPath, body, timeoutMs = 5000) {
  return httpRequest(port, 'POST', urlPath, { body, headers: { 'Content-Type': 'application/json' }, timeoutMs });
}

function metric(text, name) {
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  assert.ok(m, `/metrics should have a ${name} line:\n${text.slice(0, 3000)}`);
  return Number(m[1]);
}

test('--max-jobs 5: the sixth push is refused by PUSH, PUSHB, HTTP and cron; accepted again after an ACK', async () => {
  const cfg = makeTempDir('spool-cap-cron-');
  try {
    fs.writeFileSync(path.join(cfg, 'cron.json'),
      JSON.stringify([{ name: 'tick', schedule: '@every 1s', jobtype: 'Tick', queue: 'cronq' }]));
    await withServer({ args: ['--max-jobs', '5'] }, async (srv) => {
      const c = await srv.connect();
      const held = [];
      for (let i = 0; i < 5; i++) held.push(await c.push(makeJob({ args: [i] })));
      const msg = await c.err('PUSH ' + JSON.stringify(makeJob()), /^ERR server full: /);
      assert.match(msg, /--max-jobs/, `the error names the flag: -${msg}`);
      assert.match(msg, /\b5\b/, `the error names the limit 5: -${msg}`);

      const extra = makeJob();
      const r = await c.cmdJSON('PUSHB ' + JSON.stringify([extra]));
      assert.deepEqual(Object.keys(r), [extra.jid], `PUSHB reports the refused job: ${JSON.stringify(r)}`);
      assert.match(r[extra.jid], /^server full: .*--max-jobs/, 'PUSHB names the limit');

      const h = await post(srv.httpPort, '/api/v1/jobs', makeJob());
      assert.equal(h.status, 503, `POST /api/v1/jobs over the limit answers 503, got ${h.status}: ${h.body}`);
      assert.match(h.body, /server full: .*--max-jobs/, `the HTTP error names the limit: ${h.body}`);
      const hb = await post(srv.httpPort, '/api/v1/jobs', [makeJob(), makeJob()]);
      assert.equal(hb.status, 503, `a batch where every job hit the limit answers 503, got ${hb.status}: ${hb.body}`);

      const info = await c.info();
      assert.deepEqual(
        { max_jobs: info.server.limits.max_jobs, jobs: info.server.limits.jobs, refused: info.server.limits.refused },
        { max_jobs: 5, jobs: 5, refused: 5 }, `INFO server.limits: ${JSON.stringify(info.server.limits)}`);
      assert.ok(info.server.limits.job_memory > 0, 'INFO counts the memory of the held jobs');
      assert.equal(info.faktory.total_enqueued, 5, 'the five accepted jobs are all still queued');

      const m = (await httpGet(srv.httpPort, '/metrics')).body;
      assert.equal(metric(m, 'spool_jobs_held'), 5);
      assert.equal(metric(m, 'spool_jobs_held_max'), 5);
      assert.equal(metric(m, 'spool_pushes_refused_full_total'), 5);

      // a worker drains one: room for exactly one more
      const job = await c.fetch();
      assert.equal(job.jid, held[0], 'FIFO: the first job');
      await c.ack(job.jid);
      await c.push(makeJob({ args: ['after drain'] }));
      await c.err('PUSH ' + JSON.stringify(makeJob()), /^ERR server full: /);
      // a FAIL turns a job into a retry, which is never refused even while full
      const f = await c.fetch();
      await c.fail(f.jid);
      assert.equal((await c.info()).faktory.sets.retries, 1, 'the failed job waits as a retry');
    });

    // cron firing while full: refused with a warning, the held jobs stay
    await withServer({ args: ['--max-jobs', '1', '-c', cfg] }, async (srv) => {
      const c = await srv.connect();
      await waitFor(async () => ((await c.info()).faktory.queues.cronq || 0) === 1, { what: 'the first cron job', timeoutMs: 4000 });
      await waitFor(() => /cron: the job was refused.*limit/.test(srv.stderr()), { what: 'a logged refusal of the next cron firing', timeoutMs: 4000 });
      assert.equal((await c.info()).faktory.queues.cronq, 1, 'the cron job already held stays; the refused one is not added');
    });
  } finally {
    removeDir(cfg);
  }
});

test('a restart with a lower --max-jobs keeps every held job and refuses new pushes until they drain', async () => {
  const dir = makeTempDir('spool-cap-');
  try {
    let srv = await startServer({ dir });
    let c = await srv.connect();
    for (let i = 0; i < 10; i++) await c.push(makeJob({ args: [i] }));
    await srv.stop();
    srv = await startServer({ dir, args: ['--max-jobs', '3'] });
    try {
      c = await srv.connect();
      assert.equal((await c.info()).faktory.total_enqueued, 10, 'all ten jobs recovered although the limit is 3');
      await c.err('PUSH ' + JSON.stringify(makeJob()), /^ERR server full: .*--max-jobs/);
      for (let i = 0; i < 8; i++) {
        const j = await c.fetch();
        await c.ack(j.jid);
      }
      await c.push(makeJob({ args: ['room again'] }));
      assert.equal((await c.info()).faktory.total_enqueued, 3, 'two left plus the new one');
    } finally {
      await srv.stop();
    }
  } finally {
    removeDir(dir);
  }
});

test('--max-memory 64K: jobs are refused once their estimated memory would pass it; sizes take suffixes', async () => {
  await withServer({ args: ['--max-memory', '64K'] }, async (srv) => {
    const c = await srv.connect();
    let accepted = 0;
    let refused = null;
    for (let i = 0; i < 100 && !refused; i++) { // 4 KB each: at most 16 fit
      const r = await c.cmdTyped('PUSH ' + JSON.stringify(makeJob({ args: ['x'.repeat(4000)] })));
      if (r.type === 'error') refused = r.value;
      else accepted++;
    }
    assert.ok(refused, 'a push was refused before 100 jobs of 4 KB');
    assert.match(refused, /^ERR server full: .*--max-memory/, `the error names --max-memory: -${refused}`);
    assert.match(refused, /65536/, `the error names the limit in bytes: -${refused}`);
    assert.ok(accepted >= 10 && accepted <= 16, `between 10 and 16 jobs of 4 KB fit in 64 KiB, got ${accepted}`);
    // a small job may still fit where a large one did not
    const lim = (await c.info()).server.limits;
    assert.equal(lim.max_memory, 65536);
    assert.ok(lim.job_memory <= 65536 && lim.job_memory > accepted * 4000, `job_memory ${lim.job_memory} for ${accepted} jobs`);
    const m = (await httpGet(srv.httpPort, '/metrics')).body;
    assert.equal(metric(m, 'spool_job_memory_max_bytes'), 65536);
    assert.equal(metric(m, 'spool_job_memory_bytes'), lim.job_memory);
    // drain all: memory returns to 0 and a big push fits again
    for (let i = 0; i < accepted; i++) await c.ack((await c.fetch()).jid);
    assert.equal((await c.info()).server.limits.job_memory, 0, 'no memory counted once every job is gone');
    await c.push(makeJob({ args: ['x'.repeat(4000)] }));
  });
});

test('bad --max-memory and --max-jobs values are refused at start with a message naming the flag', () => {
  for (const [flag, value] of [['--max-memory', '12X'], ['--max-memory', '-1'], ['--max-memory', ''], ['--max-jobs', 'many']]) {
    const r = runSpooldSync([flag, value, '--check-config']);
    assert.equal(r.status, 2, `${flag} ${JSON.stringify(value)} should exit 2, got ${r.status}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(flag), `the message names ${flag}: ${r.stderr}`);
  }
});
