'use strict';
// faktory-worker 4.7.1 over TLS: it speaks TLS when given tlsOptions (passed
// to Node's tls.connect); the host and port come from a tcp+tls:// URL as
// from any other. A Client pushes, a Worker processes and ACKs. (A wrong CA
// is refused by Node's tls module itself: tests/integration/tls.test.js.)

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { withServer, requireFaktory, waitFor, makeTempDir, removeDir } = require('../lib/spoold');

const { Client, Worker } = requireFaktory();

let dir;
before(() => {
  dir = makeTempDir('spool-tls-compat-');
  const r = spawnSync(path.join(__dirname, '..', 'lib', 'tls_certs.sh'), [dir], { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, `tls_certs.sh should make the test certificates (is openssl installed?): ${r.stderr}`);
});
after(() => removeDir(dir));

test('faktory-worker pushes and processes a job over TLS (tcp+tls:// URL, tlsOptions with the CA)', async () => {
  await withServer({ args: ['-c', path.join(dir, 'conf')] }, async (srv) => {
    // 127.0.0.1, where spoold listens: "localhost" may resolve to ::1 first,
    // which Node 18 does not fall back from. The certificate is checked
    // against the servername.
    const url = `tcp+tls://127.0.0.1:${srv.port}`;
    const tlsOptions = { ca: fs.readFileSync(path.join(dir, 'ca.pem')), servername: 'localhost' };
    const client = new Client({ url, tlsOptions });
    const done = [];
    const worker = new Worker({ url, tlsOptions, queues: ['tlsq'], concurrency: 2,
      registry: { Greet: async (name) => { done.push(name); } } });
    const errors = [];
    worker.on('error', (e) => errors.push(e));
    try {
      const jid = await client.push({ jobtype: 'Greet', args: ['over tls'], queue: 'tlsq' });
      assert.equal(typeof jid, 'string', 'push over TLS should return the jid');
      await worker.work();
      await waitFor(() => done.length === 1, { what: 'the Worker to run the job over TLS' });
      assert.deepEqual(done, ['over tls']);
      const info = await waitFor(async () => {
        const i = await client.info();
        return i.faktory.total_processed === 1 && i;
      }, { what: 'total_processed to reach 1 after the ACK over TLS' });
      assert.equal(info.faktory.total_failures, 0);
    } finally {
      await worker.stop();
      await client.close();
    }
    assert.deepEqual(errors, [], 'the Worker should report no errors');
  });
});
