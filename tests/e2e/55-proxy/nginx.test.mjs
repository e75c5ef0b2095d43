// Herald behind Debian's nginx as a reverse proxy (docs/operations.md, "Reverse proxy"):
// WebSocket echo (text, binary, 1 MiB), /pubsub, STOMP and the HTTP API through nginx,
// and the client address in the access log (--access-log on): with --trusted-proxies
// 127.0.0.1 Herald believes nginx's X-Forwarded-For, without it the headers are ignored,
// and a client talking to Herald directly cannot choose its address.
//
// The client connects from 127.0.0.2, nginx from 127.0.0.1, so the two are told apart.
// The test starts its own nginx (-p/-c in a temp dir, daemon off, listening on a free
// 127.0.0.1 port) and stops it by PID; it never touches a system nginx service.
// Needs nginx (/usr/sbin/nginx, or HERALD_NGINX): skipped with a reason without it.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startHerald, withTimeout, waitUntil, patternBytes, sleep, freePort } from '../helpers/herald.mjs';

const CLIENT_ADDR = '127.0.0.2';

function findNginx() {
  const dirs = ['/usr/sbin', '/usr/local/sbin', '/usr/local/nginx/sbin',
    ...(process.env.PATH || '').split(':')];
  const candidates = process.env.HERALD_NGINX ? [process.env.HERALD_NGINX] : dirs.map((d) => path.join(d, 'nginx'));
  for (const c of candidates) {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      const r = spawnSync(c, ['-v'], { timeout: 5000 });
      if (r.status === 0) return c;
    } catch { /* next */ }
  }
  return null;
}

const NGINX = findNginx();
const skip = NGINX ? false
  : 'nginx is not installed (apt-get install nginx, or set HERALD_NGINX): reverse-proxy test skipped';

/** A port that was free a moment ago on 127.0.0.1. */
function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const t = setTimeout(() => { s.destroy(); resolve(false); }, 1000);
    s.once('connect', () => { clearTimeout(t); s.destroy(); resolve(true); });
    s.once('error', () => { clearTimeout(t); resolve(false); });
  });
}

// The proxy configuration the operations guide recommends, one server per Herald.
function nginxConf(dir, servers) {
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const blocks = servers.map(({ listen, upstream }) => `
  server {
    listen 127.0.0.1:${listen};
    location ~ ^/(ws|pubsub|stomp)$ {
      proxy_pass http://127.0.0.1:${upstream};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Forwarded "";
      proxy_read_timeout 120s;
      proxy_send_timeout 120s;
      proxy_buffering off;
    }
    location /api/ {
      proxy_pass http://127.0.0.1:${upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Forwarded "";
    }
  }`).join('\n');
  return `${asRoot ? 'user root;\n' : ''}worker_processes 1;
error_log ${dir}/error.log info;
events { worker_connections 256; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      close;
  }
${blocks}
}
`;
}

/** Child PIDs of pid (nginx workers), from /proc. */
function childrenOf(pid) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch { /* gone */ }
  }
  return out;
}

async function startNginx(servers) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-nginx-'));
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, nginxConf(dir, servers));
  const proc = spawn(NGINX, ['-p', `${dir}/`, '-e', `${dir}/error.log`, '-c', conf,
    '-g', `daemon off; pid ${dir}/nginx.pid;`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  let workers = [];
  const killAll = () => {
    for (const p of workers) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
    try { proc.kill('SIGKILL'); } catch { /* gone */ }
  };
  process.once('exit', killAll);
  const errorLog = () => { try { return fs.readFileSync(`${dir}/error.log`, 'utf8'); } catch { return ''; } };
  const ng = {
    dir,
    errorLog,
    async stop() {
      workers = childrenOf(proc.pid);
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM'); // fast shutdown: the master stops its workers
        const done = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
        if (!done) killAll();
      }
      await exited;
      // A worker orphaned by a killed master would keep the port: make sure none is left.
      for (let i = 0; i < 50 && workers.some((p) => fs.existsSync(`/proc/${p}`)); i++) await sleep(100);
      for (const p of workers) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
      process.off('exit', killAll);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 10000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`nginx exited at start:\n${output}\n${errorLog()}`);
    }
    const up = await Promise.all(servers.map((s) => canConnect(s.listen)));
    if (up.every(Boolean)) return ng;
    if (Date.now() > deadline) {
      await ng.stop();
      throw new Error(`nginx did not listen within 10 s:\n${output}\n${errorLog()}`);
    }
    await sleep(50);
  }
}

// ------------------------------------------------------------------------------------
// A WebSocket client from CLIENT_ADDR whose messages queue up for bounded takes.

async function open(url, { protocols, headers, localAddress = CLIENT_ADDR } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { localAddress, headers, perMessageDeflate: false, maxPayload: 64 << 20 });
    const queue = [];
    const waiters = new Set();
    ws.on('message', (data, isBinary) => { queue.push({ data, isBinary }); for (const f of [...waiters]) f(); });
    ws.once('open', () => {
      ws.on('error', () => { /* after open: a close is what the tests look at */ });
      resolve(client);
    });
    const client = {
      ws,
      async next(ms = 10000) {
        const deadline = Date.now() + ms;
        while (!queue.length) {
          const left = deadline - Date.now();
          if (left <= 0) throw new Error(`no message within ${ms} ms on ${url}`);
          await new Promise((r) => { const f = () => { clearTimeout(t); waiters.delete(f); r(); }; const t = setTimeout(f, left); waiters.add(f); });
        }
        return queue.shift();
      },
      async json(pred, ms = 10000) {
        const deadline = Date.now() + ms;
        for (;;) {
          const m = await this.next(Math.max(1, deadline - Date.now()));
          const f = JSON.parse(m.data.toString());
          if (pred(f)) return f;
        }
      },
      close() { try { ws.close(); } catch { /* gone */ } },
    };
    ws.once('error', reject);
  }), 10000, `open ${url}`);
}

function httpRequest(port, method, p, { body, headers = {}, localAddress = CLIENT_ADDR } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request({
      host: '127.0.0.1', port, method, path: p, localAddress, agent: false,
      headers: { ...headers, ...(data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {}) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.once('error', reject);
    if (data) req.write(data);
    req.end();
  }), 10000, `${method} ${p}`);
}

/** The access-log lines of a Herald so far. */
function accessLines(h) {
  return h.stderr().split('\n').filter((l) => / access conn=/.test(l));
}

async function accessLine(h, pred, what) {
  let found;
  await waitUntil(() => (found = accessLines(h).find(pred)) !== undefined, 5000,
    `${what}; access lines:\n${accessLines(h).join('\n')}`);
  return found;
}

const field = (line, k) => {
  const m = new RegExp(`(?:^| )${k}=("(?:[^"\\\\]|\\\\.)*"|\\S*)`).exec(line);
  if (!m) return undefined;
  return m[1].startsWith('"') ? JSON.parse(m[1]) : m[1];
};

// ------------------------------------------------------------------------------------

describe('Herald behind nginx (--trusted-proxies, --access-log)', { skip, timeout: 120000 }, () => {
  let trusted; // --trusted-proxies 127.0.0.1
  let plain; // no --trusted-proxies
  let ng;
  let viaTrusted;
  let viaPlain;

  before(async () => {
    trusted = await startHerald(['--trusted-proxies', '127.0.0.1', '--access-log', 'on', '--ping-interval', '25']);
    plain = await startHerald(['--access-log', 'on']);
    viaTrusted = await freePort();
    viaPlain = await freePort();
    while (viaPlain === viaTrusted) viaPlain = await freePort();
    ng = await startNginx([{ listen: viaTrusted, upstream: trusted.port }, { listen: viaPlain, upstream: plain.port }]);
  });

  after(async () => {
    if (ng) await ng.stop();
    if (trusted) await trusted.stop();
    if (plain) await plain.stop();
  });

  test('echo through nginx: text, binary and a 1 MiB message', async () => {
    const c = await open(`ws://127.0.0.1:${viaTrusted}/ws`);
    try {
      c.ws.send('hello through nginx');
      const t = await c.next();
      assert.equal(t.isBinary, false);
      assert.equal(t.data.toString(), 'hello through nginx');
      const bin = patternBytes(4096, 3);
      c.ws.send(bin);
      const b = await c.next();
      assert.equal(b.isBinary, true);
      assert.ok(Buffer.from(b.data).equals(bin));
      const big = patternBytes(1 << 20, 9);
      c.ws.send(big);
      const m = await c.next(20000);
      assert.equal(m.isBinary, true);
      assert.equal(m.data.length, big.length);
      assert.ok(Buffer.from(m.data).equals(big), '1 MiB message came back changed');
    } finally {
      c.close();
    }
  });

  test('the access log names the client behind nginx, not nginx', async () => {
    const c = await open(`ws://127.0.0.1:${viaTrusted}/ws?token=s3cret&x=1`, { headers: { 'User-Agent': 'proxy-test/1.0 (e2e)' } });
    c.close();
    const line = await accessLine(trusted, (l) => field(l, 'path')?.startsWith('/ws?') && field(l, 'status') === '101',
      'the access line of the /ws handshake');
    assert.equal(field(line, 'client'), CLIENT_ADDR, line);
    assert.equal(field(line, 'method'), 'GET', line);
    assert.equal(field(line, 'path'), '/ws?token=REDACTED&x=1', line);
    assert.equal(field(line, 'ua'), 'proxy-test/1.0 (e2e)', line);
    assert.match(field(line, 'conn'), /^\d+$/, line);
    assert.match(field(line, 'duration_ms'), /^\d+$/, line);
    assert.ok(!line.includes('s3cret'), `secret in the log: ${line}`);
  });

  test('/pubsub through nginx: subscribe, publish, message; logged with the client address', async () => {
    const s = await open(`ws://127.0.0.1:${viaTrusted}/pubsub`);
    const p = await open(`ws://127.0.0.1:${viaTrusted}/pubsub`);
    try {
      s.ws.send(JSON.stringify({ type: 'subscribe', id: 1, channel: 'proxy.orders' }));
      assert.equal((await s.json((f) => f.id === 1)).type, 'ok');
      p.ws.send(JSON.stringify({ type: 'publish', id: 2, channel: 'proxy.orders', data: { n: 1 } }));
      assert.equal((await p.json((f) => f.id === 2)).type, 'ok');
      const m = await s.json((f) => f.type === 'message');
      assert.equal(m.channel, 'proxy.orders');
      assert.deepEqual(m.data, { n: 1 });
    } finally {
      s.close();
      p.close();
    }
    const line = await accessLine(trusted, (l) => field(l, 'path') === '/pubsub', 'the /pubsub access line');
    assert.equal(field(line, 'client'), CLIENT_ADDR, line);
    assert.equal(field(line, 'status'), '101', line);
  });

  test('STOMP through nginx: CONNECT → CONNECTED; the line carries proto=v12.stomp', async () => {
    const c = await open(`ws://127.0.0.1:${viaTrusted}/stomp`, { protocols: ['v12.stomp'] });
    try {
      assert.equal(c.ws.protocol, 'v12.stomp');
      c.ws.send('CONNECT\naccept-version:1.2\nhost:herald\n\n\0');
      const f = (await c.next()).data.toString();
      assert.match(f, /^CONNECTED\n/);
      assert.match(f, /\nversion:1\.2\n/);
    } finally {
      c.close();
    }
    const line = await accessLine(trusted, (l) => field(l, 'path') === '/stomp', 'the /stomp access line');
    assert.equal(field(line, 'client'), CLIENT_ADDR, line);
    assert.equal(field(line, 'proto'), 'v12.stomp', line);
  });

  test('the HTTP API through nginx is logged with the client address', async () => {
    const r = await httpRequest(viaTrusted, 'POST', '/api/publish?api_key=k3y', { body: { channel: 'proxy.api', data: 1 } });
    assert.equal(r.status, 200, r.text);
    const line = await accessLine(trusted, (l) => field(l, 'path')?.startsWith('/api/publish'), 'the /api/publish access line');
    assert.equal(field(line, 'client'), CLIENT_ADDR, line);
    assert.equal(field(line, 'method'), 'POST', line);
    assert.equal(field(line, 'status'), '200', line);
    assert.equal(field(line, 'path'), '/api/publish?api_key=REDACTED', line);
  });

  test('a refused handshake through nginx is logged with its status and the client address', async () => {
    await assert.rejects(open(`ws://127.0.0.1:${viaTrusted}/ws`, { headers: { Origin: 'http://evil.example' } }), /403/);
    const line = await accessLine(trusted, (l) => field(l, 'status') === '403', 'the 403 access line');
    assert.equal(field(line, 'client'), CLIENT_ADDR, line);
    assert.equal(field(line, 'path'), '/ws', line);
  });

  test('proxy headers forged by the client do not survive nginx: X-Forwarded-For appended, Forwarded cleared', async () => {
    const c = await open(`ws://127.0.0.1:${viaTrusted}/ws?forged=1`, {
      headers: { 'X-Forwarded-For': '6.6.6.6', Forwarded: 'for=7.7.7.7' },
    });
    c.close();
    const line = await accessLine(trusted, (l) => field(l, 'path') === '/ws?forged=1', 'the forged-headers access line');
    assert.equal(field(line, 'client'), CLIENT_ADDR, line);
  });

  test('without --trusted-proxies the headers are ignored: the client is nginx (127.0.0.1)', async () => {
    const c = await open(`ws://127.0.0.1:${viaPlain}/ws`);
    c.ws.send('x');
    assert.equal((await c.next()).data.toString(), 'x');
    c.close();
    const line = await accessLine(plain, (l) => field(l, 'path') === '/ws' && field(l, 'status') === '101',
      'the access line of the untrusted Herald');
    assert.equal(field(line, 'client'), '127.0.0.1', line);
  });

  test('X-Forwarded-For sent straight to Herald by an untrusted peer is ignored', async () => {
    const c = await open(`ws://127.0.0.1:${trusted.port}/ws?direct=1`, { headers: { 'X-Forwarded-For': '6.6.6.6' } });
    c.close();
    const r = await httpRequest(trusted.port, 'GET', '/healthz?direct=2', { headers: { 'X-Forwarded-For': '6.6.6.6', Forwarded: 'for=7.7.7.7' } });
    assert.equal(r.status, 200);
    const ws = await accessLine(trusted, (l) => field(l, 'path') === '/ws?direct=1', 'the direct /ws access line');
    assert.equal(field(ws, 'client'), CLIENT_ADDR, ws);
    const hz = await accessLine(trusted, (l) => field(l, 'path') === '/healthz?direct=2', 'the direct /healthz access line');
    assert.equal(field(hz, 'client'), CLIENT_ADDR, hz);
  });

  test('nginx kept the connections open and logged nothing alarming', () => {
    const log = ng.errorLog();
    assert.doesNotMatch(log, /\[(emerg|alert|crit)\]/, log);
    assert.doesNotMatch(log, /upstream timed out/, log);
  });
});
