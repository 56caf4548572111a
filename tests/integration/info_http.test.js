'use strict';
// INFO shape and counts, FLUSH, and the HTTP /stats and /health endpoints.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { withServer, makeJob, httpGet, parseUtc, waitFor } = require('../lib/spoold');

const isCount = (v) => Number.isInteger(v) && v >= 0;

function assertInfoShape(info, where) {
  assert.equal(typeof info, 'object', `${where}: INFO is a JSON object`);
  const now = parseUtc(info.now, `${where}: now`);
  assert.ok(Math.abs(now - Date.now()) < 5000, `${where}: now (${info.now}) should be the current time`);
  assert.match(info.server_utc_time, /^\d\d:\d\d:\d\d UTC$/, `${where}: server_utc_time is HH:MM:SS UTC`);
  const f = info.faktory;
  assert.equal(typeof f, 'object', `${where}: faktory object`);
  assert.equal(typeof f.queues, 'object', `${where}: faktory.queues object`);
  for (const [name, size] of Object.entries(f.queues)) assert.ok(isCount(size), `${where}: queue ${name} size is a count, got ${size}`);
  assert.deepEqual(Object.keys(f.sets).sort(), ['dead', 'retries', 'scheduled', 'working'], `${where}: faktory.sets keys`);
  for (const [k, v] of Object.entries(f.sets)) assert.ok(isCount(v), `${where}: sets.${k} is a count, got ${v}`);
  for (const k of ['total_failures', 'total_processed', 'total_enqueued', 'total_queues']) {
    assert.ok(isCount(f[k]), `${where}: faktory.${k} is a non-negative integer, got ${JSON.stringify(f[k])}`);
  }
  assert.equal(typeof f.tasks, 'object', `${where}: faktory.tasks object (deprecated but present)`);
  const s = info.server;
  assert.equal(typeof s, 'object', `${where}: server object`);
  assert.ok(typeof s.description === 'string' && s.description.length > 0, `${where}: server.description is a non-empty string`);
  assert.ok(typeof s.faktory_version === 'string' && s.faktory_version.length > 0, `${where}: server.faktory_version is a non-empty string`);
  for (const k of ['uptime', 'connections', 'command_count', 'used_memory_mb']) {
    assert.ok(isCount(s[k]), `${where}: server.${k} is a non-negative integer, got ${JSON.stringify(s[k])}`);
  }
}

test('INFO has Faktory\'s shape', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const info = await c.info();
    assertInfoShape(info, 'INFO');
    assert.deepEqual(info.faktory.sets, { scheduled: 0, retries: 0, dead: 0, working: 0 }, 'a fresh server has empty sets');
    assert.equal(info.faktory.total_enqueued, 0, 'a fresh server has no jobs');
  });
});

test('INFO counts follow pushes, fetches, acks, fails and scheduling', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    for (let k = 0; k < 3; k++) await c.push(makeJob({ queue: 'qa' }));
    for (let k = 0; k < 2; k++) await c.push(makeJob({ queue: 'qb' }));
    await c.push(makeJob({ queue: 'qa', at: new Date(Date.now() + 3600e3).toISOString() }));
    let f = (await c.info()).faktory;
    assert.equal(f.queues.qa, 3, 'qa size');
    assert.equal(f.queues.qb, 2, 'qb size');
    assert.equal(f.total_enqueued, 5, 'total_enqueued is the sum of queue sizes');
    assert.equal(f.total_queues, 2, 'two queues known');
    assert.equal(f.sets.scheduled, 1, 'one scheduled');

    const a = await c.fetch(['qa']);
    const b = await c.fetch(['qa']);
    f = (await c.info()).faktory;
    assert.equal(f.queues.qa, 1, 'qa after two fetches');
    assert.equal(f.sets.working, 2, 'two reserved');
    assert.equal(f.total_enqueued, 3, 'total_enqueued after fetches');

    await c.ack(a.jid);
    await c.fail(b.jid);
    f = (await c.info()).faktory;
    assert.equal(f.sets.working, 0, 'nothing reserved');
    assert.equal(f.sets.retries, 1, 'one retry');
    assert.equal(f.total_processed, 2, 'ACK + FAIL are both processed');
    assert.equal(f.total_failures, 1, 'one failure');
  });
});

test('INFO server.connections and command_count move with the clients', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    const base = (await c.info()).server;
    const extra = [await srv.connect(), await srv.connect()];
    const s1 = (await c.info()).server;
    assert.equal(s1.connections, base.connections + 2, `two more connections should be counted (${base.connections} -> ${s1.connections})`);
    assert.ok(s1.command_count > base.command_count, `command_count should grow (${base.command_count} -> ${s1.command_count})`);
    for (const e of extra) e.destroy();
    await waitFor(async () => (await c.info()).server.connections === base.connections,
      { what: `server.connections to drop back to ${base.connections} after two clients left` });
  });
});

test('FLUSH wipes queues, sets, counters and pause flags', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await c.push(makeJob({ queue: 'fl' }));
    await c.push(makeJob({ queue: 'fl' }));
    await c.push(makeJob({ queue: 'fl', at: new Date(Date.now() + 3600e3).toISOString() }));
    const j = await c.fetch(['fl']);
    await c.fail(j.jid);
    const d = makeJob({ queue: 'fl', retry: -1 });
    await c.push(d);
    // the remaining fl job is older than d; fetch both, kill d
    const k1 = await c.fetch(['fl']);
    const k2 = await c.fetch(['fl']);
    const dead = [k1, k2].find((x) => x.jid === d.jid);
    const other = [k1, k2].find((x) => x.jid !== d.jid);
    await c.fail(dead.jid);
    await c.ack(other.jid);
    await c.push(makeJob({ queue: 'fl' }));
    await c.ok('QUEUE PAUSE fl');
    let f = (await c.info()).faktory;
    assert.deepEqual(f.sets, { scheduled: 1, retries: 1, dead: 1, working: 0 }, 'state before FLUSH');

    await c.ok('FLUSH');
    f = (await c.info()).faktory;
    assert.deepEqual(f.sets, { scheduled: 0, retries: 0, dead: 0, working: 0 }, 'FLUSH empties every set');
    assert.equal(f.total_enqueued, 0, 'FLUSH empties the queues');
    assert.equal(f.total_processed, 0, 'FLUSH resets processed');
    assert.equal(f.total_failures, 0, 'FLUSH resets failures');
    const sizes = Object.values(f.queues).filter((n) => n > 0);
    assert.deepEqual(sizes, [], `no queue holds jobs after FLUSH: ${JSON.stringify(f.queues)}`);

    const again = makeJob({ queue: 'fl' });
    await c.push(again);
    const got = await c.fetch(['fl']);
    assert.equal(got && got.jid, again.jid, 'FLUSH cleared the pause flag on fl');
  });
});

test('GET /stats serves the INFO document, /health a subset, anything else 404', async () => {
  await withServer(async (srv) => {
    const c = await srv.connect();
    await c.push(makeJob({ queue: 'web' }));
    const st = await httpGet(srv.httpPort, '/stats');
    assert.equal(st.status, 200, `GET /stats status, body: ${st.body.slice(0, 200)}`);
    assert.match(st.headers['content-type'] || '', /json/, 'GET /stats is JSON');
    const stats = JSON.parse(st.body);
    assertInfoShape(stats, 'GET /stats');
    assert.equal(stats.faktory.queues.web, 1, 'GET /stats shows the queued job');

    const h = await httpGet(srv.httpPort, '/health');
    assert.equal(h.status, 200, 'GET /health status');
    const health = JSON.parse(h.body);
    parseUtc(health.now, '/health now');
    for (const k of ['description', 'faktory_version']) {
      assert.equal(typeof health.server[k], 'string', `/health server.${k} is a string`);
    }
    for (const k of ['connections', 'command_count']) {
      assert.ok(isCount(health.server[k]), `/health server.${k} is a count, got ${health.server[k]}`);
    }

    for (const p of ['/nope', '/stats/extra', '/healthz']) {
      const r = await httpGet(srv.httpPort, p);
      assert.equal(r.status, 404, `GET ${p} should be 404, got ${r.status}`);
    }
  });
});

test('with a password, GET /stats needs HTTP Basic auth with that password (any username)', async () => {
  await withServer({ password: 'w3b' }, async (srv) => {
    const basic = (user, pw) => ({ Authorization: 'Basic ' + Buffer.from(`${user}:${pw}`).toString('base64') });
    const none = await httpGet(srv.httpPort, '/stats');
    assert.equal(none.status, 401, `GET /stats without credentials on a password-protected server should be 401, got ${none.status}: ${none.body.slice(0, 120)}`);
    assert.match(none.headers['www-authenticate'] || '', /^Basic /, 'the 401 asks for Basic auth');
    const wrong = await httpGet(srv.httpPort, '/stats', { headers: basic('admin', 'nope') });
    assert.equal(wrong.status, 401, `GET /stats with a wrong password should be 401, got ${wrong.status}`);
    const right = await httpGet(srv.httpPort, '/stats', { headers: basic('anyone', 'w3b') });
    assert.equal(right.status, 200, `GET /stats with the right password should be 200, got ${right.status}`);
    assertInfoShape(JSON.parse(right.body), 'authenticated GET /stats');
  });
});

test('malformed, oversized and non-GET HTTP requests get an error status, and the web port keeps working', async () => {
  await withServer(async (srv) => {
    const rawHttp = (data) => new Promise((resolve) => {
      const s = net.connect(srv.httpPort, '127.0.0.1');
      let out = '';
      const timer = setTimeout(() => { s.destroy(); resolve(out); }, 5000);
      s.on('data', (d) => { out += d.toString('latin1'); });
      s.on('close', () => { clearTimeout(timer); resolve(out); });
      s.on('error', () => {});
      s.write(data);
    });
    const cases = [
      ['garbage request line', 'garbage\r\n\r\n'],
      ['a 2 MB header', 'GET /stats HTTP/1.1\r\nHost: x\r\nX-Big: ' + 'a'.repeat(2e6) + '\r\nConnection: close\r\n\r\n'],
      ['POST /stats', 'POST /stats HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello'],
    ];
    for (const [what, req] of cases) {
      const out = await rawHttp(req);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(out);
      assert.ok(out === '' || (m && Number(m[1]) >= 400),
        `${what} should get a 4xx/5xx status or a closed connection, got ${JSON.stringify(out.slice(0, 80))}`);
      assert.ok(srv.alive(), `spoold should survive ${what}`);
    }
    const ok = await httpGet(srv.httpPort, '/stats');
    assert.equal(ok.status, 200, 'GET /stats still works');
  });
});
