'use strict';
// What spoold serves for the dashboard (docs/dashboard.md) and the API routes
// it reads besides the others (docs/http-api.md): the embedded files with
// their types, CSP, ETag and 304; Basic auth in front of them; GET
// /api/v1/history (per-day counters) and GET /api/v1/cron (the CRON listing).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { withServer, httpGet, makeJob, makeTempDir, removeDir } = require('../lib/spoold');

const ASSETS = path.join(__dirname, '..', '..', 'src', 'server', 'dashboard');

function request(port, method, p, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(body); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, body, json });
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${p}: no reply within 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

test('the dashboard files are served from the binary with their type, CSP and ETag', async () => {
  await withServer(async (srv) => {
    const files = [
      ['/', 'index.html', /^text\/html; charset=utf-8$/],
      ['/ui/app.js', 'app.js', /^text\/javascript; charset=utf-8$/],
      ['/ui/app.css', 'app.css', /^text\/css; charset=utf-8$/],
    ];
    const etags = new Set();
    for (const [url, file, type] of files) {
      const r = await httpGet(srv.httpPort, url);
      assert.equal(r.status, 200, `GET ${url}`);
      assert.match(r.headers['content-type'], type, `Content-Type of ${url}`);
      assert.equal(r.body, fs.readFileSync(path.join(ASSETS, file), 'utf8'), `${url} is ${file} byte for byte`);
      const csp = r.headers['content-security-policy'] || '';
      assert.match(csp, /default-src 'none'/, `${url}: CSP denies by default: ${csp}`);
      assert.match(csp, /script-src 'self'(;|$)/, `${url}: scripts from this server only, no inline: ${csp}`);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, `${url}: no unsafe CSP sources: ${csp}`);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
      assert.equal(r.headers['x-frame-options'], 'DENY');
      assert.equal(r.headers['cache-control'], 'no-cache', `${url} is revalidated`);
      assert.match(r.headers.etag, /^"[0-9a-f]{16}"$/, `${url} has an ETag`);
      etags.add(r.headers.etag);

      const again = await httpGet(srv.httpPort, url, { headers: { 'If-None-Match': r.headers.etag } });
      assert.equal(again.status, 304, `GET ${url} with its ETag: 304`);
      assert.equal(again.body, '', '304 has no body');
      assert.equal(again.headers.etag, r.headers.etag);
      const listed = await httpGet(srv.httpPort, url, { headers: { 'If-None-Match': `"0000000000000000", ${r.headers.etag}` } });
      assert.equal(listed.status, 304, 'an ETag in a list matches too');
      const other = await httpGet(srv.httpPort, url, { headers: { 'If-None-Match': '"0000000000000000"' } });
      assert.equal(other.status, 200, 'another ETag: the file again');
      const prefix = await httpGet(srv.httpPort, url, { headers: { 'If-None-Match': r.headers.etag.slice(0, 8) } });
      assert.equal(prefix.status, 200, 'a part of the ETag does not match');
    }
    assert.equal(etags.size, files.length, 'each file has its own ETag');

    const html = fs.readFileSync(path.join(ASSETS, 'index.html'), 'utf8');
    assert.doesNotMatch(html, /<script>|<script [^>]*>[^<]+<\/script>|\son[a-z]+=|style=/i,
      'index.html has no inline script, handler or style (the CSP would block them)');

    assert.equal((await httpGet(srv.httpPort, '/ui/nope.js')).status, 404, 'an unknown file: 404');
    assert.equal((await httpGet(srv.httpPort, '/ui/')).status, 404, '/ui/ alone: 404');
    assert.equal((await httpGet(srv.httpPort, '/ui/../index.html')).status, 404, 'no path tricks');
    assert.equal((await httpGet(srv.httpPort, '/nope')).status, 404, 'other paths: 404');
    const post = await request(srv.httpPort, 'POST', '/', { 'Content-Type': 'application/json' });
    assert.equal(post.status, 405, 'only GET renders pages');
    const del = await request(srv.httpPort, 'DELETE', '/ui/app.js');
    assert.equal(del.status, 405, 'DELETE of a file: 405');
  });
});

test('with a password the dashboard needs it like the API', async () => {
  await withServer({ password: 'pw-dash' }, async (srv) => {
    for (const url of ['/', '/ui/app.js', '/api/v1/history', '/api/v1/cron']) {
      const r = await httpGet(srv.httpPort, url);
      assert.equal(r.status, 401, `GET ${url} without the password`);
      assert.match(r.headers['www-authenticate'], /^Basic realm="spool"/);
      const wrong = await httpGet(srv.httpPort, url, { headers: { Authorization: 'Basic ' + Buffer.from('u:nope').toString('base64') } });
      assert.equal(wrong.status, 401, `GET ${url} with a wrong password`);
      const ok = await httpGet(srv.httpPort, url, { headers: { Authorization: 'Basic ' + Buffer.from('admin:pw-dash').toString('base64') } });
      assert.equal(ok.status, 200, `GET ${url} with the password`);
    }
  });
});

test('GET /api/v1/history: per-day processed and failed, oldest day first, today last', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const a = makeJob({ queue: 'h' });
    const b = makeJob({ queue: 'h', retry: 3 });
    await c.push(a);
    await c.push(b);
    await c.ack((await c.fetch(['h'])).jid);
    await c.fail((await c.fetch(['h'])).jid);

    const r = await httpGet(srv.httpPort, '/api/v1/history');
    assert.equal(r.status, 200, r.body);
    assert.match(r.headers['content-type'], /^application\/json/);
    const { days } = JSON.parse(r.body);
    assert.equal(days.length, 30, '30 days by default');
    const today = new Date().toISOString().slice(0, 10);
    const last = days[days.length - 1];
    // A test run across midnight UTC could see yesterday as the last day.
    assert.ok(last.date === today || Date.parse(today) - Date.parse(last.date) === 86400e3, `the last day is today: ${last.date}`);
    for (let i = 1; i < days.length; i++) {
      assert.equal(Date.parse(days[i].date) - Date.parse(days[i - 1].date), 86400e3, `consecutive days: ${days[i - 1].date}, ${days[i].date}`);
      assert.deepEqual(Object.keys(days[i]), ['date', 'processed', 'failed']);
    }
    const sum = (k) => days.reduce((n, d) => n + d[k], 0);
    assert.equal(sum('processed'), 2, `an ACK and a FAIL are processed: ${r.body}`);
    assert.equal(sum('failed'), 1, `one failure: ${r.body}`);

    const one = JSON.parse((await httpGet(srv.httpPort, '/api/v1/history?days=1')).body);
    assert.equal(one.days.length, 1);
    assert.equal(one.days[0].date, last.date);
    assert.equal(JSON.parse((await httpGet(srv.httpPort, '/api/v1/history?days=180')).body).days.length, 180, 'up to 180 days');
    for (const bad of ['0', '181', 'abc', '-1', '1.5', '']) {
      const e = await httpGet(srv.httpPort, `/api/v1/history?days=${bad}`);
      assert.equal(e.status, 400, `days=${bad}: 400`);
      assert.match(JSON.parse(e.body).error, /days must be a whole number from 1 to 180/);
    }
    const post = await request(srv.httpPort, 'POST', '/api/v1/history');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET');
  });
});

test('GET /api/v1/cron lists the entries exactly as FWP CRON does', async () => {
  const cfg = makeTempDir('spool-dash-cron-');
  try {
    fs.writeFileSync(path.join(cfg, 'cron.json'), JSON.stringify([
      { name: 'tick', schedule: '@every 1s', jobtype: 'Ping', queue: 'cq' },
      { name: 'nightly', schedule: '30 2 * * *', tz: 'Europe/Berlin', jobtype: '<b>Nightly</b>' },
    ]));
    await withServer({ args: ['-c', cfg] }, async (srv) => {
      const c = await srv.connect();
      const r = await httpGet(srv.httpPort, '/api/v1/cron');
      assert.equal(r.status, 200, r.body);
      const { entries } = JSON.parse(r.body);
      const fwp = await c.cmdJSON('CRON');
      // The tick may fire between the two reads; compare what does not move.
      const still = (l) => l.map(({ next_at, last_at, ...rest }) => rest);
      assert.deepEqual(still(entries), still(fwp), 'the same entries as CRON');
      assert.deepEqual(Object.keys(entries[0]), ['name', 'schedule', 'tz', 'jobtype', 'queue', 'next_at', 'last_at']);
      assert.equal(entries[1].jobtype, '<b>Nightly</b>', 'text comes back verbatim');
      assert.equal(entries[1].last_at, null, 'never fired: null');
      assert.match(entries[1].next_at, /^\d{4}-\d\d-\d\dT0[01]:30:00Z$/);
      const post = await request(srv.httpPort, 'DELETE', '/api/v1/cron');
      assert.equal(post.status, 405);
    });
  } finally {
    removeDir(cfg);
  }
  await withServer(async (srv) => {
    const r = await httpGet(srv.httpPort, '/api/v1/cron');
    assert.deepEqual(JSON.parse(r.body), { entries: [] }, 'no config directory: no entries');
  });
});
