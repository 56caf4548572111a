'use strict';
// The spool command line against a real spoold: push, push -, info, queues,
// pause/resume/remove, jobs, retry/kill/delete, workers, flush, help, usage errors, exit codes.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { withServer, newJid, waitFor } = require('../lib/spoold');
const { runCli, shown } = require('./cli');

const COMMANDS = ['push', 'info', 'queues', 'pause', 'resume', 'remove', 'jobs', 'retry', 'kill',
  'delete', 'workers', 'flush', 'work', 'cron', 'bench', 'help'];

async function ok(args, opts) {
  const r = await runCli(args, opts);
  assert.equal(r.code, 0, `spool ${args.join(' ')} should exit 0\n${shown(r)}`);
  return r;
}

test('cron lists the entries of cron.json with their next and last fire times', async () => {
  const fs = require('node:fs');
  const os = require('node:os');
  const path = require('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-cli-cron-'));
  try {
    fs.writeFileSync(path.join(dir, 'cron.json'), JSON.stringify([
      { name: 'tick', schedule: '@every 1s', jobtype: 'Tick', args: [] },
      { name: 'nightly', schedule: '30 2 * * *', tz: 'Europe/Berlin', jobtype: 'Report', args: [], queue: 'reports' },
    ]));
    await withServer({ args: ['-c', dir] }, async (srv) => {
      const doc = JSON.parse((await ok(['cron', '--json'], { srv })).stdout);
      assert.deepEqual(doc.map((e) => e.name).sort(), ['nightly', 'tick'], `cron --json lists both entries: ${JSON.stringify(doc)}`);
      const nightly = doc.find((e) => e.name === 'nightly');
      assert.equal(nightly.tz, 'Europe/Berlin', 'the entry keeps its time zone');
      assert.equal(nightly.queue, 'reports', 'and its queue');
      assert.ok(Date.parse(nightly.next_at) > Date.now(), `next_at lies ahead: ${nightly.next_at}`);
      // The @every 1s entry fires: wait until it has a last fire time, then the table shows it.
      await waitFor(async () => {
        const d = JSON.parse((await ok(['cron', '--json'], { srv })).stdout);
        return d.find((e) => e.name === 'tick').last_at !== null;
      }, { timeoutMs: 5000, what: 'the @every 1s entry to fire' });
      const table = (await ok(['cron'], { srv })).stdout;
      assert.match(table, /^NAME\s+SCHEDULE\s+TZ\s+JOBTYPE\s+QUEUE\s+NEXT\s+LAST/m, `a header row:\n${table}`);
      assert.match(table, /^tick\s+@every 1s\s+UTC\s+Tick\s+default\s+\S+ \(in [^)]*\)\s+\S+ \([^)]* ago\)/m, `the tick row with next and last:\n${table}`);
      assert.match(table, /^2 cron entries$/m, 'a count line');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

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
    [['jobs', 'dead', '--limit', '100001'], /invalid --limit/],
    [['jobs', 'dead', '--offset', '-1'], /invalid --offset/],
    [['jobs', 'dead', 'extra'], /unexpected argument 'extra'/],
    [['jobs', 'queue'], /jobs queue needs the name of a queue/],
    [['jobs', 'queue', 'a b'], /invalid queue name 'a b'/],
    [['retry'], /name the jobs/],
    [['retry', '--jobtype', 'X'], /needs --set/],
    [['kill', 'abcdefgh1', '--all'], /not both/],
    [['delete', '--set', 'working', '--all'], /invalid --set 'working'/],
    [['workers', 'nap', 'x'], /unknown action 'nap'/],
    [['workers', 'quiet'], /needs the wid/],
    [['workers', 'stop', 'w1', '--all'], /WIDs or --all, not both/],
    [['workers', '--all'], /--all goes with quiet or stop/],
    [['workers', 'quiet', 'a b'], /invalid wid 'a b'/],
    [['cron', 'extra'], /cron takes no arguments/],
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
    ['flush', '--yes'], ['work', '--', 'true'], ['jobs', 'dead'], ['workers'], ['workers', 'stop', '--all'], ['cron']]) {
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
    assert.match(qs.stdout, /^QUEUE\s+SIZE\s+LATENCY\s+PAUSED$/m, `queues prints a table\n${qs.stdout}`);
    assert.match(qs.stdout, /^default\s+1\s+\S+s\s+no$/m, `queues lists default with its size\n${qs.stdout}`);
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
    const qs = await ok(['queues'], { srv });
    assert.match(qs.stdout, /^qa\s+1\s+\S+s\s+yes$/m, `queues shows qa paused\n${qs.stdout}`);
    assert.match(qs.stdout, /^qb\s+1\s+\S+s\s+yes$/m, `queues shows qb paused\n${qs.stdout}`);
    const c = await srv.connect();
    const t0 = Date.now();
    assert.equal(await c.fetch(['qa', 'qb']), null, 'FETCH skips paused queues');
    assert.ok(Date.now() - t0 >= 1500, 'a FETCH of paused queues only waits');
    await ok(['resume', 'qa'], { srv });
    const qj = JSON.parse((await ok(['queues', '--json', 'qa', 'qb'], { srv })).stdout);
    assert.deepEqual(qj.queues.map((q) => [q.name, q.paused]), [['qa', false], ['qb', true]],
      `queues --json has the pause flags after resume qa\n${JSON.stringify(qj)}`);
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

test('retry, kill and delete by jid move jobs between sets and count the jobs they name', async () => {
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

    // A filter on a set: the counts are of the jobs it names, not of the whole set.
    await ok(['push', 'Other', '--in', '1h'], { srv });
    const kj = JSON.parse((await ok(['kill', '--set', 'scheduled', '--jobtype', 'R', '--json'], { srv })).stdout);
    assert.equal(kj.counts, 'matching jobs', JSON.stringify(kj));
    assert.deepEqual(kj.sets, { scheduled: { before: 1, after: 0 }, dead: { before: 0, after: 1 } },
      `kill --jobtype R counts the R jobs only (the Other job stays scheduled)\n${JSON.stringify(kj)}`);
    info = await infoJson(srv);
    assert.equal(info.faktory.sets.dead, 1);
    assert.equal(info.faktory.sets.scheduled, 1, 'the Other job was not killed');
    await ok(['delete', '--set', 'dead', '--match', `*${d}*`], { srv });
    assert.equal((await infoJson(srv)).faktory.sets.dead, 0);
    const nomatch = await ok(['retry', '--set', 'scheduled', '--jobtype', 'Nothing'], { srv });
    assert.match(nomatch.stdout, /^scheduled\s+0\s+0$/m, shown(nomatch));
    assert.match(nomatch.stderr, /no job matched/, shown(nomatch));
  });
});

// Jids in the order `spool jobs` prints them (the first column of each table row).
function tableJids(stdout) {
  return stdout.split('\n').filter((l) => /^[0-9a-f]{24} /.test(l)).map((l) => l.split(/\s+/)[0]);
}

test('jobs lists a set or a queue: order, columns, paging, filters, footer, --json', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    // Scheduled: pushed out of time order, with two jobtypes and a tenant in custom.
    const sched = [];
    for (const [h, type, tenant] of [[5, 'A', 1], [1, 'B', 7], [4, 'A', 7], [2, 'A', 2], [3, 'B', 3], [7, 'A', 7], [6, 'B', 1]]) {
      const jid = newJid();
      await ok(['push', type, String(h), '--jid', jid, '--in', `${h}h`, '--custom', JSON.stringify({ tenant })], { srv });
      sched.push({ jid, h, type, tenant });
    }
    const inTime = [...sched].sort((x, y) => x.h - y.h);

    const all = await ok(['jobs', 'scheduled'], { srv });
    assert.match(all.stdout, /^JID\s+JOBTYPE\s+QUEUE\s+AT$/m, `a header row\n${all.stdout}`);
    assert.deepEqual(tableJids(all.stdout), inTime.map((j) => j.jid), `soonest first\n${all.stdout}`);
    assert.match(all.stdout, new RegExp(`^${inTime[0].jid}\\s+B\\s+default\\s+\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ \\(in (59m\\d+s|1h0m)\\)$`, 'm'),
      `a row: jid, jobtype, queue, time and how far away\n${all.stdout}`);
    assert.match(all.stdout, /\n7 of 7\n$/, `the footer says N of TOTAL\n${all.stdout}`);

    const page = await ok(['jobs', 'scheduled', '--limit', '3', '--offset', '2'], { srv });
    assert.deepEqual(tableJids(page.stdout), inTime.slice(2, 5).map((j) => j.jid), `--limit 3 --offset 2\n${page.stdout}`);
    assert.match(page.stdout, /\n3 of 7 \(from offset 2\)\n$/, page.stdout);
    const past = await ok(['jobs', 'scheduled', '--offset', '10'], { srv });
    assert.equal(past.stdout, '0 of 7 (from offset 10)\n', `an offset past the end prints only the footer\n${shown(past)}`);

    const typeA = await ok(['jobs', 'scheduled', '--jobtype', 'A'], { srv });
    assert.deepEqual(tableJids(typeA.stdout), inTime.filter((j) => j.type === 'A').map((j) => j.jid), typeA.stdout);
    assert.match(typeA.stdout, /\n4 of 4\n$/, typeA.stdout);
    const t7 = await ok(['jobs', 'scheduled', '--match', '*"tenant":7*'], { srv });
    assert.deepEqual(tableJids(t7.stdout), inTime.filter((j) => j.tenant === 7).map((j) => j.jid), t7.stdout);
    const both = await ok(['jobs', 'scheduled', '--match', '*"tenant":7*', '--jobtype', 'A', '--limit', '1'], { srv });
    assert.deepEqual(tableJids(both.stdout), [inTime.find((j) => j.tenant === 7 && j.type === 'A').jid], both.stdout);
    assert.match(both.stdout, /\n1 of 2\n$/, `total counts every match\n${both.stdout}`);

    const doc = JSON.parse((await ok(['jobs', 'scheduled', '--json', '--limit', '2', '--offset', '1', '-t', 'A'], { srv })).stdout);
    assert.deepEqual([doc.total, doc.offset, doc.limit], [4, 1, 2], `--json is the server's document\n${JSON.stringify(doc)}`);
    assert.deepEqual(doc.jobs.map((e) => e.job.jid), inTime.filter((j) => j.type === 'A').slice(1, 3).map((j) => j.jid));
    assert.ok(doc.jobs.every((e) => typeof e.at === 'string' && e.job.jobtype === 'A'), JSON.stringify(doc));

    // Retries and dead show the error class and message.
    const fj = newJid();
    await ok(['push', 'Flaky', '--jid', fj, '--queue', 'fq'], { srv });
    assert.equal((await c.fetch(['fq'])).jid, fj);
    await c.fail(fj, { errtype: 'IOError', message: 'disk\nfull ' + 'x'.repeat(100) });
    const rt = await ok(['jobs', 'retries'], { srv });
    assert.match(rt.stdout, /^JID\s+JOBTYPE\s+QUEUE\s+RETRY_AT\s+ERROR\s+MESSAGE$/m, rt.stdout);
    assert.match(rt.stdout, new RegExp(`^${fj}\\s+Flaky\\s+fq\\s+\\S+Z \\(in [^)]+\\)\\s+IOError\\s+disk full x+\\.\\.\\.$`, 'm'),
      `a retry row with its error; the message on one line, cut\n${rt.stdout}`);
    await ok(['kill', fj], { srv });
    const dd = await ok(['jobs', 'dead'], { srv });
    assert.match(dd.stdout, /^JID\s+JOBTYPE\s+QUEUE\s+EXPIRES_AT\s+ERROR\s+MESSAGE$/m, dd.stdout);
    assert.match(dd.stdout, new RegExp(`^${fj}\\s+Flaky\\s+fq\\s+.*IOError\\s+disk full`, 'm'), dd.stdout);
    assert.match(dd.stdout, /\n1 of 1\n$/, dd.stdout);

    // A queue in FIFO order, more than one server page (1000) long.
    const lines = [];
    for (let i = 0; i < 1105; i++) lines.push(JSON.stringify({ jobtype: i % 2 ? 'Odd' : 'Even', args: [i], queue: 'bulk' }));
    await ok(['push', '-'], { srv, input: lines.join('\n') });
    const big = JSON.parse((await ok(['jobs', 'queue', 'bulk', '--limit', '1100', '--offset', '3', '--json'], { srv })).stdout);
    assert.equal(big.jobs.length, 1100, 'the CLI pages through the server to reach --limit');
    assert.deepEqual(big.jobs.map((e) => e.job.args[0]), Array.from({ length: 1100 }, (_, i) => i + 3), 'FIFO order across pages');
    assert.deepEqual([big.total, big.offset, big.limit], [1105, 3, 1100]);
    assert.ok(big.jobs.every((e) => !('at' in e)), 'queue entries have no at');
    const odd = await ok(['jobs', 'queue', 'bulk', '--jobtype', 'Odd', '--limit', '2'], { srv });
    assert.match(odd.stdout, /^JID\s+JOBTYPE\s+QUEUE\s+ENQUEUED_AT$/m, odd.stdout);
    assert.equal(tableJids(odd.stdout).length, 2);
    assert.match(odd.stdout, /\n2 of 552\n$/, odd.stdout);
    const nosuch = await ok(['jobs', 'queue', 'nosuchqueue'], { srv });
    assert.equal(nosuch.stdout, '0 of 0\n', shown(nosuch));
  });
});

test('jobs working shows the wid of a reserved job; workers lists processes and quiets/stops them', async () => {
  await withServer(async (srv) => {
    const p = await srv.connect();
    const w0 = await ok(['workers'], { srv });
    assert.equal(w0.stdout, '0 worker processes, 0 jobs running\n', shown(w0));
    assert.deepEqual(JSON.parse((await ok(['workers', '--json'], { srv })).stdout), []);

    const wid = 'cli-' + newJid().slice(0, 12);
    const w = await srv.connect({ hello: { wid, hostname: 'box-1', pid: 31337 } });
    const other = await srv.connect({ hello: { wid: 'cli-other', hostname: 'box-2', pid: 2 } });
    const jid = newJid();
    await ok(['push', 'Busy', '--jid', jid, '--queue', 'wq', '--reserve-for', '600'], { srv });
    assert.equal((await w.fetch(['wq'])).jid, jid);
    await w.ok(`BEAT {"wid":"${wid}","rss_kb":51200}`);

    const wk = await ok(['jobs', 'working'], { srv });
    assert.match(wk.stdout, /^JID\s+JOBTYPE\s+QUEUE\s+EXPIRES_AT\s+WID$/m, wk.stdout);
    assert.match(wk.stdout, new RegExp(`^${jid}\\s+Busy\\s+wq\\s+\\S+Z \\(in (9m\\d+s|10m0s)\\)\\s+${wid}$`, 'm'),
      `the reserved job with its reservation expiry and wid\n${wk.stdout}`);
    const wj = JSON.parse((await ok(['jobs', 'working', '--json'], { srv })).stdout);
    assert.equal(wj.jobs[0].wid, wid);
    assert.equal(typeof wj.jobs[0].reserved_at, 'string');

    const list = await ok(['workers'], { srv });
    assert.match(list.stdout, /^WID\s+HOSTNAME\s+PID\s+STATE\s+BUSY\s+LAST_BEAT\s+RSS$/m, list.stdout);
    assert.match(list.stdout, new RegExp(`^${wid}\\s+box-1\\s+31337\\s+running\\s+1\\s+\\S+s ago\\s+50\\.0 MiB$`, 'm'), list.stdout);
    assert.match(list.stdout, /^cli-other\s+box-2\s+2\s+running\s+0\s+\S+ ago\s+-$/m, list.stdout);
    assert.match(list.stdout, /\n2 worker processes, 1 job running\n$/, list.stdout);

    // Quiet the process by the wid `spool workers --json` reports.
    const listed = JSON.parse((await ok(['workers', '--json'], { srv })).stdout);
    const mine = listed.find((x) => x.hostname === 'box-1');
    assert.equal(mine.busy, 1);
    const beatBefore = mine.last_beat_at;
    const q = await ok(['workers', 'quiet', mine.wid], { srv });
    assert.equal(q.stdout, `quieted ${mine.wid}\n`, shown(q));
    assert.deepEqual(await w.cmdTyped(`BEAT {"wid":"${wid}"}`), { type: 'bulk', value: '{"state":"quiet"}' },
      'the process learns quiet from its next BEAT');
    const after = JSON.parse((await ok(['workers', '--json'], { srv })).stdout);
    assert.equal(after.find((x) => x.wid === 'cli-other').state, 'running', 'the other process is untouched');
    // WORKERS QUIET is not a heartbeat of the process: only its own BEAT moved last_beat_at.
    assert.notEqual(after.find((x) => x.wid === wid).last_beat_at, beatBefore);
    const otherBeat = after.find((x) => x.wid === 'cli-other').last_beat_at;
    await ok(['workers', 'quiet', 'cli-other'], { srv });
    assert.equal(JSON.parse((await ok(['workers', '--json'], { srv })).stdout).find((x) => x.wid === 'cli-other').last_beat_at,
      otherBeat, 'spool workers quiet does not count as a heartbeat');

    // An unknown wid is reported with exit 1; the known ones are still acted on.
    const mixed = await runCli(['workers', 'stop', 'nosuchwid', mine.wid], { srv });
    assert.equal(mixed.code, 1, shown(mixed));
    assert.match(mixed.stderr, /worker nosuchwid: unknown worker nosuchwid/, shown(mixed));
    assert.equal(mixed.stdout, `stopping ${mine.wid}\n`, shown(mixed));
    assert.deepEqual(await w.cmdTyped(`BEAT {"wid":"${wid}"}`), { type: 'bulk', value: '{"state":"terminate"}' });
    const st = await ok(['workers', 'stop', '--all'], { srv });
    assert.equal(st.stdout, 'stopping every worker process\n', shown(st));
    assert.deepEqual(await other.cmdTyped('BEAT {"wid":"cli-other"}'), { type: 'bulk', value: '{"state":"terminate"}' });
    const states = await ok(['workers'], { srv });
    assert.match(states.stdout, new RegExp(`^${wid}\\s+box-1\\s+31337\\s+terminate\\s+1\\s`, 'm'), states.stdout);

    // A process that goes away leaves the list; its job stays in working until it expires.
    w.destroy();
    await waitFor(async () => {
      const r = await runCli(['workers', '--json'], { srv });
      return r.code === 0 && !JSON.parse(r.stdout).some((x) => x.wid === wid);
    }, { what: `${wid} to leave spool workers after its connection closed` });
    const still = await ok(['jobs', 'working'], { srv });
    assert.match(still.stdout, /\n1 of 1\n$/, still.stdout);
  });
});

// A stand-in for a Faktory server: the verbs the CLI uses, no JOBS, WORKERS or
// faktory.paused. Loopback, port 0; every socket is closed at the end.
async function withFakeFaktory(fn) {
  const sets = { scheduled: 2, retries: 0, dead: 0, working: 0 };
  const socks = new Set();
  const server = net.createServer((sock) => {
    socks.add(sock);
    sock.on('close', () => socks.delete(sock));
    sock.on('error', () => {});
    const bulk = (o) => { const t = JSON.stringify(o); sock.write(`$${Buffer.byteLength(t)}\r\n${t}\r\n`); };
    let buf = '';
    sock.write('+HI {"v":2}\r\n');
    sock.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        const verb = line.split(' ')[0];
        if (verb === 'HELLO') sock.write('+OK\r\n');
        else if (verb === 'INFO') bulk({ faktory: { queues: { default: 1 }, sets, tasks: {} }, server: { faktory_version: '1.10.0' } });
        else if (line.startsWith('QUEUE LATENCY')) bulk({ default: 0.5 });
        else if (verb === 'MUTATE') {
          const m = JSON.parse(line.slice(7));
          if (m.cmd === 'kill') { sets.dead += sets[m.target]; sets[m.target] = 0; }
          sock.write('+OK\r\n');
        } else if (verb === 'END') sock.end('+OK\r\n');
        else sock.write(`-ERR unknown command ${verb}\r\n`);
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await fn({ port: server.address().port });
  } finally {
    for (const s of socks) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

test('against a server without JOBS, WORKERS or faktory.paused (Faktory): fallbacks and clear refusals', async () => {
  await withFakeFaktory(async (srv) => {
    const k = JSON.parse((await ok(['kill', '--set', 'scheduled', '--all', '--json'], { srv })).stdout);
    assert.equal(k.counts, 'set sizes', `without JOBS, kill reports set sizes from INFO\n${JSON.stringify(k)}`);
    assert.deepEqual(k.sets, { scheduled: { before: 2, after: 0 }, dead: { before: 0, after: 2 } }, JSON.stringify(k));
    const none = await ok(['delete', 'nosuchjid123', '--set', 'retries'], { srv });
    assert.match(none.stderr, /no set changed size/, shown(none));

    const qs = await ok(['queues'], { srv });
    assert.match(qs.stdout, /^default\s+1\s+0\.50s\s+-$/m, `PAUSED is "-" when INFO does not say\n${qs.stdout}`);
    assert.equal(JSON.parse((await ok(['queues', '--json'], { srv })).stdout).queues[0].paused, null);

    const j = await runCli(['jobs', 'dead'], { srv });
    assert.equal(j.code, 1, shown(j));
    assert.match(j.stderr, /JOBS refused: unknown command JOBS/, shown(j));
    const w = await runCli(['workers'], { srv });
    assert.equal(w.code, 1, shown(w));
    assert.match(w.stderr, /WORKERS refused: unknown command WORKERS/, shown(w));
    const q = await runCli(['workers', 'quiet', 'abc'], { srv });
    assert.equal(q.code, 1, shown(q));
    assert.match(q.stderr, /worker abc: unknown command WORKERS/, shown(q));
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
