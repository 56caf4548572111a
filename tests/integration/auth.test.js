'use strict';
// Password hardening (docs/security.md, "Passwords"): a wrong password's
// error comes after a delay that doubles with each consecutive failure from
// the same address, on FWP and HTTP alike; the right password still works;
// other clients are served meanwhile; every failure is logged with the peer.
//
// Delays are lower bounds the server guarantees (a timer never fires early),
// so the assertions hold on a loaded machine; nothing asserts an upper bound.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { performance } = require('node:perf_hooks');
const { withServer, readGreeting, sendHello, pwdhash, httpGet, waitFor } = require('../lib/spoold');

const BASE_MS = 100; // AUTH_DELAY_BASE_MS in src/server/auth.h
const SLACK_MS = 5;  // clock granularity between node and the server

function basic(user, password) {
  return 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
}

// One wrong-password handshake on a fresh connection: the reply, how long it took, and the connection.
async function wrongHello(srv) {
  const c = await srv.rawConnect();
  const g = await readGreeting(c);
  const hash = pwdhash('wrong', g.s, g.i); // before the clock starts: hashing takes a while
  const t0 = performance.now();
  const r = await sendHello(c, { pwdhash: hash, timeoutMs: 20000 });
  return { r, ms: performance.now() - t0, c };
}

function failureLines(srv, proto) {
  return srv.stderr().split('\n').filter((l) => l.includes('msg="wrong password"') && l.includes(`proto=${proto}`));
}

test('FWP: a wrong password is answered after a delay that doubles with each failure', async () => {
  await withServer({ password: 's3cret' }, async (srv) => {
    for (let k = 0; k < 3; k++) {
      const want = BASE_MS << k;
      const { r, ms, c } = await wrongHello(srv);
      assert.deepEqual(r, { type: 'error', value: 'ERR Invalid password' }, `failure ${k + 1}: HELLO reply`);
      assert.ok(ms >= want - SLACK_MS, `failure ${k + 1} should be answered after at least ${want} ms, took ${ms.toFixed(1)} ms`);
      assert.ok(await c.waitClosed(5000), `failure ${k + 1}: the connection should be closed after the error`);
    }
    const lines = await waitFor(() => failureLines(srv, 'fwp').length === 3 && failureLines(srv, 'fwp'),
      { what: 'three "wrong password" log lines for proto=fwp' });
    lines.forEach((l, k) => {
      assert.match(l, /peer=127\.0\.0\.1:\d+/, `log line ${k + 1} should name the peer address: ${l}`);
      assert.match(l, new RegExp(`failures=${k + 1} delay_ms=${BASE_MS << k}\\b`), `log line ${k + 1} should count the failure and its delay: ${l}`);
    });

    // The right password still works from the same address, and at once.
    const ok = await srv.connect({ password: 's3cret' });
    assert.ok((await ok.info()).server, 'INFO works for a client with the right password after failures');
  });
});

test('FWP: other clients are served while a wrong password waits for its error', async () => {
  await withServer({ password: 's3cret' }, async (srv) => {
    const other = await srv.connect({ password: 's3cret' });
    for (let k = 0; k < 3; k++) await wrongHello(srv); // the next failure waits 800 ms
    const pending = wrongHello(srv).then((x) => ({ ...x, at: performance.now() }));
    await waitFor(() => failureLines(srv, 'fwp').length === 4, { what: 'the fourth failure to be logged' });
    const info = await other.info();
    const infoAt = performance.now();
    assert.ok(info.server, 'INFO on an authenticated connection during the delay');
    const slow = await pending;
    assert.deepEqual(slow.r, { type: 'error', value: 'ERR Invalid password' }, 'the delayed HELLO reply');
    assert.ok(slow.ms >= (BASE_MS << 3) - SLACK_MS, `the fourth failure should wait at least ${BASE_MS << 3} ms, took ${slow.ms.toFixed(1)} ms`);
    assert.ok(infoAt < slow.at, 'the other client should get its INFO reply before the delayed error arrives');

    // A fresh client with the right password is not held behind the delayed one either.
    const late = await srv.connect({ password: 's3cret' });
    assert.ok((await late.info()).server, 'a new client with the right password is served');
  });
});

test('FWP: a client that hangs up during the delay is cleaned up', async () => {
  await withServer({ password: 's3cret' }, async (srv) => {
    for (let k = 0; k < 4; k++) await wrongHello(srv);
    const c = await srv.rawConnect();
    await readGreeting(c);
    c.send('HELLO {"v":2,"pwdhash":"00"}\r\n');
    await waitFor(() => failureLines(srv, 'fwp').length === 5, { what: 'the fifth failure to be logged' });
    c.destroy(); // gone 1.6 s before the error would be sent
    const ok = await srv.connect({ password: 's3cret' });
    await waitFor(async () => (await ok.info()).server.connections === 1,
      { what: 'INFO to count only the authenticated connection once the other hung up' });
  });
});

test('HTTP: wrong Basic credentials get 401 after a growing delay; none at all get 401 at once', async () => {
  await withServer({ password: 's3cret' }, async (srv) => {
    for (let k = 0; k < 3; k++) {
      const want = BASE_MS << k;
      const t0 = performance.now();
      const r = await httpGet(srv.httpPort, '/stats', { headers: { Authorization: basic('any', 'wrong') }, timeoutMs: 20000 });
      const ms = performance.now() - t0;
      assert.equal(r.status, 401, `failure ${k + 1}: status`);
      assert.match(r.headers['www-authenticate'] || '', /^Basic /, `failure ${k + 1}: the 401 asks for Basic auth`);
      assert.ok(ms >= want - SLACK_MS, `failure ${k + 1} should be answered after at least ${want} ms, took ${ms.toFixed(1)} ms`);
    }
    const lines = failureLines(srv, 'http');
    assert.equal(lines.length, 3, `three "wrong password" log lines for proto=http, got:\n${lines.join('\n')}`);
    assert.match(lines[2], /peer=127\.0\.0\.1:\d+ failures=3 delay_ms=400\b/, `the third line names the peer and the count: ${lines[2]}`);

    // No credentials: a browser's first request. Answered 401 without counting a failure.
    const none = await httpGet(srv.httpPort, '/stats');
    assert.equal(none.status, 401, 'no credentials: 401');
    assert.equal(failureLines(srv, 'http').length, 3, 'a request without credentials is not counted as a failed password');

    // A malformed Authorization header is a failed attempt like a wrong password.
    const bad = await httpGet(srv.httpPort, '/stats', { headers: { Authorization: 'Bearer xyz' }, timeoutMs: 20000 });
    assert.equal(bad.status, 401, 'a non-Basic Authorization header: 401');
    assert.match(failureLines(srv, 'http')[3] || '', /failures=4 delay_ms=800\b/, 'it counts as the fourth failure');

    const ok = await httpGet(srv.httpPort, '/stats', { headers: { Authorization: basic('any', 's3cret') } });
    assert.equal(ok.status, 200, 'the right password still works after failures');
  });
});

test('HTTP: other requests are served while a wrong password waits for its 401', async () => {
  await withServer({ password: 's3cret' }, async (srv) => {
    for (let k = 0; k < 3; k++) {
      const r = await httpGet(srv.httpPort, '/health', { headers: { Authorization: basic('u', 'nope') }, timeoutMs: 20000 });
      assert.equal(r.status, 401, `failure ${k + 1}`);
    }
    const t0 = performance.now();
    const pending = httpGet(srv.httpPort, '/health', { headers: { Authorization: basic('u', 'nope') }, timeoutMs: 20000 })
      .then((r) => ({ r, at: performance.now() }));
    await waitFor(() => failureLines(srv, 'http').length === 4, { what: 'the fourth failure to be logged' });
    const good = await httpGet(srv.httpPort, '/health', { headers: { Authorization: basic('u', 's3cret') } });
    const goodAt = performance.now();
    assert.equal(good.status, 200, 'the right password during another client\'s delay');
    const fwp = await srv.connect({ password: 's3cret' });
    assert.ok((await fwp.info()).server, 'FWP is served during the delay too');
    const fwpAt = performance.now();
    const slow = await pending;
    assert.equal(slow.r.status, 401, 'the delayed request still gets its 401');
    assert.ok(slow.at - t0 >= (BASE_MS << 3) - SLACK_MS, `the fourth failure should wait at least ${BASE_MS << 3} ms, took ${(slow.at - t0).toFixed(1)} ms`);
    assert.ok(goodAt < slow.at && fwpAt < slow.at, 'the other clients are answered before the delayed 401');
  });
});

test('FWP and HTTP failures from one address share one count', async () => {
  await withServer({ password: 's3cret' }, async (srv) => {
    await wrongHello(srv);
    await wrongHello(srv);
    const t0 = performance.now();
    const r = await httpGet(srv.httpPort, '/stats', { headers: { Authorization: basic('any', 'x') }, timeoutMs: 20000 });
    const ms = performance.now() - t0;
    assert.equal(r.status, 401, 'wrong HTTP password');
    assert.ok(ms >= (BASE_MS << 2) - SLACK_MS, `the third failure overall (the first over HTTP) should wait at least ${BASE_MS << 2} ms, took ${ms.toFixed(1)} ms`);
  });
});
