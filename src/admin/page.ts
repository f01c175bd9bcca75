/**
 * The status page served at `/`: one self-contained HTML document (inline
 * CSS and script, nothing fetched from elsewhere) that polls
 * `api/services`, `api/listeners` and `readyz` every second and shows every
 * listener, service and backend with its state, weight, active connections,
 * request rate and latency. The request rate is computed here, in the
 * browser, from the deltas of each backend's `total` counter over the
 * server's `time`.
 *
 * The Content-Security-Policy allows exactly this script and this style by
 * their SHA-256 hashes, and connections to the page's own origin only. The
 * script builds the page with DOM calls and textContent, never from HTML
 * strings, so names and znodes cannot inject markup.
 */
import { createHash } from 'node:crypto';

/** How often the page polls, in ms. */
export const STATUS_PAGE_INTERVAL_MS = 1_000;

const STYLE = `
:root { color-scheme: light dark; --bg: #f6f7f9; --card: #fff; --fg: #1d2330; --muted: #667085; --line: #e3e6ec;
  --up: #15803d; --up-bg: #dcfce7; --down: #b91c1c; --down-bg: #fee2e2; --drain: #a16207; --drain-bg: #fef3c7;
  --panic: #7e22ce; --panic-bg: #f3e8ff; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #11151c; --card: #1a202b; --fg: #e6e9ef; --muted: #98a2b3; --line: #2b3343;
    --up-bg: #12351f; --up: #4ade80; --down-bg: #3f1616; --down: #f87171; --drain-bg: #3a2d0c; --drain: #facc15;
    --panic-bg: #2e1746; --panic: #c084fc; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; background: var(--bg); color: var(--fg); }
header { display: flex; align-items: center; gap: 12px; padding: 12px 24px; background: var(--card); border-bottom: 1px solid var(--line); position: sticky; top: 0; }
header h1 { font-size: 18px; margin: 0 8px 0 0; letter-spacing: .02em; }
main { padding: 16px 24px 32px; max-width: 1400px; }
h2 { font-size: 15px; margin: 20px 0 8px; color: var(--muted); text-transform: uppercase; letter-spacing: .06em; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; margin-bottom: 14px; overflow-x: auto; }
.card-head { display: flex; flex-wrap: wrap; align-items: center; gap: 8px; padding: 10px 14px; border-bottom: 1px solid var(--line); }
.card-head h3 { margin: 0 6px 0 0; font-size: 16px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 14px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { font-weight: 600; color: var(--muted); font-size: 12px; }
tr:last-child td { border-bottom: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: var(--muted); }
.small { font-size: 12px; }
.tag { display: inline-block; padding: 1px 8px; border-radius: 10px; border: 1px solid var(--line); font-size: 12px; color: var(--muted); }
.badge { display: inline-block; min-width: 64px; text-align: center; padding: 1px 8px; border-radius: 10px; font-weight: 600; font-size: 12px; }
.st-up { color: var(--up); background: var(--up-bg); }
.st-down { color: var(--down); background: var(--down-bg); }
.st-draining { color: var(--drain); background: var(--drain-bg); }
.st-panic { color: var(--panic); background: var(--panic-bg); }
.bad { color: var(--down); }
.empty { padding: 10px 14px; }
`;

const SCRIPT = `
(function () {
  'use strict';
  var INTERVAL = ${STATUS_PAGE_INTERVAL_MS};
  var previous = new Map();
  var updates = 0;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function cell(row, text, cls) {
    var td = el('td', cls, text);
    row.appendChild(td);
    return td;
  }
  function headRow(table, names) {
    var thead = el('thead');
    var tr = el('tr');
    names.forEach(function (n) {
      var numeric = n.charAt(0) === '#';
      tr.appendChild(el('th', numeric ? 'num' : '', numeric ? n.slice(1) : n));
    });
    thead.appendChild(tr);
    table.appendChild(thead);
  }
  function rateText(r) {
    if (r === undefined) return '–';
    if (r === 0) return '0';
    return r < 10 ? r.toFixed(1) : String(Math.round(r));
  }
  function msText(v) {
    if (v === null || v === undefined) return '–';
    return (v < 10 ? v.toFixed(1) : String(Math.round(v))) + ' ms';
  }
  function weightText(b) {
    var w = Math.round(b.weight * 100) / 100;
    return w === b.configuredWeight ? String(w) : w + ' / ' + b.configuredWeight;
  }
  function timeText(ms) {
    return new Date(ms).toLocaleTimeString();
  }
  function notes(b) {
    var out = [];
    if (b.drains.length) out.push('held: ' + b.drains.join(', '));
    if (b.checksDown) out.push('checks failing');
    if (b.agentDown) out.push('agent down');
    if (b.ejectedUntil !== null) out.push('ejected until ' + timeText(b.ejectedUntil));
    if (b.ejections > 0) out.push(b.ejections + ' recent ejection' + (b.ejections > 1 ? 's' : ''));
    if (b.report && b.report.percent !== null) out.push('load report ' + Math.round(b.report.percent) + '% idle');
    if (b.report && b.report.weight !== null) out.push('agent weight ' + b.report.weight);
    if (b.maxConn !== null) out.push('maxconn ' + b.maxConn);
    if (b.ramp < 1) out.push('slow start ' + Math.round(b.ramp * 100) + '%');
    return out.join(' · ');
  }

  /** Requests (or connections) per second from the total counter's delta since the last poll. */
  function rate(service, b, time) {
    var key = service + ' ' + b.id;
    var last = previous.get(key);
    var r;
    if (last && time > last.time) r = b.total >= last.total ? (b.total - last.total) / ((time - last.time) / 1000) : 0;
    else if (last) r = last.rate;
    previous.set(key, { total: b.total, time: time, rate: r });
    return r;
  }

  function renderListeners(doc) {
    var table = document.getElementById('listeners');
    table.replaceChildren();
    if (!doc.listeners.length) {
      table.appendChild(el('caption', 'muted empty', 'no listeners'));
      return;
    }
    headRow(table, ['Listener', 'Mode', 'Address', '#Connections', '#Limit', 'Services']);
    var body = el('tbody');
    doc.listeners.forEach(function (l) {
      var tr = el('tr');
      tr.dataset.listener = l.name;
      cell(tr, l.name);
      cell(tr, l.mode);
      cell(tr, l.address);
      cell(tr, l.connections, 'num connections');
      cell(tr, l.maxConnections, 'num muted');
      cell(tr, l.services.join(', '));
      body.appendChild(tr);
    });
    table.appendChild(body);
  }

  function renderServices(doc) {
    var root = document.getElementById('services');
    var seen = new Set();
    root.replaceChildren();
    if (!doc.services.length) root.appendChild(el('p', 'muted', 'no services'));
    doc.services.forEach(function (s) {
      var card = el('section', 'card');
      card.dataset.service = s.name;
      var head = el('div', 'card-head');
      head.appendChild(el('h3', '', s.name));
      var total = 0;
      var known = false;
      var rates = s.backends.map(function (b) {
        seen.add(s.name + ' ' + b.id);
        var r = rate(s.name, b, doc.time);
        if (r !== undefined) { total += r; known = true; }
        return r;
      });
      var up = s.backends.filter(function (b) { return b.usable; }).length;
      head.appendChild(el('span', 'badge ' + (up === s.backends.length && up > 0 ? 'st-up' : up > 0 ? 'st-draining' : 'st-down'),
        up + '/' + s.backends.length + ' usable'));
      if (!s.ready) head.appendChild(el('span', 'badge st-draining', 'waiting for first listing'));
      if (s.panic) head.appendChild(el('span', 'badge st-panic', 'panic'));
      head.appendChild(el('span', 'tag', s.strategy));
      head.appendChild(el('span', 'tag', s.source.type === 'zookeeper' ? 'zookeeper ' + s.source.path : 'static'));
      if (s.healthCheck) {
        var hc = s.healthCheck;
        head.appendChild(el('span', 'tag', (hc.shared ? 'shared ' : '') + hc.type + ' check' + (hc.path ? ' ' + hc.path : '') + ' every ' + hc.interval + ' ms'));
      } else head.appendChild(el('span', 'tag', 'no active checks'));
      if (s.agent) head.appendChild(el('span', 'tag', 'agent checks'));
      if (s.outlierDetection) head.appendChild(el('span', 'tag', 'outlier ejection'));
      head.appendChild(el('span', 'muted small', (known ? rateText(total) : '–') + ' req/s'));
      card.appendChild(head);
      if (!s.backends.length) {
        card.appendChild(el('div', 'muted empty', s.ready ? 'no members' : 'no members yet'));
        root.appendChild(card);
        return;
      }
      var table = el('table');
      headRow(table, ['Backend', 'State', '#Weight', '#Active', '#Req/s', '#Latency', '#Total', 'Notes']);
      var body = el('tbody');
      s.backends.forEach(function (b, i) {
        var tr = el('tr');
        tr.dataset.service = s.name;
        tr.dataset.backend = b.id;
        var idCell = cell(tr, b.id);
        if (b.znode) {
          idCell.appendChild(el('br'));
          idCell.appendChild(el('span', 'muted small', b.znode));
        }
        var state = el('span', 'badge st-' + b.state, b.state);
        var stateCell = cell(tr, null, 'state');
        stateCell.dataset.state = b.state;
        stateCell.appendChild(state);
        cell(tr, weightText(b), 'num weight');
        cell(tr, b.active, 'num active');
        cell(tr, rateText(rates[i]), 'num rate');
        cell(tr, msText(b.latencyMs), 'num latency');
        cell(tr, b.total, 'num total');
        cell(tr, notes(b), 'muted small notes');
        body.appendChild(tr);
      });
      table.appendChild(body);
      card.appendChild(table);
      root.appendChild(card);
    });
    previous.forEach(function (_v, key) { if (!seen.has(key)) previous.delete(key); });
  }

  function renderReady(doc) {
    var pill = document.getElementById('ready');
    pill.textContent = doc.stopping ? 'stopping' : doc.ready ? 'ready' : 'not ready';
    pill.className = 'badge ' + (doc.ready ? 'st-up' : doc.stopping ? 'st-draining' : 'st-down');
  }

  function getJson(path) {
    return fetch(path, { cache: 'no-store', headers: { accept: 'application/json' } }).then(function (res) {
      if (!res.ok && res.status !== 503) throw new Error(path + ': HTTP ' + res.status);
      return res.json();
    });
  }

  function tick() {
    Promise.all([getJson('api/services'), getJson('api/listeners'), getJson('readyz')])
      .then(function (docs) {
        renderServices(docs[0]);
        renderListeners(docs[1]);
        renderReady(docs[2]);
        updates++;
        document.body.dataset.updates = String(updates);
        var status = document.getElementById('updated');
        status.className = 'muted';
        status.textContent = 'updated ' + timeText(docs[0].time);
      })
      .catch(function (err) {
        var status = document.getElementById('updated');
        status.className = 'bad';
        status.textContent = 'cannot reach Drover (' + (err && err.message ? err.message : err) + '); retrying';
      })
      .then(function () { setTimeout(tick, INTERVAL); });
  }
  tick();
})();
`;

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** The page's Content-Security-Policy: its own inline script and style (by hash), fetches to its own origin, nothing else. */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The whole status page. */
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Drover status</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>Drover</h1>
<span id="ready" class="badge">…</span>
<span id="updated" class="muted">connecting…</span>
</header>
<main>
<h2>Listeners</h2>
<div class="card"><table id="listeners"></table></div>
<h2>Services</h2>
<div id="services"></div>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
