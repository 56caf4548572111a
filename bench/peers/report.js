'use strict';
// report.js: turns the rows bench/compare.sh collected into its Markdown
// results table.
//
//   node report.js ROWS.jsonl HEADER.md
// ROWS.jsonl: one JSON object a line: {system, version, settings, client,
// result (a driver's JSON output, or null), latency (a second result holding
// latency_* fields, optional), error (why result is null)}.
// HEADER.md is printed first, as is.

const fs = require('node:fs');

const [rowsPath, headerPath] = process.argv.slice(2);
if (!rowsPath || !headerPath) {
  process.stderr.write('Usage: node report.js ROWS.jsonl HEADER.md\n');
  process.exit(2);
}

function num(n) {
  return typeof n === 'number' && Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-';
}

function ms(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '-';
  return n >= 10 ? n.toFixed(0) : n.toFixed(2);
}

function cpu(c) {
  if (!c || typeof c.client_cpu_pct !== 'number') return '-';
  return `${c.client_cpu_pct}/${typeof c.server_cpu_pct === 'number' ? c.server_cpu_pct : '-'}`;
}

const lines = fs.readFileSync(rowsPath, 'utf8').split('\n').filter((l) => l.trim() !== '');
const out = [fs.readFileSync(headerPath, 'utf8').trimEnd(), ''];
out.push('| system | version | settings | client | enqueue jobs/s | process jobs/s | p99 push->start (p50), ms | CPU % client/server: enqueue; process |');
out.push('|---|---|---|---|---:|---:|---:|---|');
const notes = [];
for (const line of lines) {
  let row;
  try {
    row = JSON.parse(line);
  } catch (e) {
    process.stderr.write(`report.js: ${rowsPath}: bad row ${JSON.stringify(line)}: ${e.message}\n`);
    process.exit(1);
  }
  const r = row.result || {};
  const l = row.latency || r;
  let lat = '-';
  if (typeof l.latency_p99_ms === 'number') {
    lat = `${ms(l.latency_p99_ms)} (${ms(l.latency_p50_ms)})`;
    // queue_bench.js says latency_achieved_rate, spool bench mixed_per_s.
    const achieved = typeof l.latency_achieved_rate === 'number' ? l.latency_achieved_rate : l.mixed_per_s;
    if (typeof achieved === 'number' && typeof l.rate === 'number' && l.rate > 0 && achieved < 0.95 * l.rate) {
      lat += ` at ${num(achieved)}/s`;
    }
  }
  let enq = num(r.push_per_s);
  let proc = num(r.process_per_s);
  if (!row.result) {
    enq = 'failed';
    proc = 'failed';
    notes.push(`- ${row.system} (${row.settings}, ${row.client}): ${row.error || 'no result'}`);
  }
  const cpus = row.result ? `${cpu(r.enqueue_cpu)}; ${cpu(r.process_cpu)}` : '-';
  out.push(`| ${row.system} | ${row.version} | ${row.settings} | ${row.client} | ${enq} | ${proc} | ${lat} | ${cpus} |`);
  if (row.note) notes.push(`- ${row.system} (${row.settings}, ${row.client}): ${row.note}`);
}
if (notes.length) out.push('', ...notes);
process.stdout.write(out.join('\n') + '\n');
