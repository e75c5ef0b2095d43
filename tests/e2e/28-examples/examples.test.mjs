// The embedding examples (examples/*.c), each run as its own process and driven with
// npm `ws`: they must do what their header comments promise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import WebSocket from 'ws';

const dir = process.env.HERALD_EXAMPLES_DIR;

function startExample(name) {
  const proc = spawn(path.join(dir, `example_${name}`), ['0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`${name} did not start: ${err}`)); }, 10000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
      if (m && timer) {
        clearTimeout(timer);
        resolve({
          port: Number(m[1]),
          output: () => out,
          stop: () => new Promise((res) => {
            const kill = setTimeout(() => proc.kill('SIGKILL'), 5000);
            proc.once('exit', (code) => { clearTimeout(kill); res(code); });
            proc.kill('SIGTERM');
          }),
        });
      }
    });
    proc.once('exit', (code) => reject(new Error(`${name} exited with ${code}: ${err}`)));
  });
}

function open(url, protocols) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols);
    const inbox = [];
    const waiters = [];
    ws.on('message', (data, isBinary) => {
      const m = isBinary ? data : data.toString();
      const w = waiters.shift();
      if (w) w(m); else inbox.push(m);
    });
    ws.next = (ms = 5000) => (inbox.length ? Promise.resolve(inbox.shift()) : new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error('no message within ' + ms + ' ms')), ms);
      waiters.push((m) => { clearTimeout(t); res(m); });
    }));
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

test('example_echo echoes text and binary and reports open/close', { skip: !dir }, async () => {
  const ex = await startExample('echo');
  const ws = await open(`ws://127.0.0.1:${ex.port}/echo`);
  ws.send('hello');
  assert.equal(await ws.next(), 'hello');
  ws.send(Buffer.from([0, 1, 2, 255]));
  assert.deepEqual([...(await ws.next())], [0, 1, 2, 255]);
  ws.close(1000, 'bye');
  await new Promise((r) => ws.once('close', r));
  // subprotocols: the server's preference wins among those offered; none offered is fine
  const v = await open(`ws://127.0.0.1:${ex.port}/echo`, ['echo.v1', 'echo.v2']);
  assert.equal(v.protocol, 'echo.v2');
  const v1 = await open(`ws://127.0.0.1:${ex.port}/echo`, ['chat', 'echo.v1']);
  assert.equal(v1.protocol, 'echo.v1');
  v.close(); v1.close();
  assert.equal(await ex.stop(), 0);
  assert.match(ex.output(), /open: connection \d+ on thread \d+ protocol \(none\)/);
  assert.match(ex.output(), /protocol echo\.v2/);
  assert.match(ex.output(), /close: connection \d+ code 1000 reason 'bye'/);
});

test('example_broadcast relays every message to every member of the room', { skip: !dir }, async () => {
  const ex = await startExample('broadcast');
  const a = await open(`ws://127.0.0.1:${ex.port}/chat`);
  const b = await open(`ws://127.0.0.1:${ex.port}/chat`);
  const wanted = (ws, re) => (async () => {
    for (;;) { const m = await ws.next(); if (re.test(m)) return m; }
  })();
  const gotA = wanted(a, /^\d+: hi from a$/);
  const gotB = wanted(b, /^\d+: hi from a$/);
  a.send('hi from a');
  assert.match(await gotA, /hi from a/);
  assert.match(await gotB, /hi from a/);
  // the server-side timer announces the head count from a worker thread
  assert.match(await wanted(b, /^\* \d+ online$/), /\* 2 online/);
  a.close(); b.close();
  assert.equal(await ex.stop(), 0);
});

test('example_order_status pushes only the subscribed order, from any thread', { skip: !dir }, async () => {
  const ex = await startExample('order_status');
  const a = await open(`ws://127.0.0.1:${ex.port}/orders`);
  const b = await open(`ws://127.0.0.1:${ex.port}/orders`);
  a.send('subscribe 42');
  assert.equal(await a.next(), 'subscribed 42');
  b.send('subscribe 43');
  assert.equal(await b.next(), 'subscribed 43');
  b.send('update 42 shipped');
  assert.equal(await b.next(), 'ok');
  assert.deepEqual(JSON.parse(await a.next()), { order: '42', status: 'shipped' });
  // b (order 43) must not see order 42's update: the next thing b gets is its own reply
  b.send('bogus');
  assert.match(await b.next(), /^error expected/);
  // the application's backend thread moves order 1001 along its life-cycle
  a.send('subscribe 1001');
  assert.equal(await a.next(), 'subscribed 1001');
  const steps = ['placed', 'paid', 'packed', 'shipped', 'delivered'];
  const s1 = JSON.parse(await a.next(2000));
  const s2 = JSON.parse(await a.next(2000));
  assert.equal(s1.order, '1001');
  assert.equal(steps[(steps.indexOf(s1.status) + 1) % 5], s2.status);
  a.send('unsubscribe 42');
  // drain until the reply: backend updates for 1001 may interleave
  for (;;) { const m = await a.next(); if (m === 'unsubscribed 42') break; }
  a.close(); b.close();
  assert.equal(await ex.stop(), 0);
});

test('example_stomp_app answers /app SENDs from its C callback', { skip: !dir }, async () => {
  const ex = await startExample('stomp_app');
  const url = `ws://127.0.0.1:${ex.port}/stomp`;
  const a = await open(url, ['v12.stomp']);
  const b = await open(url, ['v12.stomp']);
  const frame = (cmd, headers, body = '') =>
    `${cmd}\n${Object.entries(headers).map(([k, v]) => `${k}:${v}`).join('\n')}\n\n${body}\0`;
  const body = (f) => f.slice(f.indexOf('\n\n') + 2, f.lastIndexOf('\0'));
  const header = (f, name) => (new RegExp(`\\n${name}:([^\\n]*)`).exec(f) || [])[1];
  a.send(frame('CONNECT', { 'accept-version': '1.2', host: 'x', login: 'ada' }));
  assert.match(await a.next(), /^CONNECTED\n/);
  b.send(frame('CONNECT', { 'accept-version': '1.2', host: 'x', login: 'bob' }));
  assert.match(await b.next(), /^CONNECTED\n/);
  for (const [ws, r] of [[a, 'a'], [b, 'b']]) {
    ws.send(frame('SUBSCRIBE', { id: 'g', destination: '/topic/greetings', receipt: `${r}1` }));
    assert.equal(header(await ws.next(), 'receipt-id'), `${r}1`);
    ws.send(frame('SUBSCRIBE', { id: 'r', destination: '/user/queue/reply', receipt: `${r}2` }));
    assert.equal(header(await ws.next(), 'receipt-id'), `${r}2`);
  }
  a.send(frame('SEND', { destination: '/app/greet' }, 'Ada'));
  for (const ws of [a, b]) {
    const m = await ws.next();
    assert.match(m, /^MESSAGE\n/);
    assert.equal(header(m, 'destination'), '/topic/greetings');
    assert.equal(body(m), 'Hello, Ada!');
  }
  // the reply goes to the sender's user only: b's next frame is its own receipt
  a.send(frame('SEND', { destination: '/app/reverse' }, 'stressed'));
  const r = await a.next();
  assert.equal(header(r, 'destination'), '/user/queue/reply');
  assert.equal(body(r), 'desserts');
  b.send(frame('SEND', { destination: '/app/nothing-here', receipt: 'x9' }));
  const e = await b.next();
  assert.match(e, /^ERROR\n/);
  assert.equal(header(e, 'message'), 'no handler for /app/nothing-here');
  assert.equal(header(e, 'receipt-id'), 'x9');
  a.close();
  assert.equal(await ex.stop(), 0);
});
