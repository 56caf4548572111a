'use strict';
// spool work against a real spoold: jobs pushed with spool push are run by a
// command with the job on stdin and in the environment; failures, timeouts
// and shutdowns become FAILs with the right errtype and stderr tail.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { withServer, waitFor, newJid } = require('../lib/spoold');
const { runCli, startWork, shown } = require('./cli');

function tmpDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'spool-cli-'));
}

// A job script: writes stdin and the JOB_* variables to $MARK/<jid>.json,
// then behaves as its jobtype says.
function writeScript(dir) {
  const file = path.join(dir, 'job.sh');
  fs.writeFileSync(file, `#!/bin/sh
cat > "$MARK/$JOB_ID.stdin"
printf '%s\\n%s\\n%s\\n%s\\n' "$JOB_ID" "$JOB_TYPE" "$JOB_ARGS" "$JOB_QUEUE" > "$MARK/$JOB_ID.env.tmp"
mv "$MARK/$JOB_ID.env.tmp" "$MARK/$JOB_ID.env"
case "$JOB_TYPE" in
  Fail) i=0; while [ $i -lt 300 ]; do echo "noise line $i" >&2; i=$((i+1)); done
        echo "first detail" >&2; echo "boom: it went wrong" >&2; exit 3 ;;
  Hang) touch "$MARK/$JOB_ID.started"; exec sleep 60 ;;
  Slowish) touch "$MARK/$JOB_ID.started"; while [ ! -e "$MARK/release" ]; do sleep 0.05; done ;;
  Die) kill -9 $$ ;;
esac
exit 0
`);
  fs.chmodSync(file, 0o755);
  return file;
}

async function infoJson(srv) {
  const r = await runCli(['info', '--json'], { srv });
  assert.equal(r.code, 0, shown(r));
  return JSON.parse(r.stdout);
}

async function push(srv, args) {
  const r = await runCli(['push', ...args], { srv });
  assert.equal(r.code, 0, shown(r));
  return r.stdout.trim();
}

// Brings a failed job back from retries (MUTATE requeue) and FETCHes it raw,
// to read the failure the worker reported.
async function fetchFailed(srv, jid, queue = 'default') {
  const r = await runCli(['retry', jid, '--set', 'retries'], { srv });
  assert.equal(r.code, 0, shown(r));
  const c = await srv.connect();
  const job = await c.fetch([queue]);
  assert.ok(job, `job ${jid} should be back on ${queue} after spool retry`);
  assert.equal(job.jid, jid);
  await c.ack(jid);
  c.close();
  return job;
}

async function stopWork(w) {
  const st = await w.stop('SIGTERM');
  assert.equal(st.code, 0, `spool work should exit 0 after SIGTERM, got ${JSON.stringify(st)}\n${w.stderr()}`);
}

test('a job pushed with spool push is run by spool work with its JSON on stdin and JOB_* set', async () => {
  const dir = tmpDir();
  const script = writeScript(dir);
  try {
    await withServer(async (srv) => {
      const jid = await push(srv, ['Hello', 'world', '{"n":1}', '--queue', 'low']);
      const w = startWork(srv, ['--queue', 'high,low', '-c', '2', '--', script], { env: { MARK: dir } });
      try {
        await waitFor(() => fs.existsSync(path.join(dir, `${jid}.env`)), { timeoutMs: 10000, what: `the command to run job ${jid}` });
        const job = JSON.parse(fs.readFileSync(path.join(dir, `${jid}.stdin`), 'utf8'));
        assert.equal(job.jid, jid, 'stdin holds the job JSON');
        assert.equal(job.jobtype, 'Hello');
        assert.deepEqual(job.args, ['world', { n: 1 }]);
        const [eJid, eType, eArgs, eQueue] = fs.readFileSync(path.join(dir, `${jid}.env`), 'utf8').split('\n');
        assert.equal(eJid, jid, 'JOB_ID');
        assert.equal(eType, 'Hello', 'JOB_TYPE');
        assert.deepEqual(JSON.parse(eArgs), ['world', { n: 1 }], 'JOB_ARGS is the args as JSON');
        assert.equal(eQueue, 'low', 'JOB_QUEUE');
        const info = await waitFor(async () => {
          const i = await infoJson(srv);
          return i.faktory.total_processed === 1 && i.faktory.sets.working === 0 ? i : null;
        }, { timeoutMs: 10000, what: 'the job to be ACKed' });
        assert.equal(info.faktory.total_failures, 0, 'exit 0 ACKs the job');
        assert.equal(info.faktory.tasks.Workers.size, 1, 'spool work is one worker process');
        assert.match(w.wid() || '', /^[0-9a-f]{24}$/, `spool work prints its wid\n${w.stderr()}`);
      } finally {
        await stopWork(w);
      }
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a failing command sends its job to retries with the stderr tail as message', async () => {
  const dir = tmpDir();
  const script = writeScript(dir);
  try {
    await withServer(async (srv) => {
      const jid = await push(srv, ['Fail']);
      const dieJid = await push(srv, ['Die']);
      const w = startWork(srv, ['--', script], { env: { MARK: dir } });
      try {
        await waitFor(async () => (await infoJson(srv)).faktory.sets.retries === 2,
          { timeoutMs: 10000, what: 'both jobs to land in retries' });
      } finally {
        await stopWork(w);
      }
      const info = await infoJson(srv);
      assert.equal(info.faktory.total_failures, 2);
      const job = await fetchFailed(srv, jid);
      assert.equal(job.failure.errtype, 'ExitStatus3', 'exit status 3 gives errtype ExitStatus3');
      assert.match(job.failure.message, /first detail\nboom: it went wrong$/, 'the message ends with the stderr tail');
      assert.ok(Buffer.byteLength(job.failure.message) <= 1000, 'the message is at most 1000 bytes');
      assert.ok(job.failure.message.length > 500, 'the message holds the tail, not one line');
      assert.ok(Array.isArray(job.failure.backtrace) && job.failure.backtrace.length > 0, 'the backtrace holds lines');
      assert.equal(job.failure.backtrace[job.failure.backtrace.length - 1], 'boom: it went wrong',
        'the backtrace ends with the last stderr line');
      const died = await fetchFailed(srv, dieJid);
      assert.equal(died.failure.errtype, 'Signal9', 'a command killed by SIGKILL gives Signal9');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('--timeout kills a stuck command and FAILs its job with Timeout', async () => {
  const dir = tmpDir();
  const script = writeScript(dir);
  try {
    await withServer(async (srv) => {
      const jid = await push(srv, ['Hang']);
      const w = startWork(srv, ['--timeout', '1', '--', script], { env: { MARK: dir } });
      const t0 = Date.now();
      try {
        await waitFor(async () => (await infoJson(srv)).faktory.sets.retries === 1,
          { timeoutMs: 15000, what: 'the stuck job to be failed into retries' });
      } finally {
        await stopWork(w);
      }
      assert.ok(Date.now() - t0 < 10000, 'the stuck command was killed soon after its timeout, not after sleep 60');
      const job = await fetchFailed(srv, jid);
      assert.equal(job.failure.errtype, 'Timeout');
      assert.match(job.failure.message, /longer than 1 s/);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGTERM waits for a running command, and FAILs it with Shutdown past --shutdown-timeout', async () => {
  const dir = tmpDir();
  const script = writeScript(dir);
  try {
    await withServer(async (srv) => {
      // A command that finishes within the shutdown timeout is ACKed.
      const a = await push(srv, ['Slowish']);
      let w = startWork(srv, ['--shutdown-timeout', '20', '--', script], { env: { MARK: dir } });
      await waitFor(() => fs.existsSync(path.join(dir, `${a}.started`)), { timeoutMs: 10000, what: 'the command to start' });
      w.proc.kill('SIGTERM');
      await waitFor(() => /stopping/.test(w.stderr()), { timeoutMs: 5000, what: 'spool work to log that it is stopping' });
      assert.equal(w.isDone(), false, 'spool work waits for the running command');
      fs.writeFileSync(path.join(dir, 'release'), '');
      let st = await w.exited;
      assert.equal(st.code, 0, w.stderr());
      let info = await infoJson(srv);
      assert.equal(info.faktory.total_processed, 1);
      assert.equal(info.faktory.total_failures, 0, 'the finished command was ACKed');
      fs.rmSync(path.join(dir, 'release'));

      // One that does not finish is stopped and FAILed with Shutdown.
      const b = await push(srv, ['Hang']);
      w = startWork(srv, ['--shutdown-timeout', '1', '--', script], { env: { MARK: dir } });
      await waitFor(() => fs.existsSync(path.join(dir, `${b}.started`)), { timeoutMs: 10000, what: 'the command to start' });
      const before = (await infoJson(srv)).faktory.sets.working;
      assert.equal(before, 1, 'the job is reserved while it runs');
      w.proc.kill('SIGTERM');
      st = await w.exited;
      assert.equal(st.code, 0, w.stderr());
      info = await infoJson(srv);
      assert.equal(info.faktory.sets.retries, 1, `the abandoned job was FAILed\n${w.stderr()}`);
      const job = await fetchFailed(srv, b);
      assert.equal(job.failure.errtype, 'Shutdown');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('spool workers quiet and stop reach a running spool work by its wid', async () => {
  const dir = tmpDir();
  const script = writeScript(dir);
  try {
    await withServer(async (srv) => {
      const w = startWork(srv, ['--', script], { env: { MARK: dir } });
      try {
        const wid = await waitFor(() => w.wid(), { timeoutMs: 10000, what: 'spool work to print its wid' });
        await waitFor(async () => (await infoJson(srv)).faktory.tasks.Workers.size === 1, { what: 'the worker to register' });
        const q = await runCli(['workers', 'quiet', wid], { srv });
        assert.equal(q.code, 0, shown(q));
        assert.match(q.stdout, new RegExp(`quieted ${wid}`));
        const s = await runCli(['workers', 'stop', wid], { srv });
        assert.equal(s.code, 0, shown(s));
        // spool work learns it at its next heartbeat (15 s).
        const st = await Promise.race([w.exited, new Promise((r) => setTimeout(() => r('timeout'), 25000))]);
        assert.notEqual(st, 'timeout', `spool work should stop after 'workers stop' at its next heartbeat\n${w.stderr()}`);
        assert.equal(st.code, 0, w.stderr());
        assert.match(w.stderr(), /asked this process to stop/);
      } finally {
        await w.stop('SIGKILL');
      }
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('spool work exits 3 when the server cannot be reached', async () => {
  const r = await runCli(['--url', 'tcp://127.0.0.1:9', 'work', '--', 'true']);
  assert.equal(r.code, 3, shown(r));
  assert.match(r.stderr, /cannot connect/, shown(r));
  assert.ok(newJid());
});
