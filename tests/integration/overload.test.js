'use strict';
// Overload (docs/operations.md, "Sizing"): 5,000 idle FWP connections held
// open while producers and workers run. Meanwhile the HTTP side
// (/api/v1/queues, /stats, /metrics) keeps answering, every pushed job is
// processed, and once the connections reach --max-connections the next one
// gets the clear error. Bounded: every wait has a deadline; the test closes
// everything it opened.
//
// Needs about 5,300 descriptors in this process: ctest starts it through a
// shell that raises the soft limit to the hard one (tests/integration/CMakeLists.txt).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { withServer, connect, makeJob, httpGet, waitFor } = require('../lib/spoold');

const IDLE = Number(process.env.OVERLOAD_IDLE || 5000);
const LIMIT = IDLE + 100;
const JOBS = 4000;
const PRODUCERS = 4;
const WORKERS = 4;

function softFdLimit() {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  return m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

async function openIdle(srv, n, into) {
  // in waves, so each handshake completes well inside spoold's 2 s handshake timeout
  const WAVE = 250;
  for (let i = 0; i < n; i += WAVE) {
    const wave = [];
    for (let j = i; j < Math.min(n, i + WAVE); j++) wave.push(connect(srv.port, { timeoutMs: 10000 }));
    into.push(...await Promise.all(wave));
  }
}

test(`${IDLE} idle connections: HTTP keeps answering, every job is processed, then the limit gives its error`, { timeout: 240000 }, async (t) => {
  const fdLimit = softFdLimit();
  assert.ok(fdLimit >= LIMIT + 200,
    `this process may open ${fdLimit} descriptors; the test needs ${LIMIT + 200}: run it through ctest, or raise ulimit -n`);
  await withServer({ args: ['--max-connections', String(LIMIT)] }, async (srv) => {
    const idle = [];
    try {
      const t0 = Date.now();
      await openIdle(srv, IDLE, idle);
      t.diagnostic(`opened ${IDLE} idle connections in ${Date.now() - t0} ms`);
      const c = await srv.connect();
      assert.equal((await c.info()).server.connections, IDLE + 1, 'spoold counts every idle connection');

      // producers and workers while the idle connections are held
      let pushed = 0;
      let processed = 0;
      const producers = [];
      for (let p = 0; p < PRODUCERS; p++) {
        const pc = await srv.connect();
        producers.push((async () => {
          for (let i = 0; i < JOBS / PRODUCERS; i += 50) {
            const batch = Array.from({ length: 50 }, () => makeJob({ queue: 'load', args: [p, i] }));
            for (const j of batch) pc.send('PUSH ' + JSON.stringify(j) + '\r\n');
            for (let k = 0; k < batch.length; k++) {
              const r = await pc.readTyped(20000);
              assert.deepEqual(r, { type: 'simple', value: 'OK' }, 'every PUSH is accepted');
              pushed++;
            }
          }
        })());
      }
      let done = false;
      const workers = [];
      for (let w = 0; w < WORKERS; w++) {
        const wc = await srv.connect({ hello: { wid: `overload-${w}` } });
        workers.push((async () => {
          while (!done) {
            const job = await wc.fetch(['load'], { timeoutMs: 20000 });
            if (!job) continue;
            await wc.ack(job.jid);
            processed++;
          }
        })());
      }

      // the HTTP side answers while all this runs
      const latencies = { '/api/v1/queues': [], '/stats': [], '/metrics': [] };
      const probes = (async () => {
        for (let round = 0; round < 1000 && !done; round++) {
          for (const p of Object.keys(latencies)) {
            const s = Date.now();
            const r = await httpGet(srv.httpPort, p, { timeoutMs: 10000 });
            assert.equal(r.status, 200, `GET ${p} answers 200 under load, got ${r.status}: ${r.body.slice(0, 200)}`);
            latencies[p].push(Date.now() - s);
          }
        }
      })();

      await Promise.all(producers);
      await waitFor(() => processed >= JOBS, { what: `all ${JOBS} jobs processed (processed ${processed})`, timeoutMs: 120000, intervalMs: 100 });
      done = true;
      await probes;
      // workers blocked in FETCH come back within their 2 s server-side wait
      await Promise.all(workers);
      assert.equal(pushed, JOBS);
      const info = await c.info();
      assert.equal(info.faktory.total_processed, JOBS, 'INFO counts every job as processed');
      assert.equal(info.faktory.queues.load || 0, 0, 'the queue is empty');
      assert.equal(info.faktory.sets.working, 0, 'nothing is left reserved');
      for (const [p, l] of Object.entries(latencies)) {
        assert.ok(l.length > 0, `GET ${p} was probed during the load`);
        l.sort((a, b) => a - b);
        t.diagnostic(`GET ${p}: ${l.length} requests, median ${l[l.length >> 1]} ms, max ${l[l.length - 1]} ms`);
      }

      // fill up to --max-connections: the one beyond it gets the clear error
      const open = (await c.info()).server.connections;
      await openIdle(srv, LIMIT - open, idle);
      const extra = await srv.rawConnect();
      const hi = await extra.readTyped();
      assert.equal(hi.type, 'simple', 'the greeting comes before the limit check');
      const r = await extra.cmdTyped('HELLO {"v":2}');
      assert.equal(r.type, 'error', `a connection beyond --max-connections ${LIMIT} is refused, got ${JSON.stringify(r)}`);
      assert.match(r.value, /^ERR too many connections/, 'the refusal says why');
      assert.ok(await extra.waitClosed(5000), 'the refused connection is closed');
      const st = await httpGet(srv.httpPort, '/stats');
      assert.equal(st.status, 200, 'HTTP still answers at the connection limit');
    } finally {
      for (const x of idle) x.destroy();
    }
  });
});
