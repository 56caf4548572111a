'use strict';
// JOBS, WORKERS and INFO's faktory.paused: the spool extensions of FWP
// (docs/protocol.md, "JOBS and WORKERS (spool extensions)").

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { withServer, makeJob, newJid, parseUtc, waitFor } = require('../lib/spoold');

const HOUR = 3600e3;
const DAY = 24 * HOUR;

function jobsLine(req) {
  return 'JOBS ' + JSON.stringify(req);
}

/** JOBS req; asserts the reply's shape and returns it. */
async function jobs(c, req) {
  const page = await c.cmdJSON(jobsLine(req));
  assert.ok(Array.isArray(page.jobs), `JOBS ${JSON.stringify(req)} should answer a "jobs" array: ${JSON.stringify(page)}`);
  for (const k of ['total', 'offset', 'limit']) {
    assert.equal(typeof page[k], 'number', `JOBS ${JSON.stringify(req)} should answer a number "${k}": ${JSON.stringify(page)}`);
  }
  return page;
}

const jids = (page) => page.jobs.map((e) => e.job.jid);

/** Pushes n jobs to queue with PUSHB; returns their jids in push order. */
async function pushMany(c, queue, n, fields = {}) {
  const all = [];
  for (let i = 0; i < n; i += 500) {
    const batch = [];
    for (let k = i; k < Math.min(n, i + 500); k++) batch.push(makeJob({ queue, args: [k], ...fields }));
    const r = await c.cmdJSON('PUSHB ' + JSON.stringify(batch));
    assert.deepEqual(r, {}, 'PUSHB should store every job');
    all.push(...batch.map((j) => j.jid));
  }
  return all;
}

/** Push, fetch and FAIL each job (so it goes to retries, or dead with retry -1). */
async function failAll(c, list) {
  for (const j of list) {
    await c.push(j);
    const got = await c.fetch([j.queue]);
    assert.equal(got && got.jid, j.jid, `fetch ${j.jid} to fail it`);
    await c.fail(j.jid, { errtype: 'Boom', message: `failed ${j.args[0]}` });
  }
}

function assertAscending(page, what) {
  const ts = page.jobs.map((e, i) => parseUtc(e.at, `${what} entry ${i} at`));
  for (let i = 1; i < ts.length; i++) {
    assert.ok(ts[i - 1] <= ts[i], `${what} should be in time order, entry ${i - 1} at ${page.jobs[i - 1].at} > entry ${i} at ${page.jobs[i].at}`);
  }
}

test('JOBS scheduled: time order (not push order), each entry is {at, job} with at the job\'s at', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const now = Date.now();
    const offsets = [5, 1, 4, 2, 3];
    const pushed = offsets.map((h) => makeJob({ at: new Date(now + h * HOUR).toISOString(), args: [h] }));
    for (const j of pushed) await c.push(j);
    const page = await jobs(c, { target: 'scheduled' });
    assert.equal(page.total, 5);
    assert.equal(page.offset, 0, 'offset defaults to 0');
    assert.equal(page.limit, 50, 'limit defaults to 50');
    const byHour = [...pushed].sort((a, b) => a.args[0] - b.args[0]).map((j) => j.jid);
    assert.deepEqual(jids(page), byHour, 'scheduled jobs come soonest first');
    assertAscending(page, 'scheduled');
    for (const e of page.jobs) {
      assert.deepEqual(Object.keys(e).sort(), ['at', 'job'], `a scheduled entry has at and job only: ${JSON.stringify(e)}`);
      assert.equal(parseUtc(e.at), Date.parse(e.job.at), 'the entry\'s at is the job\'s at');
      assert.equal(e.job.jobtype, 'TestJob');
      assert.equal(e.job.queue, 'default', 'the job carries the server\'s fields');
    }
  });
});

test('JOBS retries and dead: time order; at is the next retry or the expiry; failure is in the job', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const retr = [0, 1, 2, 3].map((i) => makeJob({ queue: 'rq', args: [i] }));
    await failAll(c, retr);
    const dead = [0, 1, 2].map((i) => makeJob({ queue: 'dq', retry: -1, args: [i] }));
    await failAll(c, dead);

    const r = await jobs(c, { target: 'retries' });
    assert.equal(r.total, 4);
    assert.deepEqual([...jids(r)].sort(), retr.map((j) => j.jid).sort(), 'every failed job is in retries');
    assertAscending(r, 'retries');
    for (const e of r.jobs) {
      assert.equal(e.job.failure.errtype, 'Boom');
      assert.match(e.job.failure.message, /^failed \d$/);
      assert.equal(parseUtc(e.at), parseUtc(e.job.failure.next_at), 'a retry\'s at is failure.next_at');
      assert.ok(!('wid' in e), 'only working entries have a wid');
    }

    const d = await jobs(c, { target: 'dead' });
    assert.equal(d.total, 3);
    assert.deepEqual(jids(d), dead.map((j) => j.jid), 'dead jobs in the order they died (their expiry order)');
    assertAscending(d, 'dead');
    for (const e of d.jobs) {
      const expiry = parseUtc(e.at) - parseUtc(e.job.failure.failed_at);
      assert.ok(Math.abs(expiry - 180 * DAY) < 60e3, `a dead job expires 180 days after it failed, got ${expiry} ms`);
    }
  });
});

test('JOBS working: wid, reserved_at and at (the reservation expiry), ordered by expiry', async () => {
  await withServer(async (srv) => {
    const w = await srv.connect({ hello: { wid: 'w-jobs' } });
    const p = await srv.connect();
    const long = makeJob({ queue: 'wq', reserve_for: 600 });
    const short = makeJob({ queue: 'wq', reserve_for: 120 });
    const anon = makeJob({ queue: 'wq', reserve_for: 300 });
    for (const j of [long, short, anon]) await p.push(j);
    const t0 = Date.now();
    assert.equal((await w.fetch(['wq'])).jid, long.jid);
    assert.equal((await w.fetch(['wq'])).jid, short.jid);
    assert.equal((await p.fetch(['wq'])).jid, anon.jid, 'a connection without a wid reserves one');
    const page = await jobs(p, { target: 'working' });
    assert.equal(page.total, 3);
    assert.deepEqual(jids(page), [short.jid, anon.jid, long.jid], 'working entries come soonest expiry first');
    assertAscending(page, 'working');
    for (const e of page.jobs) {
      assert.deepEqual(Object.keys(e).sort(), ['at', 'job', 'reserved_at', 'wid'], `a working entry: ${JSON.stringify(e)}`);
      const reserved = parseUtc(e.reserved_at, 'reserved_at');
      assert.ok(reserved >= t0 - 2000 && reserved <= Date.now() + 2000, `reserved_at should be about now, got ${e.reserved_at}`);
      assert.ok(Math.abs(parseUtc(e.at) - reserved - e.job.reserve_for * 1000) < 5,
        `at should be reserved_at + reserve_for: ${JSON.stringify(e)}`);
    }
    assert.equal(page.jobs[0].wid, 'w-jobs');
    assert.equal(page.jobs[1].wid, '', 'a job reserved by a connection without a wid has wid ""');
    await w.ack(short.jid);
    assert.deepEqual(jids(await jobs(p, { target: 'working' })), [anon.jid, long.jid], 'an ACKed job leaves working');
  });
});

test('JOBS queue: FIFO order, no at; total, offset, limit, default 50 and the cap of 1000', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const all = await pushMany(c, 'big', 1203);
    await c.push(makeJob({ queue: 'other' }));

    const first = await jobs(c, { target: 'queue', queue: 'big' });
    assert.equal(first.total, 1203);
    assert.equal(first.limit, 50);
    assert.deepEqual(jids(first), all.slice(0, 50), 'the first 50 in FIFO order');
    for (const e of first.jobs) assert.deepEqual(Object.keys(e), ['job'], `a queue entry has no at: ${JSON.stringify(e)}`);

    const mid = await jobs(c, { target: 'queue', queue: 'big', offset: 600, limit: 7 });
    assert.deepEqual(jids(mid), all.slice(600, 607), 'offset and limit select a page');
    assert.equal(mid.offset, 600);
    assert.equal(mid.limit, 7);
    assert.equal(mid.total, 1203);

    const capped = await jobs(c, { target: 'queue', queue: 'big', offset: 100, limit: 5000 });
    assert.equal(capped.limit, 1000, 'limit is capped at 1000');
    assert.equal(capped.jobs.length, 1000);
    assert.deepEqual(jids(capped), all.slice(100, 1100));

    const tail = await jobs(c, { target: 'queue', queue: 'big', offset: 1200, limit: 10 });
    assert.deepEqual(jids(tail), all.slice(1200), 'the last page is short');
    const past = await jobs(c, { target: 'queue', queue: 'big', offset: 5000 });
    assert.deepEqual(past.jobs, [], 'an offset past the end gives no jobs');
    assert.equal(past.total, 1203, '... and still the total');
    const none = await jobs(c, { target: 'queue', queue: 'big', limit: 0 });
    assert.deepEqual(none.jobs, [], 'limit 0 gives only the total');
    assert.equal(none.total, 1203);

    const empty = await jobs(c, { target: 'queue', queue: 'nosuchqueue' });
    assert.deepEqual([empty.jobs, empty.total], [[], 0], 'an unknown queue is empty');

    // Listing changes nothing: the queue is still fetched in the same order.
    assert.equal((await c.fetch(['big'])).jid, all[0]);
    assert.equal((await jobs(c, { target: 'queue', queue: 'big', limit: 0 })).total, 1202);
  });
});

// Huge offsets and limits are capped, never wrapped; fractions are refused.
test('JOBS clamps huge offset and limit values and refuses fractions', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await pushMany(c, 'huge', 3);
    const big = await jobs(c, { target: 'queue', queue: 'huge', limit: 1e20 });
    assert.equal(big.limit, 1000, `a limit of 1e20 should be capped at 1000: ${JSON.stringify({ ...big, jobs: big.jobs.length })}`);
    assert.equal(big.jobs.length, 3);
    const far = await jobs(c, { target: 'queue', queue: 'huge', offset: 1e20 });
    assert.deepEqual(far.jobs, [], `an offset of 1e20 is past the end: ${JSON.stringify({ ...far, jobs: far.jobs.length })}`);
    const frac = await c.cmd(`JOBS ${JSON.stringify({ target: 'queue', queue: 'huge', limit: 1.5 })}`);
    assert.ok(frac && frac.error && /whole numbers/.test(frac.error), `a fractional limit is refused, got ${JSON.stringify(frac)}`);
  });
});

test('JOBS filters: jids alone decide, a glob over the JSON, jobtype, and both narrowing each other', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const at = new Date(Date.now() + HOUR).toISOString();
    const a1 = makeJob({ jobtype: 'Alpha', at, custom: { tenant: 7 } });
    const a2 = makeJob({ jobtype: 'Alpha', at, custom: { tenant: 8 } });
    const b1 = makeJob({ jobtype: 'Beta', at, custom: { tenant: 7 } });
    const b2 = makeJob({ jobtype: 'Beta', at });
    for (const j of [a1, a2, b1, b2]) await c.push(j);
    const sorted = (page) => [...jids(page)].sort();
    const q = (filter) => jobs(c, { target: 'scheduled', filter });

    let p = await q({ jids: [a2.jid, b2.jid, 'nosuchjid1'] });
    assert.deepEqual(sorted(p), [a2.jid, b2.jid].sort(), 'jids select those jobs');
    assert.equal(p.total, 2);
    p = await q({ jids: [a1.jid], jobtype: 'Beta', regexp: '*nothing*' });
    assert.deepEqual(jids(p), [a1.jid], 'a non-empty jids list alone decides');
    p = await q({ regexp: '*"tenant":7*' });
    assert.deepEqual(sorted(p), [a1.jid, b1.jid].sort(), 'the glob matches the job JSON');
    p = await q({ regexp: '*"tenant":7*', jobtype: 'Beta' });
    assert.deepEqual(jids(p), [b1.jid], 'jobtype narrows the glob');
    p = await q({ jobtype: 'Alpha' });
    assert.deepEqual(sorted(p), [a1.jid, a2.jid].sort(), 'jobtype alone');
    p = await q({ regexp: `*${b2.jid}?` });
    assert.deepEqual(sorted(p), [], 'the glob must match the whole JSON (? is one character)');
    p = await q({ regexp: `*${b2.jid}*` });
    assert.deepEqual(jids(p), [b2.jid], '* matches any run of characters');
    p = await q({ jids: [] });
    assert.equal(p.total, 4, 'an empty jids list is no filter');
    p = await q({ jobtype: 'Alpha' });
    const paged = await jobs(c, { target: 'scheduled', filter: { jobtype: 'Alpha' }, offset: 1, limit: 1 });
    assert.equal(paged.total, 2, 'total counts every match, not the page');
    assert.deepEqual(jids(paged), [jids(p)[1]], 'offset and limit page through the matches');
    p = await jobs(c, { target: 'queue', queue: 'default', filter: { jobtype: 'Alpha' } });
    assert.equal(p.total, 0, 'filters apply to queues too (scheduled jobs are not in the queue)');
  });
});

test('JOBS with a wrongly typed filter gets -ERR and nothing else happens', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    for (let i = 0; i < 3; i++) await c.push(makeJob({ at: new Date(Date.now() + HOUR).toISOString() }));
    const bad = [
      { filter: 'everything' },
      { filter: [1] },
      { filter: { jids: 'abc' } },
      { filter: { jids: [1, 2] } },
      { filter: { regexp: 5 } },
      { filter: { regexp: ['*'] } },
      { filter: { jobtype: true } },
    ];
    for (const extra of bad) {
      const line = jobsLine({ target: 'scheduled', ...extra });
      await c.err(line, /^ERR invalid JSON: filter/);
      // Exactly one reply: the next command's reply is its own.
      assert.equal(c.replies.length, 0, `${line} should send one reply only`);
      const info = await c.info();
      assert.equal(info.faktory.sets.scheduled, 3, `${line} must not change the scheduled set`);
    }
  });
});

test('JOBS bad requests: target, queue, offset/limit types, not an object, no argument', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await c.push(makeJob());
    await c.err(jobsLine({ target: 'everything' }), 'ERR invalid JSON: target must be scheduled, retries, dead, working or queue');
    await c.err(jobsLine({}), 'ERR invalid JSON: target must be scheduled, retries, dead, working or queue');
    await c.err(jobsLine({ target: 'Dead' }), /^ERR invalid JSON: target must be/, 'targets are case-sensitive');
    await c.err(jobsLine({ target: 'queue' }), 'ERR invalid JSON: target queue needs a "queue" name');
    await c.err(jobsLine({ target: 'queue', queue: 5 }), 'ERR invalid JSON: target queue needs a "queue" name');
    await c.err(jobsLine({ target: 'dead', limit: '5' }), 'ERR invalid JSON: offset and limit must be whole numbers of at least 0');
    await c.err(jobsLine({ target: 'dead', offset: -1 }), 'ERR invalid JSON: offset and limit must be whole numbers of at least 0');
    await c.err('JOBS [1]', 'ERR invalid JSON: JOBS takes a JSON object');
    await c.err('JOBS {"target":', 'ERR invalid JSON: JOBS takes a JSON object');
    await c.err('JOBS', /^ERR JOBS needs /);
    await c.err('JOBS ', /^ERR JOBS needs /);
    assert.equal((await c.info()).faktory.queues.default, 1, 'the connection stays usable and nothing changed');
  });
});

// --- WORKERS ---------------------------------------------------------------

async function workers(c) {
  const list = await c.cmdJSON('WORKERS');
  assert.ok(Array.isArray(list), `WORKERS should answer a JSON array: ${JSON.stringify(list)}`);
  return list;
}

const byWid = (list, wid) => list.find((w) => w.wid === wid);

test('WORKERS lists processes with their fields and busy count; producers are not listed', async () => {
  await withServer(async (srv) => {
    const p = await srv.connect();
    assert.deepEqual(await workers(p), [], 'no worker process yet');
    const t0 = Date.now();
    const a1 = await srv.connect({ hello: { wid: 'w-a', hostname: 'host-a', pid: 4242, labels: ['x', 'y'] } });
    const a2 = await srv.connect({ hello: { wid: 'w-a', hostname: 'ignored', pid: 1 } });
    const b = await srv.connect({ hello: { wid: 'w-b', hostname: 'host-b', pid: 77 } });
    for (let i = 0; i < 3; i++) await p.push(makeJob({ queue: 'busyq' }));
    await a1.fetch(['busyq']);
    await a2.fetch(['busyq']);
    await p.fetch(['busyq']);
    await a1.ok('BEAT {"wid":"w-a","rss_kb":2048}');

    const list = await workers(p);
    assert.deepEqual(list.map((w) => w.wid).sort(), ['w-a', 'w-b'], 'one entry per process');
    const a = byWid(list, 'w-a');
    assert.deepEqual(Object.keys(a).sort(),
      ['busy', 'connections', 'hostname', 'labels', 'last_beat_at', 'pid', 'rss_kb', 'started_at', 'state', 'wid'],
      `the fields of a process: ${JSON.stringify(a)}`);
    assert.equal(a.hostname, 'host-a', 'the first HELLO\'s metadata is kept');
    assert.equal(a.pid, 4242);
    assert.deepEqual(a.labels, ['x', 'y']);
    assert.equal(a.state, 'running');
    assert.equal(a.rss_kb, 2048, 'rss_kb from the BEAT');
    assert.equal(a.connections, 2);
    assert.equal(a.busy, 2, 'two jobs reserved under w-a, whichever connection fetched them');
    const started = parseUtc(a.started_at, 'started_at');
    assert.ok(started >= t0 - 2000 && started <= Date.now() + 2000, `started_at should be about now: ${a.started_at}`);
    assert.ok(parseUtc(a.last_beat_at, 'last_beat_at') >= started, 'last_beat_at is not before started_at');
    const bb = byWid(list, 'w-b');
    assert.deepEqual([bb.hostname, bb.pid, bb.labels, bb.busy, bb.connections, bb.state], ['host-b', 77, [], 0, 1, 'running']);

    // last_beat_at moves with BEAT.
    const before = parseUtc(bb.last_beat_at);
    await waitFor(async () => {
      await b.cmd('BEAT {"wid":"w-b"}');
      return parseUtc(byWid(await workers(p), 'w-b').last_beat_at) > before;
    }, { what: 'last_beat_at of w-b to move forward after a BEAT' });

    b.destroy();
    await waitFor(async () => !byWid(await workers(p), 'w-b'), { what: 'w-b to leave the list once its connection closed' });
    const acked = (await p.cmdJSON(jobsLine({ target: 'working', filter: {} }))).jobs.find((e) => e.wid === 'w-a');
    await a1.ack(acked.job.jid);
    assert.equal(byWid(await workers(p), 'w-a').busy, 1, 'an ACK lowers busy');
  });
});

test('WORKERS QUIET and STOP change the state the next BEAT returns, without counting as a heartbeat', async () => {
  await withServer(async (srv) => {
    const p = await srv.connect();
    const a = await srv.connect({ hello: { wid: 'w-q1' } });
    const b = await srv.connect({ hello: { wid: 'w-q2' } });
    const quiet = { type: 'bulk', value: '{"state":"quiet"}' };
    const terminate = { type: 'bulk', value: '{"state":"terminate"}' };
    const beatBefore = byWid(await workers(p), 'w-q1').last_beat_at;

    await p.ok('WORKERS QUIET w-q1');
    assert.equal(byWid(await workers(p), 'w-q1').state, 'quiet', 'WORKERS shows the new state');
    assert.equal(byWid(await workers(p), 'w-q1').last_beat_at, beatBefore, 'WORKERS QUIET is not a heartbeat');
    assert.deepEqual(await a.cmdTyped('BEAT {"wid":"w-q1"}'), quiet, 'the next BEAT of w-q1 says quiet');
    assert.deepEqual(await b.cmdTyped('BEAT {"wid":"w-q2"}'), { type: 'simple', value: 'OK' }, 'w-q2 is untouched');

    await p.ok('WORKERS STOP w-q1');
    assert.deepEqual(await a.cmdTyped('BEAT {"wid":"w-q1"}'), terminate, 'STOP: the next BEAT says terminate');
    await p.ok('WORKERS QUIET w-q1');
    assert.deepEqual(await a.cmdTyped('BEAT {"wid":"w-q1"}'), terminate, 'states only move forward');

    await p.ok('WORKERS quiet *');
    assert.deepEqual(await b.cmdTyped('BEAT {"wid":"w-q2"}'), quiet, '* quiets every process (subcommands in any case)');
    assert.deepEqual(await a.cmdTyped('BEAT {"wid":"w-q1"}'), terminate, '* does not move a process back');
    await p.ok('WORKERS STOP *');
    assert.deepEqual(await b.cmdTyped('BEAT {"wid":"w-q2"}'), terminate, 'STOP * terminates every process');

    const c = await srv.connect({ hello: { wid: 'w-q3' } });
    const d = await srv.connect({ hello: { wid: 'w-q4' } });
    await p.ok('WORKERS STOP w-q3 w-q4');
    assert.deepEqual(await c.cmdTyped('BEAT {"wid":"w-q3"}'), terminate, 'several wids in one command');
    assert.deepEqual(await d.cmdTyped('BEAT {"wid":"w-q4"}'), terminate, 'several wids in one command');
    await p.ok('WORKERS STOP *'); // no running process left: still +OK
  });
});

test('WORKERS errors: unknown wid, missing wids, unknown subcommand', async () => {
  await withServer(async (srv) => {
    const p = await srv.connect();
    const a = await srv.connect({ hello: { wid: 'w-e' } });
    await p.err('WORKERS QUIET nosuch', 'ERR unknown worker nosuch');
    await p.err('WORKERS STOP nosuch', 'ERR unknown worker nosuch');
    // An error means nothing changed: the known wid before the unknown one stays running.
    await p.err('WORKERS QUIET w-e nosuch', 'ERR unknown worker nosuch');
    assert.deepEqual(await a.cmdTyped('BEAT {"wid":"w-e"}'), { type: 'simple', value: 'OK' },
      'a WORKERS command that names an unknown wid changes no process');
    await p.err('WORKERS QUIET', 'ERR WORKERS QUIET needs worker ids (or *)');
    await p.err('WORKERS STOP ', 'ERR WORKERS STOP needs worker ids (or *)');
    await p.err('WORKERS FROB w-e', 'ERR no such WORKERS subcommand: FROB (QUIET or STOP)');
    await p.err('WORKERS LIST', 'ERR no such WORKERS subcommand: LIST (QUIET or STOP)');
    assert.deepEqual(await a.cmdTyped('BEAT {"wid":"w-e"}'), { type: 'simple', value: 'OK' }, 'no error changed w-e');
    assert.equal(byWid(await workers(p), 'w-e').state, 'running');
    await p.push(makeJob({ jid: newJid() }));
    assert.equal((await p.info()).faktory.queues.default, 1, 'the connection stays usable');
  });
});

// --- INFO faktory.paused -----------------------------------------------------

test('INFO faktory.paused lists paused queues after QUEUE PAUSE, RESUME, PAUSE * and REMOVE', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const paused = async () => {
      const f = (await c.info()).faktory;
      assert.ok(Array.isArray(f.paused), `INFO faktory.paused should be an array: ${JSON.stringify(f)}`);
      return [...f.paused].sort();
    };
    assert.deepEqual(await paused(), [], 'nothing paused at first');
    for (const q of ['pa', 'pb', 'pc']) await c.push(makeJob({ queue: q }));
    await c.ok('QUEUE PAUSE pa pb nosuchq');
    assert.deepEqual(await paused(), ['pa', 'pb'], 'paused queues are listed; unknown names are not');
    await c.ok('QUEUE RESUME pa');
    assert.deepEqual(await paused(), ['pb']);
    await c.ok('QUEUE PAUSE *');
    assert.deepEqual(await paused(), ['pa', 'pb', 'pc'], 'PAUSE * pauses every queue');
    await c.ok('QUEUE REMOVE pc');
    assert.deepEqual(await paused(), ['pa', 'pb'], 'a removed queue is no longer listed');
    await c.ok('QUEUE RESUME *');
    assert.deepEqual(await paused(), [], 'RESUME * resumes them all');
  });
});
