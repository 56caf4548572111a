'use strict';
// PUSH / PUSHB / FETCH / ACK over raw FWP: job normalisation, validation
// strings (FWP.md §4, verbatim), missing arguments and unknown verbs, FETCH
// ordering and blocking.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { withServer, makeJob, newJid, parseUtc, sleep, isPostgres } = require('../lib/spoold');

test('PUSH / FETCH / ACK round trip returns the normalised job with every field', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const before = Date.now();
    const job = {
      jid: newJid(),
      jobtype: 'SendEmail',
      args: [1, 'two', { three: 3 }, [4], null, true, 1.5],
      custom: { tenant: 'acme', nested: { a: [1, 2] } },
      backtrace: 5,
      reserve_for: 600,
      extra_top_level: { kept: true }, // spool keeps unknown top-level fields
    };
    await c.push(job);
    const got = await c.fetch(['default']);
    const after = Date.now();
    assert.ok(got, 'FETCH default should return the pushed job');
    assert.equal(got.jid, job.jid, 'jid');
    assert.equal(got.jobtype, 'SendEmail', 'jobtype');
    assert.deepEqual(got.args, job.args, 'args must come back unchanged');
    assert.deepEqual(got.custom, job.custom, 'custom must come back unchanged');
    assert.deepEqual(got.extra_top_level, { kept: true }, 'unknown top-level fields are kept by spool');
    assert.equal(got.queue, 'default', 'queue is filled in as "default"');
    assert.equal(got.retry, 25, 'retry omitted means 25');
    assert.equal(got.reserve_for, 600, 'reserve_for is kept');
    assert.equal(got.backtrace, 5, 'backtrace (int) is kept');
    const created = parseUtc(got.created_at, 'created_at');
    const enqueued = parseUtc(got.enqueued_at, 'enqueued_at');
    assert.ok(created >= before - 2000 && created <= after + 2000, `created_at ${got.created_at} should be about now`);
    assert.ok(enqueued >= before - 2000 && enqueued <= after + 2000, `enqueued_at ${got.enqueued_at} should be about now`);
    assert.ok(!('failure' in got) || got.failure === null, `a fresh job has no failure, got ${JSON.stringify(got.failure)}`);
    await c.ack(job.jid);
    const info = await c.info();
    assert.equal(info.faktory.total_processed, 1, 'the ACK counts as processed');
    assert.equal(info.faktory.sets.working, 0, 'the ACK ends the reservation');
    assert.equal(info.faktory.total_enqueued, 0, 'nothing is left in the queues');
  });
});

test('strings in args and custom survive byte for byte: escapes, non-ASCII, astral plane', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const tricky = ['tab\tnew\nline\r', 'q"uote\\back/slash', 'é', '中文', '😀', '\u2028\u2029', '\u0001\u001f\u007f', ''];
    const job = makeJob({ args: tricky, custom: { k: 'x\u0001y', 'ke\u00e9y': 1 } });
    await c.push(job);
    const got = await c.fetch(['default']);
    assert.deepEqual(got.args, tricky, 'every string in args must come back unchanged');
    assert.deepEqual(got.custom, job.custom, 'custom strings and keys must come back unchanged');
  });
});

test('a job with a NUL (\\u0000) in a string is refused with a clear error, never cut short', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const job = makeJob({ args: ['a\u0000b'] });
    const r = await c.cmd(`PUSH ${JSON.stringify(job)}`);
    assert.ok(r && r.error && /\\u0000/.test(r.error), `PUSH with a NUL should get an -ERR naming \\u0000, got ${JSON.stringify(r)}`);
    const b = await c.cmd(`PUSHB ${JSON.stringify([makeJob({ custom: { k: 'x\u0000y' } })])}`);
    assert.ok(b && b.error && /\\u0000/.test(b.error), `PUSHB with a NUL should get an -ERR, got ${JSON.stringify(b)}`);
    // An escaped backslash followed by "u0000" is an ordinary string and is accepted.
    const ok = makeJob({ args: ['\\u0000'] });
    assert.equal(await c.cmd(`PUSH ${JSON.stringify(ok)}`), 'OK', 'a literal backslash-u0000 text is fine');
    const got = await c.fetch(['default']);
    assert.deepEqual(got.args, ['\\u0000'], 'the literal text comes back unchanged');
    const info = await c.info();
    assert.equal(info.faktory.total_enqueued, 0, 'the refused jobs were not stored');
  });
});

test('PUSH keeps a given created_at, explicit retry, and an empty queue becomes default', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const a = makeJob({ created_at: '2020-01-02T03:04:05.123Z', retry: 3, queue: '' });
    await c.push(a);
    const got = await c.fetch(['default']);
    assert.equal(got && got.jid, a.jid, 'the job pushed with queue "" should be in default');
    assert.equal(got.created_at, '2020-01-02T03:04:05.123Z', 'a given created_at is never rewritten');
    assert.equal(got.retry, 3, 'explicit retry is kept');
    assert.equal(got.queue, 'default', 'empty queue becomes default');
  });
});

test('retry omitted after a PUSH with an explicit retry is still 25 (no leaking default)', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await c.push(makeJob({ queue: 'leak', retry: 7 }));
    const b = makeJob({ queue: 'leak' });
    await c.push(b);
    const nul = makeJob({ queue: 'leak', retry: null });
    await c.push(nul);
    const first = await c.fetch(['leak']);
    assert.equal(first.retry, 7, 'first job keeps retry 7');
    const second = await c.fetch(['leak']);
    assert.equal(second.jid, b.jid, 'FIFO order');
    assert.equal(second.retry, 25, 'a job without retry pushed after one with retry:7 must still get 25');
    const third = await c.fetch(['leak']);
    assert.equal(third.jid, nul.jid, 'FIFO order');
    assert.equal(third.retry, 25, '"retry": null means 25');
  });
});

test('PUSH validation errors are the verbatim FWP §4 strings, in order', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const jid = newJid();
    const cases = [
      [{ jobtype: 'x', args: [] }, 'ERR jobs must have a reasonable jid parameter'],
      [{ jid: '', jobtype: 'x', args: [] }, 'ERR jobs must have a reasonable jid parameter'],
      [{ jid: '1234567', jobtype: 'x', args: [] }, 'ERR jobs must have a reasonable jid parameter'],
      [{ jid: 'short', args: [] }, 'ERR jobs must have a reasonable jid parameter'], // jid is checked first
      [{ jid, args: [] }, 'ERR jobs must have a jobtype parameter'],
      [{ jid, jobtype: '', args: [] }, 'ERR jobs must have a jobtype parameter'],
      [{ jid, jobtype: '' }, 'ERR jobs must have a jobtype parameter'], // jobtype before args
      [{ jid, jobtype: 'x' }, 'ERR jobs must have an args parameter'],
      [{ jid, jobtype: 'x', args: null }, 'ERR jobs must have an args parameter'],
      [{ jid, jobtype: 'x', args: [], reserve_for: 86401 }, 'ERR jobs cannot be reserved for more than one day'],
      [{ jid, jobtype: 'x', args: [], queue: 'bad queue!' },
        'ERR cannot get "bad queue!" queue: queue names must match \\A[a-zA-Z0-9._-]+\\z'],
      [{ jid, jobtype: 'x', args: [], queue: 'ümlaut' },
        'ERR cannot get "ümlaut" queue: queue names must match \\A[a-zA-Z0-9._-]+\\z'],
      // spool decision: the queue name is validated at PUSH even for a future `at`
      [{ jid, jobtype: 'x', args: [], queue: 'no/slash', at: new Date(Date.now() + 3600e3).toISOString() },
        'ERR cannot get "no/slash" queue: queue names must match \\A[a-zA-Z0-9._-]+\\z'],
    ];
    for (const [job, expected] of cases) {
      await c.err('PUSH ' + JSON.stringify(job), expected);
    }
    const info = await c.info();
    assert.equal(info.faktory.total_enqueued, 0, `no rejected job may be stored, INFO: ${JSON.stringify(info.faktory)}`);
    assert.equal(info.faktory.sets.scheduled, 0, 'no rejected job may be scheduled');
  });
});

test('PUSH with a bad `at` names the value; non-RFC 3339 forms are rejected', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    for (const at of ['tomorrow', '2030-01-01 00:00:00Z', '2030-01-01t00:00:00Z', '2030-01-01T00:00:00+0100', '2030-01-01']) {
      const job = makeJob({ at });
      await c.err('PUSH ' + JSON.stringify(job), new RegExp(`^ERR invalid timestamp for 'at': ${escapeRe(JSON.stringify(at))}: .+`));
    }
    // valid forms: offset with colon, fraction of 1..9 digits, past, empty
    const ok = [
      '2030-01-01T00:00:00+01:00',
      '2030-01-01T00:00:00.1Z',
      '2030-01-01T00:00:00.123456789Z',
    ];
    for (const at of ok) await c.push(makeJob({ queue: 'later', at }));
    await c.push(makeJob({ queue: 'now', at: '2001-02-03T04:05:06Z' }));
    await c.push(makeJob({ queue: 'now', at: '' }));
    const info = await c.info();
    assert.equal(info.faktory.sets.scheduled, 3, `three future jobs should be scheduled, INFO: ${JSON.stringify(info.faktory)}`);
    assert.equal(info.faktory.queues.now, 2, `a past or empty at enqueues immediately, INFO: ${JSON.stringify(info.faktory.queues)}`);
  });
});

test('PUSH with wrongly typed fields or broken JSON gets -ERR invalid JSON: ...', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const bad = [
      '{"jid":"abcdefghij","jobtype":"x","args":[]',
      'not json at all',
      '{"jid":"abcdefghij","jobtype":"x","args":"notarray"}',
      '{"jid":12345678901,"jobtype":"x","args":[]}',
      '[1,2,3]',
      // wrong types for known fields (Faktory decodes into a typed struct)
      JSON.stringify(makeJob({ jobtype: 5 })),
      JSON.stringify(makeJob({ queue: 7 })),
      JSON.stringify(makeJob({ retry: '3' })),
      JSON.stringify(makeJob({ retry: 2.5 })),
      JSON.stringify(makeJob({ reserve_for: 'x' })),
      JSON.stringify(makeJob({ at: 5 })),
      JSON.stringify(makeJob({ created_at: 5 })),
      JSON.stringify(makeJob({ custom: 'str' })),
      JSON.stringify(makeJob({ backtrace: 'x' })),
    ];
    for (const payload of bad) await c.err('PUSH ' + payload, /^ERR invalid JSON: /);
    await c.push(makeJob());
    assert.equal((await c.info()).faktory.total_enqueued, 1, 'the connection is still usable and only the good job is stored');
  });
});

test('a reserve_for of exactly one day is accepted', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await c.push(makeJob({ reserve_for: 86400 }));
  });
});

test('verbs with a missing argument get -ERR <VERB> ..., never internal error', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    for (const verb of ['PUSH', 'PUSHB', 'ACK', 'FAIL', 'BEAT', 'MUTATE', 'QUEUE']) {
      const msg = await c.err(verb, new RegExp(`^ERR ${verb}\\b`));
      assert.ok(!/internal error/i.test(msg), `${verb} alone should not be an internal error, got -${msg}`);
    }
    assert.ok((await c.info()).server, 'the connection stays usable');
  });
});

test('unknown verbs (including lower case push) get -ERR unknown command <VERB>', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await c.err('FOO', 'ERR unknown command FOO');
    await c.err('FROBNICATE a b c', 'ERR unknown command FROBNICATE');
    await c.err('push ' + JSON.stringify(makeJob()), 'ERR unknown command push');
    await c.err('Info', 'ERR unknown command Info');
    assert.equal((await c.info()).faktory.total_enqueued, 0, 'lower-case push must not store anything');
  });
});

test('HELLO after the handshake is an unknown command; pipelined commands are answered in order', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await c.err('HELLO {"v":2}', 'ERR unknown command HELLO');
    const j = makeJob({ queue: 'pipe' });
    c.send(`INFO\r\nPUSH ${JSON.stringify(j)}\r\nNOPE\nFETCH pipe\r\nACK {"jid":"${j.jid}"}\r\n`);
    const r = [];
    for (let k = 0; k < 5; k++) r.push(await c.readTyped());
    assert.equal(r[0].type, 'bulk', `1st reply (INFO) should be bulk, got ${JSON.stringify(r[0]).slice(0, 80)}`);
    assert.deepEqual(r[1], { type: 'simple', value: 'OK' }, '2nd reply (PUSH)');
    assert.deepEqual(r[2], { type: 'error', value: 'ERR unknown command NOPE' }, '3rd reply (NOPE)');
    assert.equal(r[3].type, 'bulk', '4th reply (FETCH) is the job');
    assert.equal(JSON.parse(r[3].value).jid, j.jid, 'FETCH returns the pipelined job');
    assert.deepEqual(r[4], { type: 'simple', value: 'OK' }, '5th reply (ACK)');
  });
});

test('a job fetched on one connection can be ACKed or FAILed on another (pooled clients)', async () => {
  await withServer(async (srv) => {
    const a = await srv.connect();
    const b = await srv.connect();
    const j1 = makeJob({ queue: 'pool' });
    const j2 = makeJob({ queue: 'pool' });
    await a.push(j1);
    await a.push(j2);
    await a.fetch(['pool']);
    await a.fetch(['pool']);
    await b.ack(j1.jid);
    await b.fail(j2.jid);
    const f = (await b.info()).faktory;
    assert.equal(f.sets.working, 0, 'both reservations ended');
    assert.equal(f.sets.retries, 1, 'the FAIL from b put j2 into retries');
    assert.equal(f.total_processed, 2, 'both counted');
  });
});

test('a BATCH error leaves the connection usable (batches: see batch.test.js)',
  { skip: isPostgres() && 'batches: journal store only (docs/postgres.md)' }, async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await c.err('BATCH NEW {}', /^ERR invalid BATCH NEW: a batch needs a "success" or "complete" callback job/);
    assert.ok((await c.info()).server, 'the connection stays usable');
  });
});

test('PUSHB reports only the bad jobs as {jid: message} and stores the good ones', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const good1 = makeJob({ queue: 'bulk' });
    const good2 = makeJob({ queue: 'bulk', at: new Date(Date.now() + 3600e3).toISOString() });
    const noType = { jid: newJid(), args: [] };
    const shortJid = { jid: 'abc', jobtype: 'x', args: [] };
    const badQueue = makeJob({ queue: 'b a d' });
    const good3 = makeJob({ queue: 'bulk2' });
    const r = await c.cmdJSON('PUSHB ' + JSON.stringify([good1, noType, good2, shortJid, badQueue, good3]));
    assert.deepEqual(r, {
      [noType.jid]: 'jobs must have a jobtype parameter',
      abc: 'jobs must have a reasonable jid parameter',
      [badQueue.jid]: 'cannot get "b a d" queue: queue names must match \\A[a-zA-Z0-9._-]+\\z',
    }, 'PUSHB error map');
    const info = await c.info();
    assert.equal(info.faktory.queues.bulk, 1, `good1 is enqueued in bulk, queues: ${JSON.stringify(info.faktory.queues)}`);
    assert.equal(info.faktory.queues.bulk2, 1, 'good3 is enqueued in bulk2');
    assert.equal(info.faktory.sets.scheduled, 1, 'good2 is scheduled');
    const got = await c.fetch(['bulk']);
    assert.equal(got.jid, good1.jid, 'the good job from PUSHB is fetchable');
    assert.equal(got.retry, 25, 'PUSHB applies the same defaults');
  });
});

test('PUSHB with all good jobs replies with the bulk string {}', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const jobs = Array.from({ length: 50 }, (_, k) => makeJob({ queue: 'pb', args: [k] }));
    const r = await c.cmdTyped('PUSHB ' + JSON.stringify(jobs));
    assert.deepEqual(r, { type: 'bulk', value: '{}' }, 'PUSHB reply when all succeeded');
    assert.equal((await c.info()).faktory.queues.pb, 50, 'all 50 jobs are enqueued');
    for (let k = 0; k < 50; k++) {
      const j = await c.fetch(['pb']);
      assert.deepEqual(j.args, [k], `PUSHB keeps the batch order (job ${k})`);
    }
  });
});

test('PUSHB with broken JSON gets -ERR invalid JSON: ...', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await c.err('PUSHB [{"jid":', /^ERR invalid JSON: /);
    await c.err('PUSHB {"jid":"abcdefghij"}', /^ERR invalid JSON: /);
    const job = makeJob({ queue: 'tail' });
    await c.err(`PUSHB ${JSON.stringify([job])} [1]`,
      /^ERR invalid JSON: unexpected text after the array at byte \d+$/);
    assert.equal((await c.info()).faktory.queues.tail ?? 0, 0, 'nothing of a refused PUSHB is stored');
  });
});

test('PUSHB stores each job exactly as PUSH does: the fetched jobs are identical', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const created = '2026-01-02T03:04:05Z';
    const texts = [
      JSON.stringify(makeJob({ queue: 'same', created_at: created, args: [1, 'a],{b}"c', { k: [null, true] }] })),
      ' ' + JSON.stringify(makeJob({ queue: 'same', created_at: created, args: [2.50, 1e3] })).replace(/^\{/, '{ ') + ' ',
      JSON.stringify(makeJob({ queue: 'same', created_at: created, args: [], custom: { q: 'x\\y\u00e9' } })),
    ];
    assert.equal(await c.cmd(`PUSHB [${texts.join(' ,')}]`), '{}', 'PUSHB of three good jobs');
    const viaBatch = [];
    for (let k = 0; k < texts.length; k++) {
      const j = await c.fetch(['same']);
      await c.ack(j.jid);
      viaBatch.push(j);
    }
    for (let k = 0; k < texts.length; k++) {
      await c.ok(`PUSH ${texts[k].trim()}`);
      const j = await c.fetch(['same']);
      await c.ack(j.jid);
      const { enqueued_at: a, ...one } = j;
      const { enqueued_at: b, ...other } = viaBatch[k];
      assert.deepEqual(other, one, `job ${k}: PUSHB and PUSH store the same job`);
      assert.ok(a && b, 'both have enqueued_at');
    }
  });
});

test('re-PUSH of an identical held job is an idempotent +OK; a different job with that jid is refused', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const job = makeJob({ queue: 'idem', args: ['a'] });
    await c.push(job);
    await c.push(job); // identical, still enqueued
    assert.equal((await c.info()).faktory.queues.idem, 1, 'an identical re-PUSH must not create a second copy');
    const other = { ...job, args: ['different'] };
    const msg = await c.err('PUSH ' + JSON.stringify(other), /^ERR /);
    assert.ok(msg.includes(job.jid), `the refusal should mention the jid ${job.jid}, got -${msg}`);
    assert.equal((await c.info()).faktory.queues.idem, 1, 'the refused job is not stored');
    const got = await c.fetch(['idem']);
    assert.deepEqual(got.args, ['a'], 'the original job is the one delivered');
  });
});

test('re-PUSH of an identical job while it is reserved is +OK without a copy; after ACK the jid is free', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const job = makeJob({ queue: 'idem2' });
    await c.push(job);
    const got = await c.fetch(['idem2']);
    assert.equal(got.jid, job.jid, 'fetched the job');
    await c.push(job); // held in working
    let info = await c.info();
    assert.equal(info.faktory.queues.idem2 || 0, 0, `re-PUSH while reserved must not enqueue a copy, queues: ${JSON.stringify(info.faktory.queues)}`);
    await c.ack(job.jid);
    await c.push(job);
    info = await c.info();
    assert.equal(info.faktory.queues.idem2, 1, 'after the ACK the same jid can be pushed again');
  });
});

test('FETCH with no queue names means default; FETCH of an empty queue gives $-1 after ~2 s', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const job = makeJob();
    await c.push(job);
    const got = await c.fetch([]);
    assert.equal(got && got.jid, job.jid, 'FETCH with no names should fetch from default');
    const t0 = Date.now();
    const r = await c.cmdTyped('FETCH empty1 empty2', { timeoutMs: 6000 });
    const dt = Date.now() - t0;
    assert.deepEqual(r, { type: 'null', value: null }, 'FETCH on empty queues replies $-1');
    assert.ok(dt >= 1500 && dt <= 3500, `FETCH on empty queues should block ~2 s, took ${dt} ms`);
  });
});

test('FETCH takes queues in the given priority order and each queue is FIFO', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const low = [makeJob({ queue: 'low' }), makeJob({ queue: 'low' })];
    const mid = [makeJob({ queue: 'mid' })];
    const high = [makeJob({ queue: 'high' }), makeJob({ queue: 'high' })];
    for (const j of [...low, ...mid, ...high]) await c.push(j);
    const order = [];
    for (let k = 0; k < 5; k++) order.push((await c.fetch(['high', 'mid', 'low'])).jid);
    assert.deepEqual(order, [high[0].jid, high[1].jid, mid[0].jid, low[0].jid, low[1].jid],
      'FETCH high mid low should drain high (FIFO), then mid, then low');

    const a = makeJob({ queue: 'qa' });
    const b = makeJob({ queue: 'qb' });
    await c.push(a);
    await c.push(b);
    assert.equal((await c.fetch(['qb', 'qa'])).jid, b.jid, 'the first listed non-empty queue wins, not the oldest job');
    assert.equal((await c.fetch(['qb', 'qa'])).jid, a.jid, 'then the next queue');
  });
});

test('a blocked FETCH is woken by a PUSH from another connection well within 1 s', async () => {
  await withServer(async (srv) => {
    const fetcher = await srv.connect();
    const pusher = await srv.connect();
    for (const [queues, target] of [[['wake'], 'wake'], [['w1', 'w2'], 'w2']]) {
      const job = makeJob({ queue: target });
      const t0 = Date.now();
      const pending = fetcher.fetch(queues);
      // Give the FETCH time to reach the server and block: this delay is the
      // scenario (push to a waiting fetcher), not a wait for state.
      await sleep(300);
      const tPush = Date.now();
      await pusher.push(job);
      const got = await pending;
      const tGot = Date.now();
      assert.ok(got, `FETCH ${queues.join(' ')} should return the job pushed to ${target}, got $-1 after ${tGot - t0} ms`);
      assert.equal(got.jid, job.jid, 'the woken FETCH returns the pushed job');
      assert.ok(tGot - tPush < 1000, `the FETCH should be woken within 1 s of the PUSH, took ${tGot - tPush} ms`);
      assert.ok(tGot - t0 < 1900, `the FETCH should return before its 2 s timeout, took ${tGot - t0} ms`);
      await fetcher.ack(job.jid);
    }
  });
});

test('one PUSHB wakes every blocked FETCH it has jobs for', async () => {
  await withServer(async (srv) => {
    const fetchers = [];
    for (let k = 0; k < 4; k++) fetchers.push(await srv.connect());
    const pusher = await srv.connect();
    const t0 = Date.now();
    const pending = fetchers.map((f) => f.fetch(['many']));
    await sleep(300); // let all four FETCHes block (scenario timing)
    const jobs = Array.from({ length: 4 }, (_, k) => makeJob({ queue: 'many', args: [k] }));
    const tPush = Date.now();
    assert.equal(await pusher.cmd('PUSHB ' + JSON.stringify(jobs)), '{}', 'PUSHB of four good jobs');
    const got = await Promise.all(pending);
    const tGot = Date.now();
    assert.ok(got.every(Boolean), `all four blocked FETCHes should get a job, got ${JSON.stringify(got.map((g) => g && g.jid))} after ${tGot - t0} ms`);
    assert.deepEqual(got.map((g) => g.jid).sort(), jobs.map((j) => j.jid).sort(), 'each job went to exactly one fetcher');
    assert.ok(tGot - tPush < 1000, `all fetchers should be woken within 1 s of the PUSHB, took ${tGot - tPush} ms`);
  });
});

test('a client disconnecting during a blocked FETCH does not lose the next job', async () => {
  await withServer(async (srv) => {
    // Several clients send FETCH and disconnect while it blocks.
    const gone = [];
    for (let k = 0; k < 5; k++) {
      const c = await srv.connect();
      c.send('FETCH vanish\r\n');
      gone.push(c);
    }
    await sleep(100); // let the FETCHes reach the server (scenario timing)
    for (const c of gone) c.destroy();
    const c = await srv.connect();
    const job = makeJob({ queue: 'vanish' });
    await c.push(job);
    // The job must go to a live fetcher: either still enqueued or fetchable now.
    let got = null;
    for (let k = 0; k < 3 && !got; k++) got = await c.fetch(['vanish']);
    assert.ok(got, `the job pushed after fetchers disconnected should be fetchable; INFO: ${JSON.stringify((await c.info()).faktory)}`);
    assert.equal(got.jid, job.jid, 'it is the pushed job');
    const info = await c.info();
    assert.equal(info.faktory.sets.working, 1, `only the live fetcher holds a reservation, sets: ${JSON.stringify(info.faktory.sets)}`);
  });
});

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
