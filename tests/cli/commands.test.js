'use strict';
// The spool command line against a real spoold: push, push -, info, queues,
// pause/resume/remove, retry/kill/delete, flush, help, usage errors, exit codes.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { withServer, newJid } = require('../lib/spoold');
const { runCli, shown } = require('./cli');

const COMMANDS = ['push', 'info', 'queues', 'pause', 'resume', 'remove', 'jobs', 'retry', 'kill',
  'delete', 'workers', 'flush', 'work', 'help'];

async function ok(args, opts) {
  const r = await runCli(args, opts);
  assert.equal(r.code, 0, `spool ${args.join(' ')} should exit 0\n${shown(r)}`);
  return r;
}

async function infoJson(srv) {
  const r = await ok(['info', '--json'], { srv });
  return JSON.parse(r.stdout);
}

test('--help works for every command, before and after it, and through spool help', async () => {
  const top = await runCli(['--help']);
  assert.equal(top.code, 0, shown(top));
  for (const c of COMMANDS) {
    assert.match(top.stdout, new RegExp(`\\b${c}\\b`), `spool --help should list ${c}`);
    for (const args of [[c, '--help'], [c, '-h'], ['help', c]]) {
      const r = await runCli(args);
      assert.equal(r.code, 0, `spool ${args.join(' ')} should exit 0\n${shown(r)}`);
      assert.match(r.stdout, /^Usage: spool /, `spool ${args.join(' ')} should print usage on stdout\n${shown(r)}`);
      if (c !== 'help') assert.match(r.stdout, /--url URL/, `spool ${args.join(' ')} should list the common options`);
    }
  }
  const v = await runCli(['--version']);
  assert.equal(v.code, 0, shown(v));
  assert.match(v.stdout, /^spool \d+\.\d+\.\d+/, `--version should print the version\n${shown(v)}`);
});

test('usage errors exit 2 and say what was wrong', async () => {
  const cases = [
    [[], /Usage: spool/],
    [['nosuch'], /unknown command 'nosuch'/],
    [['--bogus'], /unknown option --bogus/],
    [['push'], /missing JOBTYPE/],
    [['push', 'X', '--retry', 'many'], /invalid --retry 'many'/],
    [['push', 'X', '--at', 'tomorrow'], /invalid --at 'tomorrow'/],
    [['push', 'X', '--in', '5 minutes'], /invalid --in/],
    [['push', 'X', '--at', '2030-01-01T00:00:00Z', '--in', '5m'], /--at or --in, not both/],
    [['push', 'X', '--custom', '[1]'], /invalid --custom/],
    [['push', 'X', '--queue', 'a b'], /invalid --queue/],
    [['push', 'X', '--jid', 'short'], /invalid --jid/],
    [['push', 'X', '--frob'], /unknown option --frob/],
    [['queues', '--limit', '3'], /unknown option --limit/],
    [['pause'], /missing QUEUE/],
    [['jobs'], /missing the set/],
    [['jobs', 'lost'], /unknown set 'lost'/],
    [['jobs', 'dead', '--limit', '0'], /invalid --limit/],
    [['retry'], /name the jobs/],
    [['retry', '--jobtype', 'X'], /needs --set/],
    [['kill', 'abcdefgh1', '--all'], /not both/],
    [['delete', '--set', 'working', '--all'], /invalid --set 'working'/],
    [['workers', 'nap', 'x'], /unknown action 'nap'/],
    [['workers', 'quiet'], /needs the wid/],
    [['flush'], /add --yes/],
    [['work'], /missing the COMMAND/],
    [['work', '--concurrency', '0', '--', 'true'], /invalid --concurrency/],
    [['work', '--', 'no-such-program-for-spool-tests'], /no such executable/],
    [['--url', 'http://x:y:z', 'info'], /bad server URL/],
    [['help', 'nosuch'], /no command named 'nosuch'/],
  ];
  for (const [args, re] of cases) {
    const r = await runCli(args, { env: { SPOOL_URL: 'tcp://127.0.0.1:9' } });
    assert.equal(r.code, 2, `spool ${args.join(' ')} should exit 2 (usage error)\n${shown(r)}`);
    assert.match(r.stderr, re, `spool ${args.join(' ')} should explain the usage error\n${shown(r)}`);
  }
});

test('an unreachable server exits 3 and names the address', async () => {
  // A port that was free a moment ago: listen on 0, note the port, close.
  const port = await new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
  for (const args of [['info'], ['queues'], ['push', 'X'], ['pause', 'q'], ['retry', 'abcdefgh12'],
    ['flush', '--yes'], ['work', '--', 'true']]) {
    const r = await runCli(['--url', `tcp://127.0.0.1:${port}`, ...args]);
    assert.equal(r.code, 3, `spool ${args.join(' ')} with no server should exit 3\n${shown(r)}`);
    assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`), `the error should name the address\n${shown(r)}`);
  }
  // FAKTORY_URL is used when SPOOL_URL is not set.
  const r = await runCli(['info'], { env: { FAKTORY_URL: `tcp://127.0.0.1:${port}` } });
  assert.equal(r.code, 3, shown(r));
  assert.match(r.stderr, new RegExp(`:${port}`), shown(r));
});

test('push sends a job with its args and options; info --json and queues show it', async () => {
  await withServer(async (srv) => {
    const jid = newJid();
    const r = await ok(['push', 'Email', 'bob', '42', '{"a":[1,2]}', 'true', '"7"', '--queue', 'mail',
      '--retry', '3', '--reserve-for', '120', '--custom', '{"tenant":9}', '--jid', jid], { srv });
    assert.equal(r.stdout.trim(), jid, 'push prints the jid');
    const gen = await ok(['push', 'Plain'], { srv });
    assert.match(gen.stdout.trim(), /^[0-9a-f]{24}$/, 'push without --jid prints a generated 24-hex jid');
    // --url also works after the command and overrides the environment.
    await ok(['push', 'Later', '--in', '1h', '--url', `tcp://127.0.0.1:${srv.port}`], { env: { SPOOL_URL: 'tcp://127.0.0.1:9' } });
    await ok(['push', 'Much', '--at', '2099-01-01T00:00:00+02:00'], { srv });

    const info = await infoJson(srv);
    assert.equal(info.faktory.queues.mail, 1, 'the job is in queue mail');
    assert.equal(info.faktory.queues.default, 1, 'the plain job is in default');
    assert.equal(info.faktory.sets.scheduled, 2, '--in and --at jobs are scheduled');
    assert.equal(typeof info.server.uptime, 'number', 'info --json is the INFO document');

    const c = await srv.connect();
    const job = await c.fetch(['mail']);
    assert.equal(job.jid, jid);
    assert.equal(job.jobtype, 'Email');
    assert.deepEqual(job.args, ['bob', 42, { a: [1, 2] }, true, '7'], 'each ARG is JSON, or a string when it is not');
    assert.equal(job.retry, 3);
    assert.equal(job.reserve_for, 120);
    assert.deepEqual(job.custom, { tenant: 9 });
    await c.ack(jid);

    const human = await ok(['info'], { srv });
    assert.match(human.stdout, /^scheduled\s+2$/m, `info shows the set sizes\n${human.stdout}`);
    const qs = await ok(['queues'], { srv });
    assert.match(qs.stdout, /^QUEUE\s+SIZE\s+LATENCY$/m, `queues prints a table\n${qs.stdout}`);
    assert.match(qs.stdout, /^default\s+1\s+\S+s$/m, `queues lists default with its size\n${qs.stdout}`);
    const qj = JSON.parse((await ok(['queues', '--json'], { srv })).stdout);
    const def = qj.queues.find((q) => q.name === 'default');
    assert.equal(def.size, 1);
    assert.equal(typeof def.latency_s, 'number');
    assert.ok(def.latency_s >= 0);
    // A refusal by the server is exit 1 with its message.
    const reuse = await runCli(['push', 'Other', '--jid', jid, '--in', '1h'], { srv });
    assert.equal(reuse.code, 0, `a finished job's jid may be reused\n${shown(reuse)}`);
    const again = await runCli(['push', 'Email', '--jid', jid], { srv });
    assert.equal(again.code, 1, `a jid held by a different job is refused with exit 1\n${shown(again)}`);
    assert.match(again.stderr, /PUSH refused: jid .* already in use/, shown(again));
  });
});

test('push - pushes good lines, reports bad ones with their line numbers, exits 1', async () => {
  await withServer(async (srv) => {
    const good = newJid();
    const lines = [
      JSON.stringify({ jid: good, jobtype: 'A', args: [1] }),
      'not json',
      '',
      JSON.stringify({ jobtype: 'B' }), // no args: the server refuses it
      '[1,2]',
      JSON.stringify({ jobtype: 'C', args: [], jid: 'short' }),
      JSON.stringify({ jobtype: 'D', args: ['x'] }), // no jid: one is made
      JSON.stringify({ args: [] }),
    ];
    const r = await runCli(['push', '-', '--queue', 'bulk', '--batch', '2'], { srv, input: lines.join('\n') + '\n' });
    assert.equal(r.code, 1, `push - with bad lines should exit 1\n${shown(r)}`);
    assert.match(r.stderr, /line 2: not valid JSON/, shown(r));
    assert.match(r.stderr, /line 4 \(jid [0-9a-f]{24}\): jobs must have an args parameter/, shown(r));
    assert.match(r.stderr, /line 5: not a JSON object/, shown(r));
    assert.match(r.stderr, /line 6 \(jid short\): jobs must have a reasonable jid parameter/, shown(r));
    assert.match(r.stderr, /line 8: needs a "jobtype" string/, shown(r));
    assert.match(r.stderr, /pushed 2 jobs, 5 failed/, shown(r));
    const info = await infoJson(srv);
    assert.equal(info.faktory.queues.bulk, 2, '--queue fills in the queue of lines without one');

    // All good: exit 0; --json gives a summary.
    const many = [];
    for (let i = 0; i < 1200; i++) many.push(JSON.stringify({ jobtype: 'Many', args: [i], queue: 'many' }));
    const r2 = await runCli(['push', '-', '--json'], { srv, input: many.join('\n') });
    assert.equal(r2.code, 0, shown(r2));
    const doc = JSON.parse(r2.stdout);
    assert.deepEqual(doc, { lines: 1200, pushed: 1200, failed: 0, errors: [] });
    assert.equal((await infoJson(srv)).faktory.queues.many, 1200, 'every line was pushed (three batches)');

    // A jid repeated within one batch names its own line.
    const dup = newJid();
    const r3 = await runCli(['push', '-'], {
      srv,
      input: [JSON.stringify({ jid: dup, jobtype: 'E', args: [1] }), JSON.stringify({ jid: dup, jobtype: 'E', args: [2] })].join('\n'),
    });
    assert.equal(r3.code, 1, shown(r3));
    assert.match(r3.stderr, /line 2 \(jid [0-9a-f]+\): jid .* already in use/, shown(r3));
    assert.doesNotMatch(r3.stderr, /line 1 /, shown(r3));
  });
});

test('pause, resume and remove queues; unknown names are reported', async () => {
  await withServer(async (srv) => {
    await ok(['push', 'P', '--queue', 'qa'], { srv });
    await ok(['push', 'P', '--queue', 'qb'], { srv });
    const p = await ok(['pause', 'qa', 'qb'], { srv });
    assert.match(p.stdout, /paused qa\npaused qb/, shown(p));
    const c = await srv.connect();
    const t0 = Date.now();
    assert.equal(await c.fetch(['qa', 'qb']), null, 'FETCH skips paused queues');
    assert.ok(Date.now() - t0 >= 1500, 'a FETCH of paused queues only waits');
    await ok(['resume', 'qa'], { srv });
    const job = await c.fetch(['qa', 'qb']);
    assert.ok(job && job.queue === 'qa', 'after resume the job of qa is fetched');
    await c.ack(job.jid);

    const unknown = await runCli(['pause', 'nosuchq'], { srv });
    assert.equal(unknown.code, 1, shown(unknown));
    assert.match(unknown.stderr, /no queue named 'nosuchq'/, shown(unknown));

    await ok(['remove', 'qb'], { srv });
    assert.equal((await infoJson(srv)).faktory.queues.qb, undefined, 'remove deletes the queue');
    await ok(['resume', '*'], { srv });
  });
});

test('retry, kill and delete by jid move jobs between sets; jobs and workers report what they can', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const a = newJid(); const b = newJid(); const d = newJid();
    for (const jid of [a, b, d]) await ok(['push', 'R', '--jid', jid, '--in', '1h'], { srv });
    let info = await infoJson(srv);
    assert.equal(info.faktory.sets.scheduled, 3);

    const k = await ok(['kill', a], { srv });
    assert.match(k.stdout, /^dead\s+0\s+1$/m, `kill shows dead growing\n${shown(k)}`);
    info = await infoJson(srv);
    assert.equal(info.faktory.sets.dead, 1, 'kill moved the job to dead');
    assert.equal(info.faktory.sets.scheduled, 2);

    const rj = JSON.parse((await ok(['retry', a, '--json'], { srv })).stdout);
    assert.deepEqual(rj.sets.dead, { before: 1, after: 0 }, 'retry requeued the dead job');
    info = await infoJson(srv);
    assert.equal(info.faktory.queues.default, 1, 'retry put the job on its queue');
    const job = await c.fetch(['default']);
    assert.equal(job.jid, a);
    await c.ack(a);

    await ok(['delete', b, '--set', 'scheduled'], { srv });
    info = await infoJson(srv);
    assert.equal(info.faktory.sets.scheduled, 1, 'delete removed the job');

    const none = await ok(['delete', 'nosuchjid123'], { srv });
    assert.match(none.stderr, /no job matched/, shown(none));

    // A filter on a set.
    await ok(['kill', '--set', 'scheduled', '--jobtype', 'R'], { srv });
    assert.equal((await infoJson(srv)).faktory.sets.dead, 1);
    await ok(['delete', '--set', 'dead', '--match', `*${d}*`], { srv });
    assert.equal((await infoJson(srv)).faktory.sets.dead, 0);

    // Listing is not possible over FWP: the size and a clear message, exit 1.
    const j = await runCli(['jobs', 'scheduled', '--json'], { srv });
    assert.equal(j.code, 1, shown(j));
    assert.equal(JSON.parse(j.stdout).size, 0);
    assert.match(j.stderr, /no command that lists a set/, shown(j));
    const w = await runCli(['workers'], { srv });
    assert.equal(w.code, 1, shown(w));
    assert.match(w.stdout, /^0 worker processes connected$/m, shown(w));
    const q = await runCli(['workers', 'quiet', 'nosuchwid'], { srv });
    assert.equal(q.code, 1, shown(q));
    assert.match(q.stderr, /unknown worker nosuchwid/, shown(q));
  });
});

test('flush needs --yes, then empties the server', async () => {
  await withServer(async (srv) => {
    await ok(['push', 'F'], { srv });
    const no = await runCli(['flush'], { srv });
    assert.equal(no.code, 2, shown(no));
    assert.equal((await infoJson(srv)).faktory.total_enqueued, 1, 'flush without --yes changes nothing');
    await ok(['flush', '--yes'], { srv });
    assert.equal((await infoJson(srv)).faktory.total_enqueued, 0, 'flush --yes empties the server');
  });
});
