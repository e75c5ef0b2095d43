// sockjs-client's browser bundle + @stomp/stompjs in headless Chromium (playwright-core),
// the way a Spring .withSockJS() front end connects, against Herald's /stomp: each
// transport forced in turn receives a message published through the HTTP API and sends
// one that a plain /stomp client receives. The page comes from another origin (a small
// static server, as a front end served apart from its broker): CORS with credentials and
// --allowed-origins are exercised too.
//
// Needs Chromium (/usr/bin/chromium, or HERALD_CHROMIUM): skipped with a reason without
// it. A screenshot goes to HERALD_ARTIFACTS_DIR (default tests/e2e/artifacts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startHerald, withTimeout } from '../helpers/herald.mjs';
import { stompjs, api, uid } from '../40-stomp/stomp-helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const e2eDir = path.resolve(here, '..');
const artifactsDir = process.env.HERALD_ARTIFACTS_DIR || path.join(e2eDir, 'artifacts');
const chromiumPath = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const needsChromium = fs.existsSync(chromiumPath)
  ? false
  : `needs Chromium at ${chromiumPath} (scripts/deps.sh test installs it)`;

const SOCKJS_JS = path.join(e2eDir, 'node_modules', 'sockjs-client', 'dist', 'sockjs.min.js');
const STOMP_JS = path.join(e2eDir, 'node_modules', '@stomp', 'stompjs', 'bundles', 'stomp.umd.min.js');

// The page: what a Spring front end does, with the transport list as a parameter.
const PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>SockJS on Herald</title>
<script src="sockjs.min.js"></script><script src="stomp.umd.min.js"></script></head>
<body><h1>SockJS + STOMP on Herald</h1><ul id="log"></ul><script>
window.BROKER = new URLSearchParams(location.search).get('broker');
window.got = {};
function log(t) { const li = document.createElement('li'); li.textContent = t; document.getElementById('log').append(li); }
window.run = (transport, dest) => new Promise((resolve, reject) => {
  window.got[transport] = [];
  let sock;
  const client = new StompJs.Client({
    webSocketFactory: () => (sock = new SockJS(window.BROKER, null, { transports: [transport] })),
    reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0,
  });
  client.onConnect = () => {
    client.watchForReceipt('sub-' + transport, () => resolve(sock.transport));
    client.subscribe(dest, (m) => { window.got[transport].push(m.body); log(transport + ': ' + m.body); },
      { receipt: 'sub-' + transport });
  };
  client.onWebSocketClose = (e) => reject(new Error('closed ' + e.code + ' ' + e.reason));
  window['client_' + transport] = client;
  client.activate();
});
window.send = (transport, dest, body) => window['client_' + transport].publish({ destination: dest, body });
</script></body></html>`;

/** A static server for the page and the bundles, on a free port. */
function startPageServer() {
  const files = {
    '/page.html': [PAGE, 'text/html'],
    '/sockjs.min.js': [fs.readFileSync(SOCKJS_JS), 'text/javascript'],
    '/stomp.umd.min.js': [fs.readFileSync(STOMP_JS), 'text/javascript'],
  };
  const server = http.createServer((req, res) => {
    const f = files[new URL(req.url, 'http://x').pathname];
    res.writeHead(f ? 200 : 404, { 'content-type': f ? f[1] : 'text/plain' });
    res.end(f ? f[0] : '');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

test('Chromium: sockjs-client + stompjs over each SockJS transport', { skip: needsChromium, timeout: 60000 }, async () => {
  const pages = await startPageServer();
  const pageOrigin = `http://127.0.0.1:${pages.address().port}`;
  const srv = await startHerald(['--threads', '2', '--allowed-origins', pageOrigin]);
  let browser;
  let code;
  const plain = await stompjs(srv);
  try {
    browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'], timeout: 30000 });
    const page = await browser.newPage();
    page.setDefaultTimeout(8000);
    const problems = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    await page.goto(`${pageOrigin}/page.html?broker=${encodeURIComponent(`http://127.0.0.1:${srv.port}/stomp`)}`);
    for (const transport of ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource']) {
      const ch = uid(`br-${transport}-`);
      const used = await withTimeout(page.evaluate(([t, d]) => window.run(t, d), [transport, `/topic/${ch}`]), 10000, `${transport} connect`);
      assert.equal(used, transport);
      const r = await api(srv, 'POST', '/api/publish', { channel: ch, data: `hello ${transport} 100% \u2028é😀` });
      assert.equal(r.status, 200, r.text);
      await page.waitForFunction((t) => window.got[t].length > 0, transport);
      assert.deepEqual(await page.evaluate((t) => window.got[t], transport), [`hello ${transport} 100% \u2028é😀`]);
      const sub = await plain.subscribe(`/topic/${ch}`);
      await page.evaluate(([t, d]) => window.send(t, d, 'from the page'), [transport, `/topic/${ch}`]);
      assert.equal((await sub.next()).body, 'from the page');
    }
    assert.deepEqual(problems, []);
    fs.mkdirSync(artifactsDir, { recursive: true });
    await withTimeout(page.screenshot({ path: path.join(artifactsDir, 'sockjs-browser.png'), fullPage: true }), 8000, 'screenshot');
  } finally {
    await plain.kill();
    if (browser) await browser.close().catch(() => {});
    code = await srv.stop();
    pages.close();
  }
  assert.equal(code, 0, srv.stderr().slice(-3000));
  assert.doesNotMatch(srv.stderr(), /runtime error|Sanitizer/);
});
