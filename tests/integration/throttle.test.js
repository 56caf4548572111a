'use strict';
// Queue throttles (docs/features.md) against the real spoold over raw FWP:
// throttles.json at start, FETCH skipping a throttled queue, a blocked FETCH
// served by an ACK and by the rate window opening, the throttle in INFO,
// /metrics and the API's queue objects, reloads by SIGHUP and by
// POST /api/v1/config/reload (bad files refused, the previous configuration
// kept), a bad file refusing the start, in-flight counts after a restart,
// and a load test where the observed maximum in flight never exceeds the limit.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const {
  withServer, startServer, waitFor, makeJob, makeTempDir, removeDir, runSpooldSync, parseUtc, httpGet, httpRequest } = require('../lib/spoold');

function writeThrottles(dir, cfg) {
  fs.writeFileSync(path.join(dir, 'throttles.json'), typeof cfg === 'string' ? cfg : JSON.stringify(cfg));
}

const request = httpRequest;

const reload = (srv, headers = {}) => request(srv.httpPort, 'POST', '/api/v1/config/reload', { headers });

async function throttleInfo(c, q) {
  return (await c.info()).faktory.throttles[q];
}

async function pushN(c, queue, n, fields = {}) {
  const jids = [];
  for (let i = 0; i < n; i++) jids.push(await c.push(makeJob({ queue, ...fields })));
  return jids;
}

test('throttles.json at start: concurrency across workers, skip to the next queue, woken on ACK; INFO, API, metrics', async () => {
  const cfg = makeTempDir('spool-thr-');
  try {
    writeThrottles(cfg, { tq: { concurrency: 2 } });
    await withServer({ args: ['-c', cfg] }, async (srv) => {
      assert.match(srv.stderr(), /throttles\.json loaded/);
      const p = await srv.connect();
      await pushN(p, 'tq', 4);
      await pushN(p, 'other', 1);
      const w1 = await srv.connect({ hello: { wid: 'w-1' } });
      const w2 = await srv.connect({ hello: { wid: 'w-2' } });
      const w3 = await srv.connect({ hello: { wid: 'w-3' } });
      const a = await w1.fetch(['tq']);
      const b = await w2.fetch(['tq']);
      assert.ok(a && b, 'two workers get a job each');

      // The third worker asking for tq then other gets other's job.
      const o = await w3.fetch(['tq', 'other']);
      assert.equal(o.queue, 'other', 'a throttled queue is skipped for the next one asked for');

      assert.deepEqual(await throttleInfo(p, 'tq'),
        { concurrency: 2, in_flight: 2, rate_limit: null, rate_period_s: null, throttled: true });
      assert.equal((await p.info()).faktory.queues.tq, 2, 'faktory.queues keeps its shape');

      const q = await request(srv.httpPort, 'GET', '/api/v1/queues/tq');
      assert.equal(q.status, 200, q.body);
      assert.deepEqual(q.json, {
        name: 'tq', size: 2, latency: q.json.latency, paused: false,
        throttle: { concurrency: 2, in_flight: 2, rate_limit: null, rate_period_s: null, throttled: true },
      });
      const all = await request(srv.httpPort, 'GET', '/api/v1/queues');
      const byName = Object.fromEntries(all.json.queues.map((x) => [x.name, x]));
      assert.equal(byName.other.throttle, null, 'a queue without a throttle has "throttle": null');
      assert.equal(byName.tq.throttle.in_flight, 2);
      assert.equal((await request(srv.httpPort, 'GET', '/api/v1/queues/nope')).status, 404);

      const m = await httpGet(srv.httpPort, '/metrics');
      assert.match(m.body, /^spool_queue_in_flight\{queue="tq"\} 2$/m);
      assert.match(m.body, /^spool_queue_throttled\{queue="tq"\} 1$/m);
      assert.match(m.body, /^spool_queue_concurrency_limit\{queue="tq"\} 2$/m);
      assert.match(m.body, /^# TYPE spool_queue_in_flight gauge$/m);

      // At the limit a FETCH of tq alone blocks and times out empty (2 s) ...
      assert.equal(await w3.fetch(['tq']), null, 'at the limit FETCH tq gets nothing');
      // ... and a blocked one is served as soon as one of the two is ACKed. The INFO
      // round trip lets the server read the FETCH (sent first) before the ACK.
      const waiting = w3.fetch(['tq']);
      await p.info();
      await w1.ack(a.jid);
      const c = await waiting;
      assert.ok(c, 'the blocked FETCH got a job after the ACK, within its 2 s wait');
      assert.equal(c.queue, 'tq');
      assert.equal((await throttleInfo(p, 'tq')).in_flight, 2);
      assert.equal(await w1.fetch(['tq']), null, 'still at the limit: FETCH times out empty');
    });
  } finally {
    removeDir(cfg);
  }
});

test('rate: at most limit per sliding window, a blocked FETCH is served when the window opens', async () => {
  const cfg = makeTempDir('spool-thr-');
  try {
    writeThrottles(cfg, { rq: { rate: { limit: 3, period: '1s' } } });
    await withServer({ args: ['-c', cfg] }, async (srv) => {
      const p = await srv.connect();
      await pushN(p, 'rq', 8);
      const w = await srv.connect({ hello: { wid: 'w-r' } });
      const got = [];
      for (let i = 0; i < 3; i++) got.push(await w.fetch(['rq']));
      assert.ok(got.every(Boolean));
      assert.deepEqual(await throttleInfo(p, 'rq'),
        { concurrency: null, in_flight: 3, rate_limit: 3, rate_period_s: 1, throttled: true });
      // Blocks: the window is full; served when it opens, well before the 2 s timeout.
      const t0 = Date.now();
      const j = await w.fetch(['rq']);
      assert.ok(j, `the blocked FETCH was served when the window opened (${Date.now() - t0} ms)`);
      for (let i = 0; i < 2; i++) assert.ok(await w.fetch(['rq']));

      // The server's reservation times: any 3 consecutive ones span less than 1 s,
      // never 4 (a sliding window of 1 s holds at most 3).
      const ws = await request(srv.httpPort, 'GET', '/api/v1/sets/working?limit=100');
      const times = ws.json.jobs.map((e) => e.reserved_at).sort();
      assert.equal(times.length, 6);
      const ns = (s) => BigInt(Date.parse(s.slice(0, 19) + 'Z')) * 1000000n +
        BigInt((s.slice(20, -1) + '000000000').slice(0, 9));
      for (let i = 0; i + 3 < times.length; i++) {
        const span = ns(times[i + 3]) - ns(times[i]);
        assert.ok(span >= 1000000000n, `reservations ${i} and ${i + 3} are ${span} ns apart: 4 in one window`);
      }
      parseUtc(times[0], 'reserved_at');
    });
  } finally {
    removeDir(cfg);
  }
});

test('SIGHUP and POST /api/v1/config/reload reload throttles.json; bad files keep the previous configuration', async () => {
  const cfg = makeTempDir('spool-thr-');
  try {
    writeThrottles(cfg, { hq: { concurrency: 1 } });
    await withServer({ args: ['-c', cfg] }, async (srv) => {
      const p = await srv.connect();
      await pushN(p, 'hq', 4);
      const w = await srv.connect({ hello: { wid: 'w-h' } });
      assert.ok(await w.fetch(['hq']));
      assert.equal((await throttleInfo(p, 'hq')).throttled, true);
      assert.equal(await w.fetch(['hq']), null, 'concurrency 1: a second FETCH gets nothing');

      writeThrottles(cfg, { hq: { concurrency: 3 } });
      srv.proc.kill('SIGHUP');
      await waitFor(async () => (await throttleInfo(p, 'hq')).concurrency === 3, { what: 'SIGHUP applied the new limit' });
      assert.ok(await w.fetch(['hq']), 'room after the reload');

      writeThrottles(cfg, { hq: { concurrency: 'many' } });
      srv.proc.kill('SIGHUP');
      await waitFor(() => /configuration not reloaded/.test(srv.stderr()), { what: 'the reload error in the log' });
      assert.match(srv.stderr(), /throttles\.json: queue \\?"hq\\?": field \\?"concurrency\\?": must be a whole number/);
      assert.equal((await throttleInfo(p, 'hq')).concurrency, 3, 'the previous limits stay');

      // Over the API: 200 with what was loaded.
      writeThrottles(cfg, { hq: { concurrency: 2, rate: { limit: 100, period: '1m' } }, zq: { rate: { limit: 5, period: 30 } } });
      fs.writeFileSync(path.join(cfg, 'cron.json'), JSON.stringify([{ name: 'n1', schedule: '@daily', jobtype: 'N' }]));
      let r = await reload(srv);
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(r.json.throttles, {
        hq: { concurrency: 2, rate_limit: 100, rate_period_s: 60 },
        zq: { concurrency: null, rate_limit: 5, rate_period_s: 30 },
      });
      assert.deepEqual(r.json.cron.map((e) => e.name), ['n1'], 'cron.json is reloaded too');
      assert.deepEqual(await throttleInfo(p, 'hq'),
        { concurrency: 2, in_flight: 2, rate_limit: 100, rate_period_s: 60, throttled: true });
      assert.deepEqual((await p.cmdJSON('CRON')).map((e) => e.name), ['n1']);

      // A bad throttles.json: 422 naming file, queue and field; neither file changes.
      fs.writeFileSync(path.join(cfg, 'cron.json'), JSON.stringify([{ name: 'n2', schedule: '@daily', jobtype: 'N' }]));
      writeThrottles(cfg, { hq: { rate: { limit: 10, period: 'later' } } });
      r = await reload(srv);
      assert.equal(r.status, 422, r.body);
      assert.match(r.json.error, /throttles\.json: queue "hq": field "rate\.period": "later" is not a duration/);
      assert.equal((await throttleInfo(p, 'hq')).concurrency, 2);
      assert.deepEqual((await p.cmdJSON('CRON')).map((e) => e.name), ['n1'], 'all or nothing: cron.json not applied either');

      // Two objects in the file: refused, not half read.
      fs.writeFileSync(path.join(cfg, 'throttles.json'), '{"hq": {"concurrency": 9}}\n{"other": {"concurrency": 1}}\n');
      r = await reload(srv);
      assert.equal(r.status, 422, r.body);
      assert.match(r.json.error, /throttles\.json: text after the JSON object \(at byte 27\)/);
      assert.equal((await throttleInfo(p, 'hq')).concurrency, 2, 'the previous limit stays');

      // A bad cron.json: 422 too.
      writeThrottles(cfg, {});
      fs.writeFileSync(path.join(cfg, 'cron.json'), '[{"name": "x"');
      r = await reload(srv);
      assert.equal(r.status, 422, r.body);
      assert.match(r.json.error, /cron\.json: not valid JSON/);
      assert.ok(await throttleInfo(p, 'hq'), 'throttles unchanged');

      // Cross-site requests are refused; GET is not the method.
      r = await reload(srv, { Origin: 'http://evil.example', Host: `127.0.0.1:${srv.httpPort}` });
      assert.equal(r.status, 403, r.body);
      r = await request(srv.httpPort, 'GET', '/api/v1/config/reload');
      assert.equal(r.status, 405);
      assert.equal(r.headers.allow, 'POST');

      // Removing the files removes the throttles.
      fs.rmSync(path.join(cfg, 'throttles.json'));
      fs.rmSync(path.join(cfg, 'cron.json'));
      r = await reload(srv);
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(r.json, { cron: [], throttles: {} });
      assert.deepEqual((await p.info()).faktory.throttles, {});
      assert.ok(await w.fetch(['hq']), 'no throttle: the queue hands out jobs again');
    });
  } finally {
    removeDir(cfg);
  }
});

test('config reload: 400 without a config directory, 401 without the password', async () => {
  await withServer({}, async (srv) => {
    const r = await reload(srv);
    assert.equal(r.status, 400, r.body);
    assert.match(r.json.error, /without a config directory \(-c\)/);
  });
  const cfg = makeTempDir('spool-thr-');
  try {
    await withServer({ args: ['-c', cfg], password: 's3cret' }, async (srv) => {
      assert.equal((await reload(srv)).status, 401);
      const auth = { Authorization: 'Basic ' + Buffer.from('u:s3cret').toString('base64') };
      const r = await reload(srv, auth);
      assert.equal(r.status, 200, r.body);
    });
  } finally {
    removeDir(cfg);
  }
});

test('a bad throttles.json refuses to start, naming the file, the queue and the field', () => {
  const cfg = makeTempDir('spool-thr-');
  const data = makeTempDir('spool-thr-data-');
  try {
    const run = () => runSpooldSync(['-b', '127.0.0.1:0', '-w', '127.0.0.1:0', '-d', data, '-c', cfg]);
    writeThrottles(cfg, { ok: { concurrency: 1 }, emails: { concurrency: 0 } });
    let r = run();
    assert.notEqual(r.status, 0, `spoold should refuse to start\n${r.stderr}`);
    assert.match(r.stderr, /refusing to start: bad throttle configuration/);
    assert.match(r.stderr, /throttles\.json: queue \\?"emails\\?": field \\?"concurrency\\?": is out of range/);

    writeThrottles(cfg, { emails: { rate: { limit: 10 } } });
    r = run();
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /queue \\?"emails\\?": field \\?"rate\.period\\?": is required/);

    writeThrottles(cfg, { emails: { concurrency: 1, burst: 3 } });
    r = run();
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /unknown field \\?"burst\\?"/);

    writeThrottles(cfg, '{"emails": ');
    r = run();
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /throttles\.json: not valid JSON/);
  } finally {
    removeDir(cfg);
    removeDir(data);
  }
});

test('after a restart the in-flight count comes from the journaled reservations', async () => {
  const cfg = makeTempDir('spool-thr-');
  const data = makeTempDir('spool-thr-data-');
  try {
    writeThrottles(cfg, { sq: { concurrency: 2 } });
    let srv = await startServer({ dir: data, args: ['-c', cfg] });
    try {
      const p = await srv.connect();
      await pushN(p, 'sq', 3);
      const w = await srv.connect({ hello: { wid: 'w-s' } });
      assert.ok(await w.fetch(['sq']));
      assert.ok(await w.fetch(['sq']));
    } finally {
      await srv.stop();
    }
    srv = await startServer({ dir: data, args: ['-c', cfg] });
    try {
      const p = await srv.connect();
      assert.deepEqual(await throttleInfo(p, 'sq'),
        { concurrency: 2, in_flight: 2, rate_limit: null, rate_period_s: null, throttled: true });
      const w = await srv.connect({ hello: { wid: 'w-s2' } });
      assert.equal(await w.fetch(['sq']), null, 'the two reservations from before the restart still count');
    } finally {
      await srv.stop();
    }
  } finally {
    removeDir(cfg);
    removeDir(data);
  }
});

test('load: 8 workers on a queue with concurrency 3 never hold more than 3 at once', async () => {
  const cfg = makeTempDir('spool-thr-');
  const LIMIT = 3;
  const WORKERS = 8;
  const JOBS = 120;
  try {
    writeThrottles(cfg, { lq: { concurrency: LIMIT } });
    await withServer({ args: ['-c', cfg] }, async (srv) => {
      const p = await srv.connect();
      await pushN(p, 'lq', JOBS);
      let holding = 0;
      let maxHolding = 0;
      let done = 0;
      let serverMax = 0;
      let stop = false;
      const workers = [];
      for (let i = 0; i < WORKERS; i++) workers.push(await srv.connect({ hello: { wid: `w-load-${i}` } }));
      // Watches the server's own count while the workers run.
      const watcher = (async () => {
        const c = await srv.connect();
        for (let k = 0; k < 10000 && !stop; k++) {
          const t = await throttleInfo(c, 'lq');
          serverMax = Math.max(serverMax, t.in_flight);
        }
      })();
      const deadline = Date.now() + 60000;
      await Promise.all(workers.map(async (w, i) => {
        while (done < JOBS && Date.now() < deadline) {
          const job = await w.fetch(['lq']);
          if (!job) continue;
          // Counted from receipt to just before the ACK: always inside the server's reservation.
          holding++;
          maxHolding = Math.max(maxHolding, holding);
          await new Promise((r) => setTimeout(r, 2 + ((i * 7) % 9)));
          holding--;
          await w.ack(job.jid);
          done++;
        }
      }));
      stop = true;
      await watcher;
      assert.equal(done, JOBS, 'every job was processed');
      assert.ok(maxHolding <= LIMIT, `observed ${maxHolding} jobs in flight at once, limit ${LIMIT}`);
      assert.ok(serverMax <= LIMIT, `INFO showed in_flight ${serverMax}, limit ${LIMIT}`);
      assert.equal(maxHolding, LIMIT, 'with 8 workers the limit is reached (the throttle, not the workers, bounds it)');
      const t = await throttleInfo(p, 'lq');
      assert.equal(t.in_flight, 0);
      assert.equal(t.throttled, false);
    });
  } finally {
    removeDir(cfg);
  }
});
