'use strict';
// The HTTP JSON API under /api/v1 and GET /metrics (docs/http-api.md):
// every route, every error code, durability of the 202, Basic auth, the
// cross-site checks, and job text returned verbatim inside JSON.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { withServer, makeJob, newJid, parseUtc, httpGet, waitFor, httpRequest, isPostgres } = require('../lib/spoold');

const JSON_CT = 'application/json';

const request = httpRequest;

function api(srv, opts = {}) {
  const auth = opts.password ? { Authorization: 'Basic ' + Buffer.from(`u:${opts.password}`).toString('base64') } : {};
  const call = (method, p, body, headers = {}) => request(srv.httpPort, method, '/api/v1' + p, {
    body,
    headers: { ...auth, ...(body !== undefined ? { 'Content-Type': JSON_CT } : {}), ...headers },
  });
  return {
    get: (p, headers) => call('GET', p, undefined, headers),
    post: (p, body, headers) => call('POST', p, body, headers),
    del: (p, headers) => call('DELETE', p, undefined, headers),
  };
}

function expectStatus(r, status, what) {
  assert.equal(r.status, status, `${what} should answer ${status}, got ${r.status}: ${r.body}`);
  if (status !== 401) {
    assert.match(r.headers['content-type'] || '', /^application\/json/, `${what}: the API answers JSON`);
    assert.ok(r.json !== undefined, `${what}: the body should be JSON, got ${r.body}`);
  }
  return r.json;
}

async function failJob(c, job, msg = 'boom') {
  await c.push(job);
  const got = await c.fetch([job.queue || 'default']);
  assert.equal(got.jid, job.jid, 'fetched the job to fail');
  await c.fail(job.jid, { errtype: 'Boom', message: msg });
}

test('POST /api/v1/jobs answers 202 with the jid only once the job is stored, visible to FWP at once', async () => {
  await withServer(async (srv) => {
    const a = api(srv);
    const c = await srv.connect();
    const job = makeJob({ queue: 'hq', args: ['<script>alert(1)</script>', { html: '<b>&amp;</b>' }] });
    const r = await a.post('/jobs', job);
    assert.deepEqual(expectStatus(r, 202, 'a valid job'), { jids: [job.jid] });
    assert.equal(r.headers['x-content-type-options'], 'nosniff', 'JSON is never sniffed into HTML');
    const info = await c.info();
    assert.equal(info.faktory.queues.hq, 1, 'the job is in its queue as soon as the 202 arrives');

    const g = await a.get('/jobs/' + job.jid);
    const body = expectStatus(g, 200, 'GET a known job');
    assert.equal(body.state, 'enqueued');
    assert.equal(body.queue, 'hq');
    parseUtc(body.enqueued_at, 'enqueued_at');
    assert.deepEqual(body.job.args, job.args, 'the payload comes back verbatim');
    assert.ok(g.body.includes('<script>alert(1)</script>'), 'the <script> text is returned as is inside the JSON string');

    const fetched = await c.fetch(['hq']);
    assert.deepEqual(fetched.args, job.args, 'FWP FETCH gets the same job');

    // The same job again is idempotent, like PUSH.
    assert.deepEqual(expectStatus(await a.post('/jobs', job), 202, 'the same job again'), { jids: [job.jid] });
  });
});

test('POST /api/v1/jobs validates like PUSH: 400 names the problem, 409 for a jid in use', async () => {
  await withServer(async (srv) => {
    const a = api(srv);
    let e = expectStatus(await a.post('/jobs', { jid: newJid(), args: [] }), 400, 'a job without a jobtype');
    assert.match(e.error, /jobtype/, 'the message names the jobtype field');
    e = expectStatus(await a.post('/jobs', { jid: newJid(), jobtype: 'A', args: 'nope' }), 400, 'args not an array');
    assert.match(e.error, /args/, 'the message names the args field');
    e = expectStatus(await a.post('/jobs', '{"jid":'), 400, 'truncated JSON');
    assert.match(e.error, /JSON/i);
    expectStatus(await a.post('/jobs', ''), 400, 'an empty body');
    expectStatus(await a.post('/jobs', '"a string"'), 400, 'a JSON string');
    expectStatus(await a.post('/jobs', '[]'), 400, 'an empty array');
    expectStatus(await a.post('/jobs', '[1,2]'), 400, 'an array of non-objects');

    const job = makeJob();
    expectStatus(await a.post('/jobs', job), 202, 'first push');
    e = expectStatus(await a.post('/jobs', { ...job, args: [1] }), 409, 'another job with the same jid');
    assert.match(e.error, /already in use/);
  });
});

test('POST /api/v1/jobs gives the same messages as FWP PUSH', async () => {
  await withServer(async (srv) => {
    const a = api(srv);
    const c = await srv.connect();
    const taken = makeJob();
    await c.push(taken);
    const bad = [
      { jid: newJid(), args: [] },
      { jid: 'short', jobtype: 'A', args: [] },
      { jid: newJid(), jobtype: 'A', args: [], queue: 'bad queue' },
      { jid: newJid(), jobtype: 'A', args: [], retry: 'x' },
      { jid: newJid(), jobtype: 'A', args: [], at: 'yesterday' },
      { ...taken, args: ['different'] },
    ];
    for (const job of bad) {
      const fwp = await c.cmd('PUSH ' + JSON.stringify(job));
      assert.ok(fwp && fwp.error, `PUSH ${JSON.stringify(job)} should fail, got ${JSON.stringify(fwp)}`);
      const r = await a.post('/jobs', job);
      assert.ok(r.status === 400 || r.status === 409, `POST ${JSON.stringify(job)} should fail, got ${r.status}`);
      assert.equal('ERR ' + r.json.error, fwp.error, `the API and PUSH agree on what is wrong with ${JSON.stringify(job)}`);
    }
  });
});

test('a client that hangs up before the 202 does not stop the push or harm the server', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const jobs = Array.from({ length: 20 }, () => makeJob({ queue: 'gone' }));
    for (const job of jobs) {
      const body = JSON.stringify(job);
      await new Promise((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port: srv.httpPort }, () => {
          s.write(`POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
            `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, () => { s.destroy(); resolve(); });
        });
        s.on('error', reject);
      });
    }
    await waitFor(async () => (await c.info()).faktory.queues.gone === jobs.length,
      { what: 'every job pushed by a client that hung up to be stored' });
    const r = await api(srv).post('/jobs', makeJob());
    expectStatus(r, 202, 'the server still serves the API');
  });
});

test('POST /api/v1/jobs with an array stores the good jobs and reports the bad ones by jid', async () => {
  await withServer(async (srv) => {
    const a = api(srv);
    const c = await srv.connect();
    const good = [makeJob({ queue: 'bq' }), makeJob({ queue: 'bq' })];
    const badJid = newJid();
    const r = await a.post('/jobs', [good[0], { jid: badJid, args: [] }, good[1]]);
    const body = expectStatus(r, 202, 'a batch with one bad job');
    assert.deepEqual(body.jids, good.map((j) => j.jid), 'the stored jids, in order');
    assert.deepEqual(Object.keys(body.errors), [badJid], 'the bad job is reported by its jid');
    assert.match(body.errors[badJid], /jobtype/);
    assert.equal((await c.info()).faktory.queues.bq, 2, 'the good jobs are stored');

    const allBad = await a.post('/jobs', [{ jid: badJid, args: [] }]);
    const b2 = expectStatus(allBad, 400, 'a batch with no good job');
    assert.ok(b2.errors && b2.errors[badJid], `errors by jid: ${allBad.body}`);

    const clean = expectStatus(await a.post('/jobs', [makeJob({ queue: 'bq' })]), 202, 'an all-good batch');
    assert.ok(!('errors' in clean), 'no errors member when every job was stored');
  });
});

test('POST /api/v1/jobs: 413 over --max-job-size (one job) and --max-line (a batch)', async () => {
  await withServer({ args: ['--max-job-size', '512', '--max-line', '4096'] }, async (srv) => {
    const a = api(srv);
    const big = makeJob({ args: ['x'.repeat(600)] });
    let e = expectStatus(await a.post('/jobs', big), 413, 'a job over --max-job-size');
    assert.match(e.error, /max-job-size/);
    // One byte over --max-line: spoold's own 413, naming the limit.
    const batchText = JSON.stringify([makeJob()]);
    e = expectStatus(await a.post('/jobs', batchText + ' '.repeat(4097 - batchText.length)), 413,
      'a batch one byte over --max-line');
    assert.match(e.error, /max-line/);
    const batch = Array.from({ length: 30 }, () => makeJob({ args: ['y'.repeat(100)] }));
    assert.equal((await a.post('/jobs', batch)).status, 413, 'a batch well over --max-line');
    const ok = [makeJob(), makeJob()];
    assert.deepEqual(expectStatus(await a.post('/jobs', ok), 202, 'a batch under --max-line').jids, ok.map((j) => j.jid));
    const r = await request(srv.httpPort, 'POST', '/api/v1/jobs',
      { body: 'z'.repeat(10000), headers: { 'Content-Type': JSON_CT } });
    assert.equal(r.status, 413, 'a body over every limit is refused by the HTTP layer');
    const small = makeJob();
    expectStatus(await a.post('/jobs', small), 202, 'a small job still goes in');
  });
});

test('changes need JSON and the same origin: 415, 403; same-origin and Origin-less requests pass', async () => {
  await withServer(async (srv) => {
    const a = api(srv);
    const job = makeJob();
    const text = await request(srv.httpPort, 'POST', '/api/v1/jobs',
      { body: JSON.stringify(job), headers: { 'Content-Type': 'text/plain' } });
    expectStatus(text, 415, 'a job sent as text/plain');
    const form = await request(srv.httpPort, 'POST', '/api/v1/jobs',
      { body: 'a=1', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    expectStatus(form, 415, 'a form post');
    const none = await request(srv.httpPort, 'POST', '/api/v1/jobs', { body: JSON.stringify(job) });
    expectStatus(none, 415, 'a body without a Content-Type');

    expectStatus(await a.post('/jobs', job, { Origin: 'http://evil.example' }), 403, 'a cross-site push');
    expectStatus(await a.post('/jobs', job, { Origin: 'null' }), 403, 'an opaque origin');
    expectStatus(await a.del('/queues/default', { Origin: 'http://evil.example' }), 403, 'a cross-site DELETE');
    const same = `http://127.0.0.1:${srv.httpPort}`;
    expectStatus(await a.post('/jobs', job, { Origin: same }), 202, 'a same-origin push');
    expectStatus(await a.post('/jobs', makeJob(), { 'Content-Type': 'application/json; charset=utf-8' }), 202,
      'JSON with a charset parameter');
    // A cross-site GET is harmless to state, and still served.
    expectStatus(await a.get('/queues', { Origin: 'http://evil.example' }), 200, 'a cross-site read');
  });
});

test('routes: 404 for unknown routes and jids, 405 for the wrong method', async () => {
  await withServer(async (srv) => {
    const a = api(srv);
    expectStatus(await a.get('/nope'), 404, 'an unknown route');
    expectStatus(await a.get(''), 404, '/api/v1 itself');
    expectStatus(await a.get('/jobs/'), 404, 'a trailing slash');
    expectStatus(await a.get('/jobs/a/b/c/d/e'), 404, 'too many segments');
    expectStatus(await a.get('/jobs/' + newJid()), 404, 'an unknown jid');
    expectStatus(await a.get('/jobs/ab%00cd'), 400, 'a NUL in a path segment');
    expectStatus(await a.get('/jobs/' + 'j'.repeat(2000)), 404, 'an overlong segment');
    let r = await a.get('/jobs');
    expectStatus(r, 405, 'GET /jobs');
    assert.equal(r.headers.allow, 'POST', 'the Allow header says what works');
    expectStatus(await a.del('/jobs/' + newJid()), 405, 'DELETE a job');
    expectStatus(await a.post('/queues', {}), 405, 'POST /queues');
    expectStatus(await a.get('/queues/default/pause'), 405, 'GET pause');
    expectStatus(await a.get('/sets/nope'), 404, 'an unknown set');
    expectStatus(await a.get('/workers/w/quiet'), 405, 'GET quiet');
    r = await request(srv.httpPort, 'PUT', '/api/v1/jobs', { body: '{}', headers: { 'Content-Type': JSON_CT } });
    assert.equal(r.status, 501, 'PUT is not served at all (the HTTP layer says 501)');
  });
});

test('GET /api/v1/jobs/{jid} says where the job is: scheduled, working, retry, dead', async () => {
  await withServer(async (srv) => {
    const a = api(srv);
    const w = await srv.connect({ hello: { wid: 'w-api' } });
    const at = new Date(Date.now() + 3600e3).toISOString();
    const sched = makeJob({ at });
    await w.push(sched);
    let b = expectStatus(await a.get('/jobs/' + sched.jid), 200, 'a scheduled job');
    assert.equal(b.state, 'scheduled');
    assert.equal(parseUtc(b.at), Date.parse(at), 'at is the scheduled time');

    const work = makeJob({ queue: 'wq' });
    await w.push(work);
    await w.fetch(['wq']);
    b = expectStatus(await a.get('/jobs/' + work.jid), 200, 'a working job');
    assert.equal(b.state, 'working');
    assert.equal(b.wid, 'w-api');
    const reserved = parseUtc(b.reserved_at, 'reserved_at');
    assert.ok(Math.abs(reserved - Date.now()) < 5000, 'reserved_at is about now');
    assert.ok(parseUtc(b.reservation_expires_at) > reserved, 'the reservation ends after it began');

    const retry = makeJob({ queue: 'rq' });
    await failJob(w, retry, 'first <failure>');
    b = expectStatus(await a.get('/jobs/' + retry.jid), 200, 'a job waiting for a retry');
    assert.equal(b.state, 'retry');
    assert.equal(b.job.failure.message, 'first <failure>', 'the failure is in the payload, verbatim');
    assert.equal(parseUtc(b.retry_at), parseUtc(b.job.failure.next_at), 'retry_at is the next retry');

    const dead = makeJob({ queue: 'dq', retry: -1 });
    await failJob(w, dead);
    b = expectStatus(await a.get('/jobs/' + dead.jid), 200, 'a dead job');
    assert.equal(b.state, 'dead');
    assert.ok(parseUtc(b.expires_at) > Date.now() + 100 * 86400e3, 'a dead job expires months from now');
  });
});

test('queues: list with size, latency and paused; pause, resume, delete; 404 and 400', async () => {
  await withServer(async (srv) => {
    const a = api(srv);
    const c = await srv.connect();
    for (let k = 0; k < 3; k++) await c.push(makeJob({ queue: 'qa' }));
    await c.push(makeJob({ queue: 'qb' }));
    let l = expectStatus(await a.get('/queues'), 200, 'GET /queues');
    assert.deepEqual(l.queues.map((q) => [q.name, q.size, q.paused]), [['qa', 3, false], ['qb', 1, false]]);
    for (const q of l.queues) assert.ok(typeof q.latency === 'number' && q.latency >= 0, 'latency is seconds');

    assert.deepEqual(expectStatus(await a.post('/queues/qa/pause'), 200, 'pause'), { name: 'qa', paused: true });
    assert.equal(await c.fetch(['qa']), null, 'a paused queue hands out nothing');
    l = expectStatus(await a.get('/queues'), 200, 'GET /queues after pause');
    assert.equal(l.queues.find((q) => q.name === 'qa').paused, true);
    assert.deepEqual((await c.info()).faktory.paused, ['qa'], 'INFO agrees the queue is paused');
    assert.deepEqual(expectStatus(await a.post('/queues/qa/resume'), 200, 'resume'), { name: 'qa', paused: false });
    assert.ok((await c.fetch(['qa'])), 'a resumed queue hands out jobs');

    assert.deepEqual(expectStatus(await a.del('/queues/qb'), 200, 'DELETE'), { name: 'qb', deleted: true });
    assert.equal((await c.info()).faktory.queues.qb, undefined, 'the queue is gone');
    expectStatus(await a.del('/queues/qb'), 404, 'DELETE an unknown queue');
    expectStatus(await a.post('/queues/nosuch/pause'), 404, 'pause an unknown queue');
    expectStatus(await a.post('/queues/bad%20name/pause'), 400, 'a queue name with a space');
    expectStatus(await a.post('/queues/qa/pause', undefined, { 'Content-Type': 'text/plain' }), 415,
      'a non-JSON content type on a bodiless POST');
  });
});

test('sets: paged listing with jobtype and match; retry, kill, delete by jids or filter', async () => {
  await withServer(async (srv) => {
    const a = api(srv);
    const c = await srv.connect();
    const jobs = [];
    for (let k = 0; k < 5; k++) {
      const j = makeJob({ queue: 'sq', jobtype: k % 2 ? 'Odd' : 'Even', args: [`item-${k}`, k === 3 ? 'a*[b]?' : 'plain'] });
      jobs.push(j);
      await failJob(c, j);
    }
    let p = expectStatus(await a.get('/sets/retries'), 200, 'list retries');
    assert.equal(p.total, 5);
    assert.equal(p.limit, 50);
    assert.equal(p.jobs.length, 5);
    p = expectStatus(await a.get('/sets/retries?offset=1&limit=2'), 200, 'a page');
    assert.equal(p.jobs.length, 2);
    assert.equal(p.total, 5);
    assert.equal(p.offset, 1);
    p = expectStatus(await a.get('/sets/retries?limit=100000'), 200, 'a huge limit');
    assert.equal(p.limit, 1000, 'the limit is capped at 1000');
    p = expectStatus(await a.get('/sets/retries?limit=' + '9'.repeat(30)), 200, 'a 30-digit limit');
    assert.equal(p.limit, 1000, 'a limit past any integer is capped too');
    p = expectStatus(await a.get('/sets/retries?offset=184467440737095516160'), 200, 'an offset past 2^64');
    assert.equal(p.jobs.length, 0, 'an offset past the end is an empty page');
    assert.equal(p.total, 5);
    p = expectStatus(await a.get('/sets/retries?jobtype=Odd'), 200, 'by jobtype');
    assert.equal(p.total, 2);
    p = expectStatus(await a.get('/sets/retries?match=' + encodeURIComponent('a*[b]?')), 200, 'match with glob characters');
    assert.deepEqual(p.jobs.map((e) => e.job.jid), [jobs[3].jid], 'glob characters in match are literal text');
    p = expectStatus(await a.get('/sets/retries?match=item-'), 200, 'match a substring');
    assert.equal(p.total, 5);
    p = expectStatus(await a.get('/sets/retries?match=a*b'), 200, 'a star is not a wildcard');
    assert.equal(p.total, 0);
    expectStatus(await a.get('/sets/retries?limit=-1'), 400, 'a negative limit');
    expectStatus(await a.get('/sets/retries?offset=x'), 400, 'a non-numeric offset');
    expectStatus(await a.get('/sets/retries?match=' + 'm'.repeat(1100)), 400, 'an overlong match');
    expectStatus(await a.get('/sets/working'), 200, 'list working');
    expectStatus(await a.get('/sets/scheduled'), 200, 'list scheduled');

    // kill by jid: retries -> dead
    let r = expectStatus(await a.post('/sets/retries/kill', { jids: [jobs[0].jid] }), 200, 'kill by jid');
    assert.deepEqual(r, { changed: 1 });
    assert.equal(expectStatus(await a.get('/jobs/' + jobs[0].jid), 200, 'the killed job').state, 'dead');
    // retry by filter: the odd jobs go back to their queue
    r = expectStatus(await a.post('/sets/retries/retry', { filter: { jobtype: 'Odd' } }), 200, 'retry by filter');
    assert.deepEqual(r, { changed: 2 });
    assert.equal((await c.info()).faktory.queues.sq, 2, 'retried jobs are enqueued');
    // delete by match
    r = expectStatus(await a.post('/sets/retries/delete', { filter: { match: 'item-2' } }), 200, 'delete by match');
    assert.deepEqual(r, { changed: 1 });
    expectStatus(await a.get('/jobs/' + jobs[2].jid), 404, 'a deleted job is gone');
    // dead -> retry
    r = expectStatus(await a.post('/sets/dead/retry', { jids: [jobs[0].jid, newJid()] }), 200, 'retry from dead');
    assert.deepEqual(r, { changed: 1 }, 'an unknown jid changes nothing');
    // filter {} means the whole set
    r = expectStatus(await a.post('/sets/retries/delete', { filter: {} }), 200, 'delete all');
    assert.deepEqual(r, { changed: 1 });
    assert.deepEqual((await c.info()).faktory.sets, { scheduled: 0, retries: 0, dead: 0, working: 0 });

    expectStatus(await a.post('/sets/retries/delete', { jids: [] }), 400, 'an empty jids list never means everything');
    expectStatus(await a.post('/sets/retries/delete', {}), 400, 'neither jids nor filter');
    expectStatus(await a.post('/sets/retries/delete', { jids: ['a'], filter: {} }), 400, 'both jids and filter');
    expectStatus(await a.post('/sets/retries/delete', { jids: [1] }), 400, 'jids not strings');
    expectStatus(await a.post('/sets/retries/delete', { filter: { jobtype: 3 } }), 400, 'jobtype not a string');
    expectStatus(await a.post('/sets/retries/delete', '[1]'), 400, 'not an object');
    expectStatus(await a.post('/sets/retries/delete'), 400, 'no body');
    expectStatus(await a.post('/sets/working/delete', { filter: {} }), 405, 'the working set takes no actions');
    expectStatus(await a.post('/sets/nope/delete', { filter: {} }), 404, 'an unknown set');
  });
});

test('workers: list, quiet and stop reach the process through BEAT; 404 for an unknown wid', async () => {
  await withServer(async (srv) => {
    const a = api(srv);
    const w = await srv.connect({ hello: { wid: 'w-1', labels: ['<l>'], pid: 42 } });
    const l = expectStatus(await a.get('/workers'), 200, 'GET /workers');
    assert.equal(l.workers.length, 1);
    assert.equal(l.workers[0].wid, 'w-1');
    assert.equal(l.workers[0].pid, 42);
    assert.deepEqual(l.workers[0].labels, ['<l>']);
    assert.equal(l.workers[0].state, 'running');

    assert.deepEqual(expectStatus(await a.post('/workers/w-1/quiet'), 200, 'quiet'), { wid: 'w-1', state: 'quiet' });
    assert.deepEqual(JSON.parse(await w.cmd('BEAT {"wid":"w-1"}')), { state: 'quiet' });
    assert.deepEqual(expectStatus(await a.post('/workers/w-1/stop'), 200, 'stop'), { wid: 'w-1', state: 'terminate' });
    assert.deepEqual(JSON.parse(await w.cmd('BEAT {"wid":"w-1"}')), { state: 'terminate' });
    expectStatus(await a.post('/workers/nobody/quiet'), 404, 'an unknown worker');
    expectStatus(await a.post('/workers/w-1/quiet', undefined, { Origin: 'http://evil.example' }), 403, 'cross-site quiet');
  });
});

test('GET /metrics: Prometheus text with queues, sets, counters and the journal', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect({ hello: { wid: 'w-m' } });
    for (let k = 0; k < 2; k++) await c.push(makeJob({ queue: 'mq' }));
    await failJob(c, makeJob({ queue: 'fq' }));
    const r = await httpGet(srv.httpPort, '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    const value = (series) => {
      const line = r.body.split('\n').find((l) => l.startsWith(series + ' '));
      assert.ok(line, `metrics should have a ${series} line:\n${r.body}`);
      return Number(line.slice(series.length + 1));
    };
    assert.equal(value('spool_queue_size{queue="mq"}'), 2);
    assert.ok(value('spool_queue_latency_seconds{queue="mq"}') >= 0);
    assert.equal(value('spool_set_size{set="retries"}'), 1);
    assert.equal(value('spool_set_size{set="dead"}'), 0);
    assert.equal(value('spool_jobs_processed_total'), 1);
    assert.equal(value('spool_jobs_failed_total'), 1);
    assert.equal(value('spool_connections'), 1);
    assert.equal(value('spool_workers'), 1);
    if (isPostgres()) { // no journal there; the maintenance leader is reported instead
      assert.equal(value('spool_store_leader'), 1, 'the only server holds the leader lock');
    } else {
      assert.equal(value('spool_dead_dropped_total'), 0);
      assert.equal(value('spool_reservations_expired_total'), 0);
      assert.ok(value('spool_journal_records_total') >= 4, 'records were journaled');
      assert.ok(value('spool_journal_fsyncs_total') >= 1, 'fsyncs happened');
      assert.ok(value('spool_journal_fsync_seconds_max') >= 0);
      for (const h of ['spool_journal_fsync_duration_seconds', 'spool_journal_batch_records']) {
        const buckets = r.body.split('\n').filter((l) => l.startsWith(h + '_bucket{'))
          .map((l) => Number(l.split(' ')[1]));
        assert.ok(buckets.length > 2, `${h} has buckets`);
        for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i] >= buckets[i - 1], `${h} buckets are cumulative`);
        assert.equal(value(`${h}_bucket{le="+Inf"}`), value(`${h}_count`), `${h}: +Inf bucket == count`);
      }
      assert.equal(value('spool_journal_fsync_duration_seconds_count'), value('spool_journal_fsyncs_total'),
        'one fsync latency observation per fsync');
      assert.equal(value('spool_journal_batch_records_sum'), value('spool_journal_records_total'),
        'the batch histogram adds up to the records');
    }
    for (const name of ['spool_queue_size', 'spool_set_size', 'spool_jobs_processed_total']) {
      assert.ok(r.body.includes(`# TYPE ${name} `), `a # TYPE line for ${name}`);
    }
    for (const line of r.body.trim().split('\n')) {
      assert.match(line, /^(# (HELP|TYPE) \w+ .+|\w+(\{\w+="[^"\\\n]*"\})? [0-9.e+-]+)$/, `a valid exposition line: ${line}`);
    }
  });
});

test('with a password the API and /metrics need HTTP Basic auth', async () => {
  await withServer({ password: 's3cret' }, async (srv) => {
    const anon = api(srv);
    let r = await anon.post('/jobs', makeJob());
    assert.equal(r.status, 401, 'a push without credentials');
    assert.match(r.headers['www-authenticate'] || '', /^Basic/);
    assert.equal((await anon.get('/queues')).status, 401, 'a read without credentials');
    assert.equal((await api(srv, { password: 'wrong' }).get('/queues')).status, 401, 'a wrong password');
    assert.equal((await httpGet(srv.httpPort, '/metrics')).status, 401, '/metrics without credentials');
    const a = api(srv, { password: 's3cret' });
    const job = makeJob();
    expectStatus(await a.post('/jobs', job), 202, 'a push with the password');
    expectStatus(await a.get('/jobs/' + job.jid), 200, 'a read with the password');
  });
});

test('GET /stats and /health are unchanged', async () => {
  await withServer(async (srv) => {
    const s = await httpGet(srv.httpPort, '/stats');
    assert.equal(s.status, 200);
    assert.ok(JSON.parse(s.body).faktory, '/stats is INFO');
    const h = await httpGet(srv.httpPort, '/health');
    assert.equal(h.status, 200);
    assert.ok(JSON.parse(h.body).server, '/health has the server object');
  });
});
