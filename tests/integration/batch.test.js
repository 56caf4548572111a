'use strict';
// Batches over raw FWP and HTTP (docs/features.md "Batches"): BATCH
// NEW/OPEN/COMMIT/STATUS in Faktory Enterprise's shapes, jobs joining by
// custom.bid, complete and success callbacks firing once, child batches,
// the errors clients see, GET /api/v1/batches, and a batch carried across
// real restarts of spoold (SIGTERM and kill -9) with its callbacks fired
// exactly once.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const {
  withServer, startServer, makeJob, makeTempDir, removeDir, httpGet, parseUtc, requireFaktory, waitFor,
} = require('../lib/spoold');

// BATCH NEW replies with the bid as a bulk string.
async function batchNew(c, def) {
  const r = await c.cmdTyped('BATCH NEW ' + JSON.stringify(def));
  assert.equal(r.type, 'bulk', `BATCH NEW should reply with the bid (bulk), got ${JSON.stringify(r)}`);
  assert.match(r.value, /^b-[A-Za-z0-9]{20}$/, 'a bid is "b-" and 20 random characters');
  return r.value;
}

const status = (c, bid) => c.cmdJSON('BATCH STATUS ' + bid);

// One HTTP request with a JSON body; resolves {status, body}.
function httpSend(port, method, urlPath, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const headers = data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {};
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${urlPath}: no response within 5000 ms`)));
    req.on('error', (e) => reject(new Error(`${method} ${urlPath}: ${e.message}`)));
    if (data) req.write(data);
    req.end();
  });
}

function pick(s) {
  return {
    total: s.total, pending: s.pending, failed: s.failed, committed: s.committed,
    complete_st: s.complete_st, success_st: s.success_st,
  };
}

test('a batch: jobs join by custom.bid, complete fires after every job ran, success after all succeeded', async () => {
  await withServer({}, async (srv) => {
    const c = await srv.connect();
    const bid = await batchNew(c, {
      description: 'nightly import',
      success: { jobtype: 'Done', args: ['ok'], queue: 'cb' },
      complete: { jid: 'complete-cb-1', jobtype: 'Ran', args: [], queue: 'cb' },
    });
    const a = makeJob({ queue: 'bq', custom: { bid } });
    const b = makeJob({ queue: 'bq', custom: { bid } });
    await c.push(a);
    await c.push(b);
    let s = await status(c, bid);
    assert.deepEqual(pick(s), { total: 2, pending: 2, failed: 0, committed: false, complete_st: '', success_st: '' });
    assert.equal(s.bid, bid);
    assert.equal(s.description, 'nightly import');
    assert.equal(s.parent_bid, null);
    assert.ok(Math.abs(parseUtc(s.created_at, 'created_at') - Date.now()) < 60e3, 'created_at is about now');

    // Jobs run before the commit, but callbacks wait for it.
    assert.equal((await c.fetch(['bq'])).jid, a.jid);
    await c.ack(a.jid);
    assert.equal(await c.fetch(['cb'], { timeoutMs: 4000 }), null, 'no callback before COMMIT');
    await c.ok('BATCH COMMIT ' + bid);
    await c.ok('BATCH COMMIT ' + bid); // a repeat (lost reply) is harmless

    assert.equal((await c.fetch(['bq'])).jid, b.jid);
    await c.fail(b.jid);
    s = await status(c, bid);
    assert.deepEqual(pick(s), { total: 2, pending: 1, failed: 1, committed: true, complete_st: '1', success_st: '' },
      'every job ran once (one failed): complete fired, success waits');
    const done = await c.fetch(['cb']);
    assert.equal(done.jid, 'complete-cb-1', 'the complete callback keeps the jid the client gave it');
    assert.equal(done.jobtype, 'Ran');
    assert.deepEqual(done.custom, { _bid: bid, _cb: 'complete' }, 'a callback knows its batch');
    await c.ack(done.jid);
    assert.equal((await status(c, bid)).complete_st, '2', 'an acked callback is "2"');

    // The failed job is retried (requeued by hand here) and succeeds: success fires.
    await c.ok('MUTATE ' + JSON.stringify({ cmd: 'requeue', target: 'retries', filter: { jids: [b.jid] } }));
    assert.equal((await c.fetch(['bq'])).jid, b.jid);
    await c.ack(b.jid);
    s = await status(c, bid);
    assert.deepEqual(pick(s), { total: 2, pending: 0, failed: 0, committed: true, complete_st: '2', success_st: '1' });
    const ok = await c.fetch(['cb']);
    assert.equal(ok.jobtype, 'Done');
    assert.equal(ok.jid, `${bid}-success`, 'a callback without a jid gets one made from the bid');
    assert.deepEqual(ok.args, ['ok']);
    await c.ack(ok.jid);
    assert.equal((await status(c, bid)).success_st, '2');
    assert.equal(await c.fetch(['cb'], { timeoutMs: 4000 }), null, 'each callback fired exactly once');
  });
});

test('BATCH errors name what was wrong; pushes need an open batch', async () => {
  await withServer({}, async (srv) => {
    const c = await srv.connect();
    const cb = { jobtype: 'Cb', args: [], queue: 'cb' };
    await c.err('BATCH', /^ERR BATCH needs a subcommand/);
    await c.err('BATCH FOO x', /^ERR no such BATCH subcommand: FOO/);
    await c.err('BATCH NEW', /^ERR BATCH NEW needs a JSON object/);
    await c.err('BATCH NEW {nope', 'ERR invalid BATCH NEW: not a JSON object');
    await c.err('BATCH NEW {"description":"x"}', /^ERR invalid BATCH NEW: a batch needs a "success" or "complete" callback/);
    await c.err('BATCH NEW ' + JSON.stringify({ success: { args: [] } }), 'ERR invalid success callback: jobs must have a jobtype parameter');
    await c.err('BATCH NEW ' + JSON.stringify({ complete: 'Cb' }), 'ERR invalid complete callback: must be a job object');
    await c.err('BATCH NEW ' + JSON.stringify({ description: 5, success: cb }), 'ERR invalid BATCH NEW: "description" must be a string');
    await c.err('BATCH NEW ' + JSON.stringify({ parent_bid: 'b-nosuch', success: cb }), 'ERR unknown parent batch b-nosuch');
    await c.err('BATCH NEW ' + JSON.stringify({ success: cb }) + ',' + JSON.stringify({ complete: cb }),
      /^ERR invalid BATCH NEW: unexpected text after the definition at byte \d+$/);
    await c.err('BATCH NEW ' + JSON.stringify({ success: { ...cb, jid: 'cb-same-0001' }, complete: { ...cb, jid: 'cb-same-0001' } }),
      'ERR invalid BATCH NEW: the success and complete callbacks need different jids (both are cb-same-0001)');
    await c.err('BATCH OPEN', /^ERR BATCH OPEN needs a batch id/);
    await c.err('BATCH STATUS b-nosuch', 'ERR unknown batch b-nosuch');
    await c.err('BATCH COMMIT b-nosuch', 'ERR unknown batch b-nosuch');
    await c.err('BATCH OPEN b-nosuch', 'ERR unknown batch b-nosuch');
    await c.err('PUSH ' + JSON.stringify(makeJob({ custom: { bid: 'b-nosuch' } })),
      'ERR unknown batch b-nosuch in custom.bid: create one with BATCH NEW');
    await c.err('PUSH ' + JSON.stringify(makeJob({ custom: { bid: 7 } })), /^ERR invalid custom\.bid/);

    const bid = await batchNew(c, { success: cb });
    const first = makeJob({ queue: 'bq', custom: { bid } });
    await c.push(first);
    await c.ok('BATCH COMMIT ' + bid);
    const late = makeJob({ queue: 'bq', custom: { bid } });
    await c.err('PUSH ' + JSON.stringify(late),
      `ERR batch ${bid} is committed: BATCH OPEN it before pushing more jobs into it`);
    const errs = await c.cmdJSON('PUSHB ' + JSON.stringify([late]));
    assert.match(errs[late.jid], /is committed/, 'PUSHB reports the committed batch per job');
    await c.push(first); // re-sending a push whose reply was lost stays an idempotent +OK

    // Reopen, add, commit again: the batch now waits for both jobs.
    const r = await c.cmdTyped('BATCH OPEN ' + bid);
    assert.deepEqual(r, { type: 'bulk', value: bid }, 'BATCH OPEN replies with the bid');
    await c.push(late);
    await c.ok('BATCH COMMIT ' + bid);
    assert.deepEqual(pick(await status(c, bid)),
      { total: 2, pending: 2, failed: 0, committed: true, complete_st: '', success_st: '' });
    for (let i = 0; i < 2; i++) await c.ack((await c.fetch(['bq'])).jid);
    assert.equal((await status(c, bid)).success_st, '1');
    await c.err('BATCH OPEN ' + bid, `ERR batch ${bid} has completed and cannot be reopened`);
  });
});

test('an empty batch completes at COMMIT; a parent waits for its child batches', async () => {
  await withServer({}, async (srv) => {
    const c = await srv.connect();
    const empty = await batchNew(c, { complete: { jobtype: 'EmptyDone', args: [], queue: 'cb' } });
    await c.ok('BATCH COMMIT ' + empty);
    assert.equal((await c.fetch(['cb'])).jobtype, 'EmptyDone', 'an empty committed batch completes at once');
    const s = await status(c, empty);
    assert.deepEqual([s.complete_st, s.success_st], ['1', '2'], 'success had no callback: "2" at once');

    const parent = await batchNew(c, { success: { jobtype: 'ParentOk', args: [], queue: 'pcb' } });
    const child = await batchNew(c, { parent_bid: parent, success: { jobtype: 'ChildOk', args: [], queue: 'ccb' } });
    assert.equal((await status(c, child)).parent_bid, parent);
    await c.push(makeJob({ queue: 'pq', custom: { bid: parent } }));
    await c.push(makeJob({ queue: 'cq', custom: { bid: child } }));
    await c.ok('BATCH COMMIT ' + child);
    await c.ok('BATCH COMMIT ' + parent);
    await c.err('BATCH NEW ' + JSON.stringify({ parent_bid: parent, success: { jobtype: 'X', args: [] } }),
      `ERR parent batch ${parent} is committed: BATCH OPEN it before adding a child batch`);
    await c.ack((await c.fetch(['pq'])).jid);
    assert.equal((await status(c, parent)).success_st, '', 'the parent waits for its child');
    assert.equal(await c.fetch(['pcb'], { timeoutMs: 4000 }), null);
    await c.ack((await c.fetch(['cq'])).jid);
    assert.equal((await c.fetch(['ccb'])).jobtype, 'ChildOk', 'the child succeeds first');
    assert.equal((await c.fetch(['pcb'])).jobtype, 'ParentOk', 'then the parent');
    assert.equal((await status(c, parent)).success_st, '1');
  });
});

test('GET /api/v1/batches lists batches newest first; /batches/{bid} shows one', async () => {
  await withServer({}, async (srv) => {
    const c = await srv.connect();
    const bids = [];
    for (let i = 0; i < 3; i++) bids.push(await batchNew(c, { description: `b${i}`, success: { jobtype: 'S', args: [] } }));
    await c.push(makeJob({ custom: { bid: bids[1] } }));
    await c.ok('BATCH COMMIT ' + bids[1]);
    let r = await httpGet(srv.httpPort, '/api/v1/batches?limit=2');
    assert.equal(r.status, 200, r.body);
    let body = JSON.parse(r.body);
    assert.equal(body.total, 3);
    assert.deepEqual(body.batches.map((b) => b.bid), [bids[2], bids[1]], 'newest first, limit 2');
    const one = body.batches[1];
    assert.deepEqual(Object.keys(one).sort(), ['bid', 'committed', 'complete_st', 'created_at', 'description',
      'failed', 'parent_bid', 'pending', 'success_st', 'total']);
    assert.deepEqual(pick(one), { total: 1, pending: 1, failed: 0, committed: true, complete_st: '', success_st: '' });
    r = await httpGet(srv.httpPort, '/api/v1/batches?offset=2&limit=5');
    assert.deepEqual(JSON.parse(r.body).batches.map((b) => b.description), ['b0']);
    r = await httpGet(srv.httpPort, '/api/v1/batches/' + bids[0]);
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), await status(c, bids[0]), 'HTTP and BATCH STATUS agree');
    r = await httpGet(srv.httpPort, '/api/v1/batches/b-nosuch');
    assert.equal(r.status, 404);
    assert.match(r.body, /b-nosuch/, 'the 404 names the bid');
    r = await httpGet(srv.httpPort, '/api/v1/batches?limit=x');
    assert.equal(r.status, 400);
    r = await httpSend(srv.httpPort, 'POST', '/api/v1/batches', {});
    assert.equal(r.status, 405, 'batches are created over FWP only');

    // POST /api/v1/jobs follows the same joining rules as PUSH.
    r = await httpSend(srv.httpPort, 'POST', '/api/v1/jobs', makeJob({ custom: { bid: bids[0] } }));
    assert.equal(r.status, 202, r.body);
    assert.equal((await status(c, bids[0])).total, 1, 'a job pushed over HTTP joins the batch');
    r = await httpSend(srv.httpPort, 'POST', '/api/v1/jobs', makeJob({ custom: { bid: bids[1] } }));
    assert.equal(r.status, 409, r.body);
    assert.match(r.body, new RegExp(`batch ${bids[1]} is committed`));
    r = await httpSend(srv.httpPort, 'POST', '/api/v1/jobs', makeJob({ custom: { bid: 'b-gone' } }));
    assert.equal(r.status, 409, r.body);
    assert.match(r.body, /unknown batch b-gone/);
  });
});

test('a batch survives restarts mid-way (SIGTERM, then kill -9) and fires its callbacks exactly once', async () => {
  const dir = makeTempDir();
  try {
    let bid;
    const jobs = [0, 1, 2].map(() => makeJob({ queue: 'rq' }));
    const s1 = await startServer({ dir });
    try {
      const c = await s1.connect();
      bid = await batchNew(c, {
        complete: { jobtype: 'AllRan', args: [], queue: 'rcb' },
        success: { jobtype: 'AllOk', args: [], queue: 'rcb' },
      });
      for (const j of jobs) await c.push({ ...j, custom: { bid } });
      await c.ok('BATCH COMMIT ' + bid);
      assert.equal((await c.fetch(['rq'])).jid, jobs[0].jid);
      await c.ack(jobs[0].jid);
    } finally {
      await s1.stop();
    }
    const s2 = await startServer({ dir });
    try {
      const c = await s2.connect();
      assert.deepEqual(pick(await status(c, bid)),
        { total: 3, pending: 2, failed: 0, committed: true, complete_st: '', success_st: '' }, 'state after SIGTERM');
      assert.equal((await c.fetch(['rq'])).jid, jobs[1].jid);
      await c.ack(jobs[1].jid);
      assert.equal((await c.fetch(['rq'])).jid, jobs[2].jid);
      await c.ack(jobs[2].jid);
      const st = await status(c, bid);
      assert.deepEqual([st.complete_st, st.success_st], ['1', '1'], 'both fired after the last ack');
    } finally {
      await s2.kill9(); // the journal under --fsync always holds every acknowledged change
    }
    const s3 = await startServer({ dir });
    try {
      const c = await s3.connect();
      const st = await status(c, bid);
      assert.deepEqual(pick(st), { total: 3, pending: 0, failed: 0, committed: true, complete_st: '1', success_st: '1' });
      const first = await c.fetch(['rcb']);
      const second = await c.fetch(['rcb']);
      assert.deepEqual([first.jobtype, second.jobtype], ['AllRan', 'AllOk'], 'complete is queued before success');
      assert.equal(await c.fetch(['rcb'], { timeoutMs: 4000 }), null, 'no callback fired twice across the restarts');
      await c.ack(first.jid);
      await c.ack(second.jid);
      const done = await status(c, bid);
      assert.deepEqual([done.complete_st, done.success_st], ['2', '2']);
    } finally {
      await s3.stop();
    }
  } finally {
    removeDir(dir);
  }
});

test('jobs pushed and run by the faktory-worker npm client count in a batch', async () => {
  const faktory = requireFaktory();
  await withServer({}, async (srv) => {
    const c = await srv.connect();
    const bid = await batchNew(c, { success: { jobtype: 'NodeDone', args: [], queue: 'ncb' } });
    const client = await faktory.connect({ host: '127.0.0.1', port: srv.port });
    try {
      for (let i = 0; i < 3; i++) {
        const job = client.job('NodeWork', i);
        job.queue = 'nq';
        job.custom = { bid };
        await job.push();
      }
    } finally {
      await client.close();
    }
    await c.ok('BATCH COMMIT ' + bid);
    const seen = [];
    const worker = new faktory.Worker({ host: '127.0.0.1', port: srv.port, queues: ['nq'], concurrency: 1 });
    worker.register('NodeWork', async (n) => { seen.push(n); });
    await worker.work();
    try {
      await waitFor(async () => (await status(c, bid)).success_st === '1', { what: 'success after the worker acked all three' });
    } finally {
      await worker.stop();
    }
    assert.deepEqual(seen.sort(), [0, 1, 2]);
    assert.equal((await c.fetch(['ncb'])).jobtype, 'NodeDone');
  });
});
