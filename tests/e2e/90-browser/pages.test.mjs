// The demo and admin pages (docs/web.md) in a real browser: headless Chromium driven by
// playwright-core against a real `herald serve`. Two tabs chat; the order tracker shows
// history and statuses posted with curl; the STOMP chat and the raw console work; a
// server restart (graceful takeover, which keeps history on one node) and a server
// killed with SIGKILL and started again (with --redis, which keeps history in Redis) show
// "reconnecting", then "live", and the messages published meanwhile exactly once; with
// WebSocket blocked herald.js falls back to SSE; the admin page's figures move under
// load and ask for the API key. Every page passes a small accessibility check (labels,
// button names, contrast) and fits a 390 px phone; screenshots go to
// HERALD_ARTIFACTS_DIR (default tests/e2e/artifacts).
//
// Needs Chromium (/usr/bin/chromium, or HERALD_CHROMIUM) and curl: skipped with a reason
// without them. Every wait is bounded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import { startHerald, sleep, withTimeout, freePort } from '../helpers/herald.mjs';
import { startRedis, haveRedis } from '../helpers/redis.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const e2eDir = path.resolve(here, '..');
const artifactsDir = process.env.HERALD_ARTIFACTS_DIR || path.join(e2eDir, 'artifacts');
const chromiumPath = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const stompBundle = path.resolve(e2eDir, '..', '..', 'web', 'node_modules', '@stomp', 'stompjs', 'bundles', 'stomp.umd.min.js');
const skip = !fs.existsSync(chromiumPath)
  ? `needs Chromium at ${chromiumPath} (scripts/deps.sh test installs it)`
  : false;

const WAIT_MS = 8000; // every wait for something on a page
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

let browser;
before(async () => {
  if (skip) return;
  fs.mkdirSync(artifactsDir, { recursive: true });
  browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'], timeout: 30000 });
});
after(async () => {
  if (browser) await browser.close();
});

/** curl, as a backend or an operator would: resolves to {status, body}. */
function curl(args) {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-s', '-o', '-', '-w', '\n%{http_code}', '--max-time', '5', ...args], (err, stdout) => {
      if (err) return reject(err);
      const i = stdout.lastIndexOf('\n');
      resolve({ status: Number(stdout.slice(i + 1)), body: stdout.slice(0, i) });
    });
  });
}

async function publish(port, channel, data, key) {
  const r = await curl(['-X', 'POST', `http://127.0.0.1:${port}/api/publish`, '-H', 'Content-Type: application/json',
    ...(key ? ['-H', `Authorization: Bearer ${key}`] : []), '-d', JSON.stringify({ channel, data })]);
  assert.equal(r.status, 200, `publish to ${channel}: ${r.body}`);
  return JSON.parse(r.body);
}

/** A page with its problems (page errors, console errors) recorded for failure messages. */
async function openPage(url, { viewport = DESKTOP, init } = {}) {
  const context = await browser.newContext({ viewport });
  if (init) await context.addInitScript(init);
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  await page.goto(url);
  return { page, context, problems };
}

// Saving each page's screenshot is part of what the tests check: a failure fails the test.
async function screenshot(p, file) {
  const to = path.join(artifactsDir, file);
  fs.rmSync(to, { force: true });
  await withTimeout(p.page.screenshot({ path: to, fullPage: true }), WAIT_MS, `screenshot ${file}`);
  assert.ok(fs.statSync(to).size > 0, `${file} saved`);
}

const items = (page, sel) => page.$$eval(`${sel} li`, (lis) => lis.map((li) => li.textContent.replace(/\s+/g, ' ').trim()));

/** Waits until the list shows every expected entry (substring match); asserts it. */
async function expectItems(p, sel, expected, what) {
  try {
    await p.page.waitForFunction(([s, want]) => {
      const got = [...document.querySelectorAll(`${s} li`)].map((li) => li.textContent.replace(/\s+/g, ' ').trim());
      return want.every((w) => got.some((g) => g.includes(w)));
    }, [sel, expected], { timeout: WAIT_MS });
  } catch {
    // the assertion below says what is there
  }
  const got = await items(p.page, sel);
  for (const w of expected) {
    assert.ok(got.some((g) => g.includes(w)), `${what}: "${w}" not shown; shows ${JSON.stringify(got)}; problems ${JSON.stringify(p.problems)}`);
  }
  return got;
}

async function waitState(p, state, sel = '#conn') {
  try {
    await p.page.waitForSelector(`${sel}[data-state="${state}"]`, { timeout: WAIT_MS });
  } catch (e) {
    const text = await p.page.textContent(sel);
    throw new Error(`${sel} never became ${state} (shows ${JSON.stringify(text)}); problems ${JSON.stringify(p.problems)}`, { cause: e });
  }
}

/**
 * An axe-like check of the basics: every form control has a label, every button and link
 * a name, the page a language and one h1, live regions where logs are, no text under
 * 4.5:1 contrast, and nothing wider than the viewport (a phone must not scroll sideways).
 */
async function checkAccessibility(p, what) {
  const found = await p.page.evaluate(() => {
    const bad = [];
    const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
    const nameOf = (el) => {
      if (el.getAttribute('aria-label')) return el.getAttribute('aria-label');
      const by = el.getAttribute('aria-labelledby');
      if (by) return by.split(/\s+/).map((id) => document.getElementById(id)?.textContent || '').join(' ');
      if (el.labels && el.labels.length) return [...el.labels].map((l) => l.textContent).join(' ');
      return el.textContent;
    };
    if (!document.documentElement.lang) bad.push('html has no lang');
    if (document.querySelectorAll('h1').length !== 1) bad.push('not exactly one h1');
    for (const el of document.querySelectorAll('input, select, textarea')) {
      if (el.type === 'hidden') continue;
      if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby')) {
        bad.push(`control without a label: #${el.id || el.name || el.outerHTML.slice(0, 60)}`);
      }
    }
    for (const el of document.querySelectorAll('button, a[href], [role="button"]')) {
      if (!nameOf(el).trim()) bad.push(`no accessible name: ${el.outerHTML.slice(0, 80)}`);
    }
    for (const el of document.querySelectorAll('canvas, img')) {
      if (!el.getAttribute('aria-label') && !el.getAttribute('alt')) bad.push(`no text alternative: ${el.outerHTML.slice(0, 60)}`);
    }
    for (const el of document.querySelectorAll('ol.log, ol.timeline')) {
      if (!el.getAttribute('aria-live')) bad.push(`log without aria-live: #${el.id}`);
    }
    // contrast of every visible text node's element against its effective background
    const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
      return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const seen = new Set();
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!n.textContent.trim() || seen.has(el) || !visible(el) || el.closest(':disabled, .skip')) continue;
      seen.add(el);
      const fg = rgb(getComputedStyle(el).color).slice(0, 3);
      const [l1, l2] = [lum(fg), lum(background(el))].sort((a, b) => b - a);
      const ratio = (l1 + 0.05) / (l2 + 0.05);
      if (ratio < 4.5) bad.push(`contrast ${ratio.toFixed(2)}:1 for "${n.textContent.trim().slice(0, 30)}"`);
    }
    if (document.documentElement.scrollWidth > window.innerWidth + 1) {
      bad.push(`wider than the viewport: ${document.documentElement.scrollWidth} > ${window.innerWidth}`);
    }
    return bad;
  });
  assert.deepEqual(found, [], `${what}: accessibility problems`);
}

test('two tabs chat; the pages pass the accessibility check at desktop and phone width', { skip, timeout: 60000 }, async () => {
  const h = await startHerald([]);
  const base = `http://127.0.0.1:${h.port}`;
  let a;
  let b;
  try {
    a = await openPage(`${base}/`);
    b = await openPage(`${base}/`, { viewport: PHONE });
    await waitState(a, 'connected');
    await waitState(b, 'connected');
    assert.match(await a.page.textContent('#conn-text'), /^live · websocket( · \d+ ms)?$/);

    // keyboard only: fill by label, submit with Enter
    await a.page.fill('#chat-name', 'Alice');
    const text = a.page.getByLabel('Message').first();
    await text.fill('Hello from tab A');
    await text.press('Enter');
    await expectItems(b, '#chat-log', ['Alice: Hello from tab A'], 'tab B');
    await b.page.fill('#chat-name', 'Bob');
    const markup = 'Hi <b>Alice</b> & "all" 👋';
    await b.page.fill('#chat-text', markup);
    await b.page.press('#chat-text', 'Enter');
    const got = await expectItems(a, '#chat-log', ['Alice: Hello from tab A', `Bob: ${markup}`], 'tab A');
    assert.equal(got.filter((g) => g.includes('Hello from tab A')).length, 1, 'shown once');
    assert.equal(await a.page.locator('#chat-log b').count(), 0, 'markup in a message became HTML');
    // a latency figure appears once a ping came back
    await a.page.waitForFunction(() => /\d+ ms$/.test(document.getElementById('conn-text').textContent), null, { timeout: WAIT_MS });

    await checkAccessibility(a, 'demo page, desktop');
    await checkAccessibility(b, 'demo page, phone');
    await screenshot(a, 'web-demo-desktop.png');
    await screenshot(b, 'web-demo-phone.png');
    assert.deepEqual(a.problems.filter((x) => !/stomp\.umd\.min\.js/.test(x)), [], 'no errors in the page');
  } finally {
    await a?.context.close();
    await b?.context.close();
    await h.stop();
  }
});

test('order tracker: history first, then statuses posted with curl and with the buttons (API key)', { skip, timeout: 60000 }, async () => {
  const key = 'k-42-secret';
  const h = await startHerald(['--api-key', key]);
  const base = `http://127.0.0.1:${h.port}`;
  let p;
  try {
    await publish(h.port, 'orders.1001', { status: 'placed' }, key);
    p = await openPage(`${base}/`, { viewport: PHONE });
    await waitState(p, 'connected');
    await p.page.fill('#order-id', '1001');
    await p.page.press('#order-id', 'Enter');
    await p.page.waitForSelector('#order-log[data-following="orders.1001"]', { timeout: WAIT_MS });
    await expectItems(p, '#order-log', ['placed'], 'the history');
    await publish(h.port, 'orders.1001', { status: 'packed' }, key);
    let got = await expectItems(p, '#order-log', ['placed', 'packed'], 'a status posted with curl');
    assert.equal(got.length, 2, `each status once: ${JSON.stringify(got)}`);

    // the buttons post through /api/publish, which needs the key here
    await p.page.getByRole('button', { name: 'shipped' }).click();
    await p.page.waitForFunction(() => /API key/.test(document.getElementById('order-note').textContent), null, { timeout: WAIT_MS });
    await p.page.fill('#api-key', key);
    await p.page.getByRole('button', { name: 'shipped' }).click();
    got = await expectItems(p, '#order-log', ['placed', 'packed', 'shipped'], 'a status posted with the button');
    assert.deepEqual(await p.page.$$eval('#order-log li', (l) => l.map((li) => li.dataset.status)), ['placed', 'packed', 'shipped']);

    // another order: its own timeline, none of the first one's
    await p.page.fill('#order-id', '7');
    await p.page.press('#order-id', 'Enter');
    // no history yet: what is published before the subscription is live is not shown
    await p.page.waitForSelector('#order-log[data-following="orders.7"]', { timeout: WAIT_MS });
    await publish(h.port, 'orders.7', { status: 'delivered' }, key);
    await expectItems(p, '#order-log', ['delivered'], 'order 7');
    assert.equal((await items(p.page, '#order-log')).length, 1);
    await screenshot(p, 'web-orders-phone.png');
  } finally {
    await p?.context.close();
    await h.stop();
  }
});

test('STOMP chat between two tabs, and the raw /ws console', { skip, timeout: 60000 }, async () => {
  const h = await startHerald([]);
  const base = `http://127.0.0.1:${h.port}`;
  let a;
  let b;
  try {
    a = await openPage(`${base}/`);
    b = await openPage(`${base}/`);
    if (!fs.existsSync(stompBundle)) {
      await a.page.waitForFunction(() => /not installed/.test(document.getElementById('stomp-state').textContent), null, { timeout: WAIT_MS });
    } else {
      for (const p of [a, b]) {
        await p.page.waitForFunction(() => /connected/.test(document.getElementById('stomp-state').textContent), null, { timeout: WAIT_MS });
      }
      await a.page.fill('#stomp-name', 'Ann');
      await a.page.fill('#stomp-text', 'over STOMP');
      await a.page.press('#stomp-text', 'Enter');
      await expectItems(b, '#stomp-log', ['Ann: over STOMP'], 'STOMP tab B');
      await expectItems(a, '#stomp-log', ['Ann: over STOMP'], 'STOMP tab A');
    }

    await a.page.click('#raw-connect');
    await expectItems(a, '#raw-log', ['open'], 'raw console');
    await a.page.fill('#raw-text', 'echo <me>');
    await a.page.press('#raw-text', 'Enter');
    await expectItems(a, '#raw-log', ['> echo <me>', '< echo <me>'], 'the echo');
    await a.page.click('#raw-disconnect');
    await expectItems(a, '#raw-log', ['closed: 1000'], 'disconnect');
    assert.ok(await a.page.isEnabled('#raw-connect'));
    assert.ok(await a.page.isDisabled('#raw-send'));
  } finally {
    await a?.context.close();
    await b?.context.close();
    await h.stop();
  }
});

test('a server restart shows "reconnecting", then recovers what was published meanwhile, once', { skip, timeout: 60000 }, async () => {
  // History survives a restart only through the graceful takeover (docs/operations.md):
  // B takes A's port and channels, A closes its clients and exits. The page's back-off is
  // pinned to 4 s (?retry=4000, Math.random fixed), so it is still away when the test
  // publishes to B: those messages reach it only through recovery from history.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-web-'));
  const sock = path.join(dir, 'h.sock');
  const port = await freePort();
  const common = ['--listen', `127.0.0.1:${port}`, '--handoff-socket', sock, '--shutdown-timeout', '2'];
  const a = await startHerald(common);
  let b = null;
  let p;
  try {
    p = await openPage(`http://127.0.0.1:${port}/?retry=4000`, {
      init: () => {
        Math.random = () => 0.999;
      },
    });
    await waitState(p, 'connected');
    await p.page.evaluate(() => {
      window.states = [];
      window.herald.on('state', (s) => window.states.push(s.state));
    });
    await publish(port, 'chat.lobby', { name: 'ops', text: 'before the restart' });
    await expectItems(p, '#chat-log', ['ops: before the restart'], 'before');

    b = await startHerald([...common, '--takeover', sock], { timeoutMs: 20000 });
    await withTimeout(a.exited, 15000, 'A exiting after the takeover');
    await waitState(p, 'reconnecting');
    assert.match(await p.page.textContent('#conn-text'), /^reconnecting in \d+s$/);
    await publish(port, 'chat.lobby', { name: 'ops', text: 'while away 1' });
    await publish(port, 'chat.lobby', { name: 'ops', text: 'while away 2' });
    assert.equal(await p.page.getAttribute('#conn', 'data-state'), 'reconnecting', 'published while the page was away');
    await screenshot(p, 'web-demo-reconnecting.png');

    await waitState(p, 'connected');
    const got = await expectItems(p, '#chat-log', ['ops: before the restart', 'ops: while away 1', 'ops: while away 2'], 'after');
    await sleep(300); // a duplicate would come right behind
    const final = await items(p.page, '#chat-log');
    for (const t of ['before the restart', 'while away 1', 'while away 2']) {
      assert.equal(final.filter((g) => g.endsWith(`ops: ${t}`)).length, 1, `"${t}" exactly once: ${JSON.stringify(got)}`);
    }
    const states = await p.page.evaluate(() => window.states);
    assert.deepEqual(states.slice(0, 1), ['reconnecting'], `states: ${states}`);
    assert.equal(states.at(-1), 'connected', `states: ${states}`);
    await publish(port, 'chat.lobby', { name: 'ops', text: 'after' });
    await expectItems(p, '#chat-log', ['ops: after'], 'live again');
  } finally {
    await p?.context.close();
    await a.stop({ graceMs: 2000 });
    if (b) await b.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the server killed (SIGKILL) and started again: with --redis the page recovers what was published meanwhile, once', { skip: skip || (!haveRedis() && 'redis-server is not installed'), timeout: 60000 }, async () => {
  // A crash loses a lone node's memory; with --redis the channel's offsets and history
  // live in Redis (docs/cluster.md), so a node started again on the same port serves the
  // same epoch. While A is dead, the messages are published on another node, B.
  const redis = await startRedis();
  const port = await freePort();
  const node = (listen) => startHerald(['--listen', `127.0.0.1:${listen}`, '--redis', redis.url], { timeoutMs: 20000 });
  let a = await node(port);
  let b = null;
  let p;
  try {
    b = await node(await freePort());
    p = await openPage(`http://127.0.0.1:${port}/?retry=4000`, {
      init: () => {
        Math.random = () => 0.999;
      },
    });
    await waitState(p, 'connected');
    await publish(port, 'chat.lobby', { name: 'ops', text: 'before the crash' });
    await expectItems(p, '#chat-log', ['ops: before the crash'], 'before');

    process.kill(a.proc.pid, 'SIGKILL');
    await withTimeout(a.exited, 10000, 'A dying');
    await waitState(p, 'reconnecting');
    assert.match(await p.page.textContent('#conn-text'), /^reconnecting in \d+s$/);
    await publish(b.port, 'chat.lobby', { name: 'ops', text: 'while down 1' });
    await publish(b.port, 'chat.lobby', { name: 'ops', text: 'while down 2' });
    assert.equal(await p.page.getAttribute('#conn', 'data-state'), 'reconnecting', 'published while the page was away');

    a = await node(port);
    await p.page.waitForSelector('#conn[data-state="connected"]', { timeout: 30000 });
    await expectItems(p, '#chat-log', ['ops: before the crash', 'ops: while down 1', 'ops: while down 2'], 'after');
    await sleep(300); // a duplicate would come right behind
    const final = await items(p.page, '#chat-log');
    for (const t of ['before the crash', 'while down 1', 'while down 2']) {
      assert.equal(final.filter((g) => g.endsWith(`ops: ${t}`)).length, 1, `"${t}" exactly once: ${JSON.stringify(final)}`);
    }
    await publish(b.port, 'chat.lobby', { name: 'ops', text: 'after, from B' });
    await expectItems(p, '#chat-log', ['ops: after, from B'], 'live across nodes');
  } finally {
    await p?.context.close();
    await a.stop();
    if (b) await b.stop();
    await redis.stop();
  }
});

test('WebSocket blocked in the page: herald.js falls back to SSE and still receives', { skip, timeout: 60000 }, async () => {
  const h = await startHerald([]);
  let p;
  try {
    p = await openPage(`http://127.0.0.1:${h.port}/`, {
      init: () => {
        window.WebSocket = class {
          constructor() {
            throw new Error('WebSocket blocked by the test');
          }
        };
      },
    });
    await waitState(p, 'connected');
    assert.match(await p.page.textContent('#conn-text'), /^live · sse/);
    await publish(h.port, 'chat.lobby', { name: 'curl', text: 'to an SSE page' });
    await expectItems(p, '#chat-log', ['curl: to an SSE page'], 'over SSE');
    // and it publishes (POST /sse)
    await p.page.fill('#chat-name', 'Eve');
    await p.page.fill('#chat-text', 'from the SSE page');
    await p.page.press('#chat-text', 'Enter');
    await expectItems(p, '#chat-log', ['Eve: from the SSE page'], 'published over the fallback');
  } finally {
    await p?.context.close();
    await h.stop();
  }
});

test('admin page: asks for the API key, then its figures move when a load runs', { skip, timeout: 60000 }, async () => {
  const key = 'adm1n-key';
  const h = await startHerald(['--api-key', key, '--threads', '2']);
  const base = `http://127.0.0.1:${h.port}`;
  let p;
  let phone;
  const clients = [];
  let loading = true;
  try {
    p = await openPage(`${base}/admin`);
    await p.page.waitForSelector('#key-card:not([hidden])', { timeout: WAIT_MS });
    await p.page.fill('#key', 'wrong');
    await p.page.press('#key', 'Enter');
    await p.page.waitForFunction(() => /refused/.test(document.getElementById('key-note').textContent), null, { timeout: WAIT_MS });
    await p.page.fill('#key', key);
    await p.page.press('#key', 'Enter');
    await waitState(p, 'connected', '#feed');
    await p.page.waitForFunction(() => document.getElementById('s-conns').textContent !== '–', null, { timeout: WAIT_MS });
    const before = Number((await p.page.textContent('#s-conns')).replace(/\D/g, ''));

    // the load: six echo clients sending, and a channel with two subscribers
    for (let i = 0; i < 6; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${h.port}/ws`);
      await withTimeout(new Promise((r, j) => { ws.once('open', r); ws.once('error', j); }), 4000, 'echo client');
      ws.on('message', () => {});
      clients.push(ws);
    }
    for (let i = 0; i < 2; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${h.port}/pubsub`);
      await withTimeout(new Promise((r, j) => { ws.once('open', r); ws.once('error', j); }), 4000, 'subscriber');
      ws.send(JSON.stringify({ type: 'subscribe', id: 1, channel: 'load.test' }));
      clients.push(ws);
    }
    const pump = (async () => {
      while (loading) {
        for (const ws of clients.slice(0, 6)) ws.send('load');
        await sleep(10);
      }
    })();

    await p.page.waitForFunction((n) => Number(document.getElementById('s-conns').textContent.replace(/\D/g, '')) >= n + 8, before, { timeout: WAIT_MS });
    await p.page.waitForFunction(() => Number(document.getElementById('s-in').textContent.replace(/,/g, '')) > 50 &&
      Number(document.getElementById('s-out').textContent.replace(/,/g, '')) > 50, null, { timeout: WAIT_MS });
    await p.page.waitForFunction(() => [...document.querySelectorAll('#channels tr')].some((tr) => /load\.test\s*2/.test(tr.textContent)), null, { timeout: WAIT_MS });
    assert.equal(await p.page.locator('#threads tr').count(), 2, 'one row per thread');
    assert.match(await p.page.getAttribute('#chart', 'aria-label'), /now [\d.,]+ in, [\d.,]+ out/);
    await sleep(2500); // a few more points on the chart for the screenshot
    await checkAccessibility(p, 'admin page, desktop');
    await screenshot(p, 'web-admin-desktop.png');

    phone = await openPage(`${base}/admin`, { viewport: PHONE }); // same tab storage? no: asks again
    await phone.page.waitForSelector('#key-card:not([hidden])', { timeout: WAIT_MS });
    await phone.page.fill('#key', key);
    await phone.page.press('#key', 'Enter');
    await waitState(phone, 'connected', '#feed');
    await phone.page.waitForFunction(() => document.getElementById('s-in').textContent !== '–', null, { timeout: WAIT_MS });
    await checkAccessibility(phone, 'admin page, phone');
    await screenshot(phone, 'web-admin-phone.png');

    loading = false;
    await pump;
    for (const ws of clients) ws.close();
    await p.page.waitForFunction((n) => Number(document.getElementById('s-conns').textContent.replace(/\D/g, '')) <= n + 1, before, { timeout: WAIT_MS });
    assert.deepEqual(p.problems.filter((x) => !/401|Unauthorized/.test(x)), [], 'no errors in the page');
  } finally {
    loading = false;
    for (const ws of clients) ws.terminate();
    await p?.context.close();
    await phone?.context.close();
    await h.stop();
  }
});
