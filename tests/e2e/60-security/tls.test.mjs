// TLS: herald serve --tls-cert/--tls-key makes every endpoint wss:// and https://.
// Echo (text, binary, 1 MiB), /pubsub, /healthz and /metrics over https, TLS 1.1
// refused, ALPN http/1.1, a plain client on the TLS port, a silent TCP connection cut
// off by --handshake-timeout, certificate reload on SIGHUP without dropping connections
// (and a bad reload that keeps the running certificate), startup errors, and
// `herald client wss://` (--insecure, --cafile, verification failure).
// Needs the `openssl` command (to make the certificates).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import https from 'node:https';
import { Duplex } from 'node:stream';
import WebSocket from 'ws';
import {
  startHerald, runHerald, heraldBin, waitUntil, withTimeout, patternBytes,
} from '../helpers/herald.mjs';

function makeCert(dir, cn) {
  fs.mkdirSync(dir, { recursive: true });
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-days', '1', '-subj', `/CN=${cn}`,
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const serial = execFileSync('openssl', ['x509', '-noout', '-serial', '-in', cert], { encoding: 'utf8' })
    .trim().replace(/^serial=/, '').toUpperCase();
  return { cert, key, serial, cn };
}

let tmp;
let certA;
let certB;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-tls-'));
  certA = makeCert(path.join(tmp, 'a'), 'herald-a');
  certB = makeCert(path.join(tmp, 'b'), 'herald-b');
});
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

/** A live cert/key pair for one server: copies of A, replaceable. */
function liveFiles(name) {
  const cert = path.join(tmp, `${name}-cert.pem`);
  const key = path.join(tmp, `${name}-key.pem`);
  fs.copyFileSync(certA.cert, cert);
  fs.copyFileSync(certA.key, key);
  return { cert, key };
}

function wssOpen(port, p = '/ws', opts = {}) {
  const ws = new WebSocket(`wss://127.0.0.1:${port}${p}`, { rejectUnauthorized: false, ...opts });
  ws.binaryType = 'nodebuffer';
  return withTimeout(new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  }), 5000, 'wss open');
}

function nextMessage(ws, ms = 5000) {
  return withTimeout(new Promise((resolve) => {
    ws.once('message', (data, isBinary) => resolve({ data, isBinary }));
  }), ms, 'a message');
}

async function echo(ws, payload, binary) {
  const got = nextMessage(ws, 10000);
  ws.send(payload, { binary });
  return got;
}

function closeWs(ws) {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return withTimeout(new Promise((resolve) => { ws.once('close', resolve); ws.close(); }), 5000, 'close');
}

/** A TLS connection: resolves to the socket once the handshake is done. */
function tlsConnect(port, opts = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts }, () => resolve(s));
    s.once('error', reject);
  }), 5000, 'tls connect');
}

function httpsGet(port, p) {
  return withTimeout(new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, path: p, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body, headers: res.headers }));
    }).once('error', reject);
  }), 5000, `GET ${p}`);
}

// A duplex that hands the first chunk written to it (a client hello) to a callback.
class HelloCatcher extends Duplex {
  constructor(onFirst) { super(); this.onFirst = onFirst; }
  _write(chunk, enc, cb) { if (this.onFirst) { this.onFirst(chunk); this.onFirst = null; } cb(); }
  _read() {}
}

function count(text, re) {
  return (text.match(new RegExp(re, 'g')) || []).length;
}

describe('TLS server', () => {
  let srv;
  before(async () => {
    const f = liveFiles('main');
    srv = await startHerald(['--threads', '2', '--tls-cert', f.cert, '--tls-key', f.key,
      '--handshake-timeout', '1']);
  });
  after(async () => {
    if (srv) assert.equal(await srv.stop(), 0, srv.stderr());
  });

  test('wss:// echo: text, binary and 1 MiB', async () => {
    const ws = await wssOpen(srv.port);
    let r = await echo(ws, 'hello over TLS', false);
    assert.equal(r.isBinary, false);
    assert.equal(r.data.toString(), 'hello over TLS');
    const bin = patternBytes(1000, 3);
    r = await echo(ws, bin, true);
    assert.equal(r.isBinary, true);
    assert.ok(Buffer.compare(r.data, bin) === 0);
    const big = patternBytes(1 << 20, 9);
    r = await echo(ws, big, true);
    assert.equal(r.data.length, big.length);
    assert.ok(Buffer.compare(r.data, big) === 0, '1 MiB echoed intact');
    await closeWs(ws);
  });

  test('many small messages in one burst come back in order', async () => {
    const ws = await wssOpen(srv.port);
    const got = [];
    const all = new Promise((resolve) => {
      ws.on('message', (d) => { got.push(d.toString()); if (got.length === 500) resolve(); });
    });
    for (let i = 0; i < 500; i++) ws.send(`m${i}`);
    await withTimeout(all, 10000, '500 echoes');
    assert.deepEqual(got, Array.from({ length: 500 }, (_, i) => `m${i}`));
    await closeWs(ws);
  });

  test('/pubsub over wss: subscribe, publish, message', async () => {
    const a = await wssOpen(srv.port, '/pubsub');
    const b = await wssOpen(srv.port, '/pubsub');
    const frames = [];
    a.on('message', (d) => frames.push(JSON.parse(d.toString())));
    a.send(JSON.stringify({ type: 'subscribe', id: 1, channel: 'tls.news' }));
    await waitUntil(() => frames.some((f) => f.type === 'ok' && f.id === 1), 5000, 'subscribe ok');
    b.send(JSON.stringify({ type: 'publish', id: 2, channel: 'tls.news', data: { hi: 'there' } }));
    await waitUntil(() => frames.some((f) => f.type === 'message'), 5000, 'the message');
    const m = frames.find((f) => f.type === 'message');
    assert.equal(m.channel, 'tls.news');
    assert.deepEqual(m.data, { hi: 'there' });
    await closeWs(a);
    await closeWs(b);
  });

  test('https: GET /healthz and /metrics', async () => {
    const h = await httpsGet(srv.port, '/healthz');
    assert.equal(h.status, 200);
    assert.match(h.body, /ok/);
    const m = await httpsGet(srv.port, '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.body, /herald_/);
  });

  test('TLS 1.2 and 1.3 accepted, TLS 1.1 refused', async () => {
    for (const v of ['TLSv1.2', 'TLSv1.3']) {
      const s = await tlsConnect(srv.port, { minVersion: v, maxVersion: v });
      assert.equal(s.getProtocol(), v);
      s.destroy();
    }
    await assert.rejects(tlsConnect(srv.port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }));
  });

  test('ALPN: http/1.1 selected; an h2-only client gets no ALPN, not a failure', async () => {
    let s = await tlsConnect(srv.port, { ALPNProtocols: ['h2', 'http/1.1'] });
    assert.equal(s.alpnProtocol, 'http/1.1');
    s.destroy();
    s = await tlsConnect(srv.port, { ALPNProtocols: ['h2'] });
    assert.equal(s.alpnProtocol, false);
    s.destroy();
  });

  test('a plain ws:// client on the TLS port fails cleanly; the server lives on', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/ws`);
    const err = await withTimeout(new Promise((resolve) => {
      ws.once('error', resolve);
      ws.once('open', () => resolve(new Error('opened?!')));
    }), 5000, 'plain client error');
    assert.match(String(err.message), /400|socket hang up|ECONNRESET/);
    // And raw bytes that are not TLS at all.
    const raw = net.connect(srv.port, '127.0.0.1');
    raw.on('error', () => {});
    raw.write(Buffer.alloc(64, 0x41));
    await withTimeout(new Promise((resolve) => raw.once('close', resolve)), 5000, 'raw close');
    assert.equal((await httpsGet(srv.port, '/healthz')).status, 200);
  });

  test('a silent TCP connection is closed after --handshake-timeout', async () => {
    const t0 = Date.now();
    const s = net.connect(srv.port, '127.0.0.1');
    s.on('error', () => {});
    await withTimeout(new Promise((resolve) => s.once('close', resolve)), 6000, 'server close');
    const took = Date.now() - t0;
    assert.ok(took >= 700 && took < 5000, `closed after ${took} ms`);
  });

  test('a TLS handshake that stops halfway is closed after --handshake-timeout', async () => {
    // A client hello, then nothing (the handshake never completes).
    const t0 = Date.now();
    const s = net.connect(srv.port, '127.0.0.1');
    s.on('error', () => {});
    let cap;
    const hello = await withTimeout(new Promise((resolve) => {
      cap = tls.connect({ socket: new HelloCatcher(resolve), rejectUnauthorized: false });
      cap.on('error', () => {});
    }), 5000, 'a client hello');
    cap.destroy();
    s.resume(); // read (and drop) the server's flight, so that its close is seen
    s.write(hello);
    await withTimeout(new Promise((resolve) => s.once('close', resolve)), 6000, 'server close');
    const took = Date.now() - t0;
    assert.ok(took >= 700 && took < 5000, `closed after ${took} ms`);
  });
});

describe('TLS certificate reload on SIGHUP', () => {
  let srv;
  let files;
  before(async () => {
    files = liveFiles('reload');
    srv = await startHerald(['--tls-cert', files.cert, '--tls-key', files.key]);
  });
  after(async () => {
    if (srv) assert.equal(await srv.stop(), 0, srv.stderr());
  });

  async function hup(re) {
    const before = count(srv.stderr(), re);
    srv.proc.kill('SIGHUP');
    await waitUntil(() => count(srv.stderr(), re) > before, 5000, `log ${re}`);
  }

  test('new connections get the new certificate; open ones keep going', async () => {
    let s = await tlsConnect(srv.port);
    assert.equal(s.getPeerCertificate().serialNumber.toUpperCase(), certA.serial);
    s.destroy();
    const ws = await wssOpen(srv.port);
    assert.equal((await echo(ws, 'before', false)).data.toString(), 'before');

    fs.copyFileSync(certB.cert, files.cert);
    fs.copyFileSync(certB.key, files.key);
    await hup('reload: TLS certificate reloaded');

    assert.equal((await echo(ws, 'after', false)).data.toString(), 'after');
    const big = patternBytes(200000, 5);
    assert.ok(Buffer.compare((await echo(ws, big, true)).data, big) === 0);
    s = await tlsConnect(srv.port);
    const pc = s.getPeerCertificate();
    assert.equal(pc.serialNumber.toUpperCase(), certB.serial);
    assert.equal(pc.subject.CN, 'herald-b');
    s.destroy();
    const ws2 = await wssOpen(srv.port);
    assert.equal((await echo(ws2, 'new', false)).data.toString(), 'new');
    await closeWs(ws2);
    await closeWs(ws);
  });

  test('a bad certificate file on reload is reported and the running one stays', async () => {
    fs.writeFileSync(files.cert, 'not a certificate\n');
    await hup('reload: TLS certificate not reloaded');
    assert.match(srv.stderr(), /reload: TLS certificate not reloaded: --tls-cert .*kept the running one/);
    const s = await tlsConnect(srv.port);
    assert.equal(s.getPeerCertificate().serialNumber.toUpperCase(), certB.serial);
    s.destroy();
    // A key that does not match the certificate: same.
    fs.copyFileSync(certA.cert, files.cert);
    fs.copyFileSync(certB.key, files.key);
    await hup('reload: TLS certificate not reloaded');
    assert.match(srv.stderr(), /does not match/);
    assert.equal((await httpsGet(srv.port, '/healthz')).status, 200);
  });
});

describe('TLS startup errors', () => {
  test('unreadable, mismatched or half-given files: a clear error and exit 1', async () => {
    const cases = [
      [['--tls-cert', path.join(tmp, 'nope.pem'), '--tls-key', certA.key], /--tls-cert .*nope\.pem: No such file/],
      [['--tls-cert', certA.cert, '--tls-key', certB.key], /--tls-key .* does not match the certificate/],
      [['--tls-cert', certA.key, '--tls-key', certA.key], /--tls-cert .*not a usable PEM certificate/],
      [['--tls-cert', certA.cert], /--tls-cert and --tls-key go together/],
    ];
    for (const [args, re] of cases) {
      const r = await runHerald(['serve', '--listen', '127.0.0.1:0', ...args], { timeoutMs: 5000 });
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
  });
});

describe('herald client wss://', () => {
  let srv;
  before(async () => {
    const f = liveFiles('client');
    srv = await startHerald(['--tls-cert', f.cert, '--tls-key', f.key]);
  });
  after(async () => {
    if (srv) assert.equal(await srv.stop(), 0, srv.stderr());
  });

  function runClient(args, input, timeoutMs = 10000) {
    const proc = spawn(heraldBin(), ['client', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (d) => { stdout += d; });
    proc.stderr.on('data', (d) => { stderr += d; });
    proc.stdin.on('error', () => {});
    proc.stdin.end(input);
    return withTimeout(new Promise((resolve) => proc.once('close', (code) => resolve({ code, stdout, stderr }))),
      timeoutMs, 'herald client').finally(() => { try { proc.kill('SIGKILL'); } catch { /* gone */ } });
  }

  test('--insecure: echo through stdin', async () => {
    const r = await runClient([`wss://127.0.0.1:${srv.port}/ws`, '--insecure'], 'hello tls\nsecond line\n');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /hello tls/);
    assert.match(r.stdout, /second line/);
  });

  test('--cafile with the server certificate: verified echo', async () => {
    const r = await runClient(['--cafile', certA.cert, `wss://localhost:${srv.port}/ws`], 'verified\n');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /verified/);
  });

  test('without --insecure a self-signed certificate fails verification', async () => {
    const r = await runClient([`wss://127.0.0.1:${srv.port}/ws`], 'x\n');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /certificate verify failed/);
  });

  test('herald bench over wss://', async () => {
    const r = await runHerald(['bench', 'echo', `wss://127.0.0.1:${srv.port}/ws`, '--insecure',
      '-c', '4', '-d', '1', '--warmup', '0', '--quiet'], { timeoutMs: 20000 });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const m = /RESULT .*/.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.doesNotMatch(m[0], /\bmsgs=0\b|\bmessages=0\b/);
  });
});

