// The admin page: a live view of the server from /admin/ws (one JSON snapshot a second,
// docs/web.md). Counters in a snapshot are cumulative; rates are differences between two
// snapshots. The chart is drawn on a canvas, by hand: no chart library.
const $ = (id) => document.getElementById(id);
const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
const WINDOW_S = 300; // chart: the last five minutes
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/; // what a subprotocol may hold

const keyCard = $('key-card');
const keyInput = $('key');
const keyNote = $('key-note');
const feed = $('feed');
const feedText = $('feed-text');
let key = sessionStorage.getItem('herald.apiKey') || '';
let ws = null;
let retryTimer = null;
let prev = null;
const points = []; // {t, in, out}

function setFeed(state, text) {
  feed.dataset.state = state;
  feedText.textContent = text;
}

const fmt = (n) => (n >= 100 ? Math.round(n).toLocaleString() : (Math.round(n * 10) / 10).toString());
const bytes = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`);

function rows(tbody, list) {
  tbody.replaceChildren(...list.map((cells) => {
    const tr = document.createElement('tr');
    cells.forEach((c, i) => {
      const td = document.createElement(i === 0 ? 'th' : 'td');
      if (i === 0) td.scope = 'row';
      else td.className = 'num';
      td.textContent = String(c);
      tr.append(td);
    });
    return tr;
  }));
}

function sum(obj) {
  return Object.values(obj || {}).reduce((a, b) => a + b, 0);
}

function show(s) {
  const dt = prev ? (s.time - prev.time) / 1000 : 0;
  const rate = (a, b) => (dt > 0 ? Math.max(0, (a - b) / dt) : 0);
  const inRate = prev ? rate(s.messages_in, prev.messages_in) : 0;
  const outRate = prev ? rate(s.messages_out, prev.messages_out) : 0;
  $('s-conns').textContent = s.connections.toLocaleString();
  $('s-in').textContent = prev ? fmt(inRate) : '–';
  $('s-out').textContent = prev ? fmt(outRate) : '–';
  $('s-chans').textContent = s.channels_total.toLocaleString();
  $('s-slow').textContent = s.slow_consumer_closes.toLocaleString();
  $('s-dropped').textContent = s.dropped_messages.toLocaleString();
  $('s-rejected').textContent = (sum(s.rejected) + sum(s.limit_rejections)).toLocaleString();
  $('s-proto').textContent = s.protocol_errors.toLocaleString();

  rows($('threads'), s.threads.map((t, i) => {
    const p = prev && prev.threads[i];
    const cpu = p && dt > 0 ? Math.min(100, Math.max(0, (t.cpu_ms - p.cpu_ms) / (dt * 10))) : null;
    return [`#${t.thread}`, t.connections, p ? fmt(rate(t.messages_in, p.messages_in)) : '–',
      p ? fmt(rate(t.messages_out, p.messages_out)) : '–', cpu === null ? '–' : `${fmt(cpu)}%`,
      `${t.lag_ms.toFixed(2)} ms`, bytes(t.queued_bytes), t.channels];
  }));
  rows($('channels'), s.channels.length ? s.channels.map((c) => [c.channel, c.subscribers]) : [['(none)', '']]);
  const rej = [
    ...Object.entries(s.rejected).filter(([, n]) => n > 0).map(([k, n]) => [`handshake: ${k}`, n]),
    ...Object.entries(s.limit_rejections).filter(([, n]) => n > 0).map(([k, n]) => [`limit: ${k}`, n]),
  ];
  rows($('rejections'), rej.length ? rej : [['(none)', '']]);

  if (prev) {
    points.push({ t: s.time, in: inRate, out: outRate });
    while (points.length && points[0].t < s.time - WINDOW_S * 1000) points.shift();
    draw();
  }
  prev = s;
}

function draw() {
  const canvas = $('chart');
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const g = canvas.getContext('2d');
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const left = 44;
  const bottom = h - 18;
  const top = 8;
  const max = Math.max(1, ...points.map((p) => Math.max(p.in, p.out)));
  const scale = niceCeil(max);
  const now = points.length ? points[points.length - 1].t : Date.now();
  const x = (t) => left + ((t - (now - WINDOW_S * 1000)) / (WINDOW_S * 1000)) * (w - left - 4);
  const y = (v) => bottom - (v / scale) * (bottom - top);
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#4a4a52';
  g.strokeStyle = '#c9ccd3';
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = (scale * i) / 4;
    g.beginPath();
    g.moveTo(left, y(v));
    g.lineTo(w - 4, y(v));
    g.stroke();
    g.fillText(fmt(v), 2, y(v) + 4);
  }
  for (let m = 0; m <= WINDOW_S / 60; m++) {
    g.textAlign = m === 0 ? 'right' : m === WINDOW_S / 60 ? 'left' : 'center';
    g.fillText(m ? `-${m}m` : 'now', x(now - m * 60000), h - 4);
  }
  g.textAlign = 'left';
  for (const [k, color] of [['in', '#0b57d0'], ['out', '#a3161a']]) {
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    points.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p[k])) : g.moveTo(x(p.t), y(p[k]))));
    g.stroke();
  }
  const last = points[points.length - 1];
  canvas.setAttribute('aria-label', last
    ? `Messages per second over the last ${Math.round((now - points[0].t) / 1000)} s; now ${fmt(last.in)} in, ${fmt(last.out)} out`
    : 'No data yet');
}

function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

/** Is a key needed, and is ours right? /api/stats answers 401 exactly when not. */
async function keyAccepted() {
  try {
    const res = await fetch('/api/stats', { headers: key ? { Authorization: `Bearer ${key}` } : {} });
    return res.status !== 401;
  } catch {
    return true; // the server is down: the feed's own retry says so
  }
}

async function connect() {
  clearTimeout(retryTimer);
  if (!(await keyAccepted())) {
    keyCard.hidden = false;
    keyNote.textContent = key ? 'That key was refused.' : '';
    setFeed('closed', 'API key needed');
    keyInput.focus();
    return;
  }
  keyCard.hidden = true;
  setFeed(prev ? 'reconnecting' : 'connecting', 'connecting…');
  const protocols = ['herald-admin'];
  let url = `${wsBase}/admin/ws`;
  if (key && TOKEN.test(key)) protocols.push(`herald-key.${key}`);
  else if (key) url += `?key=${encodeURIComponent(key)}`;
  const sock = new WebSocket(url, protocols);
  ws = sock;
  sock.onopen = () => setFeed('connected', 'live');
  sock.onmessage = (ev) => {
    let s;
    try {
      s = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (s.type === 'stats') show(s);
  };
  sock.onclose = () => {
    if (ws !== sock) return;
    ws = null;
    setFeed('reconnecting', 'feed lost, reconnecting in 2s');
    retryTimer = setTimeout(connect, 2000);
  };
}

$('key-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  key = keyInput.value;
  sessionStorage.setItem('herald.apiKey', key);
  connect();
});

window.addEventListener('resize', () => points.length && draw());
connect();
