'use strict';
// Test harness for the integration and compatibility tests: starts a real
// spoold on 127.0.0.1 port 0 with its own temporary data directory, and
// speaks raw FWP to it (handshake, one command at a time, RESP replies).
//
// Rules the tests rely on (tests/STYLE): nothing here sleeps to wait for
// state; every wait is a poll or an event with a deadline, and every failure
// message says what should have happened and shows the server's stderr tail.

const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const READY_RE = /spoold ready fwp=127\.0\.0\.1:(\d+) http=127\.0\.0\.1:(\d+)/;
const SANITIZER_RE = /AddressSanitizer|LeakSanitizer|runtime error:/;
const STDERR_KEEP = 1 << 20; // bytes of stderr kept for failure messages

// Servers still running when the test process exits (a test crashed) are
// killed, so a failing test never leaves an orphan spoold behind.
const liveProcs = new Set();
process.on('exit', () => {
  for (const p of liveProcs) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

function spooldPath() {
  const p = process.env.SPOOLD;
  if (!p) {
    throw new Error('SPOOLD must be set to the absolute path of the spoold binary ' +
      '(ctest sets it; by hand: SPOOLD=$PWD/build/bin/spoold node --test FILE)');
  }
  if (!fs.existsSync(p)) throw new Error(`SPOOLD=${p} does not exist: build spoold first`);
  return p;
}

// The environment for a spoold child: the caller's, minus any password the
// developer happens to have exported, plus the test's own variables.
function childEnv(password, extra) {
  const env = { ...process.env };
  delete env.SPOOL_PASSWORD;
  delete env.FAKTORY_PASSWORD;
  if (password !== undefined) env.SPOOL_PASSWORD = password;
  return Object.assign(env, extra || {});
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Resolves with the promise's value, or with `onTimeout` after `ms`.
function within(promise, ms, onTimeout = undefined) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((resolve) => { timer = setTimeout(() => resolve(onTimeout), ms); }),
  ]);
}

// Polls `fn` (sync or async) until it returns a truthy value or the deadline
// passes; returns that value. On timeout the assertion names what should have
// happened and the last value seen.
async function waitFor(fn, { timeoutMs = 5000, intervalMs = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() >= deadline) {
      assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}; last value: ${JSON.stringify(last)}`);
    }
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------
// The PostgreSQL store. With SPOOL_TEST_STORE=postgres every server started
// here gets a fresh database on the throwaway cluster whose base URL is in
// $SPOOL_TEST_PG_DIR/url (tests/pg/cluster.sh, a ctest fixture), so the same
// test files run against both stores.

function isPostgres() {
  return process.env.SPOOL_TEST_STORE === 'postgres';
}

/** The cluster's base URL (database "postgres"), or throws saying how to get one. */
function pgUrl() {
  const dir = process.env.SPOOL_TEST_PG_DIR;
  const file = dir ? path.join(dir, 'url') : null;
  if (!file || !fs.existsSync(file)) {
    throw new Error('SPOOL_TEST_PG_DIR must name a directory started by tests/pg/cluster.sh start DIR ' +
      `(ctest's pg fixture does it); got ${dir === undefined ? 'nothing' : dir}`);
  }
  return fs.readFileSync(file, 'utf8').trim();
}

/** The URL of database name on the test cluster. */
function pgDatabaseUrl(name) {
  return pgUrl().replace(/\/[^/?]*(\?.*)?$/, `/${name}$1`);
}

/** Runs SQL through psql against url; returns its output (unaligned, tuples only). */
function pgQuery(url, sql) {
  const r = spawnSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', url, '-c', sql],
    { encoding: 'utf8', timeout: 30000 });
  if (r.error) throw new Error(`psql: ${r.error.message} (is PostgreSQL's client installed? scripts/deps --test)`);
  if (r.status !== 0) throw new Error(`psql ${sql}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** Creates an empty database on the test cluster; returns its name. */
function createDatabase(prefix = 'spool_t') {
  const name = `${prefix}_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  pgQuery(pgUrl(), `CREATE DATABASE ${name}`);
  return name;
}

function dropDatabase(name) {
  try {
    pgQuery(pgUrl(), `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } catch (e) {
    // best effort: the cluster is thrown away at the end anyway
  }
}

/** Runs fn(url) with a fresh database on the test cluster, dropped afterwards. */
async function withPgDatabase(prefix, fn) {
  const db = createDatabase(prefix);
  try {
    return await fn(pgDatabaseUrl(db));
  } finally {
    dropDatabase(db);
  }
}

/** Runs fn(client) with an npm `pg` client connected to url, closed afterwards. */
async function withPgClient(url, fn) {
  const { Client } = require('pg');
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Starts spoold. Options: password (sets SPOOL_PASSWORD), args (extra argv),
 * env (extra environment), readyTimeoutMs. Resolves with
 * {port, httpPort, dir, proc, stderr(), stop(), connect(), rawConnect()}
 * once the "spoold ready" line has been logged.
 */
async function startServer(opts = {}) {
  const { password, args = [], env, readyTimeoutMs = 10000, logLevel = 'info' } = opts;
  const bin = spooldPath();
  // opts.dir reuses a data directory (e.g. across a restart); the caller then
  // owns it and removes it. Otherwise each server gets a fresh one.
  const ownDir = !opts.dir;
  const dir = opts.dir || fs.mkdtempSync(path.join(os.tmpdir(), 'spool-test-'));
  // opts.store: a --store URL the caller owns (two servers on one database);
  // else, under SPOOL_TEST_STORE=postgres, a fresh database dropped at stop.
  const ownDb = !opts.store && isPostgres() ? createDatabase() : null;
  const store = opts.store || (ownDb ? pgDatabaseUrl(ownDb) : null);
  const argv = ['-b', '127.0.0.1:0', '-w', '127.0.0.1:0', '-d', dir, '-l', logLevel,
    ...(store ? ['--store', store] : []), ...args];
  const proc = spawn(bin, argv, { env: childEnv(password, env), stdio: ['ignore', 'pipe', 'pipe'] });
  liveProcs.add(proc);

  let errText = '';
  let outText = '';
  let sawSanitizer = false;
  let exitStatus = null;
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      liveProcs.delete(proc);
      exitStatus = { code, signal };
      resolve(exitStatus);
    });
  });
  let spawnError = null;
  proc.on('error', (e) => { spawnError = e; });

  let readyResolve;
  const ready = new Promise((resolve) => { readyResolve = resolve; });
  let lineBuf = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => {
    const window = errText.slice(-64) + chunk;
    if (SANITIZER_RE.test(window)) sawSanitizer = true;
    errText += chunk;
    if (errText.length > 2 * STDERR_KEEP) errText = errText.slice(-STDERR_KEEP);
    lineBuf += chunk;
    let nl;
    while ((nl = lineBuf.indexOf('\n')) >= 0) {
      const line = lineBuf.slice(0, nl);
      lineBuf = lineBuf.slice(nl + 1);
      const m = READY_RE.exec(line);
      if (m) readyResolve({ port: Number(m[1]), httpPort: Number(m[2]) });
    }
  });
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (chunk) => {
    outText += chunk;
    if (outText.length > 2 * STDERR_KEEP) outText = outText.slice(-STDERR_KEEP);
  });

  const tail = (n = 4000) => errText.slice(-n);
  const got = await within(Promise.race([ready, exited.then(() => null)]), readyTimeoutMs, 'timeout');
  if (got === 'timeout' || got === null) {
    if (exitStatus === null) {
      proc.kill('SIGKILL');
      await exited;
    }
    if (ownDir) fs.rmSync(dir, { recursive: true, force: true });
    if (ownDb) dropDatabase(ownDb);
    const why = got === 'timeout'
      ? `did not log "spoold ready fwp=127.0.0.1:PORT http=127.0.0.1:PORT" within ${readyTimeoutMs} ms`
      : `exited before becoming ready (code=${exitStatus.code} signal=${exitStatus.signal})`;
    throw new Error(`spoold ${argv.join(' ')} ${why}${spawnError ? `; spawn error: ${spawnError.message}` : ''}\n` +
      `--- spoold stderr ---\n${tail()}`);
  }

  const conns = new Set();
  let stopping = null;
  const server = {
    port: got.port,
    httpPort: got.httpPort,
    dir,
    proc,
    argv,
    store,
    stderr: () => errText,
    stdout: () => outText,
    stderrTail: tail,
    exitStatus: () => exitStatus,
    /** Opens a connection and completes the handshake (see connect()). */
    async connect(o = {}) {
      const c = await connect(server.port, { password, ...o, _server: server });
      conns.add(c);
      c.socket.on('close', () => conns.delete(c));
      return c;
    },
    /** Opens a TCP connection without any handshake. */
    async rawConnect() {
      const c = await rawConnect(server.port, server);
      conns.add(c);
      c.socket.on('close', () => conns.delete(c));
      return c;
    },
    /** True while the process has not exited. */
    alive: () => exitStatus === null,
    /**
     * SIGTERM, wait for exit (10 s, then SIGKILL), remove the data directory,
     * and assert a clean exit without sanitizer reports. Idempotent.
     */
    stop() {
      if (!stopping) stopping = doStop();
      return stopping;
    },
  };

  /** SIGKILL, wait for exit; for crash tests. The data directory is kept if the caller owns it. */
  server.kill9 = async () => {
    stopping = (async () => {
      for (const c of conns) c.destroy();
      if (exitStatus === null) proc.kill('SIGKILL');
      await exited;
      if (ownDir) fs.rmSync(dir, { recursive: true, force: true });
      if (ownDb) dropDatabase(ownDb);
      assert.ok(!sawSanitizer, `spoold stderr should contain no sanitizer report\n--- spoold stderr ---\n${tail(20000)}`);
    })();
    return stopping;
  };

  async function doStop() {
    for (const c of conns) c.destroy();
    const alreadyExited = exitStatus !== null;
    if (!alreadyExited) proc.kill('SIGTERM');
    let st = await within(exited, 10000, null);
    let hardKilled = false;
    if (st === null) {
      hardKilled = true;
      proc.kill('SIGKILL');
      st = await exited;
    }
    if (ownDir) fs.rmSync(dir, { recursive: true, force: true });
    if (ownDb) dropDatabase(ownDb);
    assert.ok(!alreadyExited,
      `spoold should still be running at the end of the test, but it had exited (code=${st.code} signal=${st.signal})\n` +
      `--- spoold stderr ---\n${tail()}`);
    assert.ok(!hardKilled, `spoold should exit within 10 s of SIGTERM, had to SIGKILL it\n--- spoold stderr ---\n${tail()}`);
    assert.ok(st.code === 0,
      `spoold should exit with code 0 after SIGTERM, got code=${st.code} signal=${st.signal}\n--- spoold stderr ---\n${tail()}`);
    assert.ok(!sawSanitizer, `spoold stderr should contain no sanitizer report\n--- spoold stderr ---\n${tail(20000)}`);
  }

  return server;
}

/**
 * Starts a server, runs fn(server), and always stops it. An error from fn
 * wins over an error from stop (the stop error is appended to its message).
 */
async function withServer(opts, fn) {
  if (typeof opts === 'function') { fn = opts; opts = {}; }
  const srv = await startServer(opts);
  let err = null;
  try {
    await fn(srv);
  } catch (e) {
    err = e;
  }
  try {
    await srv.stop();
  } catch (e) {
    if (!err) throw e;
    err.message += `\n(also, on stop: ${e.message})`;
  }
  if (err) {
    if (err && typeof err.message === 'string' && !err.message.includes('--- spoold stderr ---')) {
      err.message += `\n--- spoold stderr (tail) ---\n${srv.stderrTail(3000)}`;
    }
    throw err;
  }
}

// ---------------------------------------------------------------------------
// RESP reply parser.

// Parses one reply from buf. Returns null when more bytes are needed, or
// {reply, used}. Replies: {type:'simple'|'error'|'bulk'|'null'|'int', value}.
function parseReply(buf) {
  if (buf.length === 0) return null;
  const eol = buf.indexOf('\r\n');
  if (eol < 0) return null;
  const kind = String.fromCharCode(buf[0]);
  const head = buf.toString('utf8', 1, eol);
  switch (kind) {
    case '+': return { reply: { type: 'simple', value: head }, used: eol + 2 };
    case '-': return { reply: { type: 'error', value: head }, used: eol + 2 };
    case ':': return { reply: { type: 'int', value: Number(head) }, used: eol + 2 };
    case '$': {
      const n = Number(head);
      if (!Number.isInteger(n) || n < -1) throw new Error(`bad bulk length line: ${JSON.stringify(head)}`);
      if (n === -1) return { reply: { type: 'null', value: null }, used: eol + 2 };
      const start = eol + 2;
      if (buf.length < start + n + 2) return null;
      if (buf[start + n] !== 13 || buf[start + n + 1] !== 10) {
        throw new Error(`bulk string of ${n} bytes is not followed by CRLF`);
      }
      return { reply: { type: 'bulk', value: buf.toString('utf8', start, start + n) }, used: start + n + 2 };
    }
    default:
      throw new Error(`not a RESP reply: ${JSON.stringify(buf.toString('latin1', 0, Math.min(buf.length, 80)))}`);
  }
}

// Maps a typed reply to what cmd() resolves with.
function plain(r) {
  if (r.type === 'error') return { error: r.value };
  return r.value;
}

function show(r) {
  return JSON.stringify(r);
}

/** A client connection: raw bytes in, RESP replies out, one command at a time. */
class Conn {
  constructor(socket, server) {
    this.socket = socket;
    this.server = server || null;
    this.buf = Buffer.alloc(0);
    this.replies = [];
    this.waiters = [];
    this.closed = false;
    this.protocolError = null;
    this.lastSocketError = null;
    this.greeting = null;
    socket.on('data', (d) => this._onData(d));
    socket.on('error', (e) => { this.lastSocketError = e; });
    this.closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.closed = true;
        this.closedAt = Date.now();
        resolve(true);
        this._failWaiters(new Error('connection closed by the server before a reply arrived' + this._ctx()));
      });
    });
  }

  _ctx() {
    return this.server ? `\n--- spoold stderr (tail) ---\n${this.server.stderrTail(2000)}` : '';
  }

  _onData(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    try {
      for (;;) {
        const p = parseReply(this.buf);
        if (!p) break;
        this.buf = this.buf.subarray(p.used);
        const w = this.waiters.shift();
        if (w) w.resolve(p.reply); else this.replies.push(p.reply);
      }
    } catch (e) {
      this.protocolError = e;
      this._failWaiters(new Error(`server sent invalid RESP: ${e.message}`));
      this.socket.destroy();
    }
  }

  _failWaiters(err) {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.reject(err);
  }

  /** Next reply as {type, value}; rejects on timeout or close. */
  readTyped(timeoutMs = 5000) {
    if (this.replies.length) return Promise.resolve(this.replies.shift());
    if (this.protocolError) return Promise.reject(this.protocolError);
    if (this.closed) return Promise.reject(new Error('connection is closed; no reply will come' + this._ctx()));
    return new Promise((resolve, reject) => {
      const w = {};
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`no reply within ${timeoutMs} ms` + this._ctx()));
      }, timeoutMs);
      w.resolve = (r) => { clearTimeout(timer); resolve(r); };
      w.reject = (e) => { clearTimeout(timer); reject(e); };
      this.waiters.push(w);
    });
  }

  /** Writes raw bytes (no newline added). */
  send(data) {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  /** Sends `line` + CRLF and resolves with the typed reply. */
  async cmdTyped(line, { timeoutMs = 5000 } = {}) {
    this.send(line + '\r\n');
    try {
      return await this.readTyped(timeoutMs);
    } catch (e) {
      e.message = `command ${JSON.stringify(line.length > 200 ? line.slice(0, 200) + '...' : line)}: ${e.message}`;
      throw e;
    }
  }

  /**
   * Sends `line` and resolves with the reply: simple/bulk string, null for
   * $-1, or {error: 'ERR msg'} for an error reply.
   */
  async cmd(line, opts) {
    return plain(await this.cmdTyped(line, opts));
  }

  /** Sends `line`, asserts a bulk reply, returns its parsed JSON. */
  async cmdJSON(line, opts) {
    const r = await this.cmdTyped(line, opts);
    assert.equal(r.type, 'bulk', `${line.split(' ')[0]} should reply with a bulk string, got ${show(r)}`);
    try {
      return JSON.parse(r.value);
    } catch (e) {
      assert.fail(`${line.split(' ')[0]} should reply with JSON, got ${JSON.stringify(r.value)}: ${e.message}`);
    }
  }

  /** Sends `line` and asserts the reply is +OK. */
  async ok(line, opts) {
    const r = await this.cmdTyped(line, opts);
    assert.deepEqual(r, { type: 'simple', value: 'OK' },
      `${JSON.stringify(line.length > 120 ? line.slice(0, 120) + '...' : line)} should reply +OK, got ${show(r)}`);
  }

  /** Sends `line` and asserts an error reply equal to `expected` (string) or matching it (RegExp). */
  async err(line, expected, opts) {
    const r = await this.cmdTyped(line, opts);
    const shown = JSON.stringify(line.length > 120 ? line.slice(0, 120) + '...' : line);
    assert.equal(r.type, 'error', `${shown} should reply -${expected}, got ${show(r)}`);
    if (expected instanceof RegExp) {
      assert.match(r.value, expected, `${shown} should reply with an error matching ${expected}, got -${r.value}`);
    } else if (expected !== undefined) {
      assert.equal(r.value, expected, `${shown} should reply -${expected}, got -${r.value}`);
    }
    return r.value;
  }

  async push(job) {
    await this.ok('PUSH ' + JSON.stringify(job));
    return job.jid;
  }

  /** FETCH; returns the parsed job or null. */
  async fetch(queues = ['default'], opts) {
    const line = queues.length ? `FETCH ${queues.join(' ')}` : 'FETCH';
    const r = await this.cmdTyped(line, { timeoutMs: 6000, ...opts });
    if (r.type === 'null') return null;
    assert.equal(r.type, 'bulk', `${line} should reply with a job (bulk) or $-1, got ${show(r)}`);
    return JSON.parse(r.value);
  }

  async ack(jid) {
    await this.ok('ACK ' + JSON.stringify({ jid }));
  }

  async fail(jid, fields = {}) {
    await this.ok('FAIL ' + JSON.stringify({ jid, errtype: 'TestError', message: 'failed on purpose', ...fields }));
  }

  info() {
    return this.cmdJSON('INFO');
  }

  /** Resolves true if the server closes the connection within ms, else false. */
  waitClosed(ms = 5000) {
    return within(this.closedPromise, ms, false);
  }

  /** Ends our side with END-less FIN (half close). */
  end() {
    this.socket.end();
  }

  destroy() {
    this.socket.destroy();
  }

  close() {
    this.socket.destroy();
  }
}

/** Opens a TCP connection to 127.0.0.1:port; no handshake. */
function rawConnect(port, server = null) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const onErr = (e) => reject(new Error(`connect to 127.0.0.1:${port} failed: ${e.message}`));
    socket.once('error', onErr);
    socket.once('connect', () => {
      socket.removeListener('error', onErr);
      socket.setNoDelay(true);
      resolve(new Conn(socket, server));
    });
  });
}

/** FWP password hash: SHA-256 of password+salt, then `iterations - 1` more rounds over the raw digest. */
function pwdhash(password, salt, iterations) {
  let d = crypto.createHash('sha256').update(password + salt).digest();
  for (let k = 1; k < iterations; k++) d = crypto.createHash('sha256').update(d).digest();
  return d.toString('hex');
}

/** Reads and parses the `+HI {...}` greeting. */
async function readGreeting(c, timeoutMs = 5000) {
  const g = await c.readTyped(timeoutMs);
  assert.equal(g.type, 'simple', `the server should greet with +HI {...}, got ${show(g)}`);
  assert.match(g.value, /^HI \{.*\}$/, `the server should greet with +HI {json}, got +${g.value}`);
  c.greeting = JSON.parse(g.value.slice(3));
  return c.greeting;
}

/**
 * Builds and sends HELLO for an already-greeted connection; returns the typed
 * reply. opts: password, hello (fields merged over {hostname, v:2}),
 * iterations (override the greeting's i), pwdhash (send this exact value).
 */
async function sendHello(c, opts = {}) {
  const g = c.greeting;
  const hello = { hostname: os.hostname(), v: 2, ...(opts.hello || {}) };
  if (opts.pwdhash !== undefined) {
    hello.pwdhash = opts.pwdhash;
  } else if (opts.password !== undefined && g && g.s !== undefined) {
    hello.pwdhash = pwdhash(opts.password, g.s, opts.iterations !== undefined ? opts.iterations : g.i);
  }
  return c.cmdTyped('HELLO ' + JSON.stringify(hello), { timeoutMs: opts.timeoutMs || 5000 });
}

/**
 * Connects and completes the handshake; asserts +OK. opts: password, hello
 * (extra HELLO fields, e.g. {wid}), iterations.
 */
async function connect(port, opts = {}) {
  const c = await rawConnect(port, opts._server || null);
  try {
    await readGreeting(c, opts.timeoutMs);
    const r = await sendHello(c, opts);
    assert.deepEqual(r, { type: 'simple', value: 'OK' }, `HELLO should be answered +OK, got ${show(r)}`);
  } catch (e) {
    c.destroy();
    throw e;
  }
  return c;
}

// ---------------------------------------------------------------------------
// HTTP over a raw socket (keeps the test dependencies to the node: modules above).

function httpGet(port, urlPath, { timeoutMs = 5000, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`GET ${urlPath}: no complete response within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('error', (e) => { clearTimeout(timer); reject(new Error(`GET ${urlPath}: ${e.message}`)); });
    socket.on('connect', () => {
      const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n${extra}\r\n`);
    });
    socket.on('data', (d) => chunks.push(d));
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(parseHttp(Buffer.concat(chunks)));
      } catch (e) {
        reject(new Error(`GET ${urlPath}: ${e.message}`));
      }
    });
  });
}

/** One HTTP request with node:http; resolves {status, headers, body, json}. */
function httpRequest(port, method, urlPath, { body, headers = {}, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const h = { ...headers };
    if (data) h['Content-Length'] = data.length;
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, body: text, json });
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${urlPath}: no response within ${timeoutMs} ms`)));
    req.on('error', (e) => reject(new Error(`${method} ${urlPath}: ${e.message}`)));
    if (data) req.write(data);
    req.end();
  });
}

function parseHttp(raw) {
  const sep = raw.indexOf('\r\n\r\n');
  if (sep < 0) throw new Error(`incomplete HTTP response: ${JSON.stringify(raw.toString('latin1', 0, 200))}`);
  const lines = raw.toString('latin1', 0, sep).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) throw new Error(`bad HTTP status line: ${JSON.stringify(lines[0])}`);
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = raw.subarray(sep + 4);
  if (/chunked/i.test(headers['transfer-encoding'] || '')) {
    const parts = [];
    let off = 0;
    for (let guard = 0; guard < 100000; guard++) {
      const e = body.indexOf('\r\n', off);
      if (e < 0) break;
      const n = parseInt(body.toString('latin1', off, e), 16);
      if (!(n > 0)) break;
      parts.push(body.subarray(e + 2, e + 2 + n));
      off = e + 2 + n + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers['content-length'] !== undefined) {
    body = body.subarray(0, Number(headers['content-length']));
  }
  return { status: Number(m[1]), headers, body: body.toString('utf8') };
}

// ---------------------------------------------------------------------------
// Jobs and small helpers.

/** A fresh temporary directory for tests that manage a data dir across restarts. */
function makeTempDir(prefix = 'spool-test-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

function removeDir(dir) {
  fs.rmSync(dir, { recursive: true, force: true });
}

function newJid(prefix = '') {
  return prefix + crypto.randomBytes(12).toString('hex');
}

/** A valid job with a fresh jid; `fields` override or add. */
function makeJob(fields = {}) {
  return { jid: newJid(), jobtype: 'TestJob', args: [], ...fields };
}

const RFC3339_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;

/** Asserts `s` is an RFC 3339 UTC timestamp (Z) and returns its ms since the epoch. */
function parseUtc(s, what = 'timestamp') {
  assert.equal(typeof s, 'string', `${what} should be an RFC 3339 string, got ${JSON.stringify(s)}`);
  assert.match(s, RFC3339_UTC, `${what} should be RFC 3339 in UTC ending in Z, got ${JSON.stringify(s)}`);
  const ms = Date.parse(s);
  assert.ok(Number.isFinite(ms), `${what} should parse as a date: ${s}`);
  return ms;
}

/** Runs the binary to completion with a deadline (for --help and friends). */
function runSpooldSync(args, { timeoutMs = 10000, env } = {}) {
  const r = spawnSync(spooldPath(), args, { env: childEnv(undefined, env), encoding: 'utf8', timeout: timeoutMs });
  return r;
}

/**
 * Loads the npm client faktory-worker from tests/node_modules and checks it
 * is the pinned version, with a clear message when it is missing.
 */
function requireFaktory(version = '4.7.1') {
  let mod;
  let pkg;
  try {
    mod = require('faktory-worker');
    pkg = require('faktory-worker/package.json');
  } catch (e) {
    throw new Error(`faktory-worker is not installed in tests/node_modules (${e.message}); ` +
      'run scripts/deps --test (it runs npm ci in tests/)');
  }
  assert.equal(pkg.version, version, `tests/node_modules has faktory-worker ${pkg.version}, the tests pin ${version}: run npm ci in tests/`);
  return mod;
}

module.exports = {
  isPostgres,
  pgUrl,
  pgDatabaseUrl,
  pgQuery,
  createDatabase,
  dropDatabase,
  withPgDatabase,
  withPgClient,
  requireFaktory,
  startServer,
  withServer,
  connect,
  rawConnect,
  readGreeting,
  sendHello,
  pwdhash,
  httpGet,
  httpRequest,
  parseReply,
  waitFor,
  within,
  sleep,
  newJid,
  makeJob,
  makeTempDir,
  removeDir,
  parseUtc,
  RFC3339_UTC,
  runSpooldSync,
  spooldPath,
  Conn,
};
