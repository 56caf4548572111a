'use strict';
// The dashboard (docs/dashboard.md) in a real browser: Debian's chromium,
// driven by playwright-core, against the real spoold on 127.0.0.1:0.
//
// Every page loads without console errors; a failed job is retried from the
// Retries page, a dead job deleted from the Dead page, a queue paused from
// the Queues page (each checked through the API afterwards); job text with
// <script> shows as text and never runs; with a password the dashboard asks
// for it. A screenshot of each page goes to $SPOOL_SCREENSHOT_DIR.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { startServer, waitFor, newJid, makeTempDir, removeDir } = require('../lib/spoold');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.SPOOL_SCREENSHOT_DIR || path.join(os.tmpdir(), 'spool-screenshots');
const XSS = '<script>window.__xss=1</script>';
const XSS_IMG = '<img src=x onerror="window.__xss=2">';

function launchOptions() {
  return {
    headless: true,
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 800 },
  };
}

function loadPlaywright() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`chromium is not installed at ${CHROMIUM}: run scripts/deps --test ` +
      '(it installs the Debian package chromium) and run this test again');
  }
  try {
    return require('playwright-core');
  } catch (e) {
    throw new Error(`the npm package playwright-core is missing (${e.message}): run scripts/deps --test`);
  }
}

/** One API request with node:http; resolves {status, json}. */
function apiCall(port, method, p, body, auth) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const headers = {};
    if (data) { headers['Content-Type'] = 'application/json'; headers['Content-Length'] = data.length; }
    if (auth) headers.Authorization = 'Basic ' + Buffer.from(`u:${auth}`).toString('base64');
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, json, text });
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${p}: no reply within 5 s`)));
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

// Console errors and uncaught exceptions of a page. The one error allowed is
// the browser's own log line for a 404 of GET /api/v1/batches/{bid} (an
// unknown bid, which the page reports; also a server without batches).
function watchErrors(page) {
  const errors = [];
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const url = (m.location() && m.location().url) || '';
    if (/\/api\/v1\/batches(\?|\/|$)/.test(url) && /404/.test(m.text())) return;
    errors.push(`console: ${m.text()} (${url})`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  return errors;
}

// Goes to a hash route and waits until its page has finished loading.
async function show(page, hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForFunction((h) => {
    const m = document.getElementById('main');
    return m && m.getAttribute('data-route') === h && m.getAttribute('aria-busy') === 'false';
  }, hash, { timeout: 30000 });
}

async function screenshot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

// Clicks the button, then the modal's confirm button; waits for the notice
// saying `expected` (the notice of an earlier action may still be showing).
async function clickConfirmed(page, button, expected) {
  await page.evaluate(() => { document.getElementById('flash').hidden = true; });
  await button.click();
  await page.locator('#modal:not([hidden]) #modal-ok').click();
  const flash = page.locator('#flash:not([hidden])');
  try {
    await page.locator('#flash:not([hidden])', { hasText: expected }).waitFor({ timeout: 20000 });
  } catch (e) {
    const shown = (await flash.count()) ? await flash.textContent() : '(no notice)';
    assert.fail(`the page should report ${expected} after the action, it shows: ${shown}`);
  }
}

let srv, context, page, errors, cfgDir, profileDir, worker;
const jids = {};

before(async () => {
  const { chromium } = loadPlaywright();
  cfgDir = makeTempDir('spool-dash-cfg-');
  fs.writeFileSync(path.join(cfgDir, 'cron.json'), JSON.stringify([
    { name: 'nightly-report', schedule: '30 2 * * *', tz: 'Europe/Berlin', jobtype: 'Report', queue: 'reports' },
    { name: 'poll-feeds', schedule: '@every 1h', jobtype: 'PollFeeds' },
  ]));
  fs.writeFileSync(path.join(cfgDir, 'throttles.json'), JSON.stringify({
    partner: { concurrency: 2, rate: { limit: 100, period: '1m' } },
  }));
  srv = await startServer({ args: ['-c', cfgDir] });
  const c = await srv.connect();

  for (let i = 0; i < 3; i++) await c.push({ jid: newJid(), jobtype: 'Email', queue: 'mail', args: [`user${i}@example.com`] });
  await c.push({ jid: newJid(), jobtype: 'Report', queue: 'reports', args: [{ month: 11 }] });
  jids.scheduled = await c.push({ jid: newJid('sched-'), jobtype: 'Reminder', args: ['later'], at: new Date(Date.now() + 3600e3).toISOString() });

  // A job that has failed before (pushed with its failure, as when re-pushed
  // from elsewhere) fails again and waits for its retry: after 6 failures the
  // backoff is over 20 minutes, so the retry cannot happen by itself while
  // the test runs, however slow the machine.
  jids.retry = await c.push({
    jid: newJid('retry-'), jobtype: 'Flaky', queue: 'flaky', retry: 25, args: [1, 2],
    failure: { retry_count: 5, remaining: 20, errtype: 'Timeout', message: 'earlier failure' },
  });
  assert.equal((await c.fetch(['flaky'])).jid, jids.retry);
  await c.fail(jids.retry, { errtype: 'Timeout', message: 'upstream took too long', backtrace: ['flaky.rb:10 in call', 'worker.rb:3 in run'] });

  // Two dead jobs: one to delete from the page, one whose text tries to run script.
  jids.dead = await c.push({ jid: newJid('dead-'), jobtype: 'Doomed', queue: 'doom', retry: -1, args: ['bye'] });
  assert.equal((await c.fetch(['doom'])).jid, jids.dead);
  await c.fail(jids.dead, { message: 'gave up' });
  jids.xss = await c.push({ jid: newJid('xss-'), jobtype: 'Evil', queue: 'doom', retry: -1, args: [XSS, XSS_IMG] });
  assert.equal((await c.fetch(['doom'])).jid, jids.xss);
  await c.fail(jids.xss, { errtype: '<b>Boom</b>', message: XSS, backtrace: [XSS_IMG] });

  // A worker process running a job, and a processed job for the counters.
  worker = await srv.connect({ hello: { wid: 'w-dash-1', hostname: 'box-1', pid: 4242, labels: ['blue', '<i>x</i>'], v: 2 } });
  jids.busy = await worker.push({ jid: newJid('busy-'), jobtype: 'Crunch', queue: 'busyq', args: [42] });
  assert.equal((await worker.fetch(['busyq'])).jid, jids.busy);
  await c.push({ jid: newJid(), jobtype: 'Quick', queue: 'quick', args: [] });
  await c.ack((await c.fetch(['quick'])).jid);
  c.close();

  profileDir = makeTempDir('spool-dash-profile-');
  context = await chromium.launchPersistentContext(profileDir, launchOptions());
  page = context.pages()[0] || await context.newPage();
  errors = watchErrors(page);
  const res = await page.goto(`http://127.0.0.1:${srv.httpPort}/`);
  assert.equal(res.status(), 200, 'GET / should serve the dashboard');
  const csp = res.headers()['content-security-policy'] || '';
  assert.match(csp, /script-src 'self'/, `the page should carry a strict CSP, got ${csp}`);
});

after(async () => {
  if (context) await context.close();
  if (worker) worker.close();
  if (srv) await srv.stop();
  if (cfgDir) removeDir(cfgDir);
  if (profileDir) removeDir(profileDir);
});

test('every page loads without console errors; a screenshot of each', async () => {
  const pages = [
    ['#/', 'overview', '.cards .card'],
    ['#/queues', 'queues', 'table'],
    ['#/busy', 'busy', 'table'],
    ['#/scheduled', 'scheduled', 'table'],
    ['#/retries', 'retries', 'table'],
    ['#/dead', 'dead', 'table'],
    ['#/working', 'working', 'table'],
    ['#/batches', 'batches', '.empty'],
    ['#/cron', 'cron', 'table'],
    [`#/job/${jids.retry}`, 'job', '#payload'],
  ];
  for (const [hash, name, selector] of pages) {
    await show(page, hash);
    assert.ok(await page.locator(`#main ${selector}`).count() > 0, `page ${hash} should show ${selector}`);
    assert.equal(await page.locator('#main .error-box').count(), 0,
      `page ${hash} should show no error: ${await page.locator('#main').innerText()}`);
    await screenshot(page, name);
  }
  assert.deepEqual(errors, [], 'no console errors or uncaught exceptions on any page');

  // What the pages show, from the server's state.
  await show(page, '#/queues');
  const queues = await page.locator('#main tbody tr').allInnerTexts();
  assert.ok(queues.some((r) => r.includes('mail') && r.includes('3')), `Queues lists mail with 3 jobs: ${queues}`);
  // A heartbeat keeps the worker from being reaped (60 s of silence) on a slow machine.
  await worker.ok('BEAT {"wid":"w-dash-1"}');
  await show(page, '#/busy');
  const busy = await page.locator('#main').innerText();
  for (const s of ['w-dash-1', 'box-1', '4242', 'blue', '<i>x</i>', jids.busy.slice(0, 20)]) {
    assert.ok(busy.includes(s), `Busy shows ${s}: ${busy}`);
  }
  await show(page, '#/cron');
  const cron = await page.locator('#main').innerText();
  for (const s of ['nightly-report', '30 2 * * *', 'Europe/Berlin', 'poll-feeds', '@every 1h', 'never']) {
    assert.ok(cron.includes(s), `Cron shows ${s}: ${cron}`);
  }
  await show(page, '#/batches');
  assert.match(await page.locator('#main').innerText(), /No batches/);
  await show(page, `#/job/${jids.retry}`);
  const job = await page.locator('#main').innerText();
  for (const s of ['upstream took too long', 'Timeout', 'flaky.rb:10 in call', 'retry']) {
    assert.ok(job.includes(s), `the job page shows ${s}: ${job}`);
  }
});

test('the overview charts live throughput and the day history', async () => {
  await show(page, '#/');
  // A processed job between two samples shows as a rate above zero.
  const c = await srv.connect();
  await c.push({ jid: newJid(), jobtype: 'Quick', queue: 'quick', args: [] });
  await c.ack((await c.fetch(['quick'])).jid);
  c.close();
  await waitFor(async () => /[1-9][0-9.]* processed\/s|0\.[1-9][0-9]* processed\/s/.test(await page.locator('#main .panel-head').first().innerText()),
    { timeoutMs: 30000, what: 'the live chart to report a processed rate above zero' });
  const today = new Date().toISOString().slice(0, 10);
  const row = await page.locator('#main tbody tr', { hasText: today }).innerText();
  const cells = row.split('\t').map((s) => s.trim());
  assert.equal(cells[0], today, `the history's first row is today: ${row}`);
  assert.ok(Number(cells[1].replace(/,/g, '')) >= 2, `today counts the processed jobs: ${row}`);
  assert.ok(Number(cells[2].replace(/,/g, '')) >= 3, `today counts the 3 failures: ${row}`);
  await screenshot(page, 'overview');
  assert.deepEqual(errors, []);
});

test('a failed job is retried from the Retries page and is back in its queue', async () => {
  await show(page, '#/retries');
  const row = page.locator('#main tbody tr', { hasText: jids.retry.slice(0, 20) });
  assert.match(await row.innerText(), /upstream took too long/);
  await row.locator('input.row-select').check();
  await clickConfirmed(page, page.locator('button[data-action="retry-selected"]'), /1 job enqueued/);
  const r = await apiCall(srv.httpPort, 'GET', `/api/v1/jobs/${jids.retry}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.state, 'enqueued', `the retried job is enqueued: ${r.text}`);
  assert.equal(r.json.queue, 'flaky');
  await page.locator('#main tbody tr', { hasText: jids.retry.slice(0, 20) }).waitFor({ state: 'detached' });
  assert.deepEqual(errors, []);
});

test('a dead job found by jobtype is deleted from the Dead page', async () => {
  await show(page, '#/dead');
  await page.fill('input[name="jobtype"]', 'Doomed');
  await page.click('form.filters button[type="submit"]');
  await page.waitForFunction(() => document.getElementById('main').getAttribute('data-route') === '#/dead?jobtype=Doomed' &&
    document.getElementById('main').getAttribute('aria-busy') === 'false');
  const rows = page.locator('#main tbody tr');
  assert.equal(await rows.count(), 1, 'the search finds just the Doomed job');
  assert.match(await rows.first().innerText(), /gave up/);
  await rows.first().locator('input.row-select').check();
  // Cancel first: nothing happens.
  await page.click('button[data-action="delete-selected"]');
  await page.click('#modal-cancel');
  assert.equal((await apiCall(srv.httpPort, 'GET', `/api/v1/jobs/${jids.dead}`)).status, 200, 'cancel keeps the job');
  await clickConfirmed(page, page.locator('button[data-action="delete-selected"]'), /1 job deleted/);
  const r = await apiCall(srv.httpPort, 'GET', `/api/v1/jobs/${jids.dead}`);
  assert.equal(r.status, 404, `the deleted job is gone: ${r.text}`);
  await page.locator('#main .empty').waitFor();
  // The substring search finds the other dead job by its text.
  await show(page, '#/dead?match=__xss%3D1');
  assert.equal(await page.locator('#main tbody tr').count(), 1);
  assert.deepEqual(errors, []);
});

test('a queue is paused from the Queues page', async () => {
  await show(page, '#/queues');
  const row = page.locator('#main tbody tr', { hasText: 'mail' });
  await clickConfirmed(page, row.locator('button[data-action="pause"]'), /Queue mail paused/);
  const r = await apiCall(srv.httpPort, 'GET', '/api/v1/queues');
  const mail = r.json.queues.find((q) => q.name === 'mail');
  assert.equal(mail.paused, true, `mail is paused: ${r.text}`);
  await page.locator('#main tbody tr', { hasText: 'mail' }).locator('button[data-action="resume"]').waitFor();
  assert.match(await page.locator('#main tbody tr', { hasText: 'mail' }).innerText(), /paused/);
  await screenshot(page, 'queues');
  assert.deepEqual(errors, []);
});

test('job text holding <script> shows as text and never runs', async () => {
  await show(page, '#/dead');
  const row = await page.locator('#main tbody tr', { hasText: jids.xss.slice(0, 20) }).innerText();
  assert.ok(row.includes(XSS.slice(0, 40)), `the Dead page shows the args as text: ${row}`);
  await show(page, `#/job/${jids.xss}`);
  const payload = await page.locator('#payload').textContent();
  assert.ok(payload.includes(XSS), `the payload shows ${XSS} as text: ${payload}`);
  assert.ok(payload.includes('onerror'), 'the <img> text is shown too');
  const main = await page.locator('#main').innerText();
  assert.ok(main.includes('<b>Boom</b>'), `the errtype shows as text: ${main}`);
  assert.equal(await page.locator('#main script, #main img, #main b').count(), 0, 'no element was made from job text');
  assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined', 'window.__xss stays undefined');
  await screenshot(page, 'job-xss');
  assert.deepEqual(errors, []);
});

test('on a phone-sized screen the menu folds and tables stay readable', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    await show(page, '#/');
    assert.equal(await page.locator('#nav').isVisible(), false, 'the menu is folded');
    await page.click('#menu-toggle');
    assert.equal(await page.locator('#nav').isVisible(), true, 'the menu opens');
    await screenshot(page, 'phone-menu');
    await page.click('#nav a[data-page="dead"]');
    await page.waitForFunction(() => document.getElementById('main').getAttribute('data-route') === '#/dead' &&
      document.getElementById('main').getAttribute('aria-busy') === 'false');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the Dead page fits the phone's width (overflow ${overflow}px)`);
    await screenshot(page, 'phone-dead');
    await show(page, '#/');
    await screenshot(page, 'phone-overview');
  } finally {
    await page.setViewportSize({ width: 1280, height: 800 });
  }
  assert.deepEqual(errors, []);
});

// Queue throttles (throttles.json in the config directory) and batches
// (created over FWP) as the real server reports them: the Queues page shows
// the Throttle column, the Batches and Batch pages the server's counts.
test('a throttled queue and a batch are shown as the server reports them', async () => {
  const c = await srv.connect();
  try {
    // Two of the throttled queue's three jobs in flight: at its concurrency limit.
    for (let i = 0; i < 3; i++) await c.push({ jid: newJid('thr-'), jobtype: 'Call', queue: 'partner', args: [i] });
    for (let i = 0; i < 2; i++) assert.ok(await c.fetch(['partner']), 'the throttle lets two jobs out');
    const q = await apiCall(srv.httpPort, 'GET', '/api/v1/queues/partner');
    assert.deepEqual(q.json.throttle, { concurrency: 2, in_flight: 2, rate_limit: 100, rate_period_s: 60, throttled: true },
      `the server reports the queue throttled: ${q.text}`);
    await show(page, '#/queues?throttle');
    const head = await page.locator('#main thead').innerText();
    assert.match(head, /THROTTLE/i, `a Throttle column: ${head}`);
    const row = (await page.locator('#main tbody tr').allInnerTexts()).find((r) => r.includes('partner')) || '';
    assert.match(row, /2\/2 running/, `concurrency shown: ${row}`);
    assert.match(row, /100 per 1 min($|[^ ]| [^0-9])/, `rate limit shown: ${row}`);
    assert.match(row, /throttled/);
    await screenshot(page, 'queues-throttle');

    // A committed batch of three jobs: one acked, one failed, one pending.
    const r = await c.cmdTyped('BATCH NEW ' + JSON.stringify({
      description: XSS, success: { jobtype: 'BatchDone', queue: 'callbacks', args: [] },
    }));
    assert.equal(r.type, 'bulk', `BATCH NEW answers the bid: ${JSON.stringify(r)}`);
    const bid = r.value;
    for (let i = 0; i < 3; i++) await c.push({ jid: newJid('bat-'), jobtype: 'Part', queue: 'parts', retry: 5, args: [i], custom: { bid } });
    await c.ok('BATCH COMMIT ' + bid);
    await c.ack((await c.fetch(['parts'])).jid);
    await c.fail((await c.fetch(['parts'])).jid, { message: 'part failed' });
    const st = (await apiCall(srv.httpPort, 'GET', `/api/v1/batches/${bid}`)).json;
    assert.equal(st.total, 3, `the server counts the batch's jobs: ${JSON.stringify(st)}`);

    await show(page, '#/batches?real');
    const text = await page.locator('#main').innerText();
    for (const x of [bid, XSS]) assert.ok(text.includes(x), `the batch list shows ${x}: ${text}`);
    assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined');
    await screenshot(page, 'batches-list');
    await page.click(`#main a[href="#/batch/${bid}"]`);
    await page.waitForFunction((h) => document.getElementById('main').getAttribute('data-route') === h &&
      document.getElementById('main').getAttribute('aria-busy') === 'false', `#/batch/${bid}`);
    const one = await page.locator('#main').innerText();
    const counts = `${st.total} total, ${st.pending} pending, ${st.failed} failed`;
    assert.ok(one.includes(counts) && one.includes(XSS), `the batch page shows ${counts}: ${one}`);
    await screenshot(page, 'batch');
  } finally {
    c.close();
  }
  // An unknown bid: the page says so (the 404 is the one console line allowed).
  await show(page, '#/batch/nope');
  assert.match(await page.locator('#main').innerText(), /No batch nope on this server/);
  assert.deepEqual(errors, []);
});

test('with a password the dashboard asks for it, and works once given', async () => {
  const { chromium } = loadPlaywright();
  const s = await startServer({ password: 'dash-secret' });
  const dir = makeTempDir('spool-dash-profile-');
  const dir2 = makeTempDir('spool-dash-profile-');
  let ctx;
  try {
    ctx = await chromium.launchPersistentContext(dir, launchOptions());
    const p = ctx.pages()[0] || await ctx.newPage();
    // Without credentials the browser is challenged; headless chromium has
    // nobody to ask, so the navigation ends in an auth error or the 401 page.
    let challenge = null;
    p.on('response', (r) => { if (new URL(r.url()).pathname === '/') challenge = r; });
    let navError = '';
    try {
      await p.goto(`http://127.0.0.1:${s.httpPort}/`);
    } catch (e) {
      navError = e.message;
    }
    assert.ok(challenge, `the browser got an answer for / (navigation: ${navError})`);
    assert.equal(challenge.status(), 401, 'without the password: 401');
    assert.match((await challenge.allHeaders())['www-authenticate'] || '', /^Basic/, 'the browser is asked for Basic credentials');
    assert.equal(await p.locator('#main').count(), 0, 'no dashboard without the password');
    await ctx.close();

    ctx = null;
    ctx = await chromium.launchPersistentContext(dir2, { ...launchOptions(), httpCredentials: { username: 'admin', password: 'dash-secret' } });
    const q = ctx.pages()[0] || await ctx.newPage();
    const errs = watchErrors(q);
    const ok = await q.goto(`http://127.0.0.1:${s.httpPort}/`);
    assert.equal(ok.status(), 200, 'with the password the page loads');
    await show(q, '#/queues');
    await show(q, '#/');
    assert.ok(await q.locator('#main .cards .card').count() > 0, 'the overview shows its counters');
    assert.deepEqual(errs, [], 'no console errors with a password');
  } finally {
    if (ctx) await ctx.close();
    await s.stop();
    removeDir(dir);
    removeDir(dir2);
  }
});
