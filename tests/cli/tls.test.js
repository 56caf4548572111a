'use strict';
// The spool command line over TLS: tcp+tls:// URLs, the CA from --tls-ca or
// SPOOL_TLS_CA, a clear refusal of an untrusted server, and spool work
// running a job over TLS. Certificates come from tests/lib/tls_certs.sh.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { withServer, waitFor, makeTempDir, removeDir } = require('../lib/spoold');
const { runCli, startWork, shown } = require('./cli');

let dir;
before(() => {
  dir = makeTempDir('spool-cli-tls-');
  const r = spawnSync(path.join(__dirname, '..', 'lib', 'tls_certs.sh'), [dir], { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, `tls_certs.sh should make the test certificates (is openssl installed?): ${r.stderr}`);
});
after(() => removeDir(dir));

const tlsServer = (fn) => withServer({ args: ['-c', path.join(dir, 'conf')] }, fn);
const tlsUrl = (srv) => `tcp+tls://localhost:${srv.port}`;

test('push and info over TLS with --tls-ca, and with SPOOL_TLS_CA', async () => {
  await tlsServer(async (srv) => {
    const ca = path.join(dir, 'ca.pem');
    const p = await runCli(['--url', tlsUrl(srv), '--tls-ca', ca, 'push', 'Greet', 'tls', '--queue', 'tq']);
    assert.equal(p.code, 0, `push over TLS should exit 0\n${shown(p)}`);
    const jid = p.stdout.trim();
    assert.match(jid, /^[0-9a-f]{24}$/, `push prints the jid\n${shown(p)}`);
    // the option after the command, as any global option
    const q = await runCli(['queues', '--json', '--url', tlsUrl(srv), '--tls-ca', ca]);
    assert.equal(q.code, 0, `queues over TLS should exit 0\n${shown(q)}`);
    assert.match(q.stdout, /"tq"/, `the queue of the pushed job is listed\n${shown(q)}`);
    const i = await runCli(['info', '--json'], { env: { SPOOL_URL: tlsUrl(srv), SPOOL_TLS_CA: ca } });
    assert.equal(i.code, 0, `info with SPOOL_TLS_CA should exit 0\n${shown(i)}`);
    assert.equal(JSON.parse(i.stdout).faktory.total_enqueued, 1, 'the pushed job is counted');
  });
});

test('an untrusted server certificate is refused with a message saying so; plaintext to TLS fails', async () => {
  await tlsServer(async (srv) => {
    const r = await runCli(['--url', tlsUrl(srv), 'info']);
    assert.equal(r.code, 2, `info against an untrusted certificate should exit 2 (usage)\n${shown(r)}`);
    assert.match(r.stderr, /not trusted/, `the message says the certificate is not trusted\n${shown(r)}`);
    assert.match(r.stderr, /--tls-ca/, `and how to give a CA\n${shown(r)}`);
    const w = await runCli(['--url', tlsUrl(srv), '--tls-ca', path.join(dir, 'other-ca.pem'), 'info']);
    assert.equal(w.code, 2, `a wrong CA is refused as well\n${shown(w)}`);
    const plain = await runCli(['--url', `tcp://localhost:${srv.port}`, 'info']);
    assert.equal(plain.code, 3, `a plaintext URL to the TLS port cannot get through (exit 3)\n${shown(plain)}`);
    const ins = await runCli(['--url', tlsUrl(srv), 'info', '--json'], { env: { SPOOL_TLS_INSECURE_SKIP_VERIFY: '1' } });
    assert.equal(ins.code, 0, `SPOOL_TLS_INSECURE_SKIP_VERIFY=1 connects without a CA\n${shown(ins)}`);
  });
});

test('spool work runs a job over TLS', async () => {
  await tlsServer(async (srv) => {
    const ca = path.join(dir, 'ca.pem');
    const mark = path.join(dir, 'ran');
    const p = await runCli(['--url', tlsUrl(srv), '--tls-ca', ca, 'push', 'Touch']);
    assert.equal(p.code, 0, shown(p));
    const w = startWork(srv, ['--tls-ca', ca, '--', 'sh', '-c', `touch ${mark}`], { env: { SPOOL_URL: tlsUrl(srv) } });
    try {
      await waitFor(() => fs.existsSync(mark), { timeoutMs: 10000, what: `spool work to run the job over TLS\n${w.stderr()}` });
      await waitFor(async () => {
        const i = await runCli(['info', '--json', '--tls-ca', ca], { env: { SPOOL_URL: tlsUrl(srv) } });
        return i.code === 0 && JSON.parse(i.stdout).faktory.total_processed === 1;
      }, { timeoutMs: 10000, what: 'the job to be ACKed over TLS' });
    } finally {
      const st = await w.stop('SIGTERM');
      assert.equal(st.code, 0, `spool work should exit 0 after SIGTERM\n${w.stderr()}`);
    }
  });
});
