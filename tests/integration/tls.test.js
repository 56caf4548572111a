'use strict';
// TLS on both ports: a throwaway CA and server certificate are made with the
// openssl command (tests/lib/tls_certs.sh) into a temp directory. Raw FWP
// over Node's tls module, the HTTP API over https, plaintext and TLS 1.1
// clients refused, the connection limits under TLS, client certificates
// (--tls-ca), `openssl s_client`, and the start-up errors for bad files.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const https = require('node:https');
const path = require('node:path');
const tls = require('node:tls');
const {
  withServer, rawConnect, readGreeting, sendHello, makeJob, makeTempDir, removeDir, runSpooldSync,
  within, waitFor, httpGet, Conn,
} = require('../lib/spoold');

let dir;
const file = (name) => path.join(dir, name);

before(() => {
  dir = makeTempDir('spool-tls-');
  const r = spawnSync(path.join(__dirname, '..', 'lib', 'tls_certs.sh'), [dir], { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, `tls_certs.sh should make the test certificates (is openssl installed?): ${r.stderr}`);
});
after(() => removeDir(dir));

const tlsArgs = () => ['--tls-cert', file('cert.pem'), '--tls-key', file('key.pem')];

// Opens a TLS connection to spoold's FWP port; resolves with a Conn once the handshake is done.
function tlsConnect(srv, opts = {}) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: srv.port, servername: 'localhost', ca: fs.readFileSync(file('ca.pem')), ...opts });
    const onErr = (e) => reject(e);
    socket.once('error', onErr);
    socket.once('secureConnect', () => {
      socket.removeListener('error', onErr);
      resolve(new Conn(socket, srv));
    });
  });
}

// Resolves with the error of a TLS handshake that should fail (rejects if it succeeds).
function tlsHandshakeError(port, opts) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: fs.readFileSync(file('ca.pem')), ...opts });
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('the handshake neither failed nor succeeded within 5 s')); }, 5000);
    socket.once('secureConnect', () => { clearTimeout(timer); socket.destroy(); reject(new Error(`the TLS handshake should fail, but it succeeded with ${socket.getProtocol()}`)); });
    socket.once('error', (e) => { clearTimeout(timer); socket.destroy(); resolve(e); });
  });
}

function httpsGet(port, urlPath, opts = {}) {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: urlPath, servername: 'localhost', ca: fs.readFileSync(file('ca.pem')), timeout: 5000, ...opts }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath}: no response within 5 s`)));
    req.on('error', reject);
  });
}

test('raw FWP over TLS from the config directory: HI, HELLO, PUSH, FETCH, ACK', async () => {
  await withServer({ args: ['-c', file('conf')] }, async (srv) => {
    assert.match(srv.stderr(), /spoold ready .* tls=on/, 'the ready line should say tls=on');
    const c = await tlsConnect(srv);
    assert.equal(c.socket.getProtocol() === 'TLSv1.3' || c.socket.getProtocol() === 'TLSv1.2', true,
      `the session should be TLS 1.2 or 1.3, got ${c.socket.getProtocol()}`);
    const hi = await readGreeting(c);
    assert.equal(hi.v, 2, 'the greeting should be +HI {"v":2}');
    assert.deepEqual(await sendHello(c, { hello: { wid: 'tlsworker1', labels: [] } }), { type: 'simple', value: 'OK' });
    const job = makeJob({ queue: 'tlsq', args: ['x'.repeat(100000)] }); // larger than one TLS record
    await c.push(job);
    const got = await c.fetch(['tlsq']);
    assert.equal(got.jid, job.jid, 'FETCH over TLS should return the pushed job');
    assert.equal(got.args[0].length, 100000, 'the large argument should arrive whole');
    await c.ack(job.jid);
    const info = await c.info();
    assert.equal(info.faktory.total_processed, 1, 'the ACK over TLS should count as processed');
    c.close();
  });
});

test('the HTTP API over https; plain http to the TLS port gets no answer', async () => {
  await withServer({ args: tlsArgs() }, async (srv) => {
    const h = await httpsGet(srv.httpPort, '/health');
    assert.equal(h.status, 200, `GET /health over https should be 200, got ${h.status} ${h.body}`);
    const stats = await httpsGet(srv.httpPort, '/api/v1/queues');
    assert.equal(stats.status, 200, `GET /api/v1/queues over https should be 200, got ${stats.status} ${stats.body}`);
    let plainErr = null;
    let plainRes = null;
    try {
      plainRes = await httpGet(srv.httpPort, '/health', { timeoutMs: 5000 });
    } catch (e) {
      plainErr = e;
    }
    assert.ok(plainErr || (plainRes && !(plainRes.status >= 100)),
      `plain http to the TLS port should get no HTTP response, got ${JSON.stringify(plainRes)}`);
    // the server is unharmed
    assert.equal((await httpsGet(srv.httpPort, '/health')).status, 200, 'https still works after the plaintext attempt');
  });
});

test('a plaintext FWP client on the TLS port gets no greeting and is dropped; TLS clients carry on', async () => {
  await withServer({ args: tlsArgs() }, async (srv) => {
    const raw = await rawConnect(srv.port, srv);
    raw.send('HELLO {"v":2}\r\n');
    assert.equal(await raw.waitClosed(5000), true, 'the server should close a plaintext connection');
    assert.ok(!raw.buf.toString('latin1').includes('+HI'), `no +HI should reach a plaintext client, got ${JSON.stringify(raw.buf.toString('latin1'))}`);
    assert.ok(srv.alive(), 'spoold should keep running');
    const c = await tlsConnect(srv);
    await readGreeting(c);
    assert.deepEqual(await sendHello(c), { type: 'simple', value: 'OK' }, 'a TLS client should still be served');
    c.close();
  });
});

test('TLS 1.1 is refused by the server; TLS 1.2 is accepted', async () => {
  await withServer({ args: tlsArgs() }, async (srv) => {
    // SECLEVEL=0 lets this client offer TLS 1.1, so the refusal is the server's.
    const e = await tlsHandshakeError(srv.port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
    assert.equal(e.code, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION',
      `the server should answer a TLS 1.1 hello with a protocol_version alert, got ${e.code}: ${e.message}`);
    const e2 = await tlsHandshakeError(srv.httpPort, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
    assert.equal(e2.code, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', `the HTTP port too should refuse TLS 1.1, got ${e2.code}`);
    const c = await tlsConnect(srv, { maxVersion: 'TLSv1.2' });
    assert.equal(c.socket.getProtocol(), 'TLSv1.2');
    await readGreeting(c);
    c.close();
  });
});

test('a client that trusts another CA refuses the server', async () => {
  await withServer({ args: tlsArgs() }, async (srv) => {
    const e = await tlsHandshakeError(srv.port, { ca: fs.readFileSync(file('other-ca.pem')) });
    assert.match(e.code || '', /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|SELF_SIGNED/,
      `verification against the wrong CA should fail, got ${e.code}`);
  });
});

test('the connection limits hold under TLS: handshake deadline, line timeout, max connections', async () => {
  await withServer({ args: [...tlsArgs(), '--line-timeout', '1', '--max-connections', '1'] }, async (srv) => {
    // A TCP client that never starts the TLS handshake is dropped by the handshake deadline (2 s).
    const silent = await rawConnect(srv.port, srv);
    const t0 = Date.now();
    assert.equal(await silent.waitClosed(6000), true, 'a silent client should be closed by the handshake deadline');
    assert.ok(Date.now() - t0 < 5000, `it should be closed within about 2 s, took ${Date.now() - t0} ms`);
    // A started but unfinished command line times out, over TLS as in plaintext.
    const c = await tlsConnect(srv);
    await readGreeting(c);
    assert.deepEqual(await sendHello(c), { type: 'simple', value: 'OK' });
    c.send('INF');
    const r = await c.readTyped(5000);
    assert.equal(r.type, 'error', `an unfinished line should get -ERR, got ${JSON.stringify(r)}`);
    assert.match(r.value, /timed out/, 'the error should say the line timed out');
    assert.equal(await c.waitClosed(5000), true, 'and the connection should close');
    // One connection allowed: a second TLS client is refused at HELLO.
    const a = await tlsConnect(srv);
    await readGreeting(a);
    assert.deepEqual(await sendHello(a), { type: 'simple', value: 'OK' });
    const b = await tlsConnect(srv);
    await readGreeting(b);
    const rb = await sendHello(b);
    assert.equal(rb.type, 'error', `the second connection should be refused, got ${JSON.stringify(rb)}`);
    assert.match(rb.value, /too many connections/);
    a.close();
    b.close();
  });
});

test('--max-output holds under TLS: a client that stops reading is cut off, others are served', async () => {
  await withServer({ args: [...tlsArgs(), '--max-output', '65536'] }, async (srv) => {
    const other = await tlsConnect(srv);
    await readGreeting(other);
    await sendHello(other);
    const hog = await tlsConnect(srv);
    await readGreeting(hog);
    await sendHello(hog);
    const base = (await other.info()).server.connections;
    hog.socket.pause(); // stop reading: the replies pile up in the kernel, then in spoold
    const burst = Buffer.from('INFO\r\n'.repeat(20000));
    for (let k = 0; k < 5; k++) hog.send(burst);
    const info = await other.info();
    assert.ok(info.server.used_memory_mb < 512, `spoold memory should stay bounded, used_memory_mb=${info.server.used_memory_mb}`);
    await waitFor(async () => (await other.info()).server.connections < base,
      { timeoutMs: 20000, intervalMs: 100, what: `spoold to drop the TLS client that does not read (connections < ${base})` });
    hog.destroy();
    other.close();
  });
});

test('--tls-ca requires a client certificate from that CA', async () => {
  await withServer({ args: [...tlsArgs(), '--tls-ca', file('ca.pem')] }, async (srv) => {
    // Without a certificate: TLS 1.3 reports the refusal on the first read, so read.
    let refused = false;
    try {
      const c = await tlsConnect(srv);
      const closed = await within(readGreeting(c, 3000).then(() => false, () => true), 4000, true);
      refused = closed;
      c.close();
    } catch {
      refused = true;
    }
    assert.ok(refused, 'a client without a certificate should get no greeting');
    const c = await tlsConnect(srv, { cert: fs.readFileSync(file('client.pem')), key: fs.readFileSync(file('client.key')) });
    await readGreeting(c);
    assert.deepEqual(await sendHello(c), { type: 'simple', value: 'OK' }, 'a client with a certificate from the CA is served');
    c.close();
  });
});

test('openssl s_client connects, verifies and sees +HI', async () => {
  await withServer({ args: tlsArgs() }, async (srv) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${srv.port}`, '-servername', 'localhost',
      '-CAfile', file('ca.pem'), '-verify_return_error', '-verify_hostname', 'localhost', '-quiet'],
    { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    const exited = new Promise((resolve) => p.on('exit', resolve));
    try {
      await waitFor(() => out.includes('+HI'), { timeoutMs: 5000, what: `+HI from openssl s_client (stderr: ${err})` });
      p.stdin.write('HELLO {"v":2}\r\n');
      await waitFor(() => out.includes('+OK'), { timeoutMs: 5000, what: '+OK to HELLO through s_client' });
      p.stdin.write('END\r\n');
      p.stdin.end();
      await within(exited, 5000);
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
    }
    assert.match(out, /^\+HI \{"v":2,"spool":\{[^}]*\}\}\r\n\+OK\r\n/, `s_client should show the greeting and +OK, got ${JSON.stringify(out)}`);
  });
});

test('a bad certificate or key refuses the start with a message naming the file', () => {
  const cases = [
    { args: ['--tls-cert', file('nope.pem'), '--tls-key', file('key.pem')], want: /cannot read the TLS certificate .*nope\.pem: No such file/ },
    { args: ['--tls-cert', file('cert.pem'), '--tls-key', file('nokey.pem')], want: /cannot read the TLS key .*nokey\.pem/ },
    { args: ['--tls-cert', file('key.pem'), '--tls-key', file('key.pem')], want: /TLS certificate .*key\.pem is not a usable PEM certificate/ },
    { args: ['--tls-cert', file('cert.pem'), '--tls-key', file('client.key')], want: /TLS key .*client\.key does not match the certificate .*cert\.pem/ },
    { args: ['--tls-cert', file('cert.pem')], want: /--tls-cert and --tls-key go together/ },
    { args: ['--tls-ca', file('ca.pem')], want: /--tls-ca needs TLS on/ },
  ];
  const halfConf = path.join(dir, 'half-conf');
  fs.mkdirSync(halfConf, { recursive: true });
  fs.copyFileSync(file('cert.pem'), path.join(halfConf, 'public.cert.pem'));
  cases.push({ args: ['-c', halfConf], want: /TLS needs both .*public\.cert\.pem and .*private\.key\.pem; .*private\.key\.pem is missing/ });
  for (const c of cases) {
    const data = makeTempDir();
    try {
      const r = runSpooldSync(['-b', '127.0.0.1:0', '-w', '127.0.0.1:0', '-d', data, ...c.args]);
      assert.notEqual(r.status, 0, `spoold ${c.args.join(' ')} should refuse to start; stderr: ${r.stderr}`);
      assert.match(r.stderr, c.want, `spoold ${c.args.join(' ')} should say why`);
      assert.doesNotMatch(r.stderr, /spoold ready/, 'it should never have listened');
    } finally {
      removeDir(data);
    }
  }
});
