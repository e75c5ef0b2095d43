// Operations: the config file. `herald check-config` on a good and a bad file (every
// error with its line), `herald serve --config` applying values with command-line options
// on top, and SIGHUP reloads: a limit changed live, a bad line that changes nothing, a
// changed listen address reported as needing a restart. Each test starts its own herald
// and signals only that PID; every wait is bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import {
  startHerald, runHerald, heraldBin, patternText, waitUntil, withTimeout,
} from '../helpers/herald.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-config-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

let nfile = 0;
function writeConf(text, file = path.join(dir, `herald-${++nfile}.conf`)) {
  fs.writeFileSync(file, text);
  return file;
}

// Sends one text message of n bytes to /ws on a new connection. Resolves to
// { echoed: true } or { echoed: false, code } when the server closes instead.
function echoOnce(url, n) {
  const msg = patternText(n);
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}/ws`, { perMessageDeflate: false });
    ws.once('open', () => ws.send(msg));
    ws.once('message', (data) => {
      assert.equal(data.toString(), msg);
      ws.close();
      resolve({ echoed: true });
    });
    ws.once('close', (code) => resolve({ echoed: false, code }));
    ws.once('error', (e) => { if (ws.readyState !== WebSocket.CLOSED) reject(e); });
  }), 5000, `echo of ${n} bytes`);
}

const count = (text, re) => (text.match(new RegExp(re.source, 'g')) || []).length;

// Sends SIGHUP to this test's herald and waits for the reload's last log line.
async function reload(srv, done = /reload: (applied|\d+ errors? in|kept the running configuration)/) {
  const before = count(srv.stderr(), done);
  srv.proc.kill('SIGHUP');
  await waitUntil(() => count(srv.stderr(), done) > before, 5000, 'the reload log line');
}

// `herald serve ARGS` without the helper's --listen (so the file's listen is used).
function startRaw(args) {
  const proc = spawn(heraldBin(), ['serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
  proc.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  const srv = {
    proc,
    stderr: () => err,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
  return waitUntil(() => /herald listening on 127\.0\.0\.1:(\d+)/.test(out) || proc.exitCode !== null,
    10000, 'the listening line')
    .then(() => {
      const m = /herald listening on 127\.0\.0\.1:(\d+)/.exec(out);
      if (!m) throw new Error(`herald did not start: ${err}`);
      srv.port = Number(m[1]);
      srv.url = `ws://127.0.0.1:${srv.port}`;
      return srv;
    })
    .catch(async (e) => { await srv.stop(); throw e; });
}

const GOOD = `# Herald configuration used by the e2e suite
; both comment styles
threads = 2
max-message = 1K   # a trailing comment

[herald]
idle-timeout = 30
namespace = orders.*:history=50,ttl=600
namespace = chat.>:presence=on
api-key = "not ;a comment"

[routes]
echo = /ws
stomp = off
`;

test('check-config: a good file is ok (exit 0)', async () => {
  const file = writeConf(GOOD);
  const r = await runHerald(['check-config', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${file}: ok\n`);
  assert.equal(r.stderr, '');
});

test('check-config: a bad file gets every error with its line (exit 2)', async () => {
  const file = writeConf([
    'max-message = 1K', //                 1
    'threads = many', //                   2 invalid value
    '# fine', //                           3
    'max-mesage = 1K', //                  4 unknown key
    'not a key value line', //             5 syntax
    '[routes]', //                         6
    'echo = ws', //                        7 not a path
    '[herald', //                          8 unterminated section
    'namespace = orders:history=lots', //  9 bad namespace
    '',
  ].join('\n'));
  const r = await runHerald(['check-config', file]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trim().split('\n');
  const want = [
    [2, /invalid value 'many' for --threads/],
    [4, /unknown option 'max-mesage'/],
    [5, /expected KEY = VALUE/],
    [7, /invalid value 'ws' for --route-echo/],
    [8, /expected '\]'/],
    [9, /namespace/],
  ];
  for (const [i, [line, re]] of want.entries()) {
    assert.ok(lines[i].startsWith(`${file}:${line}: `), `error ${i} is on line ${line}: ${lines[i]}`);
    assert.match(lines[i], re);
  }
  assert.equal(lines[want.length], `${file}: 6 errors`);
  assert.equal(lines.length, want.length + 1);

  const missing = await runHerald(['check-config', path.join(dir, 'nope.conf')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.conf: cannot read/);
  assert.equal((await runHerald(['check-config'])).code, 2);
});

test('check-config is listed in herald --help', async () => {
  const r = await runHerald(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /check-config FILE/);
});

test('serve --config: a bad file is refused with every error (exit 2)', async () => {
  const file = writeConf('max-message = 1K\nthreads = 0\nfoo = bar\n');
  const r = await runHerald(['serve', '--config', file, '--listen', '127.0.0.1:0']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`${file}:2: invalid value '0' for --threads`));
  assert.match(r.stderr, new RegExp(`${file}:3: unknown option 'foo'`));
});

test('serve --config applies the file, and a flag overrides it', async () => {
  const file = writeConf('max-message = 1K\nthreads = 2\n');
  const srv = await startHerald(['--config', file]);
  try {
    assert.deepEqual(await echoOnce(srv.url, 512), { echoed: true });
    assert.deepEqual(await echoOnce(srv.url, 2048), { echoed: false, code: 1009 });
  } finally { await srv.stop(); }

  const over = await startHerald(['--config', file, '--max-message', '64K']);
  try {
    assert.deepEqual(await echoOnce(over.url, 2048), { echoed: true });
  } finally { await over.stop(); }
});

test('serve --print-config writes a file that reads back', async () => {
  const file = writeConf('max-message = 1K\n[routes]\nstomp = off\n');
  const r = await runHerald(['serve', '--config', file, '--idle-timeout', '7', '--print-config']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^max-message = 1K$/m);
  assert.match(r.stdout, /^idle-timeout = 7$/m);
  assert.match(r.stdout, /^\[routes\]$/m);
  assert.match(r.stdout, /^stomp = off$/m);
  assert.match(r.stdout, /^# max-backlog = 1M$/m);
  const back = writeConf(r.stdout);
  assert.equal((await runHerald(['check-config', back])).code, 0);
});

test('SIGHUP: a reload changes a limit live', async () => {
  const file = writeConf('max-message = 1K\nthreads = 2\n');
  const srv = await startHerald(['--config', file]);
  try {
    assert.deepEqual(await echoOnce(srv.url, 2048), { echoed: false, code: 1009 });
    writeConf('max-message = 64K\nthreads = 2\n', file);
    await reload(srv);
    assert.match(srv.stderr(), /reload: applied \(1 change: max-message 1K -> 64K\)/);
    assert.deepEqual(await echoOnce(srv.url, 2048), { echoed: true });
    // and back down: new connections get the lower limit again
    writeConf('max-message = 1K\nthreads = 2\n', file);
    await reload(srv);
    assert.deepEqual(await echoOnce(srv.url, 2048), { echoed: false, code: 1009 });
  } finally { await srv.stop(); }
});

test('SIGHUP: a file with a bad line changes nothing and logs the error with its line', async () => {
  const file = writeConf('max-message = 1K\n');
  const srv = await startHerald(['--config', file]);
  try {
    writeConf('# a comment\nmax-message = 64K\nping-interval = often\n', file);
    await reload(srv);
    assert.match(srv.stderr(), new RegExp(`reload: ${file}:3: invalid value 'often' for --ping-interval`));
    assert.match(srv.stderr(), /reload: 1 error in .*: nothing changed/);
    assert.doesNotMatch(srv.stderr(), /reload: applied/);
    assert.deepEqual(await echoOnce(srv.url, 2048), { echoed: false, code: 1009 });

    // An unreadable file: an error, and the server keeps running as it was.
    fs.rmSync(file);
    await reload(srv);
    assert.match(srv.stderr(), /cannot read/);
    assert.deepEqual(await echoOnce(srv.url, 512), { echoed: true });
    assert.deepEqual(await echoOnce(srv.url, 2048), { echoed: false, code: 1009 });
  } finally { await srv.stop(); }
});

test('SIGHUP: a flag still overrides the re-read file', async () => {
  const file = writeConf('max-message = 1K\n');
  const srv = await startHerald(['--config', file, '--max-message', '4K']);
  try {
    writeConf('max-message = 2K\nidle-timeout = 30\n', file);
    await reload(srv);
    assert.match(srv.stderr(), /reload: applied \(1 change: idle-timeout 60 -> 30\)/);
    assert.deepEqual(await echoOnce(srv.url, 3000), { echoed: true });
  } finally { await srv.stop(); }
});

test('SIGHUP: a changed listen address needs a restart', async () => {
  const file = writeConf('listen = 127.0.0.1:0\nthreads = 2\nmax-message = 1K\n');
  const srv = await startRaw(['--config', file]);
  try {
    writeConf('listen = 127.0.0.1:1\nthreads = 3\nmax-message = 64K\n', file);
    await reload(srv);
    assert.match(srv.stderr(), /reload: listen, threads need a restart \(kept the running values\)/);
    assert.match(srv.stderr(), /reload: applied \(1 change: max-message 1K -> 64K\)/);
    // still serving on the old port, with the new limit
    assert.deepEqual(await echoOnce(srv.url, 2048), { echoed: true });
  } finally { await srv.stop(); }
});
