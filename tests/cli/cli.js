'use strict';
// Helpers for the spool CLI tests: run the binary (path in $SPOOL) against a
// server started by tests/lib/spoold.js, and collect its output. Nothing here
// sleeps to wait for state; callers poll with waitFor.

const { spawn } = require('node:child_process');
const fs = require('node:fs');

function spoolPath() {
  const p = process.env.SPOOL;
  if (!p) throw new Error('SPOOL must be set to the spool binary (ctest sets it; by hand: SPOOL=$PWD/build/bin/spool)');
  if (!fs.existsSync(p)) throw new Error(`SPOOL=${p} does not exist: build spool_cli first`);
  return p;
}

// The environment for the CLI: no server URL or password from the developer's shell.
function cliEnv(extra = {}) {
  const env = { ...process.env };
  for (const k of ['SPOOL_URL', 'FAKTORY_URL', 'SPOOL_PASSWORD', 'FAKTORY_PASSWORD', 'SPOOL_TLS_CA',
    'SPOOL_TLS_INSECURE_SKIP_VERIFY']) delete env[k];
  return Object.assign(env, extra);
}

/**
 * Runs spool with args; resolves {code, signal, stdout, stderr}. opts: srv
 * (sets SPOOL_URL to it), env, input (written to stdin), timeoutMs.
 */
function runCli(args, opts = {}) {
  const { srv, env = {}, input, timeoutMs = 20000 } = opts;
  const e = cliEnv(srv ? { SPOOL_URL: `tcp://127.0.0.1:${srv.port}`, ...env } : env);
  return new Promise((resolve, reject) => {
    const p = spawn(spoolPath(), args, { env: e, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8');
    p.stderr.setEncoding('utf8');
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`spool ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    p.on('error', (err) => { clearTimeout(timer); reject(err); });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    p.stdin.on('error', () => { /* the CLI may not read stdin */ });
    if (input !== undefined) p.stdin.end(input); else p.stdin.end();
  });
}

/** A result's output, for assertion messages. */
function shown(r) {
  return `exit ${r.code}${r.signal ? ` (signal ${r.signal})` : ''}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

/**
 * Starts `spool work` with args against srv; returns {proc, stderr(), wid(),
 * exited (promise of {code, signal}), stop(signal)}.
 */
function startWork(srv, args, { env = {} } = {}) {
  const e = cliEnv({ SPOOL_URL: `tcp://127.0.0.1:${srv.port}`, ...env });
  const proc = spawn(spoolPath(), ['work', ...args], { env: e, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let out = '';
  proc.stderr.setEncoding('utf8');
  proc.stdout.setEncoding('utf8');
  proc.stderr.on('data', (d) => { err += d; });
  proc.stdout.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => proc.on('close', (code, signal) => resolve({ code, signal })));
  let done = false;
  exited.then(() => { done = true; });
  process.on('exit', () => { if (!done) proc.kill('SIGKILL'); });
  return {
    proc,
    exited,
    stderr: () => err,
    stdout: () => out,
    wid: () => { const m = /wid ([0-9a-f]+)/.exec(err); return m ? m[1] : null; },
    isDone: () => done,
    stop(signal = 'SIGTERM') { if (!done) proc.kill(signal); return exited; },
  };
}

module.exports = { runCli, startWork, shown, spoolPath, cliEnv };
