// console.js - the moonlog web console's behaviour (docs/console.md).
//
// One page with five views chosen by the address's #fragment: the overview (figures and two
// live charts), the streams (search, and a stream's events), the live view ($all or a pattern
// followed as it grows), the scripts (status, errors, parked events, reload and replay) and
// the forms that query a projection or send a decider's command. Everything comes from the
// server's HTTP API (docs/protocol.md): /stats and /scripts are polled once a second for the
// figures, the charts and the scripts view; the live view reads /subscribe's server-sent
// events with fetch, because EventSource cannot send the Authorization header a server with
// --token asks for. The DOM is built with textContent only, never from HTML strings, so
// nothing a stream holds can run as code here.
'use strict';

// ---- small helpers ----------------------------------------------------------------------

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const enc = encodeURIComponent;

// An element: el('td', { class: 'num', onclick: f, dataset: { x: 1 } }, 'text', child, ...)
function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e[k] = v;
  }
  for (const kid of kids.flat()) {
    if (kid !== null && kid !== undefined) e.append(kid instanceof Node ? kid : String(kid));
  }
  return e;
}

const count = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : '–');
const plural = (n, one, many) => `${count(n)} ${n === 1 ? one : many}`;
const when = (ms) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');

function duration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} days`;
}

// Where a Lua error points: "…/balances.lua:2: unexpected symbol" -> balances.lua, 2, the rest.
function where(message) {
  const m = /([^\s:'"]+\.lua):(\d+):\s*([^\n]*)/.exec(message || '');
  if (!m) return null;
  return { file: m[1].split('/').pop(), line: Number(m[2]), text: m[3] };
}

function setStatus(text, bad) {
  const s = $('status');
  s.textContent = text;
  s.classList.toggle('bad', !!bad);
}

// ---- the token and the API --------------------------------------------------------------

const token = { value: sessionStorage.getItem('moonlog.token'), asking: null };

function authHeaders(headers = {}) {
  if (token.value) headers.Authorization = 'Bearer ' + token.value;
  return headers;
}

// Asks for the token once, however many requests were refused meanwhile; they all wait.
function askToken(refused) {
  if (refused) {
    const why = $('token-why');
    why.textContent = 'The server refused that token: paste the one from the file given to ' +
      'moonlog serve --token.';
    why.className = 'bad';
  }
  if (token.asking) return token.asking;
  token.asking = new Promise((resolve) => {
    const d = $('token-dialog');
    $('token-input').value = '';
    d.oncancel = (ev) => ev.preventDefault(); // nothing works without it
    $('token-form').onsubmit = () => {
      token.value = $('token-input').value.trim();
      sessionStorage.setItem('moonlog.token', token.value);
      $('forget-token').hidden = false;
      token.asking = null;
      resolve();
    };
    setStatus('waiting for the token', true);
    d.showModal();
  });
  return token.asking;
}

class ApiError extends Error {
  constructor(status, body, text) {
    super((body && body.error && body.error.message) || text || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error && body.error.code;
    this.body = body;
  }
}

// A request to the server: {status, value (the JSON answer), headers}, or an ApiError.
async function api(path, { method = 'GET', body } = {}) {
  for (;;) {
    const sent = token.value;
    const headers = authHeaders(body === undefined ? {} : { 'Content-Type': 'application/json' });
    const r = await fetch(path, { method, body, headers, cache: 'no-store' });
    if (r.status === 401) {
      await askToken(!!sent);
      continue;
    }
    const text = await r.text();
    let value = null;
    try {
      value = text ? JSON.parse(text) : null;
    } catch (e) {
      value = text;
    }
    if (!r.ok) throw new ApiError(r.status, value, text.trim());
    return { status: r.status, value, headers: r.headers };
  }
}

// ---- server-sent events over fetch ------------------------------------------------------

// Follows GET /subscribe: onEvent(event) for each one, onState(text, bad) as the connection
// comes and goes. Reconnects after a break with Last-Event-ID, as EventSource would.
class Follow {
  constructor(pattern, from, onEvent, onState) {
    Object.assign(this, { pattern, from, onEvent, onState, last: null, retry: 1000 });
    this.stopped = false;
    this.run();
  }

  stop() {
    this.stopped = true;
    if (this.abort) this.abort.abort();
  }

  async run() {
    while (!this.stopped) {
      this.abort = new AbortController();
      try {
        const q = new URLSearchParams({ pattern: this.pattern });
        const headers = authHeaders({ Accept: 'text/event-stream' });
        if (this.last !== null) headers['Last-Event-ID'] = String(this.last);
        else if (this.from) q.set('from', String(this.from));
        const r = await fetch('/subscribe?' + q, { headers, signal: this.abort.signal, cache: 'no-store' });
        if (r.status === 401) {
          await askToken(!!headers.Authorization);
          continue;
        }
        if (!r.ok) {
          const e = new ApiError(r.status, await r.json().catch(() => null), '');
          this.onState(e.message, true);
          return; // a bad pattern: reconnecting would not help
        }
        this.onState(null);
        await this.read(r.body.getReader());
      } catch (e) {
        if (this.stopped) return;
        this.onState(`the connection broke (${e.message}); reconnecting`, true);
      }
      if (!this.stopped) await sleep(this.retry);
    }
  }

  async read(reader) {
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        this.message(buf.slice(0, end));
        buf = buf.slice(end + 2);
      }
    }
  }

  // One message: "id:", "event:", "data:" and "retry:" lines; ":" starts a comment.
  message(block) {
    let id = null;
    const data = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id') id = value;
      else if (field === 'data') data.push(value);
      else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
    }
    if (id !== null) this.last = id;
    if (data.length) this.onEvent(JSON.parse(data.join('\n')));
  }
}

// ---- polling: the figures, the charts, the scripts ----------------------------------------

const HISTORY_S = 120;
const COLORS = ['#2f5fd0', '#d0612f', '#1e7b34', '#8a3fd0', '#c0392b', '#16a0a0', '#b08a00', '#666'];
const live = { stats: null, scripts: [], samples: [], prev: null };

function sample(stats, scripts) {
  const t = Date.now();
  const s = { t, events: null, appends: null, lag: new Map() }; // no rate before a second look
  const p = live.prev;
  if (p && t > p.t) {
    const dt = (t - p.t) / 1000;
    s.events = Math.max(0, (stats.events - p.events) / dt);
    s.appends = Math.max(0, (stats.appends - p.appends) / dt);
  }
  for (const sc of scripts) s.lag.set(sc.name, sc.lag);
  live.prev = { t, events: stats.events, appends: stats.appends };
  live.samples.push(s);
  while (live.samples.length && live.samples[0].t < t - HISTORY_S * 1000) live.samples.shift();
}

async function tick() {
  try {
    const [stats, scripts] = await Promise.all([api('/stats'), api('/scripts')]);
    live.stats = stats.value;
    live.scripts = scripts.value || [];
    sample(live.stats, live.scripts);
    setStatus(`connected · head ${count(live.stats.head)}`);
  } catch (e) {
    setStatus(e instanceof ApiError ? e.message : `cannot reach the server (${e.message})`, true);
    return;
  }
  const view = currentView();
  if (view === 'overview') renderOverview();
  if (view === 'scripts') renderScripts(true);
  if (view === 'ask') fillSelects();
}

async function pollForever() {
  for (;;) {
    await tick();
    await sleep(1000);
  }
}

// ---- overview ---------------------------------------------------------------------------

const FIGURES = [
  ['head', 'head position'], ['streams', 'streams'], ['events', 'events appended since start'],
  ['appends', 'appends since start'], ['connections', 'RPC connections'],
  ['http_connections', 'HTTP connections'], ['subscriptions', 'subscriptions'],
  ['requests', 'requests'], ['errors', 'errors'], ['parked', 'parked by groups'],
];

function renderOverview() {
  const st = live.stats;
  if (!st) return;
  const dl = $('figures');
  dl.replaceChildren();
  for (const [key, label] of FIGURES) {
    if (key in st) dl.append(el('div', { dataset: { figure: key } }, el('dt', {}, label), el('dd', {}, count(st[key]))));
  }
  const up = 'uptime_ms' in st ? st.uptime_ms : st.uptime_seconds * 1000;
  if (up >= 0) dl.append(el('div', {}, el('dt', {}, 'up for'), el('dd', {}, duration(up))));
  dl.append(el('div', {}, el('dt', {}, 'fsync'), el('dd', {}, st.fsync || '–')));
  const s = live.samples;
  drawChart($('chart-appends'), $('legend-appends'), [
    { name: 'events/s', values: s.filter((x) => x.events !== null).map((x) => [x.t, x.events]) },
    { name: 'appends/s', values: s.filter((x) => x.appends !== null).map((x) => [x.t, x.appends]) },
  ]);
  drawChart($('chart-lag'), $('legend-lag'), live.scripts.map((sc) => ({
    name: sc.name,
    values: s.filter((x) => x.lag.has(sc.name)).map((x) => [x.t, x.lag.get(sc.name)]),
  })));
}

// A round number at or above v, for the top of a chart: 1, 2, 5, 10, 20, 50, ...
function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((x) => x >= v);
}

const short = (v) => (v >= 1e6 ? `${+(v / 1e6).toFixed(1)}M` : v >= 1e3 ? `${+(v / 1e3).toFixed(1)}k`
  : `${+v.toFixed(v < 1 ? 2 : 1)}`);

// A line chart of the last HISTORY_S seconds on a canvas, with its legend (latest values).
function drawChart(canvas, legend, series) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width;
  const h = canvas.clientHeight || canvas.height;
  canvas.width = w * dpr;
  canvas.height = h * dpr;
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  const css = getComputedStyle(document.documentElement);
  const muted = css.getPropertyValue('--muted').trim();
  const line = css.getPropertyValue('--line').trim();
  const pad = { l: 44, r: 8, t: 8, b: 18 };
  const now = Date.now();
  const t0 = now - HISTORY_S * 1000;
  const top = niceCeil(Math.max(0, ...series.flatMap((s) => s.values.map((p) => p[1]))));
  const x = (t) => pad.l + ((t - t0) / (HISTORY_S * 1000)) * (w - pad.l - pad.r);
  const y = (v) => h - pad.b - (v / top) * (h - pad.t - pad.b);
  g.clearRect(0, 0, w, h);
  g.font = '11px system-ui, sans-serif';
  g.lineWidth = 1;
  g.strokeStyle = line;
  g.fillStyle = muted;
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    g.beginPath();
    g.moveTo(pad.l, y(v) + 0.5);
    g.lineTo(w - pad.r, y(v) + 0.5);
    g.stroke();
    g.fillText(short(v), 4, y(v) + 4);
  }
  g.fillText('2 min ago', pad.l, h - 4);
  g.fillText('now', w - pad.r - 22, h - 4);
  legend.replaceChildren();
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    g.strokeStyle = color;
    g.lineWidth = 1.5;
    g.beginPath();
    s.values.forEach(([t, v], k) => (k ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
    g.stroke();
    const latest = s.values.length ? s.values[s.values.length - 1][1] : null;
    const swatch = el('i');
    swatch.style.background = color;
    legend.append(el('li', { dataset: { series: s.name } }, swatch, `${s.name}: `,
      el('span', { class: 'value' }, latest === null ? '–' : short(latest))));
  });
}

// ---- streams ----------------------------------------------------------------------------

// seq: the last search or stream asked for; an answer to an earlier one is dropped.
const streams = { next: null, shown: null, oldest: null, seq: 0, streamSeq: 0 };

async function searchStreams(more) {
  const seq = ++streams.seq;
  const pattern = $('streams-pattern').value.trim() || '*';
  const q = new URLSearchParams({ pattern, limit: '100' });
  if (more && streams.next) q.set('after', streams.next);
  const tbody = $('streams-table').tBodies[0];
  const note = $('streams-count');
  try {
    const { value } = await api('/streams?' + q);
    if (seq !== streams.seq) return;
    if (!more) tbody.replaceChildren();
    for (const s of value.streams) {
      tbody.append(el('tr', { dataset: { stream: s.stream }, class: s.stream === streams.shown ? 'current' : '' },
        el('td', {}, el('button', { type: 'button', onclick: () => { location.hash = '#streams/' + enc(s.stream); } }, s.stream)),
        el('td', { class: 'num' }, count(s.version))));
    }
    note.textContent = `${plural(value.count, 'stream matches', 'streams match')} ${pattern}`;
    note.classList.remove('bad');
    streams.next = value.next;
    $('streams-more').hidden = !value.next;
  } catch (e) {
    if (seq !== streams.seq) return;
    note.textContent = e.message;
    note.classList.add('bad');
  }
}

function eventItem(ev, fresh) {
  const meta = ev.meta && Object.keys(ev.meta).length ? ev.meta : null;
  return el('li', { class: fresh ? 'new' : '', dataset: { position: ev.position, stream: ev.stream } },
    el('div', { class: 'head' },
      el('span', { class: 'type' }, ev.type),
      el('span', { class: 'stream' }, `${ev.stream} v${ev.version}`),
      el('span', { class: 'hint' }, `position ${ev.position}`),
      el('span', { class: 'hint' }, when(ev.time)),
      el('span', { class: 'hint mono' }, ev.id)),
    el('pre', { class: 'data' }, JSON.stringify(ev.data, null, 2)),
    meta ? el('pre', { class: 'meta hint' }, 'meta ' + JSON.stringify(meta)) : null);
}

// A stream's events, newest first, 50 at a time; `before`: the version to go back from.
async function openStream(name, before) {
  const seq = ++streams.streamSeq;
  streams.shown = name;
  $('stream').hidden = false;
  $('stream-name').textContent = name;
  for (const tr of $('streams-table').tBodies[0].rows) tr.classList.toggle('current', tr.dataset.stream === name);
  const list = $('stream-events');
  const q = new URLSearchParams({ backwards: 'true', limit: '50' });
  if (before) q.set('from', String(before));
  try {
    const { value, headers } = await api(`/streams/${enc(name)}?${q}`);
    if (seq !== streams.streamSeq) return;
    if (!before) list.replaceChildren();
    for (const ev of value) list.append(eventItem(ev));
    const version = Number((headers.get('ETag') || '').replace(/"/g, ''));
    $('stream-version').textContent = `version ${count(version)} (${plural(version, 'event', 'events')})`;
    streams.oldest = value.length ? value[value.length - 1].version : null;
    $('stream-older').hidden = !(streams.oldest > 1);
  } catch (e) {
    if (seq !== streams.streamSeq) return;
    list.replaceChildren(el('li', { class: 'problem' }, e.message));
    $('stream-version').textContent = '';
    $('stream-older').hidden = true;
  }
}

// ---- live -------------------------------------------------------------------------------

const LIVE_MAX = 500;
const following = { follow: null, paused: false, pattern: '$all', last: null };

function liveState(text, bad) {
  const s = $('live-state');
  const f = following;
  s.textContent = text || (f.paused ? `paused at position ${f.last || '–'}`
    : `following ${f.pattern}${f.last ? ` · last position ${f.last}` : ''}`);
  s.classList.toggle('bad', !!bad);
  s.dataset.following = !text && !f.paused ? 'yes' : 'no';
}

function onLiveEvent(ev) {
  following.last = ev.position;
  const list = $('live-events');
  list.prepend(eventItem(ev, true));
  while (list.children.length > LIVE_MAX) list.lastChild.remove();
  liveState(null);
}

// Follows the pattern from a little before the head (so the view does not start empty),
// or on from where it paused.
async function follow(pattern, resume) {
  if (following.follow) following.follow.stop();
  following.paused = false;
  following.pattern = pattern;
  $('live-pause').textContent = 'Pause';
  let from = null;
  if (resume && following.last) {
    from = following.last + 1;
  } else {
    $('live-events').replaceChildren();
    following.last = null;
    const head = live.stats ? live.stats.head : (await api('/stats')).value.head;
    from = Math.max(1, head - 19);
  }
  liveState('connecting…');
  following.follow = new Follow(pattern, from, onLiveEvent, liveState);
}

function pause() {
  if (following.paused) return follow(following.pattern, true);
  if (following.follow) following.follow.stop();
  following.follow = null;
  following.paused = true;
  $('live-pause').textContent = 'Resume';
  liveState(null);
}

// ---- scripts ----------------------------------------------------------------------------

const rows = new Map(); // script name -> its tbody and cells, kept so buttons stay put
let parkedAsked = 0;

function problem(label, message) {
  const w = where(message);
  return el('div', { class: 'problem' },
    el('span', { class: 'where' }, w ? `${label} ${w.file}, line ${w.line}: ` : `${label}: `),
    w ? w.text : message.split('\n')[0],
    el('details', {}, el('summary', {}, 'the whole message'), el('pre', {}, message)));
}

function makeRow(sc) {
  const cells = {};
  const td = (key, cls) => (cells[key] = el('td', { class: `${key} ${cls || ''}` }));
  const reload = el('button', { type: 'button', class: 'reload', onclick: () => reloadScript(sc.name) }, 'Reload');
  const replay = el('button', { type: 'button', class: 'replay', disabled: true, hidden: sc.kind !== 'handler',
    onclick: () => replayParked(sc.name) }, 'Replay parked');
  const problems = el('div', { class: 'problems' });
  const note = el('div', { class: 'note hint' });
  const parked = el('ul', { class: 'parked hint' });
  const more = el('tr', { class: 'more', hidden: true }, el('td', { colSpan: 9 }, problems, note, parked));
  const tbody = el('tbody', { class: 'script', dataset: { script: sc.name } },
    el('tr', { class: 'main' }, el('td', {}, el('strong', {}, sc.name), el('div', { class: 'hint' }, sc.file)),
      td('kind'), td('state'), td('position', 'num'), td('lag', 'num'), td('rate', 'num'),
      td('reloads', 'num'), td('parked-count', 'num'), el('td', {}, reload, ' ', replay)),
    more);
  const r = { tbody, cells, reload, replay, problems, note, parked, more, kind: sc.kind };
  rows.set(sc.name, r);
  $('scripts-table').append(tbody);
  return r;
}

function renderScripts(poll) {
  const seen = new Set();
  const none = live.scripts.length === 0;
  $('no-scripts').hidden = !none;
  $('scripts-table').hidden = none;
  $('reload-all').hidden = none;
  for (const sc of live.scripts) {
    seen.add(sc.name);
    const r = rows.get(sc.name) || makeRow(sc);
    const c = r.cells;
    c.kind.textContent = sc.kind || '–';
    c.state.textContent = sc.state;
    c.state.className = 'state state-' + sc.state.split(' ')[0];
    c.position.textContent = count(sc.position);
    c.lag.textContent = count(sc.lag);
    c.rate.textContent = (sc.events_per_second || 0).toFixed(1);
    c.reloads.textContent = count(sc.reloads);
    r.kind = sc.kind;
    r.replay.hidden = sc.kind !== 'handler';
    if (sc.kind !== 'handler') c['parked-count'].textContent = '–';
    const text = `${sc.reload_error || ''}\n${sc.error || ''}`;
    if (r.problemText !== text) { // rebuilt only when it changes, so an open <details> stays open
      r.problemText = text;
      r.problems.replaceChildren(...[
        sc.reload_error && problem('The new version did not load (the old one runs on):', sc.reload_error),
        sc.error && problem(`Faulted at position ${sc.error_position}:`, sc.error),
      ].filter(Boolean));
    }
    showMore(r);
  }
  for (const [name, r] of rows) {
    if (!seen.has(name)) {
      r.tbody.remove();
      rows.delete(name);
    }
  }
  if (!poll || Date.now() - parkedAsked > 1900) refreshParked();
}

async function refreshParked() {
  parkedAsked = Date.now();
  await Promise.all([...rows].filter(([, r]) => r.kind === 'handler').map(async ([name, r]) => {
    try {
      const { value } = await api(`/scripts/${enc(name)}/parked`);
      r.cells['parked-count'].textContent = count(value.length);
      r.replay.disabled = value.length === 0 || r.busy;
      r.parked.replaceChildren(...value.slice(0, 5).map((p) => {
        const w = where(p.reason);
        return el('li', { title: p.reason }, `${p.type} at position ${p.original_position} of ${p.stream}: ` +
          (w ? `${w.file}, line ${w.line}: ${w.text}` : p.reason));
      }));
      if (value.length > 5) r.parked.append(el('li', {}, `… and ${count(value.length - 5)} more`));
      showMore(r);
    } catch (e) {
      r.cells['parked-count'].textContent = '?';
    }
  }));
}

// The row under a script's shows its errors, the last action's outcome and parked events.
function showMore(r) {
  r.more.hidden = !(r.problems.firstChild || r.note.textContent || r.parked.firstChild);
}

function say(r, text, bad) {
  r.note.textContent = text;
  r.note.classList.toggle('problem', !!bad);
  showMore(r);
}

async function reloadScript(name) {
  const r = rows.get(name);
  r.reload.disabled = true;
  try {
    const { value } = await api(`/scripts/${enc(name)}/reload`, { method: 'POST' });
    say(r, `Reloaded from ${value.file}: ${value.outcome}`);
  } catch (e) {
    say(r, `Reload failed: ${e.message}`, true);
  } finally {
    r.reload.disabled = false;
    await tick();
  }
}

async function reloadAll() {
  const note = $('scripts-note');
  try {
    const { value } = await api('/scripts/reload', { method: 'POST' });
    const failed = value.filter((o) => o.error);
    note.textContent = `Reloaded ${plural(value.length, 'script', 'scripts')}` +
      (failed.length ? `; ${failed.map((o) => o.name).join(', ')} did not load` : '');
  } catch (e) {
    note.textContent = e.message;
  }
  await tick();
}

async function replayParked(name) {
  const r = rows.get(name);
  r.busy = true;
  r.replay.disabled = true;
  try {
    const { value } = await api(`/scripts/${enc(name)}/parked/replay`, { method: 'POST' });
    const failed = value.failed || [];
    say(r, `Replayed ${plural(value.replayed, 'parked event', 'parked events')}: ` +
      `${count(value.succeeded)} handled, ${count(failed.length)} failed again` +
      failed.slice(0, 3).map((f) => ` · position ${f.position}: ${f.reason}`).join(''), failed.length > 0);
  } catch (e) {
    say(r, `Replay failed: ${e.message}`, true);
  } finally {
    r.busy = false;
    await refreshParked();
  }
}

// ---- query and command ------------------------------------------------------------------

function fillSelect(select, scripts, label) {
  const names = scripts.map((s) => s.name).join('\n');
  if (select.dataset.names === names) return;
  const keep = select.value;
  select.dataset.names = names;
  select.replaceChildren(...scripts.map((s) => el('option', { value: s.name }, label(s))));
  if (scripts.some((s) => s.name === keep)) select.value = keep;
  select.dispatchEvent(new Event('change'));
}

function fillSelects() {
  fillSelect($('query-script'), live.scripts.filter((s) => s.kind === 'projection' || s.kind === 'reducer'),
    (s) => `${s.name} (${s.kind})`);
  fillSelect($('command-decider'), live.scripts.filter((s) => s.kind === 'decider'), (s) => s.name);
}

function kindOf(name) {
  const s = live.scripts.find((x) => x.name === name);
  return s && s.kind;
}

function answer(box, bad, ...kids) {
  box.hidden = false;
  box.classList.toggle('bad', bad);
  box.replaceChildren(...kids.filter((k) => k !== null));
}

async function ask(ev) {
  ev.preventDefault();
  const name = $('query-script').value;
  const what = $('query-name').value.trim();
  const box = $('query-answer');
  let path;
  if (kindOf(name) === 'reducer') {
    path = `/reducers/${enc(name)}/${enc(what)}`;
  } else {
    const q = new URLSearchParams();
    for (const a of $('query-args').value.split('\n')) if (a.trim()) q.append('arg', a.trim());
    const query = q.toString();
    path = `/projections/${enc(name)}` + (what ? `/${enc(what)}` : '') + (query ? `?${query}` : '');
  }
  try {
    const { value, headers } = await api(path);
    answer(box, false, el('div', { class: 'hint' }, `GET ${decodeURI(path)} · as of position ${headers.get('X-Moonlog-Position')}`),
      el('pre', { class: 'value' }, JSON.stringify(value, null, 2)));
  } catch (e) {
    answer(box, true, e.message);
  }
}

async function command(ev) {
  ev.preventDefault();
  const decider = $('command-decider').value;
  const name = $('command-name').value.trim();
  const args = $('command-args').value.trim() || '{}';
  const box = $('command-answer');
  try {
    const parsed = JSON.parse(args);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
  } catch (e) {
    return answer(box, true, `The arguments must be a JSON object, like {"id": 1}: ${e.message}`);
  }
  try {
    const { value } = await api(`/commands/${enc(decider)}/${enc(name)}`, { method: 'POST', body: args });
    answer(box, false,
      el('div', { class: 'outcome' }, `Accepted: ${plural(value.events.length, 'event', 'events')} appended to ` +
        `${value.stream}, now at version ${value.version}`),
      el('pre', { class: 'value' }, JSON.stringify(value.events, null, 2)));
  } catch (e) {
    if (e.code === 'rejected') {
      const details = e.body.error.details;
      answer(box, true, el('div', { class: 'outcome' }, `Rejected: ${e.message}`),
        details ? el('pre', {}, JSON.stringify(details, null, 2)) : null);
    } else {
      answer(box, true, el('div', { class: 'outcome' }, e.message));
    }
  }
}

// ---- navigation -------------------------------------------------------------------------

const VIEWS = ['overview', 'streams', 'live', 'scripts', 'ask'];
let searched = false;

function currentView() {
  const v = location.hash.slice(1).split('/')[0];
  return VIEWS.includes(v) ? v : 'overview';
}

function show() {
  const view = currentView();
  for (const v of VIEWS) $('view-' + v).hidden = v !== view;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('current', a.dataset.view === view);
  if (view === 'overview') renderOverview();
  if (view === 'streams') {
    if (!searched) searchStreams(false);
    searched = true;
    const rest = location.hash.split('/').slice(1).join('/');
    if (rest) openStream(decodeURIComponent(rest));
  }
  if (view === 'live' && !following.follow && !following.paused) follow($('live-pattern').value.trim() || '$all');
  if (view === 'scripts') renderScripts(false);
  if (view === 'ask') fillSelects();
}

function start() {
  $('forget-token').hidden = !token.value;
  $('forget-token').onclick = () => {
    sessionStorage.removeItem('moonlog.token');
    token.value = null;
    $('forget-token').hidden = true;
  };
  $('streams-form').onsubmit = (ev) => { ev.preventDefault(); searchStreams(false); };
  $('streams-more').onclick = () => searchStreams(true);
  $('stream-refresh').onclick = () => openStream(streams.shown);
  $('stream-older').onclick = () => openStream(streams.shown, streams.oldest - 1);
  $('live-form').onsubmit = (ev) => { ev.preventDefault(); follow($('live-pattern').value.trim() || '$all'); };
  $('live-pause').onclick = pause;
  $('reload-all').onclick = reloadAll;
  $('query-form').onsubmit = ask;
  $('query-script').onchange = () => {
    const reducer = kindOf($('query-script').value) === 'reducer';
    $('query-what').textContent = reducer ? 'Stream' : 'Query';
    $('query-name').placeholder = reducer ? 'e.g. account-1' : 'empty: the whole state';
    $('query-args').disabled = reducer;
  };
  $('command-form').onsubmit = command;
  window.addEventListener('hashchange', show);
  show();
  pollForever();
}

start();
