// The stomp-chat example (examples/stomp-chat) in a real browser: headless Chromium,
// driven by playwright-core, loads the page from the example's backend, and two users
// chat through Herald's /stomp with the backend as --app-webhook. The page is the one a
// Spring front end would be; only its broker URL points at Herald (?broker=...).
//
// Needs Chromium (/usr/bin/chromium, or HERALD_CHROMIUM): skipped with a reason without
// it. Screenshots of both pages go to HERALD_ARTIFACTS_DIR (default tests/e2e/artifacts),
// whether the test passes or not. Every wait is bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startHerald, withTimeout } from '../helpers/herald.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const e2eDir = path.resolve(here, '..');
const exampleDir = path.resolve(e2eDir, '..', '..', 'examples', 'stomp-chat');
const artifactsDir = process.env.HERALD_ARTIFACTS_DIR || path.join(e2eDir, 'artifacts');
const chromiumPath = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const needsChromium = fs.existsSync(chromiumPath)
  ? false
  : `needs Chromium at ${chromiumPath} (scripts/deps.sh test installs it)`;

const WAIT_MS = 5000; // every wait for something on a page

/** Start examples/stomp-chat/backend.mjs on a free port. */
function startBackend() {
  const proc = spawn(process.execPath, [path.join(exampleDir, 'backend.mjs')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1' },
  });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`backend did not start within 5 s: ${err}`));
    }, 5000);
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`backend exited with ${code}: ${err}`)); });
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ port: Number(m[1]), output: () => out, errors: () => err, stop });
      }
    });
  });
}

/**
 * Open the chat page for one user. Records the STOMP frames of its WebSocket, console
 * errors and page errors, for the assertions and for failure messages.
 */
async function openChat(browser, url, { name, viewport }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const chat = { name, page, context, sockets: [], frames: [], problems: [] };
  page.on('websocket', (ws) => {
    chat.sockets.push(ws.url());
    ws.on('framesent', (f) => chat.frames.push(`> ${String(f.payload)}`));
    ws.on('framereceived', (f) => chat.frames.push(`< ${String(f.payload)}`));
    ws.on('close', () => chat.frames.push('(socket closed)'));
  });
  page.on('pageerror', (e) => chat.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') chat.problems.push(`console: ${m.text()}`); });
  await page.goto(url);
  return chat;
}

/** What the page shows in its message list: one "TYPE text" per entry, in order. */
function shown(page) {
  return page.$$eval('#messages li', (items) => items.map((li) => `${li.dataset.type} ${li.textContent.replace(/\s+/g, ' ').trim()}`));
}

function describe(chat) {
  const frames = chat.frames.map((f) => f.replace(/\0/g, '^@').replace(/\n/g, '\\n')).join('\n    ');
  return `\n  ${chat.name}: sockets ${JSON.stringify(chat.sockets)}; problems ${JSON.stringify(chat.problems)}\n  frames:\n    ${frames || '(none)'}`;
}

/** Wait until the page shows exactly `expected`; fail with what it shows and its frames. */
async function expectMessages(chat, expected) {
  try {
    await chat.page.waitForFunction((want) => {
      const got = [...document.querySelectorAll('#messages li')]
        .map((li) => `${li.dataset.type} ${li.textContent.replace(/\s+/g, ' ').trim()}`);
      return got.length >= want.length;
    }, expected, { timeout: WAIT_MS });
  } catch {
    // fall through: the assertion below reports what is there
  }
  const got = await shown(chat.page);
  assert.deepEqual(got, expected, `${chat.name}'s page shows the wrong messages${describe(chat)}`);
}

async function join(chat) {
  // by label, as a screen reader user would find it, then Enter: no mouse needed
  await chat.page.getByLabel('Your name').fill(chat.name);
  await chat.page.getByLabel('Your name').press('Enter');
  try {
    await chat.page.waitForSelector('#status[data-state="connected"]', { timeout: WAIT_MS });
  } catch (e) {
    const status = await chat.page.textContent('#status');
    throw new Error(`${chat.name} did not connect (status: ${JSON.stringify(status)})${describe(chat)}`, { cause: e });
  }
}

async function say(chat, text) {
  const box = chat.page.getByLabel('Message', { exact: true });
  await box.fill(text);
  await box.press('Enter');
}

async function screenshot(chat, file) {
  if (!chat) return;
  try {
    await withTimeout(chat.page.screenshot({ path: path.join(artifactsDir, file), fullPage: true }), WAIT_MS, 'screenshot');
  } catch (e) {
    console.error(`could not save ${file}: ${e.message}`);
  }
}

test('two users chat through Herald with the unchanged stomp.js page', { skip: needsChromium, timeout: 90000 }, async () => {
  fs.mkdirSync(artifactsDir, { recursive: true });
  for (const f of ['stomp-chat-alice.png', 'stomp-chat-bob.png']) fs.rmSync(path.join(artifactsDir, f), { force: true });
  let backend;
  let herald;
  let browser;
  let alice;
  let bob;
  try {
    backend = await startBackend();
    const pageOrigin = `http://127.0.0.1:${backend.port}`;
    herald = await startHerald([
      '--app-webhook', `${pageOrigin}/stomp`,
      // the page comes from the backend's port, Herald is on another: a cross-origin
      // WebSocket, allowed the way Spring's setAllowedOriginPatterns would
      '--allowed-origins', pageOrigin,
    ]);
    const broker = `ws://127.0.0.1:${herald.port}/stomp`;
    const url = `${pageOrigin}/?broker=${encodeURIComponent(broker)}`;

    browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'], timeout: 30000 });
    alice = await openChat(browser, url, { name: 'Alice', viewport: { width: 1024, height: 700 } });
    bob = await openChat(browser, url, { name: 'Bob', viewport: { width: 390, height: 740 } }); // a phone

    await join(alice);
    await expectMessages(alice, ['JOIN Alice joined']);
    await join(bob);
    await expectMessages(bob, ['JOIN Bob joined']);
    await expectMessages(alice, ['JOIN Alice joined', 'JOIN Bob joined']);
    assert.deepEqual(alice.sockets, [broker], 'the page must use ?broker=');

    await say(alice, 'Hello from Alice');
    await expectMessages(alice, ['JOIN Alice joined', 'JOIN Bob joined', 'CHAT Alice Hello from Alice']);
    await expectMessages(bob, ['JOIN Bob joined', 'CHAT Alice Hello from Alice']);

    // markup in a message is text, never HTML
    const bobSays = 'Hi Alice <b>Bob</b> & "friends" here 👋';
    await say(bob, bobSays);
    const both = ['CHAT Alice Hello from Alice', `CHAT Bob ${bobSays}`];
    await expectMessages(alice, ['JOIN Alice joined', 'JOIN Bob joined', ...both]);
    await expectMessages(bob, ['JOIN Bob joined', ...both]);
    assert.equal(await alice.page.locator('#messages b').count(), 0, 'message markup was rendered as HTML');
    assert.equal(await bob.page.locator('#messages li.own').count(), 1, "Bob's own message is marked as his");
    await screenshot(bob, 'stomp-chat-bob.png');

    // Bob leaves with the button: Alice sees it, Bob is back at the join form
    await bob.page.getByRole('button', { name: 'Leave' }).click();
    await expectMessages(alice, ['JOIN Alice joined', 'JOIN Bob joined', ...both, 'LEAVE Bob left']);
    await bob.page.waitForSelector('#status[data-state="disconnected"]', { timeout: WAIT_MS });
    assert.ok(await bob.page.getByLabel('Your name').isVisible(), 'the join form is back after leaving');

    // Carol's tab crashes: no goodbye from the page, yet Alice sees her leave, from the
    // backend's answer to Herald's disconnect event.
    const carol = await openChat(browser, url, { name: 'Carol', viewport: { width: 800, height: 600 } });
    await join(carol);
    const beforeCarol = ['JOIN Alice joined', 'JOIN Bob joined', ...both, 'LEAVE Bob left'];
    await expectMessages(alice, [...beforeCarol, 'JOIN Carol joined']);
    await carol.page.goto('chrome://crash').catch(() => {});
    await expectMessages(alice, [...beforeCarol, 'JOIN Carol joined', 'LEAVE Carol left']);
    assert.ok(!carol.frames.some((f) => f.includes('chat.leaveUser')), 'Carol\'s page said goodbye itself');

    for (const chat of [alice, bob]) {
      assert.deepEqual(chat.problems, [], `${chat.name}'s page reported errors${describe(chat)}`);
      const errors = chat.frames.filter((f) => f.startsWith('< ERROR'));
      assert.deepEqual(errors, [], `Herald sent ${chat.name} an ERROR frame${describe(chat)}`);
    }
  } finally {
    await screenshot(alice, 'stomp-chat-alice.png');
    if (!fs.existsSync(path.join(artifactsDir, 'stomp-chat-bob.png'))) await screenshot(bob, 'stomp-chat-bob.png');
    if (browser) await withTimeout(browser.close(), 10000, 'closing Chromium').catch(() => {});
    if (herald) await herald.stop();
    if (backend) await backend.stop();
  }
});
