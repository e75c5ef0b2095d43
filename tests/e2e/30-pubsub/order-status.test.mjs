// The order-status scenario end to end: a client follows orders.<id>; a backend (curl,
// as a child process) posts status changes to /api/publish; the client drops, misses two
// changes, reconnects with `since` and gets exactly those two. Run once with the
// example's client module in process, once with the example's CLI and post-status.sh
// as a user would. Every wait is bounded.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { startHerald, sleep, waitUntil } from '../helpers/herald.mjs';
import { createOrderClient } from '../../../examples/order-status/client.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const exampleDir = path.resolve(here, '../../../examples/order-status');
const e2eDir = path.resolve(here, '..');

const curlCheck = spawnSync('curl', ['--version'], { timeout: 5000 });
const noCurl = curlCheck.error || curlCheck.status !== 0
  ? 'curl is not installed (needed as the order backend): skipping the order-status scenario'
  : false;

const children = new Set();
process.on('exit', () => { for (const p of children) try { p.kill('SIGKILL'); } catch { /* gone */ } });

/** Run a command to completion (bounded). Resolves to {code, stdout, stderr}. */
function run(cmd, args, { env, timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    children.add(p);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => { try { p.kill('SIGKILL'); } catch { /* gone */ } }, timeoutMs);
    p.once('error', (e) => { clearTimeout(t); children.delete(p); reject(e); });
    p.once('close', (code, signal) => { clearTimeout(t); children.delete(p); resolve({ code, signal, stdout, stderr }); });
  });
}

/** The backend: curl POST /api/publish {"channel":"orders.<id>","data":{...}}. */
async function curlPublish(port, orderId, status) {
  const body = JSON.stringify({ channel: `orders.${orderId}`, data: { order: orderId, status } });
  const r = await run('curl', ['-sS', '--max-time', '5', '-o', '-', '-w', '\n%{http_code}', '-X', 'POST',
    `http://127.0.0.1:${port}/api/publish`, '-H', 'Content-Type: application/json', '--data', body]);
  assert.equal(r.code, 0, `curl failed: ${r.stderr}`);
  const nl = r.stdout.lastIndexOf('\n');
  const httpCode = Number(r.stdout.slice(nl + 1));
  const text = r.stdout.slice(0, nl);
  assert.equal(httpCode, 200, `POST /api/publish → ${httpCode} ${text}`);
  return JSON.parse(text);
}

/** A long-running child whose stdout lines are collected. */
function startChild(cmd, args, { cwd } = {}) {
  const p = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(p);
  const c = { proc: p, lines: [], stderr: '' };
  let buf = '';
  p.stdout.setEncoding('utf8');
  p.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) { c.lines.push(buf.slice(0, i)); buf = buf.slice(i + 1); }
  });
  p.stderr.on('data', (d) => { c.stderr += d; });
  c.exited = new Promise((resolve) => p.once('close', (code) => { children.delete(p); resolve(code); }));
  c.stop = async () => {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    const t = setTimeout(() => { try { p.kill('SIGKILL'); } catch { /* gone */ } }, 3000);
    await c.exited;
    clearTimeout(t);
  };
  c.waitLine = async (re, ms = 5000, what = String(re)) => {
    await waitUntil(() => c.lines.some((l) => re.test(l)), ms, `${what}; output so far:\n${c.lines.join('\n')}\n${c.stderr}`);
    return c.lines.find((l) => re.test(l));
  };
  return c;
}

const STATUS_RE = /^\[orders\.(\S+)\] #(\d+) status=(\S+) epoch=(\S+)$/;

describe('order-status scenario', { skip: noCurl, timeout: 40000 }, () => {
  let srv;
  before(async () => { srv = await startHerald(['--threads', '2']); });
  after(async () => { if (srv) await srv.stop(); });

  test('subscribe, 4 statuses in order, drop, 2 posted while away, reconnect with since → exactly the 2 missed', { timeout: 30000 }, async () => {
    const orderId = '42';
    const statuses = [];
    const frames = [];
    const client = createOrderClient({
      url: srv.url,
      orderId,
      WebSocket,
      onStatus: (m) => statuses.push(m),
      onFrame: (f) => frames.push(f),
    });
    try {
      const first = await client.start();
      assert.equal(first.type, 'ok');
      assert.equal(first.channel, 'orders.42');
      assert.equal(first.offset, 0);

      const posted = [];
      for (const s of ['created', 'paid', 'packed', 'shipped']) posted.push(await curlPublish(srv.port, orderId, s));
      assert.deepEqual(posted.map((p) => p.offset), [1, 2, 3, 4]);
      await waitUntil(() => statuses.length >= 4, 5000, 'the first 4 statuses');
      assert.deepEqual(statuses.map((m) => [m.offset, m.status]), [[1, 'created'], [2, 'paid'], [3, 'packed'], [4, 'shipped']]);
      assert.ok(statuses.every((m) => m.epoch === posted[0].epoch));

      client.pause(); // the client disconnects
      await sleep(100);
      const missed = [];
      for (const s of ['out_for_delivery', 'delivered']) missed.push(await curlPublish(srv.port, orderId, s));
      assert.deepEqual(missed.map((p) => p.offset), [5, 6]);
      await sleep(200);
      assert.equal(statuses.length, 4, 'nothing arrives while disconnected');

      const mark = frames.length;
      const r = await client.resume(); // reconnects with since = {offset: 4, epoch}
      assert.equal(r.type, 'ok');
      assert.equal(r.recovered, true, JSON.stringify(r));
      assert.equal(r.offset, 6);
      await waitUntil(() => statuses.length >= 6, 5000, 'the 2 missed statuses');
      await sleep(300); // let any extra (duplicate) frame arrive
      const after = frames.slice(mark).filter((f) => f.type === 'message');
      assert.deepEqual(after.map((f) => [f.offset, f.data.status]), [[5, 'out_for_delivery'], [6, 'delivered']],
        'exactly the two missed, in order, no duplicates');
      assert.deepEqual(statuses.map((m) => m.status), ['created', 'paid', 'packed', 'shipped', 'out_for_delivery', 'delivered']);
    } finally {
      client.stop();
    }
  });

  test('as a user runs it: examples/order-status/client.mjs and post-status.sh', { timeout: 30000 }, async () => {
    const orderId = 'A-77';
    const env = { HERALD_HTTP: `http://127.0.0.1:${srv.port}` };
    const post = async (status) => {
      const r = await run('sh', [path.join(exampleDir, 'post-status.sh'), orderId, status], { env });
      assert.equal(r.code, 0, `post-status.sh ${status}: ${r.stdout} ${r.stderr}`);
      return JSON.parse(r.stdout);
    };
    const clientJs = path.join(exampleDir, 'client.mjs');
    // run from tests/e2e so that client.mjs finds npm `ws` in the current directory
    let c = startChild(process.execPath, [clientJs, '--url', srv.url, orderId], { cwd: e2eDir });
    try {
      await c.waitLine(/^# subscribed to orders\.A-77 at offset 0/, 5000, 'the subscribed line');
      for (const s of ['created', 'paid', 'packed', 'shipped']) await post(s);
      await waitUntil(() => c.lines.filter((l) => STATUS_RE.test(l)).length >= 4, 5000, 'four status lines')
        .catch((e) => { e.message += `\n${c.lines.join('\n')}`; throw e; });
      const first = c.lines.filter((l) => STATUS_RE.test(l)).map((l) => STATUS_RE.exec(l));
      assert.deepEqual(first.map((m) => [m[2], m[3]]), [['1', 'created'], ['2', 'paid'], ['3', 'packed'], ['4', 'shipped']]);
      const epoch = first[3][4];
      await c.stop(); // the client goes away
      const stopLine = c.lines.find((l) => l.startsWith('# stopped at '));
      assert.equal(stopLine, `# stopped at 4:${epoch} (resume with --since 4:${epoch})`);

      await post('out_for_delivery');
      await post('delivered');

      c = startChild(process.execPath, [clientJs, '--url', srv.url, '--since', `4:${epoch}`, orderId], { cwd: e2eDir });
      await c.waitLine(/^# reconnected to orders\.A-77: recovered/, 5000, 'the recovered line');
      await waitUntil(() => c.lines.filter((l) => STATUS_RE.test(l)).length >= 2, 5000, 'the 2 missed status lines');
      await post('signed');
      await waitUntil(() => c.lines.filter((l) => STATUS_RE.test(l)).length >= 3, 5000, 'the live status line');
      await sleep(200);
      const again = c.lines.filter((l) => STATUS_RE.test(l)).map((l) => STATUS_RE.exec(l));
      assert.deepEqual(again.map((m) => [m[2], m[3]]), [['5', 'out_for_delivery'], ['6', 'delivered'], ['7', 'signed']]);
    } finally {
      await c.stop();
    }
  });
});
