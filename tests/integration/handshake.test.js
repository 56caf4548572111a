'use strict';
// The HI/HELLO handshake (FWP.md §2), END, and bad or slow handshakes.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { withServer, readGreeting, sendHello, pwdhash } = require('../lib/spoold');

test('without a password the greeting is +HI {"v":2} plus the spool batch limits, and HELLO gets +OK', async () => {
  await withServer(async (srv) => {
    const c = await srv.rawConnect();
    const g = await c.readTyped();
    assert.deepEqual(g, { type: 'simple', value: 'HI {"v":2,"spool":{"fetch_max":100,"ack_max":1000,"push_max":1000}}' },
      'greeting without a password: v 2 and the native batch limits (docs/protocol.md)');
    const r = await c.cmdTyped('HELLO {"hostname":"t","v":2}');
    assert.deepEqual(r, { type: 'simple', value: 'OK' }, 'HELLO should be accepted');
    const info = await c.info();
    assert.equal(typeof info.faktory, 'object', 'INFO works after the handshake');
  });
});

test('HELLO with an empty object, bare LF line endings, and an ignored pwdhash is accepted', async () => {
  await withServer(async (srv) => {
    const c = await srv.rawConnect();
    await readGreeting(c);
    c.send('HELLO {}\n');
    assert.deepEqual(await c.readTyped(), { type: 'simple', value: 'OK' }, 'HELLO {} terminated by a bare LF');
    c.send('INFO\n');
    const r = await c.readTyped();
    assert.equal(r.type, 'bulk', `INFO terminated by a bare LF should get a bulk reply, got ${JSON.stringify(r)}`);

    const d = await srv.rawConnect();
    await readGreeting(d);
    const r2 = await sendHello(d, { pwdhash: 'deadbeef' });
    assert.deepEqual(r2, { type: 'simple', value: 'OK' }, 'a pwdhash sent to a server without a password is ignored');
  });
});

test('with a password the greeting carries v:2, i in 4000..8095 and a hex salt, fresh per connection', async () => {
  await withServer({ password: 's3cret' }, async (srv) => {
    const salts = new Set();
    for (let k = 0; k < 3; k++) {
      const c = await srv.rawConnect();
      const g = await readGreeting(c);
      assert.equal(g.v, 2, `greeting v should be 2, got ${JSON.stringify(g)}`);
      assert.ok(Number.isInteger(g.i) && g.i >= 4000 && g.i <= 8095, `greeting i should be an integer in 4000..8095, got ${JSON.stringify(g)}`);
      assert.equal(typeof g.s, 'string', `greeting s should be a string, got ${JSON.stringify(g)}`);
      assert.match(g.s, /^[0-9a-f]+$/, `greeting s should be lowercase hex, got ${JSON.stringify(g.s)}`);
      salts.add(g.s);
      c.destroy();
    }
    assert.equal(salts.size, 3, 'each connection should get its own random salt');
  });
});

test('the right password (iterated SHA-256) is accepted', async () => {
  await withServer({ password: 's3cret' }, async (srv) => {
    const c = await srv.rawConnect();
    const g = await readGreeting(c);
    const hash = pwdhash('s3cret', g.s, g.i);
    const r = await c.cmdTyped(`HELLO {"hostname":"t","v":2,"pwdhash":"${hash}"}`);
    assert.deepEqual(r, { type: 'simple', value: 'OK' }, 'HELLO with the right pwdhash');
    const info = await c.info();
    assert.ok(info.server, 'INFO works after authenticating');
  });
});

test('a wrong or missing password gets -ERR Invalid password and the connection is closed', async () => {
  await withServer({ password: 's3cret' }, async (srv) => {
    const cases = [
      { what: 'wrong password', opts: { password: 'wrong' } },
      { what: 'right password hashed with one iteration too few', opts: { password: 's3cret', iterationsDelta: -1 } },
      { what: 'no pwdhash at all', opts: {} },
    ];
    for (const { what, opts } of cases) {
      const c = await srv.rawConnect();
      const g = await readGreeting(c);
      const o = { ...opts };
      if (o.iterationsDelta) o.iterations = g.i + o.iterationsDelta;
      const r = await sendHello(c, o);
      assert.deepEqual(r, { type: 'error', value: 'ERR Invalid password' }, `${what}: HELLO reply`);
      assert.ok(await c.waitClosed(3000), `${what}: the server should close the connection after -ERR Invalid password`);
    }
    const ok = await srv.connect({ password: 's3cret' });
    assert.ok((await ok.info()).server, 'the server keeps serving after rejected logins');
  });
});

test('FAKTORY_PASSWORD is honoured when SPOOL_PASSWORD is not set', async () => {
  await withServer({ env: { FAKTORY_PASSWORD: 'fromfaktory' } }, async (srv) => {
    const c = await srv.rawConnect();
    const g = await readGreeting(c);
    assert.ok(g.s && g.i, `with FAKTORY_PASSWORD set the greeting should carry s and i, got ${JSON.stringify(g)}`);
    const r = await sendHello(c, { password: 'fromfaktory' });
    assert.deepEqual(r, { type: 'simple', value: 'OK' }, 'HELLO hashed with the FAKTORY_PASSWORD value');
  });
});

test('a HELLO with v:1 is checked against a single SHA-256 iteration (FWP §2.3)', async () => {
  await withServer({ password: 's3cret' }, async (srv) => {
    const c = await srv.rawConnect();
    await readGreeting(c);
    const r = await sendHello(c, { password: 's3cret', iterations: 1, hello: { v: 1 } });
    assert.deepEqual(r, { type: 'simple', value: 'OK' }, 'v:1 client hashing once should be accepted');
  });
});

test('END replies +OK and closes the connection', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const r = await c.cmdTyped('END');
    assert.deepEqual(r, { type: 'simple', value: 'OK' }, 'END reply (spool decision: +OK then close)');
    assert.ok(await c.waitClosed(3000), 'the server should close the connection after END');
  });
});

test('no HELLO within 2 s: the server closes the connection', async () => {
  await withServer(async (srv) => {
    const idle = await srv.rawConnect();
    const partial = await srv.rawConnect();
    const t0 = Date.now();
    await readGreeting(idle);
    await readGreeting(partial);
    partial.send('HELLO {"v":2'); // never finished: the deadline covers the whole handshake
    assert.ok(await idle.waitClosed(5000), 'a connection that never sends HELLO should be closed within ~2 s');
    assert.ok(await partial.waitClosed(5000), 'a connection with an unfinished HELLO line should be closed within ~2 s');
    const elapsed = Math.max(idle.closedAt, partial.closedAt) - t0;
    assert.ok(elapsed >= 1500, `the handshake deadline is 2 s; connections were closed after only ${elapsed} ms`);
    assert.ok(elapsed <= 4000, `the handshake deadline is 2 s; connections were closed after ${elapsed} ms`);
    assert.equal(idle.replies.length, 0, `no reply expected on the idle connection, got ${JSON.stringify(idle.replies)}`);
    const ok = await srv.connect();
    assert.ok((await ok.info()).server, 'the server keeps serving');
  });
});

test('a bad handshake gets one -ERR line and the connection is closed', async () => {
  await withServer(async (srv) => {
    const bad = [
      'PUSH {"jid":"abcdefghij","jobtype":"x","args":[]}',
      'INFO',
      'HELLO',
      'HELLO x',
      'hello {}',
      'HELLO {not json',
      'HELLO {"v":2',
      '\x00\x01\x02\xff garbage',
    ];
    for (const line of bad) {
      const c = await srv.rawConnect();
      await readGreeting(c);
      c.send(Buffer.from(line + '\r\n', 'latin1'));
      assert.ok(await c.waitClosed(3000), `after ${JSON.stringify(line)} as the first line the server should close the connection`);
      assert.equal(c.replies.length, 1, `after ${JSON.stringify(line)} the server should send exactly one reply before closing, got ${JSON.stringify(c.replies)}`);
      assert.equal(c.replies[0].type, 'error', `after ${JSON.stringify(line)} the reply should be -ERR ..., got ${JSON.stringify(c.replies[0])}`);
      assert.match(c.replies[0].value, /^ERR /, `after ${JSON.stringify(line)} the error code should be ERR`);
    }
    const ok = await srv.connect();
    assert.ok((await ok.info()).server, 'the server keeps serving after bad handshakes');
  });
});
