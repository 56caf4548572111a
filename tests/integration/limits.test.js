'use strict';
// Input bounds and hostile clients (DESIGN invariant 4, FWP.md §12): long
// lines, large jobs, stalled lines, too many connections, random garbage,
// and the command-line interface.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startServer, withServer, makeJob, readGreeting, waitFor, runSpooldSync } = require('../lib/spoold');

test('a line over --max-line gets -ERR line too long naming the limit; the connection stays usable', async () => {
  await withServer({ args: ['--max-line', '4096'] }, async (srv) => {
    const c = await srv.connect();
    const big = makeJob({ args: ['x'.repeat(10000)] });
    const msg = await c.err('PUSH ' + JSON.stringify(big), /^ERR line too long: /);
    assert.ok(msg.includes('4096'), `the error should name the 4096-byte limit, got -${msg}`);
    assert.ok((await c.info()).server, 'the next command on the same connection works');
    // the long line was skipped entirely: no part of it was taken as a command
    assert.equal((await c.info()).faktory.total_enqueued, 0, 'nothing from the long line was stored');
    // a long line sent in several writes, followed in the same write by a good command
    const good = makeJob();
    const parts = ['PUSH ' + 'y'.repeat(3000), 'z'.repeat(3000), 'w'.repeat(3000) + '\r\nPUSH ' + JSON.stringify(good) + '\r\n'];
    for (const p of parts) c.send(p);
    const r1 = await c.readTyped();
    assert.equal(r1.type, 'error', `the split long line should be refused, got ${JSON.stringify(r1)}`);
    assert.match(r1.value, /^ERR line too long: /, 'split long line error');
    assert.deepEqual(await c.readTyped(), { type: 'simple', value: 'OK' }, 'the PUSH after the long line is served');
    // a line just under the limit is fine
    const fits = makeJob({ args: ['q'.repeat(3500)] });
    await c.push(fits);
    assert.equal((await c.info()).faktory.total_enqueued, 2, 'the good job and the fitting job are stored');
  });
});

test('a PUSH over --max-job-size gets -ERR job too large; smaller jobs still work', async () => {
  await withServer({ args: ['--max-job-size', '2048'] }, async (srv) => {
    const c = await srv.connect();
    const big = makeJob({ args: ['x'.repeat(5000)] });
    await c.err('PUSH ' + JSON.stringify(big), /^ERR job too large: /);
    await c.push(makeJob({ args: ['small'] }));
    let f = (await c.info()).faktory;
    assert.equal(f.total_enqueued, 1, `only the small job is stored: ${JSON.stringify(f.queues)}`);
    // the limit is inclusive: a job of exactly 2048 bytes fits, 2049 does not
    const probe = makeJob({ args: [''] });
    const pad = 2048 - JSON.stringify(probe).length;
    const exact = { ...probe, args: ['y'.repeat(pad)] };
    assert.equal(JSON.stringify(exact).length, 2048, 'test setup: a 2048-byte job');
    await c.push(exact);
    const over = makeJob({ args: ['y'.repeat(pad + 1)] });
    assert.equal(JSON.stringify(over).length, 2049, 'test setup: a 2049-byte job');
    await c.err('PUSH ' + JSON.stringify(over), /^ERR job too large: /);
    // in PUSHB the big job is reported in the error map, the others are stored
    const small = makeJob({ args: ['in bulk'] });
    const r = await c.cmdJSON('PUSHB ' + JSON.stringify([big, small]));
    assert.deepEqual(Object.keys(r), [big.jid], `PUSHB should report only the oversized job, got ${JSON.stringify(r)}`);
    assert.match(r[big.jid], /^job too large: /, 'PUSHB error for the oversized job');
    f = (await c.info()).faktory;
    assert.equal(f.total_enqueued, 3, `the small, the exact-size and the bulk small job are stored: ${JSON.stringify(f.queues)}`);
  });
});

test('a partial line older than --line-timeout closes the connection; idle connections stay', async () => {
  await withServer({ args: ['--line-timeout', '1'] }, async (srv) => {
    const idle = await srv.connect();
    const slow = await srv.connect();
    const t0 = Date.now();
    slow.send('PUSH {"jid":"abcdefghijk"'); // never finished
    assert.ok(await slow.waitClosed(5000), 'a line unfinished for longer than --line-timeout 1 should close the connection');
    const dt = slow.closedAt - t0;
    assert.ok(dt >= 700, `the connection was closed after ${dt} ms, before the 1 s line timeout`);
    assert.ok(dt <= 3500, `the connection should be closed about 1 s after the partial line, took ${dt} ms`);
    // `idle` has been idle (no partial line) for longer than the timeout: still open
    assert.ok((await idle.info()).server, 'an idle connection without a partial line is not closed by --line-timeout');
  });
});

test('--max-connections 3: a fourth client gets -ERR too many connections after HELLO and is closed', async () => {
  await withServer({ args: ['--max-connections', '3'] }, async (srv) => {
    const held = [await srv.connect(), await srv.connect(), await srv.connect()];
    const extra = await srv.rawConnect();
    await readGreeting(extra);
    const r = await extra.cmdTyped('HELLO {"v":2}');
    assert.equal(r.type, 'error', `the 4th connection should be refused, got ${JSON.stringify(r)}`);
    assert.match(r.value, /^ERR too many connections: \d+$/, 'refusal message');
    assert.ok(await extra.waitClosed(3000), 'the refused connection is closed');
    for (const h of held) assert.ok((await h.info()).server, 'the three admitted connections keep working');
    held[0].destroy();
    // once the server has noticed the close, a new client fits again
    const again = await waitFor(async () => {
      try {
        return await srv.connect();
      } catch {
        return null;
      }
    }, { timeoutMs: 5000, what: 'a new connection to be admitted after one of the three closed' });
    assert.ok((await again.info()).server, 'the new connection works');
  });
});

// A small deterministic PRNG so a failing garbage run can be replayed.
function xorshift(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

function garbage(rand, n) {
  const b = Buffer.alloc(n);
  for (let k = 0; k < n; k++) {
    const r = rand();
    b[k] = (r & 7) === 0 ? 10 : r >>> 24; // ~1 in 8 bytes is a newline
  }
  return b;
}

test('random garbage, before and after the handshake, never crashes the server or disturbs other clients', async () => {
  const seed = Number(process.env.SPOOL_GARBAGE_SEED) || (Date.now() & 0x7fffffff);
  await withServer({ args: ['--max-line', '65536'] }, async (srv) => {
    const rand = xorshift(seed);
    const good = await srv.connect();
    const verbs = ['PUSH ', 'PUSHB ', 'FETCH ', 'ACK ', 'FAIL ', 'BEAT ', 'MUTATE ', 'QUEUE ', 'QUEUE LATENCY ', 'INFO ', 'HELLO ', 'END x', ''];
    const jsonish = ['{', '}', '[', ']', '"', ':', ',', 'null', '"jid"', '"args"', '1e999', '-', '\\u0000', '\\', ' ', '*', '\r'];
    let rounds = 0;
    for (let round = 0; round < 30; round++) {
      rounds++;
      const before = round % 3 === 0; // a third before the handshake
      const g = before ? await srv.rawConnect() : await srv.connect();
      g.socket.on('data', () => {}); // drain replies
      const chunks = [];
      for (let k = 0; k < 40; k++) {
        const verb = verbs[rand() % verbs.length];
        let body = '';
        const n = rand() % 30;
        for (let m = 0; m < n; m++) body += jsonish[rand() % jsonish.length];
        chunks.push(Buffer.from(verb + body, 'latin1'), garbage(rand, rand() % 200), Buffer.from('\n'));
      }
      chunks.push(garbage(rand, 4096));
      g.send(Buffer.concat(chunks));
      // meanwhile, the good client keeps working
      const job = makeJob({ queue: 'steady', args: [round] });
      await good.push(job);
      const got = await good.fetch(['steady']);
      assert.equal(got && got.jid, job.jid, `the well-behaved client should keep working (round ${round}, seed ${seed})`);
      await good.ack(job.jid);
      g.destroy();
      assert.ok(srv.alive(), `spoold died during garbage round ${round} (seed ${seed})`);
    }
    const f = (await good.info()).faktory;
    assert.ok(f.total_processed >= rounds, `the good client's ${rounds} jobs were processed (seed ${seed}): ${JSON.stringify(f)}`);
    assert.ok((await srv.connect()).socket, `new clients can still connect after the garbage (seed ${seed})`);
  });
});

test('a flood of random bytes with no newline is bounded by --max-line, not by memory', async () => {
  await withServer({ args: ['--max-line', '4096'] }, async (srv) => {
    const c = await srv.connect();
    const bytes = crypto.randomBytes(256 * 1024).map((b) => (b === 10 ? 11 : b));
    c.send(bytes);
    c.send('\r\nINFO\r\n');
    // The long line gets an error (possibly the connection is closed if the
    // server chose not to resynchronise); either way other clients work.
    const other = await srv.connect();
    assert.ok((await other.info()).server, 'other clients keep working during the flood');
    const r = await c.readTyped(10000).catch((e) => ({ type: 'closed', value: e.message }));
    if (r.type !== 'closed') {
      assert.equal(r.type, 'error', `the flooded connection should first get an error, got ${JSON.stringify(r).slice(0, 200)}`);
      assert.match(r.value, /^ERR line too long: /, 'flood error');
      const r2 = await c.readTyped(5000);
      assert.equal(r2.type, 'bulk', `INFO after the flood should be answered, got ${JSON.stringify(r2).slice(0, 200)}`);
    }
  });
});

test('deeply nested JSON in every JSON-taking command gets an error reply, not a crash', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect({ hello: { wid: 'w-deep' } });
    const deep = '['.repeat(200000) + ']'.repeat(200000);
    const deepObj = '{"a":'.repeat(100000) + '1' + '}'.repeat(100000);
    const lines = [
      `PUSH {"jid":"abcdefghijk","jobtype":"x","args":${deep}}`,
      `PUSH {"jid":"abcdefghijk","jobtype":"x","args":[],"custom":${deepObj}}`,
      `PUSHB ${deep}`,
      `ACK {"jid":${deep}}`,
      `FAIL {"jid":"abcdefghijk","backtrace":${deep}}`,
      `BEAT {"wid":"w-deep","x":${deepObj}}`,
      `MUTATE {"cmd":"kill","target":"dead","filter":${deepObj}}`,
    ];
    for (const line of lines) {
      const r = await c.cmdTyped(line, { timeoutMs: 10000 });
      const verb = line.split(' ')[0];
      assert.ok(r.type === 'error' || (verb === 'BEAT' && r.type === 'simple'),
        `${verb} with 100k+ levels of nesting should be refused with -ERR, got ${JSON.stringify(r).slice(0, 200)}`);
      assert.ok(srv.alive(), `spoold should survive deeply nested JSON in ${verb}`);
    }
    assert.equal((await c.info()).faktory.total_enqueued, 0, 'nothing was stored');
    // and in the handshake
    const h = await srv.rawConnect();
    await readGreeting(h);
    h.send(`HELLO {"v":2,"labels":${deep}}\r\n`);
    assert.ok(await h.waitClosed(5000), 'a HELLO with deeply nested JSON closes the connection');
    assert.ok((await c.info()).server, 'the server keeps serving');
  });
});

test('a client that never reads its replies does not stall the server or other clients', async () => {
  await withServer({ args: ['--max-output', '65536'] }, async (srv) => {
    const other = await srv.connect();
    const hog = await srv.connect();
    const base = (await other.info()).server.connections; // other + hog
    hog.socket.pause(); // stop reading: replies pile up in the kernel, then in spoold
    const burst = Buffer.from('INFO\r\n'.repeat(20000));
    for (let k = 0; k < 10; k++) hog.send(burst); // 200,000 INFOs, ~100 MB of replies
    // the other client is served promptly throughout
    for (let k = 0; k < 20; k++) {
      const t0 = Date.now();
      const info = await other.info();
      const dt = Date.now() - t0;
      assert.ok(dt < 1000, `INFO for a well-behaved client took ${dt} ms while another client was not reading`);
      assert.ok(info.server.used_memory_mb < 512, `spoold memory should stay bounded, used_memory_mb=${info.server.used_memory_mb}`);
    }
    // with --max-output 64 KiB the hog is eventually disconnected (spoold stops
    // buffering replies for it); the connection count shows it from the outside
    await waitFor(async () => (await other.info()).server.connections < base,
      { timeoutMs: 20000, intervalMs: 100, what: `spoold to drop the client that does not read (connections < ${base})` });
    hog.destroy();
  });
});

test('--dead-max bounds the dead set, dropping the oldest first', async () => {
  await withServer({ args: ['--dead-max', '3'] }, async (srv) => {
    const c = await srv.connect();
    const jids = [];
    for (let k = 0; k < 5; k++) {
      const j = makeJob({ queue: 'dm', retry: -1, args: [k] });
      await c.push(j);
      await c.fetch(['dm']);
      await c.fail(j.jid);
      jids.push(j.jid);
    }
    const f = (await c.info()).faktory;
    assert.equal(f.sets.dead, 3, `the dead set is capped at --dead-max 3, sets: ${JSON.stringify(f.sets)}`);
    await c.ok('MUTATE ' + JSON.stringify({ cmd: 'requeue', target: 'dead' }));
    const back = [];
    for (let k = 0; k < 3; k++) back.push((await c.fetch(['dm'])).jid);
    assert.deepEqual(back.sort(), jids.slice(2).sort(), 'the three newest dead jobs are kept, the two oldest dropped');
  });
});

test('SIGTERM with blocked FETCHes and idle workers connected exits cleanly and promptly', async () => {
  const srv = await startServer();
  const w = await srv.connect({ hello: { wid: 'w-shutdown' } });
  const p = await srv.connect();
  await p.push(makeJob({ queue: 'left-behind' }));
  const blocked = [await srv.connect(), await srv.connect()];
  const pending = blocked.map((b) => b.fetch(['empty-q']).catch((e) => e));
  await w.ok('BEAT {"wid":"w-shutdown"}');
  const t0 = Date.now();
  await srv.stop(); // asserts exit code 0 within 10 s and no sanitizer report
  const dt = Date.now() - t0;
  assert.ok(dt < 5000, `spoold should shut down within a few seconds of SIGTERM, took ${dt} ms`);
  const results = await Promise.all(pending);
  for (const r of results) {
    assert.ok(r === null || r instanceof Error || (r && r.error),
      `a blocked FETCH at shutdown ends with $-1, an error or a closed connection, got ${JSON.stringify(r)}`);
  }
});

test('--help exits 0 with usage text; --version exits 0; an unknown flag exits non-zero with a message', () => {
  const h = runSpooldSync(['--help']);
  assert.equal(h.status, 0, `spoold --help should exit 0, got ${h.status} (signal ${h.signal}); stderr: ${h.stderr}`);
  const helpText = h.stdout + h.stderr;
  assert.match(helpText, /usage/i, `--help should print usage text, got: ${helpText}`);
  for (const flag of ['--bind', '--web-bind', '--data-dir', '--log-level', '--max-line', '--max-job-size', '--max-connections', '--line-timeout']) {
    assert.ok(helpText.includes(flag), `--help should mention ${flag}`);
  }
  const v = runSpooldSync(['--version']);
  assert.equal(v.status, 0, `spoold --version should exit 0, got ${v.status}; stderr: ${v.stderr}`);
  assert.match(v.stdout + v.stderr, /\d+\.\d+\.\d+/, `--version should print a version number, got: ${v.stdout}${v.stderr}`);

  const u = runSpooldSync(['--no-such-flag']);
  assert.notEqual(u.status, 0, `an unknown flag should exit non-zero, got ${u.status}`);
  assert.equal(u.signal, null, `an unknown flag should exit, not die by signal ${u.signal}`);
  assert.match(u.stderr, /no-such-flag/, `the message should name the unknown flag, stderr: ${u.stderr}`);

  for (const args of [['--max-line', 'abc'], ['--max-connections', '-1'], ['--log-level', 'loud'], ['-b']]) {
    // port 0 and a data dir that cannot exist, in case a bad value is accepted
    const r = runSpooldSync(['-b', '127.0.0.1:0', '-w', '127.0.0.1:0', '-d', '/nonexistent/never/used', ...args]);
    assert.notEqual(r.status, 0, `spoold ${args.join(' ')} should be refused with a non-zero exit, got ${r.status}`);
    assert.equal(r.signal, null, `spoold ${args.join(' ')} should exit, not die by signal ${r.signal}`);
    assert.ok(r.stderr.trim().length > 0, `spoold ${args.join(' ')} should explain on stderr`);
  }
});
