'use strict';
// Cron (docs/cron.md) against the real spoold: entries from <config-dir>/cron.json
// push jobs on schedule, CRON lists them, SIGHUP reloads the file (a bad file
// keeps the old entries), and a bad file at start refuses to start.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { withServer, waitFor, makeTempDir, removeDir, runSpooldSync, parseUtc } = require('../lib/spoold');

function writeCron(dir, entries) {
  fs.writeFileSync(path.join(dir, 'cron.json'), typeof entries === 'string' ? entries : JSON.stringify(entries));
}

async function queueSize(c, q) {
  return (await c.info()).faktory.queues[q] || 0;
}

test('an @every 1s entry pushes about one job a second; CRON lists it', async () => {
  const cfg = makeTempDir('spool-cron-');
  try {
    writeCron(cfg, [
      { name: 'tick', schedule: '@every 1s', jobtype: 'Ping', args: [1, 'x'], queue: 'cq', retry: 2 },
      { name: 'nightly', schedule: '30 2 * * *', tz: 'Europe/Berlin', jobtype: 'Nightly' },
    ]);
    await withServer({ args: ['-c', cfg] }, async (srv) => {
      const c = await srv.connect();
      const t0 = Date.now();
      await waitFor(async () => (await queueSize(c, 'cq')) >= 2, { timeoutMs: 4000, what: 'two cron jobs within 4 s' });
      const n = await queueSize(c, 'cq');
      const elapsed = (Date.now() - t0) / 1000;
      assert.ok(n <= elapsed + 2, `about one job a second: ${n} jobs in ${elapsed} s`);

      const job = await c.fetch(['cq']);
      assert.equal(job.jobtype, 'Ping');
      assert.deepEqual(job.args, [1, 'x']);
      assert.equal(job.retry, 2);
      assert.equal(job.custom.cron, 'tick', 'custom.cron names the entry');
      assert.match(job.jid, /^[0-9a-f]{24}$/);

      const list = await c.cmdJSON('CRON');
      assert.equal(list.length, 2, JSON.stringify(list));
      const [tick, nightly] = list;
      assert.deepEqual(Object.keys(tick), ['name', 'schedule', 'tz', 'jobtype', 'queue', 'next_at', 'last_at']);
      assert.equal(tick.name, 'tick');
      assert.equal(tick.schedule, '@every 1s');
      assert.equal(tick.tz, 'UTC');
      assert.equal(tick.queue, 'cq');
      assert.ok(parseUtc(tick.next_at, 'next_at') > parseUtc(tick.last_at, 'last_at'));
      assert.equal(nightly.tz, 'Europe/Berlin');
      assert.equal(nightly.queue, 'default');
      assert.equal(nightly.last_at, null);
      const next = new Date(parseUtc(nightly.next_at, 'nightly next_at'));
      assert.ok([0, 1].includes(next.getUTCHours()) && next.getUTCMinutes() === 30,
        `02:30 Berlin is 00:30 or 01:30 UTC: ${nightly.next_at}`);
    });
  } finally {
    removeDir(cfg);
  }
});

test('SIGHUP reloads cron.json; a bad file keeps the previous entries', async () => {
  const cfg = makeTempDir('spool-cron-');
  try {
    writeCron(cfg, [{ name: 'a', schedule: '@daily', jobtype: 'A' }]);
    await withServer({ args: ['-c', cfg] }, async (srv) => {
      const c = await srv.connect();
      assert.deepEqual((await c.cmdJSON('CRON')).map((e) => e.name), ['a']);

      writeCron(cfg, [{ name: 'b', schedule: '@every 1s', jobtype: 'B', queue: 'bq' }]);
      srv.proc.kill('SIGHUP');
      await waitFor(async () => (await c.cmdJSON('CRON')).map((e) => e.name).join() === 'b',
        { what: 'CRON shows the reloaded entry' });
      await waitFor(async () => (await queueSize(c, 'bq')) >= 1, { timeoutMs: 4000, what: 'the new entry fires' });

      writeCron(cfg, [{ name: 'c', schedule: '* * * 13 *', jobtype: 'C' }]);
      srv.proc.kill('SIGHUP');
      await waitFor(() => /configuration not reloaded/.test(srv.stderr()), { what: 'the reload error in the log' });
      assert.match(srv.stderr(), /entry #1 \(\\?"c\\?"\): field \\?"schedule\\?": month field/);
      assert.deepEqual((await c.cmdJSON('CRON')).map((e) => e.name), ['b'], 'the previous entries stay');
    });
  } finally {
    removeDir(cfg);
  }
});

test('a bad cron.json refuses to start, naming the entry and the field', () => {
  const cfg = makeTempDir('spool-cron-');
  const data = makeTempDir('spool-cron-data-');
  try {
    writeCron(cfg, [
      { name: 'ok', schedule: '@hourly', jobtype: 'A' },
      { name: 'broken', schedule: '@hourly', jobtype: 'B', tz: 'Nowhere/City' },
    ]);
    const r = runSpooldSync(['-b', '127.0.0.1:0', '-w', '127.0.0.1:0', '-d', data, '-c', cfg]);
    assert.notEqual(r.status, 0, `spoold should refuse to start\n${r.stderr}`);
    assert.match(r.stderr, /refusing to start: bad cron configuration/);
    assert.match(r.stderr, /entry #2 \("broken"\): field "tz": unknown time zone "Nowhere\/City"/);

    writeCron(cfg, '[{"name": "x", ');
    const r2 = runSpooldSync(['-b', '127.0.0.1:0', '-w', '127.0.0.1:0', '-d', data, '-c', cfg]);
    assert.notEqual(r2.status, 0);
    assert.match(r2.stderr, /cron\.json: not valid JSON/);
  } finally {
    removeDir(cfg);
    removeDir(data);
  }
});

test('CRON without a config directory is an empty list', async () => {
  await withServer({}, async (srv) => {
    const c = await srv.connect();
    assert.deepEqual(await c.cmdJSON('CRON'), []);
  });
});
