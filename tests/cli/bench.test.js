'use strict';
// spool bench against a real spoold: every phase runs and completes, the JSON
// carries the documented fields, the run cleans up its queues, plain FWP and
// the batch verbs (and their fallback on a --plain-fwp server) all work.
// Numbers are only checked for being measured, never for being fast.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { withServer } = require('../lib/spoold');
const { runCli, shown } = require('./cli');

const FIELDS = ['push_per_s', 'process_per_s', 'latency_p50_ms', 'latency_p99_ms', 'latency_p999_ms',
  'server_rss_mb', 'bytes_per_job'];

async function bench(srv, args) {
  const r = await runCli(['bench', '--json', ...args], { srv, timeoutMs: 60000 });
  assert.equal(r.code, 0, `spool bench ${args.join(' ')} should exit 0\n${shown(r)}`);
  const doc = JSON.parse(r.stdout);
  for (const f of FIELDS) {
    assert.equal(typeof doc[f], 'number', `--json should carry a number ${f}: ${r.stdout}`);
  }
  assert.equal(doc.complete, true, `the run should complete: ${r.stdout}`);
  return doc;
}

async function checkServerAfter(srv, processed) {
  const c = await srv.connect();
  const info = await c.info();
  const left = Object.keys(info.faktory.queues).filter((q) => q.startsWith('bench.'));
  assert.deepEqual(left, [], `the bench queues are removed after the run: ${JSON.stringify(info.faktory.queues)}`);
  assert.equal(info.faktory.total_processed, processed, 'drain and mixed phases acknowledged every job');
  assert.equal(info.faktory.sets.working, 0, 'no job is left reserved');
  assert.ok(info.server.rss_bytes > 0, `INFO reports rss_bytes: ${JSON.stringify(info.server)}`);
  c.close();
}

test('plain FWP: 300 jobs through fill, drain and mixed, latency for every mixed job', async () => {
  await withServer(async (srv) => {
    const doc = await bench(srv, ['--jobs', '300', '--batch', '0', '--producers', '2', '--consumers', '2',
      '--queues', '3', '--payload', '50']);
    assert.equal(doc.mode, 'plain');
    assert.equal(doc.latency_samples, 300, 'one latency sample per job of the mixed phase');
    assert.ok(doc.push_per_s > 0 && doc.process_per_s > 0 && doc.mixed_per_s > 0, 'rates were measured');
    assert.ok(doc.latency_p50_ms <= doc.latency_p99_ms && doc.latency_p99_ms <= doc.latency_p999_ms,
      `percentiles are ordered: ${JSON.stringify(doc)}`);
    assert.ok(doc.job_bytes > 50, 'the job size includes the payload');
    await checkServerAfter(srv, 600);
  });
});

test('batch verbs: PUSHB, FETCHN and ACKN of 25, then a paced mixed phase', async () => {
  await withServer(async (srv) => {
    const doc = await bench(srv, ['--jobs', '400', '--batch', '25', '--mixed-jobs', '100', '--rate', '500']);
    assert.equal(doc.mode, 'batch');
    assert.equal(doc.latency_samples, 100, 'the mixed phase ran --mixed-jobs jobs');
    assert.equal(doc.rate, 500);
    await checkServerAfter(srv, 500);
  });
});

test('batch mode falls back to FETCH and ACK on a server without the batch verbs', async () => {
  await withServer({ args: ['--plain-fwp'] }, async (srv) => {
    await bench(srv, ['--jobs', '100', '--batch', '10', '--mixed-jobs', '0']);
    await checkServerAfter(srv, 100);
  });
});

test('--fill-only measures bytes per job and removes the jobs; bad options are usage errors', async () => {
  await withServer(async (srv) => {
    const doc = await bench(srv, ['--jobs', '200', '--fill-only', '--batch', '50']);
    assert.equal(doc.latency_samples, 0, 'no mixed phase');
    await checkServerAfter(srv, 0);
    for (const args of [['--batch', '5000'], ['--producers', '0'], ['--jobs', 'x'], ['--duration', '0'], ['extra']]) {
      const r = await runCli(['bench', ...args], { srv });
      assert.equal(r.code, 2, `spool bench ${args.join(' ')} should be a usage error\n${shown(r)}`);
      assert.match(r.stderr, /spool bench: /, 'the message names the command');
    }
  });
});

test('--url after the command reaches every thread (SPOOL_URL pointing elsewhere)', async () => {
  await withServer(async (srv) => {
    const r = await runCli(['bench', '--json', '--jobs', '50', '--batch', '0', '--producers', '2', '--consumers', '2',
      '--url', `tcp://127.0.0.1:${srv.port}`], { env: { SPOOL_URL: 'tcp://127.0.0.1:1' }, timeoutMs: 60000 });
    assert.equal(r.code, 0, `spool bench with --url after the command should exit 0\n${shown(r)}`);
    assert.equal(JSON.parse(r.stdout).complete, true, r.stdout);
    await checkServerAfter(srv, 100);
  });
});
