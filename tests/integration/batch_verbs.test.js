'use strict';
// spool's native batch verbs (docs/protocol.md): the "spool" key of the HI
// greeting, FETCHN <n> queues... and ACKN {"jids":[...]}; their ordering,
// blocking, errors, and durability across kill -9.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { withServer, startServer, makeJob, makeTempDir, removeDir } = require('../lib/spoold');

async function fetchn(c, n, queues, opts) {
  const line = `FETCHN ${n} ${queues.join(' ')}`;
  const r = await c.cmdTyped(line, { timeoutMs: 6000, ...opts });
  if (r.type === 'null') return null;
  assert.equal(r.type, 'bulk', `${line} should reply with a JSON array (bulk) or $-1, got ${JSON.stringify(r)}`);
  const jobs = JSON.parse(r.value);
  assert.ok(Array.isArray(jobs), `${line} should reply with a JSON array, got ${r.value}`);
  return jobs;
}

async function ackn(c, jids) {
  return c.cmdJSON('ACKN ' + JSON.stringify({ jids }));
}

test('the greeting advertises the batch limits; password greetings carry them too', async () => {
  await withServer({ password: 'pw' }, async (srv) => {
    const c = await srv.connect();
    assert.deepEqual(c.greeting.spool, { fetch_max: 100, ack_max: 1000, push_max: 1000 },
      `greeting should carry the spool key, got ${JSON.stringify(c.greeting)}`);
    assert.ok(c.greeting.s && c.greeting.i, 'the password fields stay in the greeting');
  });
});

test('FETCHN returns up to n jobs in FETCH order: queue priority, then FIFO', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const low = [];
    const high = [];
    for (let k = 0; k < 5; k++) low.push(await c.push(makeJob({ queue: 'low', args: [k] })));
    for (let k = 0; k < 3; k++) high.push(await c.push(makeJob({ queue: 'high', args: [k] })));
    const got = await fetchn(c, 6, ['high', 'low']);
    assert.deepEqual(got.map((j) => j.jid), [...high, ...low.slice(0, 3)],
      'the first 6 jobs: all of high in push order, then the oldest of low');
    assert.equal(got[0].queue, 'high', 'jobs are rendered like FETCH (queue filled in)');
    assert.equal(got[0].retry, 25, 'jobs are rendered like FETCH (retry default)');
    assert.deepEqual(got[3].args, [0], 'args survive');
    const rest = await fetchn(c, 100, ['high', 'low']);
    assert.deepEqual(rest.map((j) => j.jid), low.slice(3), 'a larger n returns what is left, no more');
    const info = await c.info();
    assert.equal(info.faktory.sets.working, 8, `every fetched job is reserved, got ${JSON.stringify(info.faktory.sets)}`);
  });
});

test('FETCHN blocks when nothing is there and is woken by a PUSH with that one job', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const p = await srv.connect();
    c.send('FETCHN 10 wake\r\n');
    const job = makeJob({ queue: 'wake' });
    await p.push(job);
    const r = await c.readTyped(5000);
    assert.equal(r.type, 'bulk', `the blocked FETCHN should get a bulk reply, got ${JSON.stringify(r)}`);
    assert.deepEqual(JSON.parse(r.value).map((j) => j.jid), [job.jid], 'the pushed job, as an array of one');
    const t0 = Date.now();
    const none = await fetchn(c, 3, ['empty']);
    assert.equal(none, null, 'an empty queue gives $-1 after the FETCH block');
    assert.ok(Date.now() - t0 >= 1500, 'FETCHN on empty queues blocks like FETCH (about 2 s)');
  });
});

test('ACKN acknowledges many jobs in one durable reply; unknown jids are accepted, bad entries reported', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const jids = [];
    for (let k = 0; k < 4; k++) jids.push(await c.push(makeJob({ queue: 'ackq' })));
    const got = await fetchn(c, 4, ['ackq']);
    assert.equal(got.length, 4, 'four jobs fetched');
    const r = await ackn(c, [jids[0], 'nosuchjob123', jids[1], 7, '', jids[2]]);
    assert.deepEqual(r, {
      acked: 3,
      errors: { '[3]': 'a job id must be a non-empty string', '[4]': 'a job id must be a non-empty string' },
    }, 'three acked, the unknown jid accepted silently, the two bad entries named by index');
    const info = await c.info();
    assert.equal(info.faktory.sets.working, 1, 'one job is still reserved');
    assert.equal(info.faktory.total_processed, 3, 'ACKN counts processed like ACK');
    const again = await ackn(c, [jids[0], jids[3]]);
    assert.deepEqual(again, { acked: 1, errors: {} }, 'a repeated ACK is accepted, only the new one counts');
  });
});

test('FETCHN and ACKN refuse bad input with a message that names the problem', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await c.err('FETCHN', /^ERR FETCHN needs a count and queues/);
    await c.err('FETCHN x default', /^ERR FETCHN needs a count from 1 to 100/);
    await c.err('FETCHN 0 default', /^ERR FETCHN needs a count from 1 to 100/);
    await c.err('FETCHN 101 default', /^ERR FETCHN needs a count from 1 to 100/);
    await c.err('FETCHN -3 default', /^ERR FETCHN needs a count from 1 to 100/);
    await c.err('ACKN', /^ERR ACKN needs job ids/);
    await c.err('ACKN [1,2]', /^ERR invalid ACKN: needs \{"jids":\[\.\.\.\]\} with 1 to 1000 job ids/);
    await c.err('ACKN {"jids":[]}', /^ERR invalid ACKN/);
    await c.err('ACKN {"jids":"abc"}', /^ERR invalid ACKN/);
    await c.err('ACKN {"jids":[' + Array(1001).fill('"abcdefghij"').join(',') + ']}', /^ERR invalid ACKN/);
    await c.err('ACKN {not json', /^ERR invalid ACKN/);
    // the connection is still usable, and FETCHN with no queue means default
    const j = await c.push(makeJob());
    const got = await fetchn(c, 1, []);
    assert.deepEqual(got.map((x) => x.jid), [j], 'FETCHN 1 with no queues fetches from default');
  });
});

test('pushed and ACKNed state survives kill -9: acked jobs never come back, the rest do', async () => {
  const dir = makeTempDir();
  try {
    const s1 = await startServer({ dir });
    const jobs = [];
    try {
      const c = await s1.connect();
      for (let k = 0; k < 20; k++) jobs.push(makeJob({ queue: 'dur', args: [k], reserve_for: 60 }));
      const perr = await c.cmdJSON('PUSHB ' + JSON.stringify(jobs));
      assert.deepEqual(perr, {}, 'all 20 pushed');
      const got = await fetchn(c, 12, ['dur']);
      assert.equal(got.length, 12, 'twelve fetched');
      const r = await ackn(c, got.slice(0, 10).map((j) => j.jid));
      assert.deepEqual(r, { acked: 10, errors: {} }, 'ten acked before the crash');
    } finally {
      await s1.kill9();
    }
    const s2 = await startServer({ dir });
    try {
      const c = await s2.connect();
      const info = await c.info();
      assert.equal(info.faktory.total_processed, 10, 'the ten acknowledgements survive kill -9');
      assert.equal(info.faktory.sets.working, 2, 'the two fetched but unacked jobs are still reserved');
      assert.equal(info.faktory.queues.dur, 8, 'the eight never fetched are still queued');
      const rest = await fetchn(c, 100, ['dur']);
      assert.deepEqual(rest.map((j) => j.args[0]), [12, 13, 14, 15, 16, 17, 18, 19],
        'the queued jobs come back in push order and no acked job is delivered again');
    } finally {
      await s2.stop();
    }
  } finally {
    removeDir(dir);
  }
});

test('spoold --plain-fwp offers no batch verbs: plain greeting, FETCHN and ACKN unknown', async () => {
  await withServer({ args: ['--plain-fwp'] }, async (srv) => {
    const c = await srv.connect();
    assert.deepEqual(c.greeting, { v: 2 }, 'the greeting is plain FWP');
    await c.err('FETCHN 2 default', 'ERR unknown command FETCHN');
    await c.err('ACKN {"jids":["abcdefghij"]}', 'ERR unknown command ACKN');
    const j = await c.push(makeJob());
    assert.equal((await c.fetch(['default'])).jid, j, 'plain FETCH still works');
  });
});
