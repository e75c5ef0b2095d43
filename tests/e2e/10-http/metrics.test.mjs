// GET /metrics: Prometheus text format (checked by a strict little parser), with the
// counters matching the traffic this test sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startHerald, sleep } from '../helpers/herald.mjs';

// Parses exposition format 0.0.4 strictly enough: every sample belongs to a family
// declared by HELP and TYPE lines before it; names and labels are well-formed.
function parse(text) {
  const families = new Map();
  let current = null;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line))) {
      current = { name: m[1], help: m[2], type: null, samples: [] };
      assert.ok(!families.has(m[1]), `family ${m[1]} declared twice`);
      families.set(m[1], current);
    } else if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      assert.equal(m[1], current?.name, `TYPE for ${m[1]} without its HELP`);
      current.type = m[2];
    } else if ((m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*)?\})? (-?[0-9.e+]+)$/.exec(line))) {
      const own = current?.type === 'histogram' ? ['_bucket', '_sum', '_count'].map((x) => current.name + x) : [current?.name];
      assert.ok(own.includes(m[1]), `sample ${m[1]} outside its family`);
      assert.ok(current.type, `sample ${m[1]} before TYPE`);
      if (current.type === 'counter') assert.match(m[1], /_total$/, 'counters end in _total');
      current.samples.push({ labels: m[3] || '', value: Number(m[5]) });
    } else {
      assert.fail(`not exposition format: ${JSON.stringify(line)}`);
    }
  }
  return families;
}

const sum = (f, name) => f.get(name).samples.reduce((a, s) => a + s.value, 0);

test('/metrics counts what the clients did', async () => {
  const srv = await startHerald(['--threads', '2']);
  const http = srv.url.replace('ws:', 'http:');
  try {
    const clients = await Promise.all(Array.from({ length: 3 }, () => new Promise((resolve, reject) => {
      const ws = new WebSocket(`${srv.url}/ws`);
      ws.got = 0;
      ws.on('message', () => { ws.got++; });
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    })));
    for (const ws of clients) for (let i = 0; i < 5; i++) ws.send(`m${i}`);
    while (clients.some((c) => c.got < 5)) await sleep(20);
    assert.equal((await fetch(`${http}/ws`)).status, 426); // a refused handshake
    const res = await fetch(`${http}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
    const f = parse(await res.text());
    assert.equal(sum(f, 'herald_connections'), 3);
    assert.equal(sum(f, 'herald_handshakes_accepted_total'), 3);
    assert.ok(sum(f, 'herald_handshakes_rejected_total') >= 1);
    assert.equal(sum(f, 'herald_messages_received_total'), 15);
    assert.equal(sum(f, 'herald_messages_sent_total'), 15);
    assert.equal(f.get('herald_connections').samples.filter((s) => s.labels.includes('endpoint="/ws"')).length, 2,
      'a sample per endpoint and thread');
    assert.deepEqual(f.get('herald_build_info').samples.map((s) => s.value), [1]);
    assert.equal((await fetch(`${http}/metrics`, { method: 'POST' })).status, 405);
    for (const c of clients) c.close();
  } finally { await srv.stop(); }
});
