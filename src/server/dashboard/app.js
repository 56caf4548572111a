// spool's dashboard: a single page with hash routes (#/queues, #/dead, ...)
// that reads and changes the server through the JSON API under /api/v1
// (docs/http-api.md, docs/dashboard.md).
//
// Rule of this file: text that comes from the server (job payloads, names,
// error messages) only ever reaches the page as text nodes or textContent.
// Nothing here assigns innerHTML, so a job holding "<script>" shows as text.
'use strict';

(function () {
  const PAGE_SIZE = 25;
  const LIVE_POINTS = 60; // samples kept by the live chart
  const LIVE_INTERVAL_MS = 2000;

  // ---- DOM helpers ----

  // h('td', {class: 'x', onclick: fn}, 'text', node, ...): children that are
  // strings or numbers become text nodes; null/undefined/false are skipped.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
        else if (k === 'class') el.className = v;
        else if (k === 'dataset') Object.assign(el.dataset, v);
        else if (k === 'checked' || k === 'value' || k === 'disabled') el[k] = v;
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of [children].flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  const $ = (id) => document.getElementById(id);

  // ---- formatting ----

  const fmtNum = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : '—');

  function parseTime(s) {
    if (!s) return null;
    const t = Date.parse(s);
    return Number.isNaN(t) ? null : t;
  }

  function fmtDuration(sec) {
    sec = Math.abs(sec);
    if (sec < 1) return `${Math.round(sec * 1000)} ms`;
    if (sec < 60) return `${sec < 10 ? sec.toFixed(1) : Math.round(sec)} s`;
    // Two whole units, truncated ("59 min 59 s", never "59 min 60 s"); a zero second unit is left out.
    const two = (big, bigName, small, smallName) => (small ? `${big} ${bigName} ${small} ${smallName}` : `${big} ${bigName}`);
    if (sec < 3600) return two(Math.floor(sec / 60), 'min', Math.floor(sec % 60), 's');
    if (sec < 86400) return two(Math.floor(sec / 3600), 'h', Math.floor((sec % 3600) / 60), 'min');
    return two(Math.floor(sec / 86400), 'd', Math.floor((sec % 86400) / 3600), 'h');
  }

  function fmtRelative(s) {
    const t = parseTime(s);
    if (t === null) return '—';
    const d = (t - Date.now()) / 1000;
    if (Math.abs(d) < 1) return 'now';
    return d > 0 ? `in ${fmtDuration(d)}` : `${fmtDuration(d)} ago`;
  }

  // A time cell: relative text, the exact UTC time as a tooltip.
  function timeCell(s) {
    if (!s) return h('span', { class: 'muted' }, '—');
    return h('time', { datetime: s, title: s }, fmtRelative(s));
  }

  function fmtKB(kb) {
    if (typeof kb !== 'number' || kb <= 0) return '—';
    if (kb < 1024) return `${kb} KB`;
    if (kb < 1024 * 1024) return `${(kb / 1024).toFixed(1)} MB`;
    return `${(kb / 1024 / 1024).toFixed(2)} GB`;
  }

  function truncate(s, n) {
    return s.length > n ? s.slice(0, n - 1) + '…' : s;
  }

  function badge(text, kind) {
    return h('span', { class: `badge ${kind || ''}` }, text);
  }

  // ---- API ----

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // Same-origin fetch; the browser adds the Basic credentials it holds.
  // Changes are POST/DELETE with Content-Type: application/json, which the
  // server requires (a cross-site form cannot send it without a preflight).
  async function api(method, path, body) {
    const opts = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (method !== 'GET') {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body === undefined ? {} : body);
    }
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      throw new ApiError(0, `cannot reach the server (${e.message})`);
    }
    let json = null;
    try {
      json = await res.json();
    } catch {
      json = null;
    }
    if (!res.ok) {
      const msg = json && typeof json.error === 'string' ? json.error : `HTTP ${res.status}`;
      throw new ApiError(res.status, msg);
    }
    return json;
  }

  const enc = encodeURIComponent;

  // ---- flash messages and confirmation ----

  let flashTimer = null;
  function flash(text, kind) {
    const el = $('flash');
    el.textContent = text;
    el.className = `flash ${kind || 'ok'}`;
    el.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => { el.hidden = true; }, kind === 'error' ? 10000 : 4000);
  }

  // Resolves true when the user confirms, false on Cancel, Escape or a click outside.
  function confirmAction(text, okLabel) {
    const modal = $('modal');
    const ok = $('modal-ok');
    const cancel = $('modal-cancel');
    $('modal-text').textContent = text;
    ok.textContent = okLabel || 'Confirm';
    modal.hidden = false;
    ok.focus();
    return new Promise((resolve) => {
      const done = (v) => {
        modal.hidden = true;
        ok.removeEventListener('click', onOk);
        cancel.removeEventListener('click', onCancel);
        modal.removeEventListener('click', onBackdrop);
        document.removeEventListener('keydown', onKey);
        resolve(v);
      };
      const onOk = () => done(true);
      const onCancel = () => done(false);
      const onBackdrop = (e) => { if (e.target === modal) done(false); };
      const onKey = (e) => { if (e.key === 'Escape') done(false); };
      ok.addEventListener('click', onOk);
      cancel.addEventListener('click', onCancel);
      modal.addEventListener('click', onBackdrop);
      document.addEventListener('keydown', onKey);
    });
  }

  // Asks, runs fn, reports its result or error, then calls after().
  async function confirmed(question, okLabel, fn, after) {
    if (!(await confirmAction(question, okLabel))) return;
    try {
      const msg = await fn();
      if (msg) flash(msg, 'ok');
    } catch (e) {
      flash(e.message, 'error');
    }
    if (after) after();
  }

  // ---- tables and paging ----

  // columns: [{title, cell: (row) => node|string, class}]. compact: a narrow
  // table that stays a table on a phone (others turn into one card per row).
  function table(columns, rows, empty, compact) {
    if (!rows.length) return h('p', { class: 'empty' }, empty || 'Nothing here.');
    return h('div', { class: compact ? 'table-wrap compact' : 'table-wrap' },
      h('table', null,
        h('thead', null, h('tr', null, columns.map((c) => h('th', { class: c.class }, c.title)))),
        h('tbody', null, rows.map((r) => h('tr', null,
          columns.map((c) => h('td', { class: c.class, 'data-label': typeof c.title === 'string' ? c.title : '' }, c.cell(r))))))));
  }

  // Previous/next and "x–y of total"; go(offset) moves to another page.
  function pager(total, offset, limit, go) {
    if (total <= limit && offset === 0) return h('div', { class: 'pager' }, h('span', { class: 'muted' }, `${fmtNum(total)} total`));
    const last = Math.max(0, Math.floor((total - 1) / limit) * limit);
    return h('div', { class: 'pager' },
      h('button', { type: 'button', disabled: offset === 0, onclick: () => go(0) }, '« First'),
      h('button', { type: 'button', disabled: offset === 0, onclick: () => go(Math.max(0, offset - limit)) }, '‹ Prev'),
      h('span', { class: 'pager-info' }, total === 0 ? '0 of 0' : `${fmtNum(offset + 1)}–${fmtNum(Math.min(total, offset + limit))} of ${fmtNum(total)}`),
      h('button', { type: 'button', disabled: offset + limit >= total, onclick: () => go(offset + limit) }, 'Next ›'),
      h('button', { type: 'button', disabled: offset >= last, onclick: () => go(last) }, 'Last »'));
  }

  // A client-side paged table, for lists the API returns whole (queues, workers, cron).
  // state: {offset, size (rows per page, PAGE_SIZE by default), compact}.
  function pagedTable(columns, rows, empty, state) {
    const box = h('div');
    const size = state.size || PAGE_SIZE;
    const draw = () => {
      clear(box);
      if (state.offset >= rows.length) state.offset = Math.max(0, Math.floor((rows.length - 1) / size) * size);
      append(box, [table(columns, rows.slice(state.offset, state.offset + size), empty, state.compact),
        rows.length ? pager(rows.length, state.offset, size, (o) => { state.offset = o; draw(); }) : null]);
    };
    draw();
    return box;
  }

  // ---- charts (canvas, drawn here) ----

  const COLORS = { processed: '#2f7d4f', failed: '#c0392b', grid: '#e3e6ea', text: '#5b6470' };

  // Axis scale for values up to v: a step of 1, 2 or 5 times a power of ten
  // (at least minStep) and the top of the axis, a whole number of steps.
  function axis(v, minStep) {
    const raw = Math.max(v, minStep) / 4;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = 10 * p;
    for (const m of [1, 2, 5]) {
      if (m * p >= raw) { step = m * p; break; }
    }
    step = Math.max(step, minStep);
    return { step, max: Math.max(step, Math.ceil(v / step) * step) };
  }

  // Prepares a canvas for its CSS size at the device's pixel ratio.
  function setupCanvas(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 600;
    const hgt = canvas.clientHeight || 220;
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(hgt * ratio);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    ctx.font = '12px system-ui, sans-serif';
    return { ctx, w, h: hgt };
  }

  // Axes and horizontal grid lines; returns the plot area and y scale.
  function drawFrame(ctx, w, hgt, ax, yFmt) {
    const max = ax.max;
    const left = 48, right = 10, top = 10, bottom = 24;
    const pw = w - left - right, ph = hgt - top - bottom;
    ctx.strokeStyle = COLORS.grid;
    ctx.fillStyle = COLORS.text;
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    const n = Math.round(max / ax.step);
    for (let i = 0; i <= n; i++) {
      const y = top + ph - (ph * i) / n;
      ctx.beginPath();
      ctx.moveTo(left, Math.round(y) + 0.5);
      ctx.lineTo(left + pw, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.fillText(yFmt(ax.step * i), left - 6, y);
    }
    return { left, top, pw, ph, y: (v) => top + ph - (ph * v) / max };
  }

  function drawLive(canvas, samples) {
    const { ctx, w, h: hgt } = setupCanvas(canvas);
    const ax = axis(Math.max(0, ...samples.map((s) => Math.max(s.processed, s.failed))), 0.25);
    const f = drawFrame(ctx, w, hgt, ax, (v) => (Number.isInteger(v) ? String(v) : v.toFixed(ax.step < 0.1 ? 2 : ax.step < 1 ? 2 : 1).replace(/0+$/, '')));
    const x = (i) => f.left + (f.pw * i) / (LIVE_POINTS - 1);
    const off = LIVE_POINTS - samples.length;
    for (const key of ['processed', 'failed']) {
      ctx.strokeStyle = COLORS[key];
      ctx.lineWidth = 2;
      ctx.beginPath();
      samples.forEach((s, i) => {
        const px = x(i + off), py = f.y(s[key]);
        if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
      });
      ctx.stroke();
    }
    ctx.fillStyle = COLORS.text;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'alphabetic';
    ctx.fillText(`last ${Math.round((LIVE_POINTS * LIVE_INTERVAL_MS) / 1000)} s`, f.left, hgt - 6);
    ctx.textAlign = 'right';
    ctx.fillText('now', f.left + f.pw, hgt - 6);
  }

  function drawHistory(canvas, days) {
    const { ctx, w, h: hgt } = setupCanvas(canvas);
    const ax = axis(Math.max(0, ...days.map((d) => d.processed)), 1);
    const max = ax.max;
    const f = drawFrame(ctx, w, hgt, ax, (v) => (v >= 1000 ? `${+(v / 1000).toFixed(1)}k` : String(v)));
    const slot = f.pw / days.length;
    const bw = Math.max(1, slot * 0.7);
    days.forEach((d, i) => {
      const x0 = f.left + slot * i + (slot - bw) / 2;
      // processed counts failures too: the red part is the failed share of the bar.
      ctx.fillStyle = COLORS.processed;
      ctx.fillRect(x0, f.y(d.processed), bw, f.y(0) - f.y(d.processed));
      ctx.fillStyle = COLORS.failed;
      ctx.fillRect(x0, f.y(Math.min(d.failed, max)), bw, f.y(0) - f.y(Math.min(d.failed, max)));
    });
    ctx.fillStyle = COLORS.text;
    ctx.textBaseline = 'alphabetic';
    ctx.textAlign = 'left';
    if (days.length) ctx.fillText(days[0].date, f.left, hgt - 6);
    ctx.textAlign = 'right';
    if (days.length) ctx.fillText(days[days.length - 1].date, f.left + f.pw, hgt - 6);
  }

  function legend() {
    return h('div', { class: 'legend' },
      h('span', { class: 'swatch processed' }), 'processed',
      h('span', { class: 'swatch failed' }), 'failed');
  }

  // ---- pages ----

  // Timers of the page on screen; cleared when the route changes.
  let timers = [];
  function every(ms, fn) {
    timers.push(setInterval(fn, ms));
  }

  function pageHeader(title, ...extra) {
    return h('div', { class: 'page-head' }, h('h1', null, title), h('div', { class: 'page-tools' }, extra));
  }

  function refreshButton(fn) {
    return h('button', { type: 'button', onclick: fn }, 'Refresh');
  }

  function errorBox(e) {
    return h('div', { class: 'error-box' }, h('strong', null, 'Error: '), e.message);
  }

  // Live rates survive a visit to another page, so the chart keeps its past.
  const live = { last: null, samples: [] };

  async function sampleStats() {
    const s = await api('GET', '/stats');
    const now = Date.now();
    const f = s.faktory;
    if (live.last) {
      const dt = (now - live.last.t) / 1000;
      if (dt > 0) {
        live.samples.push({
          processed: Math.max(0, (f.total_processed - live.last.processed) / dt),
          failed: Math.max(0, (f.total_failures - live.last.failed) / dt),
        });
        if (live.samples.length > LIVE_POINTS) live.samples.shift();
      }
    }
    live.last = { t: now, processed: f.total_processed, failed: f.total_failures };
    return s;
  }

  async function pageOverview(main) {
    const cards = h('div', { class: 'cards' });
    const liveCanvas = h('canvas', { class: 'chart', id: 'live-chart', 'aria-label': 'jobs per second' });
    const rateText = h('span', { class: 'muted' });
    const histCanvas = h('canvas', { class: 'chart', id: 'history-chart', 'aria-label': 'jobs per day' });
    const histTable = h('div');
    append(main, [
      pageHeader('Overview'),
      cards,
      h('section', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', null, 'Throughput'), rateText, legend()), liveCanvas),
      h('section', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', null, 'History (30 days, UTC)'), legend()), histCanvas, histTable),
    ]);

    const card = (label, value, href, kind) => h(href ? 'a' : 'div', { class: `card ${kind || ''}`, href },
      h('span', { class: 'card-value' }, value), h('span', { class: 'card-label' }, label));

    const update = async () => {
      let s;
      try {
        s = await sampleStats();
      } catch (e) {
        clear(cards).appendChild(errorBox(e));
        return;
      }
      const f = s.faktory;
      const srv = s.server;
      clear(cards);
      append(cards, [
        card('Processed', fmtNum(f.total_processed)),
        card('Failed', fmtNum(f.total_failures), null, f.total_failures ? 'bad' : ''),
        card('Enqueued', fmtNum(f.total_enqueued), '#/queues'),
        card('Busy', fmtNum(f.sets.working), '#/busy'),
        card('Scheduled', fmtNum(f.sets.scheduled), '#/scheduled'),
        card('Retries', fmtNum(f.sets.retries), '#/retries', f.sets.retries ? 'warn' : ''),
        card('Dead', fmtNum(f.sets.dead), '#/dead', f.sets.dead ? 'bad' : ''),
        card('Workers', fmtNum(f.tasks.Workers.size), '#/busy'),
        card('Connections', fmtNum(srv.connections)),
        card('Memory', `${fmtNum(srv.used_memory_mb)} MB`),
        card('Uptime', fmtDuration(srv.uptime)),
      ]);
      const lastS = live.samples[live.samples.length - 1];
      rateText.textContent = lastS ? `${lastS.processed.toFixed(1)} processed/s, ${lastS.failed.toFixed(1)} failed/s` : 'measuring…';
      drawLive(liveCanvas, live.samples);
    };
    const loadHistory = async () => {
      try {
        const r = await api('GET', '/api/v1/history?days=30');
        drawHistory(histCanvas, r.days);
        const rows = r.days.slice().reverse();
        clear(histTable).appendChild(pagedTable([
          { title: 'Day', cell: (d) => d.date },
          { title: 'Processed', cell: (d) => fmtNum(d.processed), class: 'num' },
          { title: 'Failed', cell: (d) => fmtNum(d.failed), class: 'num' },
        ], rows, 'No history yet.', { offset: 0, size: 7, compact: true }));
      } catch (e) {
        clear(histTable).appendChild(errorBox(e));
      }
    };
    await Promise.all([update(), loadHistory()]);
    every(LIVE_INTERVAL_MS, update);
    every(10000, loadHistory); // today's counts move while jobs run
  }

  function throttleCell(t) {
    if (!t) return h('span', { class: 'muted' }, '—');
    const parts = [];
    if (t.concurrency !== null && t.concurrency !== undefined) parts.push(`${fmtNum(t.in_flight)}/${fmtNum(t.concurrency)} running`);
    else if (typeof t.in_flight === 'number') parts.push(`${fmtNum(t.in_flight)} running`);
    if (t.rate_limit !== null && t.rate_limit !== undefined) parts.push(`${fmtNum(t.rate_limit)} per ${fmtDuration(t.rate_period_s || 0)}`);
    return h('span', null, parts.join(', '), t.throttled ? [' ', badge('throttled', 'warn')] : null);
  }

  const queueState = { offset: 0 };
  async function pageQueues(main) {
    const body = h('div');
    const load = async () => {
      let r;
      try {
        r = await api('GET', '/api/v1/queues');
      } catch (e) {
        clear(body).appendChild(errorBox(e));
        return;
      }
      const hasThrottle = r.queues.some((q) => Object.prototype.hasOwnProperty.call(q, 'throttle'));
      const cols = [
        { title: 'Queue', cell: (q) => h('span', { class: 'mono' }, q.name) },
        { title: 'Size', cell: (q) => fmtNum(q.size), class: 'num' },
        { title: 'Latency', cell: (q) => (q.size ? fmtDuration(q.latency) : '—'), class: 'num' },
        { title: 'State', cell: (q) => (q.paused ? badge('paused', 'warn') : badge('active', 'ok')) },
      ];
      if (hasThrottle) cols.push({ title: 'Throttle', cell: (q) => throttleCell(q.throttle) });
      cols.push({
        title: 'Actions',
        class: 'actions',
        cell: (q) => [
          q.paused
            ? h('button', { type: 'button', 'data-action': 'resume', onclick: () => confirmed(`Resume queue "${q.name}"? Workers will fetch its jobs again.`, 'Resume',
              async () => { await api('POST', `/api/v1/queues/${enc(q.name)}/resume`); return `Queue ${q.name} resumed.`; }, load) }, 'Resume')
            : h('button', { type: 'button', 'data-action': 'pause', onclick: () => confirmed(`Pause queue "${q.name}"? Workers will stop fetching its jobs.`, 'Pause',
              async () => { await api('POST', `/api/v1/queues/${enc(q.name)}/pause`); return `Queue ${q.name} paused.`; }, load) }, 'Pause'),
          h('button', { type: 'button', class: 'danger', 'data-action': 'remove', onclick: () => confirmed(`Remove queue "${q.name}" and delete its ${fmtNum(q.size)} jobs? This cannot be undone.`, 'Remove',
            async () => { await api('DELETE', `/api/v1/queues/${enc(q.name)}`); return `Queue ${q.name} removed.`; }, load) }, 'Remove'),
        ],
      });
      clear(body).appendChild(pagedTable(cols, r.queues, 'No queues: nothing has been pushed yet.', queueState));
    };
    append(main, [pageHeader('Queues', refreshButton(load)), body]);
    await load();
    every(5000, load);
  }

  const workerState = { offset: 0 };
  async function pageBusy(main, query) {
    const body = h('div');
    const running = h('div');
    const load = async () => {
      let r;
      try {
        r = await api('GET', '/api/v1/workers');
      } catch (e) {
        clear(body).appendChild(errorBox(e));
        return;
      }
      const signal = (w, what) => confirmed(
        what === 'quiet'
          ? `Quiet worker ${w.wid} on ${w.hostname}? It finishes its running jobs and fetches no new ones.`
          : `Stop worker ${w.wid} on ${w.hostname}? It shuts down, abandoning its running jobs to be retried.`,
        what === 'quiet' ? 'Quiet' : 'Stop',
        async () => { const x = await api('POST', `/api/v1/workers/${enc(w.wid)}/${what}`); return `Worker ${w.wid} is now ${x.state}.`; }, load);
      clear(body).appendChild(pagedTable([
        { title: 'Worker', cell: (w) => h('span', { class: 'mono' }, w.wid) },
        { title: 'Host', cell: (w) => w.hostname || '—' },
        { title: 'PID', cell: (w) => String(w.pid), class: 'num' },
        { title: 'Labels', cell: (w) => (Array.isArray(w.labels) && w.labels.length ? w.labels.map((l) => badge(String(l), 'label')) : '—') },
        { title: 'State', cell: (w) => badge(w.state, w.state === 'running' ? 'ok' : 'warn') },
        { title: 'RSS', cell: (w) => fmtKB(w.rss_kb), class: 'num' },
        { title: 'Running', cell: (w) => fmtNum(w.busy), class: 'num' },
        { title: 'Last beat', cell: (w) => timeCell(w.last_beat_at) },
        { title: 'Started', cell: (w) => timeCell(w.started_at) },
        {
          title: 'Actions',
          class: 'actions',
          cell: (w) => [
            h('button', { type: 'button', disabled: w.state !== 'running', onclick: () => signal(w, 'quiet') }, 'Quiet'),
            h('button', { type: 'button', class: 'danger', disabled: w.state === 'terminate', onclick: () => signal(w, 'stop') }, 'Stop'),
          ],
        },
      ], r.workers, 'No worker processes are connected.', workerState));
    };
    append(main, [
      pageHeader('Busy', refreshButton(load)),
      h('section', { class: 'panel' }, h('h2', null, 'Worker processes'), body),
      h('section', { class: 'panel' }, h('h2', null, 'Running jobs'), running),
    ]);
    await Promise.all([load(), setView(running, 'working', query, '#/busy', true)]);
    every(5000, load);
  }

  // ---- sets: scheduled, retries, dead, working ----

  const SET_TITLES = { scheduled: 'Scheduled', retries: 'Retries', dead: 'Dead', working: 'Working' };
  const SET_AT = { scheduled: 'Runs', retries: 'Next retry', dead: 'Expires', working: 'Reservation ends' };
  const STATE_SET = { scheduled: 'scheduled', retry: 'retries', dead: 'dead' };

  function hashWith(base, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '' && !(k === 'offset' && Number(v) === 0)) q.set(k, v);
    const s = q.toString();
    return s ? `${base}?${s}` : base;
  }

  function jobLink(jid) {
    return h('a', { href: `#/job/${enc(jid)}`, class: 'mono' }, truncate(jid, 24));
  }

  function failureText(job) {
    const f = job.failure;
    if (!f) return h('span', { class: 'muted' }, '—');
    return h('span', { class: 'error-text' }, truncate(`${f.errtype ? f.errtype + ': ' : ''}${f.message || ''}`, 120));
  }

  // Renders one set's page into box. embedded: a read-only listing inside another page.
  async function setView(box, set, query, base, embedded) {
    const offset = Math.max(0, parseInt(query.get('offset') || '0', 10) || 0);
    const jobtype = query.get('jobtype') || '';
    const match = query.get('match') || '';
    const canChange = set !== 'working' && !embedded;
    const params = new URLSearchParams({ offset: String(offset), limit: String(PAGE_SIZE) });
    if (jobtype) params.set('jobtype', jobtype);
    if (match) params.set('match', match);
    let r;
    try {
      r = await api('GET', `/api/v1/sets/${set}?${params}`);
    } catch (e) {
      clear(box).appendChild(errorBox(e));
      return;
    }
    const reload = () => { clear(box); setView(box, set, query, base, embedded); };
    const selected = new Set();
    const actionButtons = [];
    const updateSel = () => {
      for (const b of actionButtons) b.disabled = selected.size === 0;
      selCount.textContent = selected.size ? `${selected.size} selected` : '';
    };
    const selCount = h('span', { class: 'muted' });
    const filterDesc = jobtype || match ? ` matching${jobtype ? ` jobtype "${jobtype}"` : ''}${match ? ` and text "${match}"` : ''}` : '';

    const cols = [];
    if (canChange) {
      const all = h('input', {
        type: 'checkbox', 'aria-label': 'select all on this page',
        onchange: (e) => {
          for (const cb of box.querySelectorAll('input.row-select')) {
            cb.checked = e.target.checked;
            if (cb.checked) selected.add(cb.value); else selected.delete(cb.value);
          }
          updateSel();
        },
      });
      cols.push({
        title: all,
        class: 'select',
        cell: (e) => h('input', {
          type: 'checkbox', class: 'row-select', value: e.job.jid, 'aria-label': `select ${e.job.jid}`,
          onchange: (ev) => { if (ev.target.checked) selected.add(e.job.jid); else selected.delete(e.job.jid); updateSel(); },
        }),
      });
    }
    cols.push(
      { title: SET_AT[set], cell: (e) => timeCell(e.at) },
      { title: 'Job', cell: (e) => jobLink(e.job.jid) },
      { title: 'Type', cell: (e) => e.job.jobtype },
      { title: 'Queue', cell: (e) => e.job.queue || 'default' },
      { title: 'Args', cell: (e) => h('code', { class: 'args' }, truncate(JSON.stringify(e.job.args === undefined ? [] : e.job.args), 100)) });
    if (set === 'retries' || set === 'dead') {
      cols.push({ title: 'Retries', cell: (e) => (e.job.failure ? String(e.job.failure.retry_count || 0) : '0'), class: 'num' });
      cols.push({ title: 'Error', cell: (e) => failureText(e.job) });
    }
    if (set === 'working') {
      cols.push({ title: 'Worker', cell: (e) => h('span', { class: 'mono' }, e.wid || '—') });
      cols.push({ title: 'Started', cell: (e) => timeCell(e.reserved_at) });
    }

    const go = (o) => { location.hash = hashWith(base, { jobtype, match, offset: o }); };
    const parts = [];
    if (!embedded) {
      const jt = h('input', { type: 'search', name: 'jobtype', placeholder: 'jobtype (exact)', value: jobtype, 'aria-label': 'jobtype' });
      const mt = h('input', { type: 'search', name: 'match', placeholder: 'text in the job', value: match, 'aria-label': 'text in the job' });
      parts.push(h('form', {
        class: 'filters',
        onsubmit: (e) => { e.preventDefault(); location.hash = hashWith(base, { jobtype: jt.value.trim(), match: mt.value }); },
      }, jt, mt, h('button', { type: 'submit' }, 'Search'),
      jobtype || match ? h('a', { href: base, class: 'button-link' }, 'Clear') : null));
    }
    if (canChange) {
      const byJids = (action, verb, label, cls) => {
        const b = h('button', {
          type: 'button', class: cls, disabled: true, 'data-action': `${action}-selected`,
          onclick: () => confirmed(`${label} ${selected.size} selected job${selected.size === 1 ? '' : 's'}?`, label,
            async () => { const x = await api('POST', `/api/v1/sets/${set}/${action}`, { jids: [...selected] }); return `${fmtNum(x.changed)} job${x.changed === 1 ? '' : 's'} ${verb}.`; }, reload),
        }, `${label} selected`);
        actionButtons.push(b);
        return b;
      };
      const byFilter = (action, verb, label, cls) => h('button', {
        type: 'button', class: cls, disabled: r.total === 0, 'data-action': `${action}-all`,
        onclick: () => confirmed(`${label} all ${fmtNum(r.total)} job${r.total === 1 ? '' : 's'} in ${SET_TITLES[set]}${filterDesc}?`, `${label} all`,
          async () => { const x = await api('POST', `/api/v1/sets/${set}/${action}`, { filter: { jobtype, match } }); return `${fmtNum(x.changed)} job${x.changed === 1 ? '' : 's'} ${verb}.`; }, reload),
      }, `${label} all${filterDesc ? ' matching' : ''}`);
      const sel = [byJids('retry', 'enqueued', 'Retry', ''), set !== 'dead' ? byJids('kill', 'moved to Dead', 'Kill', 'danger') : null, byJids('delete', 'deleted', 'Delete', 'danger')];
      const all = [byFilter('retry', 'enqueued', 'Retry', ''), set !== 'dead' ? byFilter('kill', 'moved to Dead', 'Kill', 'danger') : null, byFilter('delete', 'deleted', 'Delete', 'danger')];
      parts.push(h('div', { class: 'bulk' }, sel, selCount, h('span', { class: 'spacer' }), all));
    }
    parts.push(table(cols, r.jobs, jobtype || match ? 'No jobs match.' : `No ${set === 'working' ? 'running' : set} jobs.`));
    parts.push(pager(r.total, r.offset, r.limit || PAGE_SIZE, go));
    clear(box);
    append(box, parts);
  }

  async function pageSet(main, set, query) {
    const box = h('div');
    append(main, [pageHeader(SET_TITLES[set], refreshButton(() => setView(box, set, query, `#/${set}`, false))), box]);
    await setView(box, set, query, `#/${set}`, false);
  }

  // ---- one job ----

  function dl(pairs) {
    return h('dl', { class: 'props' }, pairs.filter((p) => p).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
  }

  async function pageJob(main, jid) {
    append(main, pageHeader('Job'));
    let r;
    try {
      r = await api('GET', `/api/v1/jobs/${enc(jid)}`);
    } catch (e) {
      if (e.status === 404) {
        main.appendChild(h('p', { class: 'empty' }, `The server does not hold job ${jid}: it has finished, was deleted, or was never pushed.`));
      } else {
        main.appendChild(errorBox(e));
      }
      return;
    }
    const job = r.job || {};
    const set = STATE_SET[r.state];
    const time = (s) => (s ? [timeCell(s), h('span', { class: 'muted' }, ` (${s})`)] : '—');
    const tools = [];
    if (set) {
      const act = (action, verb, label, cls) => h('button', {
        type: 'button', class: cls, 'data-action': action,
        onclick: () => confirmed(`${label} job ${r.jid}?`, label,
          async () => { const x = await api('POST', `/api/v1/sets/${set}/${action}`, { jids: [r.jid] }); return x.changed ? `Job ${verb}.` : 'The job had already moved on.'; },
          () => route()),
      }, label);
      tools.push(act('retry', 'enqueued', 'Retry now', ''));
      if (set !== 'dead') tools.push(act('kill', 'moved to Dead', 'Kill', 'danger'));
      tools.push(act('delete', 'deleted', 'Delete', 'danger'));
    }
    const where = { enqueued: `waiting in queue ${r.queue}`, scheduled: 'Scheduled', working: 'Working (reserved by a worker)', retry: 'Retries', dead: 'Dead' }[r.state] || r.state;
    append(main, [
      h('section', { class: 'panel' },
        h('div', { class: 'panel-head' }, h('h2', { class: 'mono' }, r.jid), h('div', { class: 'page-tools' }, tools)),
        dl([
          ['State', [badge(r.state, r.state === 'dead' ? 'bad' : r.state === 'retry' ? 'warn' : 'ok'), ' ', where]],
          ['Type', job.jobtype || '—'],
          ['Queue', r.queue],
          ['Created', time(job.created_at)],
          r.enqueued_at ? ['Enqueued', time(r.enqueued_at)] : null,
          r.at ? ['Runs at', time(r.at)] : null,
          r.retry_at ? ['Next retry', time(r.retry_at)] : null,
          r.expires_at ? ['Dropped from Dead', time(r.expires_at)] : null,
          r.state === 'working' ? ['Worker', h('span', { class: 'mono' }, r.wid || '(connection without a wid)')] : null,
          r.reserved_at ? ['Reserved', time(r.reserved_at)] : null,
          r.reservation_expires_at ? ['Reservation ends', time(r.reservation_expires_at)] : null,
          ['Retry', job.retry === undefined ? '25 (default)' : String(job.retry)],
        ])),
    ]);
    const f = job.failure;
    if (f) {
      append(main, h('section', { class: 'panel' }, h('h2', null, 'Failure'),
        dl([
          ['Error', h('span', { class: 'error-text' }, `${f.errtype ? f.errtype + ': ' : ''}${f.message || ''}`)],
          ['Failed', time(f.failed_at)],
          ['Attempts', String((f.retry_count || 0) + 1)],
          f.next_at ? ['Next attempt', time(f.next_at)] : null,
        ]),
        Array.isArray(f.backtrace) && f.backtrace.length
          ? [h('h3', null, 'Backtrace'), h('pre', { class: 'code' }, f.backtrace.map(String).join('\n'))]
          : h('p', { class: 'muted' }, 'No backtrace.')));
    }
    append(main, h('section', { class: 'panel' }, h('h2', null, 'Payload'), h('pre', { class: 'code', id: 'payload' }, JSON.stringify(job, null, 2))));
  }

  // ---- cron and batches ----

  const cronState = { offset: 0 };
  async function pageCron(main) {
    const body = h('div');
    const load = async () => {
      try {
        const r = await api('GET', '/api/v1/cron');
        clear(body).appendChild(pagedTable([
          { title: 'Name', cell: (c) => h('span', { class: 'mono' }, c.name) },
          { title: 'Schedule', cell: (c) => h('code', null, c.schedule) },
          { title: 'Zone', cell: (c) => c.tz },
          { title: 'Type', cell: (c) => c.jobtype },
          { title: 'Queue', cell: (c) => c.queue },
          { title: 'Next', cell: (c) => timeCell(c.next_at) },
          { title: 'Last', cell: (c) => (c.last_at ? timeCell(c.last_at) : h('span', { class: 'muted' }, 'never')) },
        ], r.entries, 'No cron entries: add them to cron.json in the config directory (see docs/cron.md).', cronState));
      } catch (e) {
        clear(body).appendChild(errorBox(e));
      }
    };
    append(main, [pageHeader('Cron', refreshButton(load)), body]);
    await load();
  }

  const yesNo = (v) => (v ? badge('yes', 'ok') : badge('no', 'muted'));
  // A batch's callback state: a time when it is one, else the value as text.
  function stamp(v) {
    if (v === null || v === undefined || v === '') return h('span', { class: 'muted' }, '—');
    return typeof v === 'string' && /^\d{4}-\d\d-\d\dT/.test(v) && parseTime(v) !== null ? timeCell(v) : String(v);
  }

  async function pageBatch(main, bid) {
    append(main, pageHeader('Batch'));
    let b;
    try {
      b = await api('GET', `/api/v1/batches/${enc(bid)}`);
    } catch (e) {
      main.appendChild(e.status === 404 ? h('p', { class: 'empty' }, `No batch ${bid} on this server.`) : errorBox(e));
      return;
    }
    append(main, h('section', { class: 'panel' }, h('h2', { class: 'mono' }, b.bid),
      dl([
        ['Description', b.description || '—'],
        ['Parent', b.parent_bid ? h('a', { class: 'mono', href: `#/batch/${enc(b.parent_bid)}` }, b.parent_bid) : '—'],
        ['Created', timeCell(b.created_at)],
        ['Committed', yesNo(b.committed)],
        ['Jobs', `${fmtNum(b.total)} total, ${fmtNum(b.pending)} pending, ${fmtNum(b.failed)} failed`],
        ['Complete callback', stamp(b.complete_st)],
        ['Success callback', stamp(b.success_st)],
      ])));
  }

  async function pageBatches(main, query) {
    const offset = Math.max(0, parseInt(query.get('offset') || '0', 10) || 0);
    append(main, pageHeader('Batches'));
    let r;
    try {
      r = await api('GET', `/api/v1/batches?offset=${offset}&limit=${PAGE_SIZE}`);
    } catch (e) {
      main.appendChild(e.status === 404 ? h('p', { class: 'empty' }, 'No batches: this server does not track batches.') : errorBox(e));
      return;
    }
    const rows = Array.isArray(r.batches) ? r.batches : [];
    append(main, [
      table([
        { title: 'Batch', cell: (b) => h('a', { class: 'mono', href: `#/batch/${enc(b.bid)}` }, b.bid) },
        { title: 'Description', cell: (b) => b.description || '—' },
        { title: 'Parent', cell: (b) => (b.parent_bid ? h('span', { class: 'mono' }, b.parent_bid) : '—') },
        { title: 'Created', cell: (b) => timeCell(b.created_at) },
        { title: 'Committed', cell: (b) => yesNo(b.committed) },
        { title: 'Total', cell: (b) => fmtNum(b.total), class: 'num' },
        { title: 'Pending', cell: (b) => fmtNum(b.pending), class: 'num' },
        { title: 'Failed', cell: (b) => fmtNum(b.failed), class: 'num' },
        { title: 'Complete', cell: (b) => stamp(b.complete_st) },
        { title: 'Success', cell: (b) => stamp(b.success_st) },
      ], rows, 'No batches.'),
      pager(typeof r.total === 'number' ? r.total : rows.length, offset, PAGE_SIZE, (o) => { location.hash = hashWith('#/batches', { offset: o }); }),
    ]);
  }

  // ---- routing ----

  const ROUTES = {
    '': pageOverview,
    queues: pageQueues,
    busy: pageBusy,
    scheduled: (m, q) => pageSet(m, 'scheduled', q),
    retries: (m, q) => pageSet(m, 'retries', q),
    dead: (m, q) => pageSet(m, 'dead', q),
    working: (m, q) => pageSet(m, 'working', q),
    cron: pageCron,
    batches: pageBatches,
  };

  let routeSeq = 0;
  async function route() {
    for (const t of timers) clearInterval(t);
    timers = [];
    const seq = ++routeSeq;
    const raw = location.hash.replace(/^#\/?/, '');
    const qi = raw.indexOf('?');
    const path = qi >= 0 ? raw.slice(0, qi) : raw;
    const query = new URLSearchParams(qi >= 0 ? raw.slice(qi + 1) : '');
    const parts = path.split('/');
    const main = clear($('main'));
    // The page on screen and whether it has loaded, for scripts and tests.
    main.setAttribute('data-route', location.hash || '#/');
    main.setAttribute('aria-busy', 'true');
    let name = parts[0];
    let page = ROUTES[name];
    if ((name === 'job' || name === 'batch') && parts.length >= 2) {
      let id;
      try {
        id = decodeURIComponent(parts.slice(1).join('/'));
      } catch {
        id = parts.slice(1).join('/');
      }
      page = name === 'job' ? (m) => pageJob(m, id) : (m) => pageBatch(m, id);
    }
    for (const a of document.querySelectorAll('#nav a')) {
      a.classList.toggle('active', a.dataset.page === (name === 'batch' ? 'batches' : name || 'overview'));
    }
    $('nav').classList.remove('open');
    $('menu-toggle').setAttribute('aria-expanded', 'false');
    if (!page) {
      main.appendChild(h('p', { class: 'empty' }, `No page called "${path}".`));
      main.setAttribute('aria-busy', 'false');
      return;
    }
    const pageMain = h('div', { class: 'page', 'data-page': name || 'overview' });
    main.appendChild(pageMain);
    try {
      await page(pageMain, query);
    } catch (e) {
      pageMain.appendChild(errorBox(e));
    }
    if (seq === routeSeq) main.setAttribute('aria-busy', 'false');
  }

  async function headerStatus() {
    try {
      const s = await api('GET', '/health');
      $('server-status').textContent = `spool ${s.server.spool_version}`;
    } catch {
      $('server-status').textContent = '';
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('menu-toggle').addEventListener('click', () => {
      const open = $('nav').classList.toggle('open');
      $('menu-toggle').setAttribute('aria-expanded', open ? 'true' : 'false');
    });
    window.addEventListener('hashchange', route);
    headerStatus();
    route();
  });
})();
