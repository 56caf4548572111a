'use strict';
// null_fwp.js: the least an FWP server can do, to find the ceiling of a
// Node.js Faktory client (bench/compare.sh runs queue_bench.js against it).
// Jobs live in one in-memory FIFO; nothing is written anywhere; ACK and
// FAIL only answer +OK. No password, no queues other than a shared FIFO,
// no reservations. Not a server to use: a yardstick for the client side.
//
//   node null_fwp.js [PORT]    # listens on 127.0.0.1 (0 = any free port)
// Prints "null_fwp listening 127.0.0.1:PORT" once ready.

const net = require('node:net');

const jobs = [];
const waiters = []; // FETCH callers waiting for a job: {send, timer}
const FETCH_WAIT_MS = 2000; // as FWP: an empty FETCH answers $-1 after 2 s

function bulk(s) {
  return `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
}

function onLine(sock, line, send) {
  const sp = line.indexOf(' ');
  const verb = sp < 0 ? line : line.slice(0, sp);
  switch (verb) {
    case 'HELLO': case 'ACK': case 'FAIL': case 'FLUSH':
      send('+OK\r\n');
      break;
    case 'BEAT':
      send('+OK\r\n');
      break;
    case 'PUSH': {
      if (sp < 0) {
        send('-ERR PUSH needs a job: PUSH {"jid":...}\r\n');
        break;
      }
      const job = line.slice(sp + 1);
      const w = waiters.shift();
      if (w) {
        clearTimeout(w.timer);
        w.send(bulk(job));
      } else {
        jobs.push(job);
      }
      send('+OK\r\n');
      break;
    }
    case 'FETCH': {
      if (jobs.length > 0) {
        send(bulk(jobs.shift()));
        break;
      }
      const w = { send };
      w.timer = setTimeout(() => {
        const i = waiters.indexOf(w);
        if (i >= 0) waiters.splice(i, 1);
        send('$-1\r\n');
      }, FETCH_WAIT_MS);
      waiters.push(w);
      break;
    }
    case 'INFO':
      send(bulk(JSON.stringify({ server: { description: 'null_fwp' }, faktory: { queues: { default: jobs.length } } })));
      break;
    case 'END':
      sock.end();
      break;
    default:
      send(`-ERR unknown command ${verb}\r\n`);
  }
}

const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  let closed = false;
  const send = (s) => { if (!closed) sock.write(s); };
  sock.on('close', () => {
    closed = true;
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].send === send) {
        clearTimeout(waiters[i].timer);
        waiters.splice(i, 1);
      }
    }
  });
  sock.on('error', () => {});
  send('+HI {"v":2}\r\n');
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('data', (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      let line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      onLine(sock, line, send);
    }
  });
});

const port = Number(process.argv[2] || 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`null_fwp: PORT must be an integer from 0 to 65535, got "${process.argv[2]}"\n`);
  process.exit(2);
}
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`null_fwp listening 127.0.0.1:${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
