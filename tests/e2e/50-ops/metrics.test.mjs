// Operations: /metrics in strict Prometheus text format 0.0.4 with counters that match the
// traffic each test sent, /readyz and /healthz, and the log formats (text, logfmt, json)
// with no secret ever reaching the log. Every wait is bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import {
  startHerald, rawConnect, rawWs, buildRequest, sleep, withTimeout, waitUntil,
} from '../helpers/herald.mjs';

// ------------------------------------------------------------------------------------
// A strict parser of the text exposition format 0.0.4.

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const FLOAT = /^[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|Inf|NaN)$/;

function parseFloatStrict(s, where) {
  assert.match(s, FLOAT, `${where}: not a float: ${JSON.stringify(s)}`);
  if (/Inf$/.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  return Number(s);
}

// Labels inside {...}: name="value" pairs, comma-separated, values with \\ \" \n escapes only.
function parseLabels(s, where) {
  const labels = {};
  let i = 0;
  while (i < s.length) {
    const eq = s.indexOf('=', i);
    assert.ok(eq > i, `${where}: label without '='`);
    const name = s.slice(i, eq);
    assert.match(name, LABEL, `${where}: bad label name ${JSON.stringify(name)}`);
    assert.ok(!name.startsWith('__'), `${where}: reserved label name ${name}`);
    assert.ok(!(name in labels), `${where}: label ${name} twice`);
    assert.equal(s[eq + 1], '"', `${where}: label value not quoted`);
    let j = eq + 2;
    let v = '';
    for (;;) {
      assert.ok(j < s.length, `${where}: unterminated label value`);
      const c = s[j];
      if (c === '"') break;
      if (c === '\\') {
        const e = s[j + 1];
        assert.ok(e === '\\' || e === '"' || e === 'n', `${where}: bad escape \\${e}`);
        v += e === 'n' ? '\n' : e;
        j += 2;
        continue;
      }
      assert.notEqual(c, '\n', `${where}: raw newline in label value`);
      v += c;
      j++;
    }
    labels[name] = v;
    i = j + 1;
    if (i < s.length) {
      assert.equal(s[i], ',', `${where}: expected ',' between labels`);
      i++;
      assert.ok(i < s.length, `${where}: trailing ',' in labels`);
    }
  }
  return labels;
}

// The family a sample name belongs to, for a family of type t.
function sampleFits(family, type, name) {
  if (type === 'histogram') return [`${family}_bucket`, `${family}_sum`, `${family}_count`].includes(name);
  if (type === 'summary') return [family, `${family}_sum`, `${family}_count`].includes(name);
  return name === family;
}

export function parseMetrics(text) {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const families = new Map();
  const seen = new Set();
  let current = null;
  const lines = text.slice(0, -1).split('\n');
  for (const [n, line] of lines.entries()) {
    const where = `line ${n + 1} ${JSON.stringify(line)}`;
    assert.notEqual(line, '', `${where}: empty line`);
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      assert.ok(m, `${where}: only # HELP and # TYPE comments are expected`);
      const [, kind, name, rest] = m;
      assert.match(name, NAME, `${where}: bad metric name`);
      let f = families.get(name);
      if (!f) {
        assert.ok(!current || current.name !== name);
        f = { name, help: null, type: null, samples: [] };
        families.set(name, f);
        current = f;
      }
      assert.equal(current, f, `${where}: metadata of ${name} after another family started`);
      assert.equal(f.samples.length, 0, `${where}: metadata after samples`);
      if (kind === 'HELP') {
        assert.equal(f.help, null, `${where}: HELP twice`);
        assert.ok(!/\\[^\\n]/.test(rest.replace(/\\\\/g, '')), `${where}: bad escape in HELP`);
        assert.ok(rest.length > 0, `${where}: empty HELP`);
        f.help = rest;
      } else {
        assert.equal(f.type, null, `${where}: TYPE twice`);
        assert.ok(TYPES.has(rest), `${where}: unknown type ${rest}`);
        f.type = rest;
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `${where}: not a sample line`);
    const [, name, rawLabels, rawValue] = m;
    assert.ok(current, `${where}: sample before any family`);
    assert.ok(current.help !== null && current.type !== null, `${where}: sample before HELP and TYPE`);
    assert.ok(sampleFits(current.name, current.type, name), `${where}: sample outside family ${current.name}`);
    if (current.type === 'counter') assert.match(name, /_total$/, `${where}: counters end in _total`);
    const labels = rawLabels === undefined ? {} : parseLabels(rawLabels, where);
    const value = parseFloatStrict(rawValue, where);
    if (current.type === 'counter') assert.ok(value >= 0, `${where}: negative counter`);
    const key = `${name}{${Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',')}}`;
    assert.ok(!seen.has(key), `${where}: duplicate series ${key}`);
    seen.add(key);
    current.samples.push({ name, labels, value });
  }
  for (const f of families.values()) {
    assert.ok(f.type && f.help, `${f.name}: HELP and TYPE`);
    if (f.type === 'histogram') checkHistogram(f);
  }
  return families;
}

function checkHistogram(f) {
  const groups = new Map();
  const group = (labels) => {
    const rest = Object.entries(labels).filter(([k]) => k !== 'le').sort();
    const k = JSON.stringify(rest);
    if (!groups.has(k)) groups.set(k, { buckets: [], sum: null, count: null });
    return groups.get(k);
  };
  for (const s of f.samples) {
    const g = group(s.labels);
    if (s.name.endsWith('_bucket')) {
      assert.ok('le' in s.labels, `${f.name}: bucket without le`);
      g.buckets.push({ le: parseFloatStrict(s.labels.le, `${f.name} le`), v: s.value });
    } else if (s.name.endsWith('_sum')) g.sum = s.value;
    else g.count = s.value;
  }
  for (const g of groups.values()) {
    assert.ok(g.buckets.length > 0, `${f.name}: no buckets`);
    for (let i = 1; i < g.buckets.length; i++) {
      assert.ok(g.buckets[i].le > g.buckets[i - 1].le, `${f.name}: le not increasing`);
      assert.ok(g.buckets[i].v >= g.buckets[i - 1].v, `${f.name}: buckets not cumulative`);
    }
    assert.equal(g.buckets.at(-1).le, Infinity, `${f.name}: last bucket is +Inf`);
    assert.notEqual(g.sum, null, `${f.name}: _sum missing`);
    assert.notEqual(g.count, null, `${f.name}: _count missing`);
    assert.equal(g.buckets.at(-1).v, g.count, `${f.name}: +Inf bucket equals _count`);
  }
}

// The sum of a family's samples whose labels include `match`.
function total(f, name, match = {}, sample = name) {
  const fam = f.get(name);
  assert.ok(fam, `metric family ${name} is exported`);
  return fam.samples
    .filter((s) => s.name === sample && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

async function scrape(http) {
  const res = await fetch(`${http}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return parseMetrics(await res.text());
}

// ------------------------------------------------------------------------------------
// Clients.

function openWs(url, opts = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts.protocols, { perMessageDeflate: false, ...opts.ws });
    ws.got = [];
    ws.closed = null;
    ws.on('message', (d) => ws.got.push(d.toString()));
    ws.on('close', (code) => { ws.closed = code; });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  }), 5000, `open ${url}`);
}

// Sends a raw request and reads the response status (the connection is then dropped).
async function rawStatus(port, request) {
  const c = await rawConnect(port);
  try {
    await c.sendRaw(Buffer.from(request, 'latin1'));
    return (await c.readHttpResponse()).status;
  } finally { c.destroy(); }
}

// ------------------------------------------------------------------------------------

test('/metrics is strict text format and its counters follow the traffic', async () => {
  const srv = await startHerald(['--threads', '2', '--max-message', '1K', '--handshake-timeout', '1']);
  const http = srv.url.replace('ws:', 'http:');
  const opened = [];
  try {
    const m0 = await scrape(http);
    const rejected0 = (r) => total(m0, 'herald_handshakes_rejected_total', { reason: r });
    const limit0 = (l) => total(m0, 'herald_limit_rejections_total', { limit: l });
    const lat0 = total(m0, 'herald_publish_latency_seconds', {}, 'herald_publish_latency_seconds_count');

    // N echo messages in, N out, over 3 connections.
    const echo = await Promise.all([0, 1, 2].map(() => openWs(`${srv.url}/ws`)));
    opened.push(...echo);
    for (const ws of echo) for (let i = 0; i < 5; i++) ws.send(`m${i}`);
    await waitUntil(() => echo.every((ws) => ws.got.length === 5), 5000, 'echoes');

    // Refusals: bad Origin (403), not a WebSocket (426), unknown path (404), a head over
    // --max-header (431), a request not finished within --handshake-timeout.
    assert.equal(await rawStatus(srv.port, buildRequest({ port: srv.port, headers: { Origin: 'http://evil.example' } })), 403);
    assert.equal((await fetch(`${http}/ws`)).status, 426);
    assert.equal(await rawStatus(srv.port, buildRequest({ port: srv.port, path: '/nope' })), 404);
    assert.equal(await rawStatus(srv.port, buildRequest({ port: srv.port, headers: { 'X-Big': 'x'.repeat(9000) } })), 431);
    const slow = await rawConnect(srv.port);
    await slow.sendRaw('GET /ws HTTP/1.1\r\nHost: x\r\n');
    assert.ok(await slow.waitForTcpClose(3000), 'an unfinished request is cut at the handshake timeout');
    slow.destroy();

    // A 2 KiB message over --max-message 1K: closed with 1009.
    const big = await openWs(`${srv.url}/ws`);
    big.send('x'.repeat(2048));
    await waitUntil(() => big.closed !== null, 5000, 'the 1009 close');
    assert.equal(big.closed, 1009);

    // K publishes to a channel with one subscriber: K latency observations.
    const sub = await openWs(`${srv.url}/pubsub`);
    opened.push(sub);
    sub.send(JSON.stringify({ type: 'subscribe', id: 1, channel: 'ops.metrics' }));
    await waitUntil(() => sub.got.some((t) => JSON.parse(t).type === 'ok'), 5000, 'subscribe ok');
    const K = 7;
    for (let i = 0; i < K; i++) {
      const r = await fetch(`${http}/api/publish`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ channel: 'ops.metrics', data: { i } }),
      });
      assert.equal(r.status, 200);
    }
    await waitUntil(() => sub.got.filter((t) => JSON.parse(t).type === 'message').length === K, 5000, 'K messages');

    // A STOMP session.
    const stomp = await openWs(`${srv.url}/stomp`, { protocols: ['v12.stomp'] });
    opened.push(stomp);

    const m = await scrape(http);
    const d = (name, match, sample) => total(m, name, match, sample) - total(m0, name, match, sample);

    // gauges: per endpoint and thread
    assert.equal(total(m, 'herald_connections', { endpoint: '/ws' }), 3);
    assert.equal(total(m, 'herald_connections', { endpoint: '/pubsub' }), 1);
    assert.equal(total(m, 'herald_connections', { endpoint: '/stomp' }), 1);
    assert.equal(total(m, 'herald_connections', { endpoint: '/broadcast' }), 0);
    for (const s of m.get('herald_connections').samples) assert.match(s.labels.thread, /^[01]$/);
    // one "none" sample per endpoint and thread, plus the subprotocol in use on /stomp
    const endpoints = new Set(m.get('herald_connections').samples.map((s) => s.labels.endpoint));
    for (const e of ['/ws', '/broadcast', '/pubsub', '/stomp']) assert.ok(endpoints.has(e), e);
    assert.equal(m.get('herald_connections').samples.length, endpoints.size * 2 + 1, 'every endpoint on every thread');
    assert.equal(total(m, 'herald_connections', { endpoint: '/stomp', protocol: 'v12.stomp' }), 1);
    assert.equal(total(m, 'herald_connections', { endpoint: '/ws', protocol: 'none' }), 3);
    assert.equal(total(m, 'herald_stomp_sessions'), 1);
    assert.ok(total(m, 'herald_channels') >= 1);
    assert.ok(total(m, 'herald_queued_output_bytes') >= 0);

    // counters: exactly what was sent
    assert.equal(d('herald_messages_received_total'), 15 + 1); // echoes and the subscribe (not the 2 KiB one)
    assert.ok(d('herald_messages_sent_total') >= 15 + 1 + K);
    assert.ok(d('herald_received_bytes_total') >= 15 * 8 + 2048);
    assert.ok(d('herald_sent_bytes_total') >= 15 * 4);
    assert.equal(d('herald_handshakes_accepted_total'), 3 + 1 + 1 + 1);
    assert.ok(d('herald_connections_accepted_total') >= 3 + 1 + 1 + 1 + 5);
    assert.equal(total(m, 'herald_handshakes_rejected_total', { reason: 'origin' }) - rejected0('origin'), 1);
    assert.equal(total(m, 'herald_handshakes_rejected_total', { reason: 'upgrade_required' }) - rejected0('upgrade_required'), 1);
    assert.equal(total(m, 'herald_handshakes_rejected_total', { reason: 'not_found' }) - rejected0('not_found'), 1);
    assert.equal(total(m, 'herald_handshakes_rejected_total', { reason: 'too_large' }) - rejected0('too_large'), 1);
    assert.equal(total(m, 'herald_handshakes_rejected_total', { reason: 'timeout' }) - rejected0('timeout'), 1);
    assert.equal(total(m, 'herald_limit_rejections_total', { limit: 'max_message' }) - limit0('max_message'), 1);
    assert.equal(total(m, 'herald_limit_rejections_total', { limit: 'max_header' }) - limit0('max_header'), 1);
    assert.equal(d('herald_protocol_errors_total'), 1);
    assert.equal(d('herald_publish_latency_seconds', {}, 'herald_publish_latency_seconds_count'), K);
    assert.equal(lat0, 0);
    assert.ok(total(m, 'herald_publish_latency_seconds', {}, 'herald_publish_latency_seconds_sum') > 0);

    // the rest of the families
    assert.equal(total(m, 'herald_cluster_enabled'), 0);
    assert.equal(m.get('herald_build_info').samples.length, 1);
    const now = Date.now() / 1000;
    const start = total(m, 'process_start_time_seconds');
    assert.ok(start > now - 3600 && start <= now + 5, `process_start_time_seconds ${start} is about now`);
    assert.ok(total(m, 'process_resident_memory_bytes') > 1 << 20);
    assert.ok(total(m, 'process_virtual_memory_bytes') >= total(m, 'process_resident_memory_bytes'));
    assert.ok(total(m, 'process_open_fds') >= 5);
    assert.ok(total(m, 'process_max_fds') >= total(m, 'process_open_fds'));
    assert.ok(total(m, 'process_cpu_seconds_total') >= 0);
    for (const [name, f] of m) {
      assert.ok(name.startsWith('herald_') || name.startsWith('process_'), `${name}: prefix`);
      if (f.type === 'counter') assert.match(name, /_total$/);
    }
  } finally {
    for (const ws of opened) ws.terminate();
    await srv.stop();
  }
});

test('a stalled subscriber shows in queued output bytes and max_backlog rejections', async () => {
  const srv = await startHerald(['--threads', '2', '--max-backlog', '64K', '--namespace', 'flood.*:slow=drop-newest']);
  const http = srv.url.replace('ws:', 'http:');
  const slow = await rawWs(srv.port, { path: '/pubsub' });
  try {
    await slow.sendText(JSON.stringify({ type: 'subscribe', id: 1, channel: 'flood.a' }));
    assert.equal(JSON.parse((await slow.readMessage({ timeoutMs: 3000 })).payload.toString()).type, 'ok');
    slow.socket.pause(); // reads nothing from here on
    // Publish until the server holds output for it: past what the kernel's socket buffers
    // take from a client that does not read (a send buffer of up to tcp_wmem's 4 MB), the
    // rest waits in the connection's queue, bounded by --max-backlog (drop-newest).
    const data = 'x'.repeat(30000);
    let m;
    let sent = 0;
    for (; sent < 2000; sent += 20) {
      await Promise.all(Array.from({ length: 20 }, () => fetch(`${http}/api/publish`, {
        method: 'POST', body: JSON.stringify({ channel: 'flood.a', data }),
      }).then((r) => assert.equal(r.status, 200))));
      m = await scrape(http);
      if (total(m, 'herald_queued_output_bytes') > 0 && total(m, 'herald_dropped_messages_total') > 0) break;
    }
    const queued = total(m, 'herald_queued_output_bytes');
    assert.ok(queued > 0, 'the stalled queue is visible');
    assert.ok(queued < 64 * 1024 + 3 * 31000, `bounded by --max-backlog (${queued})`);
    const N = sent + 20;
    assert.ok(total(m, 'herald_limit_rejections_total', { limit: 'max_backlog' }) > 0);
    assert.ok(total(m, 'herald_dropped_messages_total') > 0);
    const delivered = total(m, 'herald_publish_latency_seconds', {}, 'herald_publish_latency_seconds_count');
    assert.ok(delivered > 0 && delivered < N, `one observation per queued delivery (${delivered})`);
  } finally {
    slow.destroy();
    await srv.stop();
  }
});

test('the parser refuses what is not text format 0.0.4', () => {
  const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="1"} 2\n';
  parseMetrics(ok);
  const bad = [
    'a_total 1\n', // no HELP/TYPE
    '# HELP a_total A.\n# TYPE a_total counter\na_total 1', // no final newline
    '# HELP a A.\n# TYPE a counter\na 1\n', // counter without _total
    '# HELP a A.\n# TYPE a gauge\na{x="1",} 1\n', // trailing comma
    '# HELP a A.\n# TYPE a gauge\na{x="\\t"} 1\n', // bad escape
    '# HELP a A.\n# TYPE a gauge\na one\n', // not a float
    '# HELP a A.\n# TYPE a gauge\na 1\na 2\n', // duplicate series
    '# HELP a A.\n# TYPE a gauge\nb 1\n', // outside its family
    '# HELP a A.\n# TYPE a frequency\na 1\n', // unknown type
    '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', // not cumulative
    '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n', // +Inf != count
    '# HELP a A.\n# TYPE a gauge\n\na 1\n', // empty line
    '# a comment\n# HELP a A.\n# TYPE a gauge\na 1\n', // other comments
  ];
  for (const text of bad) assert.throws(() => parseMetrics(text), undefined, JSON.stringify(text));
});

test('/readyz is 200 while serving; /healthz unchanged', async () => {
  const srv = await startHerald(['--threads', '2']);
  const http = srv.url.replace('ws:', 'http:');
  try {
    for (let i = 0; i < 4; i++) { // each thread answers on its own
      const r = await fetch(`${http}/readyz`);
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type'), /^application\/json/);
      assert.deepEqual(await r.json(), { status: 'ready' });
    }
    const head = await fetch(`${http}/readyz`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    const post = await fetch(`${http}/readyz`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    const h = await fetch(`${http}/healthz`);
    assert.equal(h.status, 200);
    assert.deepEqual(await h.json(), { status: 'ok' });
  } finally { await srv.stop(); }
});

// ------------------------------------------------------------------------------------
// Logs.

// Traffic that makes per-connection log lines at debug: accepts, a refused handshake, a
// protocol error (1009), a clean echo.
async function logTraffic(srv) {
  const ws = await openWs(`${srv.url}/ws`);
  ws.send('hello "quoted" \\ text');
  await waitUntil(() => ws.got.length === 1, 5000, 'echo');
  ws.close();
  assert.equal(await rawStatus(srv.port, buildRequest({ port: srv.port, path: '/no"pe\\x' })), 404);
  const big = await openWs(`${srv.url}/ws`);
  big.send('x'.repeat(2048));
  await waitUntil(() => big.closed !== null, 5000, '1009');
}

const LOGFMT_LINE = /^time=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) level=(error|warn|info|debug) msg="((?:[^"\\]|\\.)*)"((?: [A-Za-z0-9_.-]+=(?:"(?:[^"\\]|\\.)*"|[^ "=\\]+))*)$/;

async function stderrLines(srv) {
  await srv.stop();
  return srv.stderr().split('\n').filter((l) => l !== '');
}

test('--log-format json: every line is a JSON object with time, level, msg; conn ids are members', async () => {
  const srv = await startHerald(['--log-format', 'json', '--log-level', 'debug', '--max-message', '1K']);
  let lines;
  try {
    await logTraffic(srv);
  } finally { lines = await stderrLines(srv); }
  assert.ok(lines.length >= 5, `some log lines: ${lines.join('\n')}`);
  const objs = lines.map((l) => {
    let o;
    assert.doesNotThrow(() => { o = JSON.parse(l); }, `not JSON: ${l}`);
    assert.equal(typeof o, 'object');
    assert.match(o.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(['error', 'warn', 'info', 'debug'].includes(o.level), l);
    assert.equal(typeof o.msg, 'string');
    return o;
  });
  const withConn = objs.filter((o) => 'conn' in o);
  assert.ok(withConn.length >= 3, 'per-connection events carry conn');
  for (const o of withConn) assert.equal(typeof o.conn, 'number');
  const refused = objs.find((o) => o.msg === 'handshake refused');
  assert.ok(refused, 'the refused handshake is logged');
  assert.equal(refused.status, 404);
  assert.ok(objs.some((o) => o.code === 1009), 'the 1009 close is logged with its code');
});

test('--log-format logfmt: every line is time= level= msg="..." then key=value pairs', async () => {
  const srv = await startHerald(['--log-format', 'logfmt', '--log-level', 'debug', '--max-message', '1K']);
  let lines;
  try {
    await logTraffic(srv);
  } finally { lines = await stderrLines(srv); }
  assert.ok(lines.length >= 5);
  for (const l of lines) assert.match(l, LOGFMT_LINE);
  assert.ok(lines.some((l) => / conn=\d+( |$)/.test(l)), 'conn=ID on per-connection lines');
  assert.ok(lines.some((l) => /msg="handshake refused" conn=\d+ status=404 reason="no WebSocket endpoint at this path"/.test(l)));
});

test('--log-format text (default): time level message key=value', async () => {
  const srv = await startHerald(['--log-level', 'debug', '--max-message', '1K']);
  let lines;
  try {
    await logTraffic(srv);
  } finally { lines = await stderrLines(srv); }
  for (const l of lines) assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn|info|debug) \S/);
  assert.ok(lines.some((l) => / debug accepted on thread \d+ conn=\d+$/.test(l)));
  assert.ok(lines.some((l) => / debug handshake refused conn=\d+ status=404 reason="no WebSocket endpoint at this path"$/.test(l)));
});

test('secrets in query strings and headers never reach the log, even at debug', async () => {
  for (const format of ['text', 'json']) {
    const srv = await startHerald([
      '--log-level', 'debug', '--log-format', format, '--access-log', 'on', '--api-key', 'secretApiKey0',
    ]);
    const http = srv.url.replace('ws:', 'http:');
    let text;
    try {
      const headers = { Authorization: 'Bearer secretBearer1', Cookie: 'sid=secretCookie2', 'X-API-Key': 'secretApiKey0' };
      const ws = await openWs(`${srv.url}/ws?token=secretToken3&room=a`, { ws: { headers } });
      ws.send('x');
      await waitUntil(() => ws.got.length === 1, 5000, 'echo');
      ws.close();
      const ps = await openWs(`${srv.url}/pubsub?access_token=secretToken4&password=secretPass5`);
      ps.close();
      assert.equal(await rawStatus(srv.port, buildRequest({ port: srv.port, path: '/nope?api_key=secretKey6', headers })), 404);
      assert.equal(await rawStatus(srv.port, buildRequest({ port: srv.port, path: '/ws?key=secretKey7', headers: { Origin: 'http://evil.example' } })), 403);
      const r = await fetch(`${http}/api/channels?token=secretToken8`, { headers: { 'X-API-Key': 'secretApiKey0' } });
      assert.equal(r.status, 200);
      const r2 = await fetch(`${http}/api/channels`, { headers: { Authorization: 'Bearer secretWrong9' } });
      assert.equal(r2.status, 401);
      await sleep(100);
    } finally {
      await srv.stop();
      text = srv.stderr();
    }
    assert.ok(text.length > 0);
    assert.doesNotMatch(text, /secret/i, `[${format}] a secret in the log:\n${text}`);
  }
});
