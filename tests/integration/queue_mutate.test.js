'use strict';
// QUEUE PAUSE/RESUME/REMOVE/LATENCY and MUTATE (FWP.md §3).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { withServer, makeJob, newJid, waitFor } = require('../lib/spoold');

const HOUR = 3600e3;

test('QUEUE PAUSE makes FETCH skip a queue; RESUME brings it back; subcommands are case-insensitive', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const p = makeJob({ queue: 'qp' });
    const o = makeJob({ queue: 'qo' });
    await c.push(p);
    await c.push(o);
    await c.ok('QUEUE PAUSE qp');
    assert.equal((await c.fetch(['qp', 'qo'])).jid, o.jid, 'FETCH qp qo skips the paused qp');
    const t0 = Date.now();
    assert.equal(await c.fetch(['qp']), null, 'FETCH of only paused queues gives $-1');
    const dt = Date.now() - t0;
    assert.ok(dt >= 1500 && dt <= 3500, `FETCH of only paused queues should wait ~2 s, took ${dt} ms`);
    assert.equal((await c.info()).faktory.queues.qp, 1, 'the paused queue keeps its job');
    await c.ok('QUEUE resume qp');
    assert.equal((await c.fetch(['qp'])).jid, p.jid, 'after RESUME the job is fetchable');
    await c.push(makeJob({ queue: 'qp' }));
    await c.ok('QUEUE Pause qp');
    const q2 = makeJob({ queue: 'qo' });
    await c.push(q2);
    assert.equal((await c.fetch(['qp', 'qo'])).jid, q2.jid, 'mixed-case Pause also pauses');
  });
});

test('a FETCH blocked on a paused and an empty queue is not handed a job pushed to the paused one', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const w = await srv.connect();
    await c.push(makeJob({ queue: 'pz' }));
    await c.fetch(['pz']); // pz exists (empty) and can be paused
    await c.ok('QUEUE PAUSE pz');
    const t0 = Date.now();
    const pending = w.fetch(['pz', 'open']);
    const held = makeJob({ queue: 'pz' });
    await c.push(held);
    const got = await pending;
    const dt = Date.now() - t0;
    assert.equal(got, null, `the job pushed to paused pz must not be delivered, got ${JSON.stringify(got)}`);
    assert.ok(dt >= 1500, `FETCH should have blocked its full ~2 s, returned after ${dt} ms`);
    assert.equal((await c.info()).faktory.queues.pz, 1, 'the job waits in the paused queue');
    await c.ok('QUEUE RESUME pz');
    assert.equal((await w.fetch(['pz', 'open'])).jid, held.jid, 'after RESUME it is delivered');
  });
});

test('QUEUE PAUSE of an unknown queue is ignored (it cannot be pre-paused)', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await c.ok('QUEUE PAUSE neverseen');
    await c.ok('QUEUE RESUME alsoneverseen');
    await c.ok('QUEUE REMOVE nothere');
    const j = makeJob({ queue: 'neverseen' });
    await c.push(j);
    assert.equal((await c.fetch(['neverseen'])).jid, j.jid, 'a queue paused before it existed is not paused');
  });
});

test('QUEUE PAUSE * pauses every known queue; RESUME * resumes them', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const a = makeJob({ queue: 's1' });
    const b = makeJob({ queue: 's2' });
    await c.push(a);
    await c.push(b);
    await c.ok('QUEUE PAUSE *');
    const n = makeJob({ queue: 'snew' });
    await c.push(n);
    assert.equal((await c.fetch(['s1', 's2', 'snew'])).jid, n.jid, 's1 and s2 are paused; the new queue is not');
    await c.ok('QUEUE RESUME *');
    assert.equal((await c.fetch(['s2', 's1'])).jid, b.jid, 's2 resumed');
    assert.equal((await c.fetch(['s1'])).jid, a.jid, 's1 resumed');
  });
});

test('QUEUE REMOVE deletes the queue with its jobs; REMOVE * deletes all', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    for (let k = 0; k < 3; k++) await c.push(makeJob({ queue: 'gone' }));
    await c.push(makeJob({ queue: 'stays' }));
    await c.ok('QUEUE PAUSE gone');
    await c.ok('QUEUE REMOVE gone');
    let f = (await c.info()).faktory;
    assert.ok(!('gone' in f.queues), `the removed queue should not be listed: ${JSON.stringify(f.queues)}`);
    assert.equal(f.queues.stays, 1, 'other queues are untouched');
    assert.equal(f.total_enqueued, 1, 'the removed jobs are gone');
    // the name and its pause flag are forgotten
    const back = makeJob({ queue: 'gone' });
    await c.push(back);
    assert.equal((await c.fetch(['gone'])).jid, back.jid, 'a re-created queue is not paused');

    await c.push(makeJob({ queue: 'x1' }));
    await c.ok('QUEUE REMOVE *');
    f = (await c.info()).faktory;
    assert.equal(f.total_enqueued, 0, `REMOVE * deletes every queue's jobs: ${JSON.stringify(f.queues)}`);
    assert.deepEqual(Object.keys(f.queues).filter((q) => f.queues[q] > 0), [], 'no queue has jobs left');
  });
});

test('QUEUE LATENCY reports seconds since the oldest enqueue, 0 for empty or unknown queues', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await c.push(makeJob({ queue: 'lat' }));
    await c.push(makeJob({ queue: 'lat' }));
    const first = await c.cmdJSON('QUEUE LATENCY lat unknownq');
    assert.deepEqual(Object.keys(first).sort(), ['lat', 'unknownq'], `one entry per named queue: ${JSON.stringify(first)}`);
    assert.equal(typeof first.lat, 'number', 'latency is a number');
    assert.ok(first.lat >= 0 && first.lat < 5, `latency right after the push should be small, got ${first.lat}`);
    assert.equal(first.unknownq, 0, 'unknown queue latency is 0');
    const grown = await waitFor(async () => {
      const l = await c.cmdJSON('QUEUE LATENCY lat');
      return l.lat >= 0.2 ? l : null;
    }, { timeoutMs: 5000, what: 'the latency of lat to grow past 0.2 s' });
    assert.ok(grown.lat < 10, `latency should be a few tenths of a second, got ${grown.lat}`);
    await c.fetch(['lat']);
    await c.fetch(['lat']);
    assert.deepEqual(await c.cmdJSON('QUEUE LATENCY lat'), { lat: 0 }, 'an emptied queue has latency 0');
  });
});

test('QUEUE error strings: LATENCY wildcard, unknown subcommand', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await c.push(makeJob());
    await c.err('QUEUE LATENCY *', 'ERR QUEUE LATENCY does not support wildcards');
    await c.err('QUEUE FROB default', 'ERR no such QUEUE subcommand: FROB');
    await c.err('QUEUE FROB', 'ERR no such QUEUE subcommand: FROB');
    assert.ok((await c.info()).server, 'the connection stays usable');
  });
});

// --- MUTATE ---------------------------------------------------------------

// Puts jobs into retries: push, fetch, fail.
async function toRetries(c, jobs) {
  for (const j of jobs) {
    await c.push(j);
    const got = await c.fetch([j.queue]);
    assert.equal(got.jid, j.jid, 'fetch the job to fail it');
    await c.fail(j.jid);
  }
}

async function sets(c) {
  return (await c.info()).faktory.sets;
}

test('MUTATE kill with a jids filter moves exactly those jobs from retries to dead', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const jobs = Array.from({ length: 4 }, () => makeJob({ queue: 'mq' }));
    await toRetries(c, jobs);
    await c.ok('MUTATE ' + JSON.stringify({ cmd: 'kill', target: 'retries', filter: { jids: [jobs[0].jid, jobs[2].jid, newJid()] } }));
    assert.deepEqual(await sets(c), { scheduled: 0, retries: 2, dead: 2, working: 0 }, 'two killed');
    // the killed ones are in dead: requeue them from dead by jid
    await c.ok('MUTATE ' + JSON.stringify({ cmd: 'requeue', target: 'dead', filter: { jids: [jobs[2].jid] } }));
    const got = await c.fetch(['mq']);
    assert.equal(got.jid, jobs[2].jid, 'the killed job was in dead');
    assert.ok(got.failure && got.failure.retry_count === 0, `requeue keeps the failure data, got ${JSON.stringify(got.failure)}`);
  });
});

test('MUTATE discard with a jobtype filter deletes only that jobtype from scheduled', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const at = new Date(Date.now() + HOUR).toISOString();
    for (let k = 0; k < 3; k++) await c.push(makeJob({ jobtype: 'Alpha', at }));
    for (let k = 0; k < 2; k++) await c.push(makeJob({ jobtype: 'Beta', at }));
    await c.push(makeJob({ jobtype: 'AlphaBeta', at }));
    await c.ok('MUTATE {"cmd":"discard","target":"scheduled","filter":{"jobtype":"Alpha"}}');
    assert.equal((await sets(c)).scheduled, 3, 'the three Alpha jobs are discarded; Beta and AlphaBeta stay');
    await c.ok('MUTATE {"cmd":"requeue","target":"scheduled","filter":{"jobtype":"AlphaBeta"}}');
    const got = await c.fetch(['default']);
    assert.equal(got && got.jobtype, 'AlphaBeta', 'jobtype is an exact match');
    assert.equal((await sets(c)).scheduled, 2, 'only the Beta jobs are left');
  });
});

test('MUTATE requeue with a regexp (glob) filter, alone and with a jobtype', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const marked = makeJob({ queue: 'rq', jobtype: 'Mark', args: ['uid:123', 'x'] });
    const markedOther = makeJob({ queue: 'rq', jobtype: 'Other', args: ['uid:123'] });
    const plainJob = makeJob({ queue: 'rq', jobtype: 'Mark', args: ['uid:999'] });
    await toRetries(c, [marked, markedOther, plainJob]);
    await c.ok('MUTATE ' + JSON.stringify({ cmd: 'requeue', target: 'retries', filter: { regexp: '*uid:123*', jobtype: 'Mark' } }));
    let f = (await c.info()).faktory;
    assert.equal(f.queues.rq, 1, 'only the job matching both the glob and the jobtype is requeued');
    assert.equal((await c.fetch(['rq'])).jid, marked.jid, 'it is the marked Mark job');
    await c.ok('MUTATE ' + JSON.stringify({ cmd: 'requeue', target: 'retries', filter: { regexp: '*uid:123*' } }));
    f = (await c.info()).faktory;
    assert.equal(f.queues.rq, 1, 'the glob alone matches the other uid:123 job');
    assert.equal((await c.fetch(['rq'])).jid, markedOther.jid, 'it is the Other job');
    assert.equal(f.sets.retries, 1, 'the uid:999 job is left');
    await c.ok('MUTATE ' + JSON.stringify({ cmd: 'kill', target: 'retries', filter: { regexp: '*nomatch*' } }));
    assert.equal((await sets(c)).retries, 1, 'a glob that matches nothing changes nothing');
  });
});

test('MUTATE glob semantics: anchored to the whole job JSON, with ? and [...]; an empty jids list means no filter', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const a = makeJob({ queue: 'gq', args: ['uid:123'] });
    const b = makeJob({ queue: 'gq', args: ['uid:456'] });
    await toRetries(c, [a, b]);
    await c.ok('MUTATE ' + JSON.stringify({ cmd: 'kill', target: 'retries', filter: { regexp: 'uid:123' } }));
    assert.equal((await sets(c)).retries, 2, 'a pattern without * must match the whole JSON, so "uid:123" matches nothing');
    await c.ok('MUTATE ' + JSON.stringify({ cmd: 'kill', target: 'retries', filter: { regexp: '*uid:12?"*' } }));
    assert.deepEqual(await sets(c), { scheduled: 0, retries: 1, dead: 1, working: 0 }, '? matches one character (uid:123 killed)');
    await c.ok('MUTATE ' + JSON.stringify({ cmd: 'kill', target: 'retries', filter: { regexp: '*uid:[3-5]56*' } }));
    assert.deepEqual(await sets(c), { scheduled: 0, retries: 0, dead: 2, working: 0 }, '[3-5] matches a range (uid:456 killed)');
    await c.ok('MUTATE ' + JSON.stringify({ cmd: 'discard', target: 'dead', filter: { jids: [] } }));
    assert.equal((await sets(c)).dead, 0, 'an empty jids list is no filter: discard empties the set');
  });
});

test('MUTATE clear ignores the filter; discard without a filter clears; JSON with spaces is accepted', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const jobs = Array.from({ length: 3 }, () => makeJob({ queue: 'cq', retry: -1 }));
    await toRetries(c, jobs); // retry:-1 -> dead
    assert.equal((await sets(c)).dead, 3, 'three dead jobs');
    await c.ok(`MUTATE {"cmd": "clear", "target": "dead", "filter": {"jids": ["${jobs[0].jid}"]}}`);
    assert.equal((await sets(c)).dead, 0, 'clear empties the whole set, filter or not');
    const at = new Date(Date.now() + HOUR).toISOString();
    await c.push(makeJob({ at }));
    await c.push(makeJob({ at }));
    await c.ok('MUTATE { "cmd" : "discard" , "target" : "scheduled" }');
    assert.equal((await sets(c)).scheduled, 0, 'discard without a filter empties the set');
  });
});

test('MUTATE with a wrongly typed filter is refused and changes nothing (it must not act as "no filter")', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const at = new Date(Date.now() + HOUR).toISOString();
    for (let k = 0; k < 3; k++) await c.push(makeJob({ at }));
    const bad = [
      { cmd: 'discard', target: 'scheduled', filter: { jids: 'abcdefghij' } },
      { cmd: 'discard', target: 'scheduled', filter: { jids: [5] } },
      { cmd: 'discard', target: 'scheduled', filter: { jobtype: 5 } },
      { cmd: 'discard', target: 'scheduled', filter: { regexp: ['*'] } },
      { cmd: 'discard', target: 'scheduled', filter: 'everything' },
    ];
    for (const m of bad) {
      const line = 'MUTATE ' + JSON.stringify(m);
      const r = await c.cmdTyped(line);
      const left = (await sets(c)).scheduled;
      assert.equal(left, 3, `${line} must not discard anything (got reply ${JSON.stringify(r)}, ${left} of 3 scheduled jobs left)`);
      assert.equal(r.type, 'error', `${line} should be refused with -ERR, got ${JSON.stringify(r)}`);
    }
  });
});

test('MUTATE error strings', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await c.err('MUTATE {"cmd":"explode","target":"dead"}', 'ERR unknown mutate operation');
    await c.err('MUTATE {"cmd":"clear","target":"queues"}', 'ERR invalid target for mutation command');
    await c.err('MUTATE {"cmd":"kill","target":"working"}', 'ERR invalid target for mutation command');
    const msg = await c.err('MUTATE {"cmd":', /^ERR /);
    assert.ok(!/internal error/i.test(msg), `broken MUTATE JSON should get a parser message, got -${msg}`);
    assert.ok((await c.info()).server, 'the connection stays usable');
  });
});
