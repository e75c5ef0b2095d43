#!/usr/bin/env node
// The back end of the STOMP chat example, with no dependencies (node:http only).
//
// 1. POST /stomp is Herald's --app-webhook (docs/stomp.md, "Application destinations").
//    It plays the @MessageMapping methods of a Spring chat controller:
//      /app/chat.addUser      -> a JOIN message to /topic/public
//      /app/chat.sendMessage  -> the CHAT message to /topic/public
//      /app/chat.leaveUser    -> a LEAVE message to /topic/public
//    and Herald's disconnect event of a session that joined and did not leave -> LEAVE.
//    Anything else, or a message it cannot read, is answered 204: nothing is sent.
// 2. GET serves the page: index.html, app.js, style.css and the @stomp/stompjs UMD
//    bundle. Only that fixed list; no other path reaches the file system.
//
// Environment: PORT (default 8081; 0 picks a free port), HOST (default 127.0.0.1),
// STOMPJS_BUNDLE (path of stomp.umd.min.js; default: ./node_modules/@stomp/stompjs, then
// the copy the end-to-end tests install in tests/e2e/node_modules).
// Prints "stomp-chat backend listening on http://HOST:PORT" once it is ready.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT ?? 8081);
const MAX_REQUEST = 64 * 1024; // bytes of webhook request we read at most
const MAX_NAME = 40; // characters
const MAX_CONTENT = 2000; // characters

function findBundle() {
  const rel = path.join('node_modules', '@stomp', 'stompjs', 'bundles', 'stomp.umd.min.js');
  const candidates = [
    process.env.STOMPJS_BUNDLE,
    path.join(here, rel),
    path.join(here, '..', '..', 'tests', 'e2e', rel),
  ].filter(Boolean);
  return candidates.find((p) => fs.existsSync(p)) || null;
}

const bundle = findBundle();
if (!bundle) {
  console.error('stomp-chat: stomp.umd.min.js not found; run `npm install @stomp/stompjs` here '
    + 'or set STOMPJS_BUNDLE');
}

const JS = 'text/javascript; charset=utf-8';
const FILES = new Map([
  ['/', { file: path.join(here, 'index.html'), type: 'text/html; charset=utf-8' }],
  ['/index.html', { file: path.join(here, 'index.html'), type: 'text/html; charset=utf-8' }],
  ['/app.js', { file: path.join(here, 'app.js'), type: JS }],
  ['/style.css', { file: path.join(here, 'style.css'), type: 'text/css; charset=utf-8' }],
  ['/stomp.umd.min.js', { file: bundle, type: JS }],
]);

const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
    + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-cache',
};

// ------------------------------------------------------------------------------------
// The controller: one function per /app destination. Each gets the parsed chat message
// the page sent and returns the message for /topic/public, or null to send nothing.

/** Text from the page: a string, control characters made spaces, trimmed, 1..max long. */
function cleanText(v, max) {
  if (typeof v !== 'string') return null;
  const s = v.replace(/[\u0000-\u001f\u007f]/g, ' ').trim();
  if (!s || [...s].length > max) return null;
  return s;
}

const routes = {
  '/app/chat.addUser': (m) => {
    const sender = cleanText(m.sender, MAX_NAME);
    return sender && { type: 'JOIN', sender };
  },
  '/app/chat.sendMessage': (m) => {
    const sender = cleanText(m.sender, MAX_NAME);
    const content = cleanText(m.content, MAX_CONTENT);
    return sender && content && { type: 'CHAT', sender, content };
  },
  '/app/chat.leaveUser': (m) => {
    const sender = cleanText(m.sender, MAX_NAME);
    return sender && { type: 'LEAVE', sender };
  },
};

// Who joined on which STOMP session: a session that ends without leaving (a closed tab,
// a lost network) still gets its LEAVE, from Herald's disconnect event - the webhook's
// SessionDisconnectEvent.
const joined = new Map(); // session id -> sender

/** Herald's webhook request -> [status, answer object or null]. */
function handleApp(request) {
  if (request?.event === 'disconnect') {
    const sender = joined.get(request.session);
    joined.delete(request.session);
    if (!sender) return [204, null];
    console.log(`session ${request.session} ended: LEAVE ${sender}`);
    return [200, { destination: '/topic/public', body: { type: 'LEAVE', sender } }];
  }
  const route = Object.hasOwn(routes, request?.destination) ? routes[request.destination] : null;
  if (!route || typeof request.body !== 'string') return [204, null];
  let message;
  try {
    message = JSON.parse(request.body);
  } catch {
    return [204, null];
  }
  if (!message || typeof message !== 'object') return [204, null];
  const out = route(message);
  if (!out) return [204, null];
  if (out.type === 'JOIN') joined.set(request.session, out.sender);
  if (out.type === 'LEAVE') joined.delete(request.session);
  console.log(`${request.destination} from session ${request.session}: ${out.type} ${out.sender}`);
  return [200, { destination: '/topic/public', body: out }];
}

// ------------------------------------------------------------------------------------
// HTTP.

function send(res, status, headers, body) {
  res.writeHead(status, { ...headers, 'Content-Length': Buffer.byteLength(body ?? '') });
  res.end(body ?? '');
}

function onWebhook(req, res) {
  const chunks = [];
  let size = 0;
  let tooBig = false;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_REQUEST) {
      tooBig = true;
      req.destroy();
      return;
    }
    chunks.push(c);
  });
  req.on('end', () => {
    if (tooBig) return;
    let request;
    try {
      request = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      send(res, 400, { 'Content-Type': 'text/plain; charset=utf-8' }, 'expected JSON\n');
      return;
    }
    const [status, answer] = handleApp(request);
    if (status === 204) {
      res.writeHead(204);
      res.end();
      return;
    }
    send(res, status, { 'Content-Type': 'application/json' }, JSON.stringify(answer));
  });
  req.on('error', () => {});
}

function onStatic(req, res, entry) {
  if (!entry.file) {
    send(res, 404, { 'Content-Type': 'text/plain; charset=utf-8' }, 'stomp.umd.min.js not found (see README)\n');
    return;
  }
  fs.readFile(entry.file, (err, data) => {
    if (err) {
      send(res, 500, { 'Content-Type': 'text/plain; charset=utf-8' }, 'cannot read file\n');
      return;
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': entry.type, 'Content-Length': data.length });
    res.end(req.method === 'HEAD' ? undefined : data);
  });
}

const server = http.createServer((req, res) => {
  let pathname;
  try {
    pathname = new URL(req.url, 'http://localhost').pathname;
  } catch {
    send(res, 400, { 'Content-Type': 'text/plain; charset=utf-8' }, 'bad request\n');
    return;
  }
  if (pathname === '/stomp') {
    if (req.method !== 'POST') {
      send(res, 405, { Allow: 'POST' }, '');
      return;
    }
    onWebhook(req, res);
    return;
  }
  const entry = FILES.get(pathname);
  if (!entry) {
    send(res, 404, { 'Content-Type': 'text/plain; charset=utf-8' }, 'not found\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(res, 405, { Allow: 'GET, HEAD' }, '');
    return;
  }
  onStatic(req, res, entry);
});

server.listen(PORT, HOST, () => {
  const { port } = server.address();
  const host = HOST.includes(':') ? `[${HOST}]` : HOST;
  console.log(`stomp-chat backend listening on http://${host}:${port}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
