// Application destinations (/app/...) handed to a backend with --app-webhook
// (docs/stomp.md): the JSON POSTed to the backend, the answers it may give (one message,
// none, an array, the default /topic/ destination) and the ERROR + close 1011 when it
// fails. The backend is a node:http server in this process. Every wait is bounded.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald } from '../helpers/herald.mjs';
import { stompjs, Clients, startBackend, uid } from './stomp-helpers.mjs';

const bodies = (msgs) => msgs.map((m) => m.body);

// The ERROR message of each backend failure: the doc says the message tells which.
const failureMessages = {};

/** What the backend answers, by the /app destination it was sent. */
function answer(req) {
  if (req.json?.event === 'disconnect') {
    const u = req.json.user;
    return u?.startsWith('leaver') ? { status: 200, body: { destination: `/topic/left.${u}`, body: `${u} left` } } : { status: 204 };
  }
  const d = req.json?.destination;
  const tail = d?.split('/').pop();
  switch (d?.replace(/\.[^/]*$/, '')) {
    case '/app/hello': {
      const name = JSON.parse(req.json.body).name;
      return { status: 200, body: { destination: '/topic/greetings', body: { greeting: `Hello, ${name}!` } } };
    }
    case '/app/nothing': return { status: 204 };
    case '/app/echo': return { status: 200, body: { body: req.json.body } };
    case '/app/many': {
      const t = tail.split('.')[1];
      return {
        status: 200,
        body: [
          { destination: `/topic/many.${t}`, body: 'one' },
          { destination: `/topic/many.${t}`, body: { n: 2 }, 'content-type': 'application/json' },
          { destination: `/queue/many.${t}`, body: 'queued', headers: { 'x-from': 'backend' } },
          { destination: `/user/${req.json.user}/queue/reply`, body: 'for you', headers: { 'x-k': 'v' } },
        ],
      };
    }
    case '/app/slow': return { status: 200, body: { destination: `/topic/slow.${tail.split('.')[1]}`, body: 'late' }, delayMs: 400 };
    case '/app/fail': return { status: 500, body: { error: 'boom' } };
    case '/app/garbage': return { status: 200, body: 'this is not json' };
    default: return { status: 404 };
  }
}

describe('/app destinations with --app-webhook', { timeout: 30000 }, () => {
  let srv;
  let backend;
  const clients = new Clients();
  const connect = (opts) => clients.add(stompjs(srv, opts));

  before(async () => {
    backend = await startBackend(answer);
    srv = await startHerald(['--app-webhook', backend.url]);
  });
  after(async () => {
    await clients.closeAll();
    if (srv) await srv.stop();
    if (backend) await backend.close();
  });

  test('SEND to /app/hello: the backend gets the documented JSON; its answer reaches /topic/greetings', async () => {
    const user = uid('ada');
    const c = await connect({ login: user });
    const sub = await c.subscribe('/topic/greetings');
    await c.send('/app/hello', '{"name":"Ada"}', { 'content-type': 'application/json', 'x-custom': '1' });
    const req = await backend.request((r) => r.json?.destination === '/app/hello');
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/stomp');
    assert.match(req.headers['content-type'] || '', /^application\/json/);
    assert.deepEqual(Object.keys(req.json).sort(), ['body', 'destination', 'event', 'headers', 'session', 'user']);
    assert.equal(req.json.event, 'send');
    assert.equal(req.json.session, c.headers.session);
    assert.equal(req.json.user, user);
    assert.equal(req.json.body, '{"name":"Ada"}');
    assert.equal(req.json.headers['content-type'], 'application/json');
    assert.equal(req.json.headers['x-custom'], '1');
    const m = await sub.next();
    assert.deepEqual(JSON.parse(m.body), { greeting: 'Hello, Ada!' });
    assert.equal(m.headers.destination, '/topic/greetings');
  });

  test('the RECEIPT of a SEND to /app comes after the backend answered', async () => {
    const k = uid('s');
    const c = await connect();
    const sub = await c.subscribe(`/topic/slow.${k}`);
    await c.send(`/app/slow.${k}`, 'x');
    const t = Date.now();
    const req = await backend.request((r) => r.json?.destination === `/app/slow.${k}`);
    assert.ok(req.answeredAt && req.answeredAt <= t, 'RECEIPT arrived before the backend had answered');
    assert.equal((await sub.next()).body, 'late');
  });

  test('204 → nothing is delivered, the RECEIPT still arrives', async () => {
    const c = await connect();
    const sub = await c.subscribe('/topic/nothing');
    const r = await c.send('/app/nothing', 'x');
    assert.ok(r);
    await backend.request((q) => q.json?.destination === '/app/nothing');
    assert.deepEqual(bodies(await sub.quiet(300)), []);
    assert.equal(c.closeEvt, null);
  });

  test('an answer without destination goes to /topic/ + the part after /app/', async () => {
    const k = uid('e');
    const c = await connect();
    const sub = await c.subscribe(`/topic/echo.${k}`);
    await c.send(`/app/echo.${k}`, 'echoed text');
    const m = await sub.next();
    assert.equal(m.body, 'echoed text');
    assert.equal(m.headers.destination, `/topic/echo.${k}`);
  });

  test('an array answer → several messages: topic, queue and user destinations, with headers', async () => {
    const k = uid('m');
    const user = uid('bea');
    const c = await connect({ login: user });
    const st = await c.subscribe(`/topic/many.${k}`);
    const sq = await c.subscribe(`/queue/many.${k}`);
    const su = await c.subscribe('/user/queue/reply');
    await c.send(`/app/many.${k}`, 'go');
    const [t1, t2] = await st.take(2);
    assert.equal(t1.body, 'one');
    assert.deepEqual(JSON.parse(t2.body), { n: 2 });
    assert.equal(t2.headers['content-type'], 'application/json');
    const q = await sq.next();
    assert.equal(q.body, 'queued');
    assert.equal(q.headers['x-from'], 'backend');
    const u = await su.next();
    assert.equal(u.body, 'for you');
    assert.equal(u.headers['x-k'], 'v');
  });

  test('backend answers 500 → ERROR, close 1011', async () => {
    const c = await connect();
    c.client.publish({ destination: '/app/fail', body: 'x', headers: { receipt: 'r-fail' } });
    const e = await c.error();
    assert.ok(e.headers.message, 'ERROR has a message');
    failureMessages.status500 = e.headers.message;
    assert.equal(e.headers['receipt-id'], 'r-fail');
    assert.equal((await c.closed()).code, 1011);
  });

  test('a bad answer (200, not JSON) → ERROR, close 1011', async () => {
    const c = await connect();
    c.client.publish({ destination: '/app/garbage', body: 'x' });
    const e = await c.error();
    assert.ok(e.headers.message);
    failureMessages.badAnswer = e.headers.message;
    assert.equal((await c.closed()).code, 1011);
  });

  test('a session that sent to /app ends → {"event":"disconnect","session","user"}; the answer is delivered', async () => {
    const user = uid('leaver');
    const watcher = await connect();
    const sub = await watcher.subscribe(`/topic/left.${user}`);
    const c = await connect({ login: user });
    const session = c.headers.session;
    await c.send('/app/nothing', 'x');
    await c.disconnect();
    const ev = await backend.request((r) => r.json?.event === 'disconnect' && r.json.session === session);
    assert.deepEqual(ev.json, { event: 'disconnect', session, user });
    assert.equal(ev.url, '/stomp');
    assert.equal((await sub.next()).body, `${user} left`);
  });

  test('a session that never sent to /app ends without a disconnect event', async () => {
    const c = await connect({ login: uid('quiet') });
    const session = c.headers.session;
    const sub = await c.subscribe('/topic/q');
    await c.send('/topic/q', 'x');
    await sub.next();
    await c.disconnect();
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(backend.requests.filter((r) => r.json?.session === session).length, 0);
  });

  test('SUBSCRIBE to /app/... is refused even with a webhook', async () => {
    const c = await connect();
    c.client.subscribe('/app/hello', () => {});
    const e = await c.error();
    assert.ok(e.headers.message);
    assert.equal((await c.closed()).code, 1008);
  });
});

describe('/app destinations without a reachable webhook', { timeout: 20000 }, () => {
  const clients = new Clients();
  const servers = [];
  after(async () => {
    await clients.closeAll();
    for (const s of servers) await s.stop();
  });

  test('backend unreachable → ERROR, close 1011', async () => {
    const dead = await startBackend(() => ({ status: 204 }));
    const url = dead.url;
    await dead.close(); // nothing listens on that port now
    const srv = await startHerald(['--app-webhook', url]);
    servers.push(srv);
    const c = await clients.add(stompjs(srv));
    c.client.publish({ destination: '/app/hello', body: '{"name":"Ada"}' });
    const e = await c.error(6000);
    assert.ok(e.headers.message);
    failureMessages.unreachable = e.headers.message;
    assert.equal((await c.closed()).code, 1011);
    const seen = Object.values(failureMessages);
    assert.equal(new Set(seen).size, seen.length, `the message says which failure: ${JSON.stringify(failureMessages)}`);
  });

  test('without --app-webhook, SEND to /app/x → ERROR, close 1008', async () => {
    const srv = await startHerald([]);
    servers.push(srv);
    const c = await clients.add(stompjs(srv));
    c.client.publish({ destination: '/app/x', body: 'x', headers: { receipt: 'r-app' } });
    const e = await c.error();
    assert.ok(e.headers.message);
    assert.equal(e.headers['receipt-id'], 'r-app');
    assert.equal((await c.closed()).code, 1008);
  });
});
