'use strict';
// Operations (docs/operations.md): readiness through sd_notify, graceful
// shutdown on SIGTERM under load (every +OK survives), spoold --check-config,
// and the log format (ts= level= msg=) with --log-level.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const readline = require('node:readline');
const {
  startServer, withServer, connect, makeJob, makeTempDir, removeDir, runSpooldSync, spooldPath, waitFor, within,
} = require('../lib/spoold');

const LOG_LINE = /^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(error|warn|info|debug) msg=/;

/** Starts tests' notify_probe on a fresh socket path; returns {path, lines, proc, exited}. */
async function startProbe(dir) {
  const bin = process.env.NOTIFY_PROBE;
  assert.ok(bin && fs.existsSync(bin), `NOTIFY_PROBE should name the built notify_probe helper, got ${bin}`);
  const sock = path.join(dir, 'notify.sock');
  const proc = spawn(bin, [sock, '20'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = [];
  const rl = readline.createInterface({ input: proc.stdout });
  rl.on('line', (l) => lines.push({ line: l, at: Date.now() }));
  const exited = new Promise((r) => proc.on('exit', r));
  await waitFor(() => lines.some((l) => l.line === 'listening'), { what: 'notify_probe listening' });
  return { path: sock, lines, proc, exited };
}

test('with NOTIFY_SOCKET spoold sends READY=1 once it listens, and STOPPING=1 on SIGTERM', async () => {
  const tmp = makeTempDir('spool-notify-');
  const probe = await startProbe(tmp);
  try {
    const srv = await startServer({ env: { NOTIFY_SOCKET: probe.path } });
    let stopped = false;
    try {
      const ready = await waitFor(() => probe.lines.find((l) => l.line.startsWith('READY=1')),
        { what: 'READY=1 on the notify socket' });
      assert.match(ready.line, /STATUS=serving FWP on 127\.0\.0\.1:\d+, HTTP on 127\.0\.0\.1:\d+/,
        `READY=1 carries a STATUS naming the listeners: ${ready.line}`);
      assert.ok(ready.line.includes(`:${srv.port},`), `the STATUS names the bound FWP port ${srv.port}: ${ready.line}`);
      // READY means listening: a client connected right now is served
      const c = await connect(srv.port);
      assert.ok((await c.info()).server, 'INFO answers once READY=1 was sent');
      c.destroy();
      assert.ok(!probe.lines.some((l) => l.line.startsWith('STOPPING=1')), 'no STOPPING=1 before SIGTERM');
      stopped = true;
      await srv.stop();
      const stopping = await waitFor(() => probe.lines.find((l) => l.line.startsWith('STOPPING=1')),
        { what: 'STOPPING=1 after SIGTERM' });
      assert.ok(stopping.at >= ready.at, 'STOPPING=1 comes after READY=1');
    } finally {
      if (!stopped) await srv.stop();
    }
  } finally {
    probe.proc.kill('SIGTERM');
    await within(probe.exited, 5000, null);
    removeDir(tmp);
  }
});

test('without NOTIFY_SOCKET nothing is sent and spoold runs as usual', async () => {
  await withServer({ env: { NOTIFY_SOCKET: '' } }, async (srv) => {
    const c = await srv.connect();
    assert.ok((await c.info()).server);
    assert.doesNotMatch(srv.stderr(), /cannot notify/, 'no notification warning without a manager');
  });
});

test('SIGTERM under load: exit 0, and after a restart every job answered +OK is there', async () => {
  const dir = makeTempDir('spool-term-');
  try {
    const srv = await startServer({ dir });
    const acked = new Set();
    const producers = [];
    let stop = false;
    for (let p = 0; p < 4; p++) {
      const c = await srv.connect();
      producers.push((async () => {
        // pipelined pushes, 16 in flight per connection, until the server goes away
        for (let round = 0; round < 10000 && !stop; round++) {
          const jobs = Array.from({ length: 16 }, () => makeJob({ queue: 'term' }));
          for (const j of jobs) c.send('PUSH ' + JSON.stringify(j) + '\r\n');
          for (const j of jobs) {
            let r;
            try { r = await c.readTyped(3000); } catch { return; }
            if (r.type === 'simple' && r.value === 'OK') acked.add(j.jid);
            else return;
          }
        }
      })());
    }
    await waitFor(() => acked.size >= 500, { what: '500 acknowledged pushes before SIGTERM', timeoutMs: 20000 });
    srv.proc.kill('SIGTERM');
    const st = await within(new Promise((r) => {
      if (srv.exitStatus()) r(srv.exitStatus()); else srv.proc.on('exit', (code, signal) => r({ code, signal }));
    }), 10000, null);
    stop = true;
    assert.ok(st, 'spoold exits within 10 s of SIGTERM');
    assert.equal(st.code, 0, `spoold exits 0 after SIGTERM, got ${JSON.stringify(st)}\n${srv.stderrTail()}`);
    await Promise.all(producers);
    assert.match(srv.stderr(), /level=info msg="shutting down" signal=15/, 'the shutdown is logged');
    await srv.kill9(); // already exited: releases the harness's handles

    const again = await startServer({ dir });
    try {
      const c = await again.connect();
      const held = new Set();
      for (let page = 0; page < 10000; page++) {
        const r = await c.cmdJSON('JOBS ' + JSON.stringify({ target: 'queue', queue: 'term', offset: held.size, limit: 1000 }));
        for (const e of r.jobs) held.add(e.job.jid);
        if (r.jobs.length < 1000) break;
      }
      const info = await c.info();
      assert.equal(held.size, info.faktory.queues.term, 'JOBS listed the whole queue');
      const lost = [...acked].filter((j) => !held.has(j));
      assert.equal(lost.length, 0, `${lost.length} of ${acked.size} jobs answered +OK are missing after SIGTERM and restart: ${lost.slice(0, 5)}`);
      assert.ok(info.faktory.queues.term >= acked.size, 'the queue holds at least every acknowledged job');
    } finally {
      await again.stop();
    }
  } finally {
    removeDir(dir);
  }
});

function writeCron(dir, text) {
  fs.writeFileSync(path.join(dir, 'cron.json'), text);
}

test('spoold --check-config: exits 0 on a good setup, 1 naming the bad file or directory', () => {
  const tmp = makeTempDir('spool-checkconf-');
  try {
    const cfg = path.join(tmp, 'etc');
    fs.mkdirSync(cfg);
    writeCron(cfg, JSON.stringify([{ name: 'n', schedule: '@every 10s', jobtype: 'T' }]));
    const data = path.join(tmp, 'data');
    let r = runSpooldSync(['--check-config', '-c', cfg, '-d', data]);
    assert.equal(r.status, 0, `a good setup passes: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /^ok +cron\.json: .*1 entries$/m, `cron.json is checked: ${r.stdout}`);
    assert.match(r.stdout, /^ok +data directory: .*will be created/m, `a missing data dir that can be created: ${r.stdout}`);
    assert.match(r.stdout, /^ok +descriptors: /m, r.stdout);
    assert.match(r.stdout, /spoold --check-config: OK$/m, r.stdout);
    assert.ok(!fs.existsSync(data), '--check-config creates nothing');

    writeCron(cfg, JSON.stringify([{ name: 'n', schedule: 'every now and then', jobtype: 'T' }]));
    r = runSpooldSync(['--check-config', '-c', cfg, '-d', data]);
    assert.equal(r.status, 1, `a bad schedule fails: ${r.stdout}`);
    assert.match(r.stdout, /^FAIL +cron\.json: .*cron\.json.*schedule/m, `the failure names the file and the field: ${r.stdout}`);
    assert.match(r.stdout, /spoold --check-config: FAILED$/m, r.stdout);

    writeCron(cfg, '[]');
    fs.writeFileSync(path.join(cfg, 'throttles.json'), JSON.stringify({ mail: { concurrency: 0 } }));
    r = runSpooldSync(['--check-config', '-c', cfg, '-d', data]);
    assert.equal(r.status, 1, `a bad throttle fails: ${r.stdout}`);
    assert.match(r.stdout, /^FAIL +throttles\.json: .*throttles\.json: queue "mail": field "concurrency"/m, r.stdout);
    fs.writeFileSync(path.join(cfg, 'throttles.json'), JSON.stringify({ mail: { concurrency: 4 } }));
    r = runSpooldSync(['--check-config', '-c', cfg, '-d', data]);
    assert.equal(r.status, 0, r.stdout);
    assert.match(r.stdout, /^ok +throttles\.json: .*1 queues$/m, r.stdout);
    assert.match(r.stdout, /^ok +tls: off/m, r.stdout);
    r = runSpooldSync(['--check-config', '-c', cfg, '-d', data, '--tls-cert', path.join(tmp, 'no.pem'), '--tls-key', path.join(tmp, 'no.key')]);
    assert.equal(r.status, 1, `a missing certificate fails: ${r.stdout}`);
    assert.match(r.stdout, /^FAIL +tls: .*no\.pem/m, r.stdout);

    fs.writeFileSync(data, 'not a directory');
    r = runSpooldSync(['--check-config', '-c', cfg, '-d', data]);
    assert.equal(r.status, 1, `a data dir that is a file fails: ${r.stdout}`);
    assert.match(r.stdout, /^FAIL +data directory: .*is not a directory/m, r.stdout);
    fs.rmSync(data);

    fs.mkdirSync(data);
    fs.chmodSync(data, 0o500);
    const isRoot = process.getuid && process.getuid() === 0;
    r = runSpooldSync(['--check-config', '-d', data]);
    if (!isRoot) { // root writes anywhere: the permission case cannot fail for it
      assert.equal(r.status, 1, `a read-only data dir fails: ${r.stdout}`);
      assert.match(r.stdout, /^FAIL +data directory: .*not writable/m, r.stdout);
    } else {
      assert.equal(r.status, 0, r.stdout);
      assert.match(r.stdout, /^ok +data directory: .* is writable$/m, r.stdout);
    }
    fs.chmodSync(data, 0o700);
    assert.deepEqual(fs.readdirSync(data), [], 'the write probe leaves nothing behind');

    r = runSpooldSync(['--check-config', '-c', path.join(tmp, 'nope'), '-d', data]);
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stdout, /^FAIL +config directory: .*nope/m, r.stdout);

    r = runSpooldSync(['--check-config', '-d', data, '--backup-dir', path.join(tmp, 'no-such-dir')]);
    assert.equal(r.status, 1, `a missing --backup-dir fails: ${r.stdout}`);
    assert.match(r.stdout, /^FAIL +backup directory: .*no-such-dir must be an existing, writable directory/m, r.stdout);
    r = runSpooldSync(['--check-config', '-d', data, '--backup-dir', tmp]);
    assert.equal(r.status, 0, r.stdout);
    assert.match(r.stdout, /^ok +backup directory: /m, r.stdout);

    r = runSpooldSync(['--check-config', '--max-connections', '0']);
    assert.equal(r.status, 2, 'a bad flag is refused before any check');
    assert.match(r.stderr, /--max-connections/, r.stderr);
  } finally {
    removeDir(tmp);
  }
});

test('--check-config says when the descriptor limit cannot serve --max-connections', () => {
  const r = runSpooldSync(['--check-config', '--max-connections', '1000000', '-d', makeTempDir('spool-cc-')]);
  // the hard limit of a test machine is far below a million descriptors
  assert.equal(r.status, 1, r.stdout);
  assert.match(r.stdout, /^FAIL +descriptors: .*cannot serve --max-connections 1000000/m, r.stdout);
});

test('log lines are ts= level= msg= ...; --log-level warn hides info, debug shows connections', async () => {
  await withServer({ logLevel: 'debug' }, async (srv) => {
    const c = await srv.connect();
    await c.info();
    c.destroy();
    await waitFor(() => /level=debug msg="connection closed"/.test(srv.stderr()), { what: 'a debug line for the closed connection' });
    for (const line of srv.stderr().split('\n').filter(Boolean)) {
      assert.match(line, LOG_LINE, `every log line has ts=, level= and msg= first: ${line}`);
    }
  });
  // -l warn on a port picked here (no ready line to read the port from)
  const port = await freePort();
  const dir = makeTempDir('spool-loglevel-');
  try {
    const proc = spawn(spooldPath(), ['-b', `127.0.0.1:${port}`, '-w', '127.0.0.1:0', '-d', dir, '-l', 'warn'],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    proc.stderr.on('data', (d) => { err += d; });
    const exited = new Promise((r) => proc.on('exit', (code) => r(code)));
    const c = await waitFor(() => connect(port).catch(() => null), { what: `spoold -l warn to serve on port ${port}`, timeoutMs: 10000 });
    assert.ok((await c.info()).server, 'spoold -l warn serves');
    c.destroy();
    proc.kill('SIGTERM');
    assert.equal(await within(exited, 10000, 'timeout'), 0, `spoold -l warn exits 0 on SIGTERM: ${err}`);
    assert.doesNotMatch(err, /level=info/, `-l warn prints no info lines: ${err}`);
  } finally {
    removeDir(dir);
  }
});

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

test('spoold raises its soft descriptor limit to the hard one at start', async () => {
  // started from a shell whose soft limit is 256 (under a higher hard limit)
  const dir = makeTempDir('spool-nofile-');
  try {
    const proc = spawn('/bin/sh', ['-c', 'ulimit -S -n 256 && exec "$0" "$@"', spooldPath(),
      '-b', '127.0.0.1:0', '-w', '127.0.0.1:0', '-d', dir, '-l', 'debug'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    proc.stderr.on('data', (d) => { err += d; });
    const exited = new Promise((r) => proc.on('exit', (code) => r(code)));
    await waitFor(() => /spoold ready/.test(err), { what: 'the ready line', timeoutMs: 10000 });
    const limits = fs.readFileSync(`/proc/${proc.pid}/limits`, 'utf8');
    const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(limits);
    assert.ok(m, limits);
    assert.ok(m[2] === 'unlimited' || Number(m[2]) > 256, `test setup: the hard limit is above 256: ${m[0]}`);
    assert.equal(m[1], m[2], `the soft limit is raised to the hard one: ${m[0]}`);
    assert.match(err, /level=debug msg="descriptor limit \d+ \(was 256\)/, `the raise is logged: ${err}`);
    proc.kill('SIGTERM');
    assert.equal(await within(exited, 10000, 'timeout'), 0);
  } finally {
    removeDir(dir);
  }
});

test('SIGUSR1 with --backup-dir writes a consistent copy that spoold starts from', async () => {
  const backups = makeTempDir('spool-backups-');
  try {
    await withServer({ args: ['--backup-dir', backups] }, async (srv) => {
      const c = await srv.connect();
      const queued = [makeJob({ queue: 'bq' }), makeJob({ queue: 'bq' }), makeJob({ queue: 'bq' })];
      for (const j of queued) await c.push(j);
      await c.push(makeJob({ queue: 'bq', at: new Date(Date.now() + 3600e3).toISOString() }));
      const done = await c.fetch(['bq']);
      await c.ack(done.jid);
      const before = await c.info();
      srv.proc.kill('SIGUSR1');
      await waitFor(() => /msg="backup written" path=(\S+)/.test(srv.stderr()), { what: 'the backup written log line', timeoutMs: 10000 });
      const where = /msg="backup written" path=(\S+)/.exec(srv.stderr())[1];
      assert.ok(where.startsWith(backups + '/spool-'), `the backup is a new directory under --backup-dir: ${where}`);
      // changes after the signal are not in the copy
      await c.push(makeJob({ queue: 'bq' }));

      const copy = await startServer({ dir: where });
      try {
        const cc = await copy.connect();
        const info = await cc.info();
        assert.deepEqual(
          { queued: info.faktory.queues.bq, scheduled: info.faktory.sets.scheduled, processed: info.faktory.total_processed },
          { queued: before.faktory.queues.bq, scheduled: before.faktory.sets.scheduled, processed: before.faktory.total_processed },
          'the copy holds the state as of SIGUSR1');
        const got = await cc.fetch(['bq']);
        assert.equal(got.jid, queued[1].jid, 'the copy keeps the queue order');
      } finally {
        await copy.stop();
      }
      // a second signal makes a second copy
      srv.proc.kill('SIGUSR1');
      await waitFor(() => (srv.stderr().match(/msg="backup written"/g) || []).length === 2, { what: 'a second backup', timeoutMs: 10000 });
      assert.equal(fs.readdirSync(backups).length, 2, 'two backup directories');
    });
    // without --backup-dir: a warning, and spoold goes on
    await withServer({}, async (srv) => {
      srv.proc.kill('SIGUSR1');
      await waitFor(() => /level=warn msg="SIGUSR1: no backup directory/.test(srv.stderr()), { what: 'the warning' });
      const c = await srv.connect();
      assert.ok((await c.info()).server, 'spoold still serves');
    });
  } finally {
    removeDir(backups);
  }
});
