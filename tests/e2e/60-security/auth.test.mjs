// Authentication and channel permissions (docs/security.md): JWTs made here with
// node:crypto (HS256, RS256, ES256), --auth required/optional, tokens in ?token= and
// Authorization, STOMP CONNECT credentials, expiry during a connection (close 4001),
// access=private/server namespaces and the auth webhook (a node:http backend here).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startHerald, withTimeout } from '../helpers/herald.mjs';

const SECRET = 'e2e-secret-0123456789-abcdefghij';
const b64u = (b) => Buffer.from(b).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

function jwt(claims, { alg = 'HS256', key = SECRET, header } = {}) {
  const h = b64u(JSON.stringify(header ?? { alg, typ: 'JWT' }));
  const p = b64u(JSON.stringify(claims));
  const input = `${h}.${p}`;
  let sig;
  if (alg === 'HS256') sig = crypto.createHmac('sha256', key).update(input).digest();
  else if (alg === 'RS256') sig = crypto.sign('sha256', Buffer.from(input), key);
  else if (alg === 'ES256') sig = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  else sig = Buffer.alloc(0);
  return `${input}.${b64u(sig)}`;
}

/** Opens a WebSocket; resolves {ws, status} on open, or {status, headers, body} when refused. */
function connect(url, { headers, protocols } = {}) {
  return withTimeout(new Promise((resolve) => {
    const ws = new WebSocket(url, protocols, { headers });
    ws.once('open', () => resolve({ ws, status: 101 }));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    ws.once('error', (e) => resolve({ status: 0, error: e }));
  }), 5000, `connect ${url}`);
}

/** A /pubsub client: request(cmd) resolves with the reply of the same id. */
class Pub {
  constructor(ws) {
    this.ws = ws;
    this.id = 0;
    this.waiting = new Map();
    this.frames = [];
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      this.frames.push(m);
      if (m.id !== undefined && this.waiting.has(m.id)) { this.waiting.get(m.id)(m); this.waiting.delete(m.id); }
    });
  }

  request(cmd) {
    const id = ++this.id;
    return withTimeout(new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.ws.send(JSON.stringify({ ...cmd, id }));
    }), 4000, `reply to ${JSON.stringify(cmd)}`);
  }
}

async function pubsub(srv, token, how = 'query') {
  const url = how === 'query' && token ? `${srv.url}/pubsub?token=${token}` : `${srv.url}/pubsub`;
  const headers = how === 'header' && token ? { Authorization: `Bearer ${token}` } : undefined;
  const r = await connect(url, { headers });
  assert.equal(r.status, 101, `expected 101, got ${r.status} ${r.body ?? ''}`);
  return new Pub(r.ws);
}

/** A raw STOMP client over ws: frames in order, send(frame). */
class Stomp {
  constructor(ws) {
    this.ws = ws;
    this.frames = [];
    this.waiters = [];
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('message', (d) => {
      for (const raw of d.toString().split('\0')) {
        const t = raw.replace(/^\n+/, '');
        if (!t) continue;
        const [head, ...rest] = t.split('\n\n');
        const lines = head.split('\n');
        const f = { command: lines[0], headers: {}, body: rest.join('\n\n') };
        for (const l of lines.slice(1)) { const i = l.indexOf(':'); f.headers[l.slice(0, i)] = l.slice(i + 1); }
        this.frames.push(f);
      }
      for (const w of this.waiters.splice(0)) w();
    });
  }

  send(command, headers = {}, body = '') {
    const h = Object.entries(headers).map(([k, v]) => `${k}:${v}\n`).join('');
    this.ws.send(`${command}\n${h}\n${body}\0`);
  }

  next(ms = 4000) {
    return withTimeout((async () => {
      while (!this.frames.length) await new Promise((r) => this.waiters.push(r));
      return this.frames.shift();
    })(), ms, 'a STOMP frame');
  }
}

async function stomp(srv, { token, connect: hdrs = {} } = {}) {
  const url = token ? `${srv.url}/stomp?token=${token}` : `${srv.url}/stomp`;
  const r = await connect(url, { protocols: ['v12.stomp'] });
  assert.equal(r.status, 101);
  const s = new Stomp(r.ws);
  s.send('CONNECT', { 'accept-version': '1.2', host: 'localhost', ...hdrs });
  return s;
}

describe('--auth required with HS256', () => {
  let srv;
  before(async () => {
    srv = await startHerald(['--auth', 'required', '--jwt-secret', SECRET,
      '--namespace', 'room.*:presence=on',
      '--namespace', 'secret.*:access=private',
      '--namespace', 'news.*:access=server']);
  });
  after(async () => { await srv?.stop(); });

  test('no token: 401 with WWW-Authenticate: Bearer', async () => {
    const r = await connect(`${srv.url}/pubsub`);
    assert.equal(r.status, 401);
    assert.match(r.headers['www-authenticate'], /^Bearer/);
  });

  test('bad signature, expired, alg none, not yet valid: 401', async () => {
    const bad = [
      jwt({ sub: 'alice' }, { key: 'wrong-secret' }),
      jwt({ sub: 'alice', exp: now() - 10 }),
      jwt({ sub: 'alice', nbf: now() + 3600 }),
      jwt({ sub: 'alice' }, { alg: 'none', header: { alg: 'none' } }),
      'not.a.token',
    ];
    for (const t of bad) {
      const r = await connect(`${srv.url}/pubsub?token=${t}`);
      assert.equal(r.status, 401, `token ${t} got ${r.status}`);
      assert.match(r.headers['www-authenticate'], /invalid_token/);
    }
  });

  test('a good token in ?token= or Authorization: 101, and presence shows the user', async () => {
    const a = await pubsub(srv, jwt({ sub: 'alice', exp: now() + 600 }), 'query');
    const b = await pubsub(srv, jwt({ sub: 'bob' }), 'header');
    assert.equal((await a.request({ type: 'subscribe', channel: 'room.1' })).type, 'ok');
    assert.equal((await b.request({ type: 'subscribe', channel: 'room.1' })).type, 'ok');
    const p = await a.request({ type: 'presence', channel: 'room.1' });
    assert.equal(p.type, 'ok');
    assert.deepEqual(p.clients.map((c) => c.user).sort(), ['alice', 'bob']);
    a.ws.close(); b.ws.close();
  });

  test('private namespace: no claim refused, covering claim allowed', async () => {
    const plain = await pubsub(srv, jwt({ sub: 'u1' }));
    let r = await plain.request({ type: 'subscribe', channel: 'secret.1' });
    assert.equal(r.type, 'error');
    assert.equal(r.code, 'not_allowed');
    r = await plain.request({ type: 'subscribe', channel: 'secret.*' });
    assert.equal(r.code, 'not_allowed');
    r = await plain.request({ type: 'history', channel: 'secret.1' });
    assert.equal(r.code, 'not_allowed');
    r = await plain.request({ type: 'subscribe', channel: 'room.>' }); // no private overlap
    assert.equal(r.type, 'ok');
    const claimed = await pubsub(srv, jwt({ sub: 'u2', channels: { subscribe: ['secret.*', 'room.*'], publish: ['secret.1'] } }));
    r = await claimed.request({ type: 'subscribe', channel: 'secret.1' });
    assert.equal(r.type, 'ok');
    r = await claimed.request({ type: 'publish', channel: 'secret.1', data: { x: 1 } });
    assert.equal(r.type, 'ok');
    assert.ok(claimed.frames.some((f) => f.type === 'message' && f.channel === 'secret.1'));
    // outside the claim
    r = await claimed.request({ type: 'publish', channel: 'secret.2', data: 1 });
    assert.equal(r.code, 'not_allowed');
    r = await claimed.request({ type: 'publish', channel: 'room.1', data: 1 });
    assert.equal(r.code, 'not_allowed');
    r = await claimed.request({ type: 'subscribe', channel: 'other.1' });
    assert.equal(r.code, 'not_allowed');
    r = await claimed.request({ type: 'subscribe', channel: 'secret.>' });
    assert.equal(r.code, 'not_allowed');
    plain.ws.close(); claimed.ws.close();
  });

  test('server namespace: subscribe yes, publish refused', async () => {
    const c = await pubsub(srv, jwt({ sub: 'u3' }));
    assert.equal((await c.request({ type: 'subscribe', channel: 'news.1' })).type, 'ok');
    const r = await c.request({ type: 'publish', channel: 'news.1', data: 'x' });
    assert.equal(r.code, 'not_allowed');
    c.ws.close();
  });

  test('a token expiring during the connection: error token_expired, close 4001', async () => {
    const c = await pubsub(srv, jwt({ sub: 'short', exp: now() + 2 }));
    const closed = await withTimeout(c.closed, 6000, 'close 4001');
    assert.equal(closed.code, 4001);
    assert.equal(closed.reason, 'token expired');
    assert.ok(c.frames.some((f) => f.type === 'error' && f.code === 'token_expired'));
  });

  test('STOMP: handshake without token, CONNECT with passcode or Authorization', async () => {
    let s = await stomp(srv, {});
    let f = await s.next();
    assert.equal(f.command, 'ERROR');
    assert.equal(f.headers.message, 'authentication required');
    s = await stomp(srv, { connect: { login: 'mallory', passcode: jwt({ sub: 'alice' }) } });
    f = await s.next();
    assert.equal(f.command, 'CONNECTED');
    assert.equal(f.headers['user-name'], 'alice');
    s.ws.close();
    s = await stomp(srv, { connect: { Authorization: `Bearer ${jwt({ sub: 'bob' })}` } });
    f = await s.next();
    assert.equal(f.headers['user-name'], 'bob');
    s.ws.close();
    s = await stomp(srv, { connect: { passcode: jwt({ sub: 'x' }, { key: 'nope' }) } });
    f = await s.next();
    assert.equal(f.command, 'ERROR');
    assert.match(f.headers.message, /signature/);
    s = await stomp(srv, { token: jwt({ sub: 'carol' }) });
    f = await s.next();
    assert.equal(f.headers['user-name'], 'carol');
    s.ws.close();
  });

  test('STOMP: permissions are ERROR "not allowed"; expiry is ERROR then 4001', async () => {
    let s = await stomp(srv, { connect: { passcode: jwt({ sub: 'u' }) } });
    assert.equal((await s.next()).command, 'CONNECTED');
    s.send('SUBSCRIBE', { id: '1', destination: '/topic/secret.1' });
    let f = await s.next();
    assert.equal(f.command, 'ERROR');
    assert.equal(f.headers.message, 'not allowed');
    s = await stomp(srv, { connect: { passcode: jwt({ sub: 'u' }) } });
    await s.next();
    s.send('SEND', { destination: '/topic/news.1' }, 'hi');
    f = await s.next();
    assert.equal(f.headers.message, 'not allowed');
    s = await stomp(srv, { connect: { passcode: jwt({ sub: 'u', exp: now() + 2 }) } });
    assert.equal((await s.next()).command, 'CONNECTED');
    f = await s.next(6000);
    assert.equal(f.command, 'ERROR');
    assert.equal(f.headers.message, 'token expired');
    assert.equal((await withTimeout(s.closed, 3000, 'close')).code, 4001);
  });
});

describe('--auth optional', () => {
  let srv;
  before(async () => { srv = await startHerald(['--auth', 'optional', '--jwt-secret', SECRET, '--namespace', 'room.*:presence=on']); });
  after(async () => { await srv?.stop(); });

  test('no token is anonymous; a bad token is refused', async () => {
    const anon = await pubsub(srv, null);
    assert.equal((await anon.request({ type: 'subscribe', channel: 'room.2' })).type, 'ok');
    const p = await anon.request({ type: 'presence', channel: 'room.2' });
    assert.deepEqual(p.clients.map((c) => c.user), [null]);
    anon.ws.close();
    const r = await connect(`${srv.url}/pubsub?token=${jwt({ sub: 'a' }, { key: 'bad' })}`);
    assert.equal(r.status, 401);
  });

  test('STOMP: login is not an identity when auth is on', async () => {
    const s = await stomp(srv, { connect: { login: 'alice' } });
    const f = await s.next();
    assert.equal(f.command, 'CONNECTED');
    assert.equal(f.headers['user-name'], undefined);
    s.ws.close();
  });
});

describe('RS256 and ES256 public keys', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-auth-'));
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = (k) => k.export({ type: 'spki', format: 'pem' });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('RS256: valid accepted; HS256 signed with the public key PEM refused', async () => {
    const file = path.join(dir, 'rsa.pem');
    fs.writeFileSync(file, pem(rsa.publicKey));
    const srv = await startHerald(['--auth', 'required', '--jwt-public-key', file]);
    try {
      const ok = await connect(`${srv.url}/pubsub?token=${jwt({ sub: 'r' }, { alg: 'RS256', key: rsa.privateKey })}`);
      assert.equal(ok.status, 101);
      ok.ws.close();
      const confused = jwt({ sub: 'mallory' }, { alg: 'HS256', key: pem(rsa.publicKey) });
      assert.equal((await connect(`${srv.url}/pubsub?token=${confused}`)).status, 401);
    } finally { await srv.stop(); }
  });

  test('ES256 (ieee-p1363 signatures)', async () => {
    const file = path.join(dir, 'ec.pem');
    fs.writeFileSync(file, pem(ec.publicKey));
    const srv = await startHerald(['--auth', 'required', '--jwt-public-key', file]);
    try {
      const ok = await connect(`${srv.url}/pubsub`, { headers: { Authorization: `Bearer ${jwt({ sub: 'e' }, { alg: 'ES256', key: ec.privateKey })}` } });
      assert.equal(ok.status, 101);
      ok.ws.close();
      const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
      assert.equal((await connect(`${srv.url}/pubsub?token=${jwt({ sub: 'e' }, { alg: 'ES256', key: other.privateKey })}`)).status, 401);
    } finally { await srv.stop(); }
  });
});

describe('--auth-webhook', () => {
  let backend, srv;
  const seen = [];
  before(async () => {
    backend = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        const q = JSON.parse(body);
        seen.push(q);
        if (q.token === 'good') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ user: 'hooked', channels: { subscribe: ['room.*'], publish: [] } }));
        } else if (q.token === 'forbidden') {
          res.writeHead(403); res.end();
        } else {
          res.writeHead(401); res.end();
        }
      });
    });
    await new Promise((r) => backend.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${backend.address().port}/auth`;
    srv = await startHerald(['--auth', 'required', '--auth-webhook', url, '--namespace', 'room.*:presence=on']);
  });
  after(async () => { await srv?.stop(); backend?.close(); });

  test('200 accepts with the backend user and channels; 401 and 403 refuse', async () => {
    const c = await pubsub(srv, 'good', 'header');
    assert.equal((await c.request({ type: 'subscribe', channel: 'room.9' })).type, 'ok');
    const p = await c.request({ type: 'presence', channel: 'room.9' });
    assert.deepEqual(p.clients.map((x) => x.user), ['hooked']);
    assert.equal((await c.request({ type: 'subscribe', channel: 'other' })).code, 'not_allowed');
    c.ws.close();
    const q = seen.find((x) => x.token === 'good');
    assert.equal(q.path, '/pubsub');
    assert.equal(q.headers.authorization, undefined);
    assert.equal(q.client, '127.0.0.1');
    assert.equal((await connect(`${srv.url}/pubsub?token=bad`)).status, 401);
    assert.equal((await connect(`${srv.url}/pubsub?token=forbidden`)).status, 403);
  });
});
