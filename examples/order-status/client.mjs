#!/usr/bin/env node
// Order-status client for herald's /pubsub endpoint (docs/protocol.md).
//
//   node client.mjs [--url ws://127.0.0.1:8080] [--since OFFSET:EPOCH] ORDER_ID
//
// Subscribes to the channel `orders.<ORDER_ID>` and prints one line per status change:
//
//   [orders.42] #3 status=packed epoch=k3j9x0
//
// When the connection drops it reconnects (with a growing delay, at most 5 s) and
// subscribes with `since` = the last offset and epoch it saw, so the server replays what
// was published in between. If the server can no longer replay (`recovered:false`: it
// restarted, or the gap is older than the channel's history) the client says so: the
// application should then reload the order's state from its backend.
//
// --since resumes from a position printed by an earlier run (offset:epoch).
//
// Needs the npm package `ws` (npm install ws), found next to this file or in the
// current directory. As a module, createOrderClient() is the same client for programs
// that bring their own WebSocket class.

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * createOrderClient({ url, orderId, WebSocket, since, onStatus, onInfo })
 *   url       server base URL, e.g. ws://127.0.0.1:8080 (the client adds /pubsub)
 *   orderId   the order; the channel is orders.<orderId>
 *   WebSocket the class from npm `ws`
 *   since     optional {offset, epoch} to resume from
 *   onStatus  called with {channel, offset, epoch, timestamp, status, data} per message
 *   onInfo    called with a line of text for everything else (subscribed, recovered, ...)
 *   onFrame   called with every frame received, parsed (for logging and tests)
 * Returns { start(), pause(), resume(), stop(), position() }:
 *   start()  connect and subscribe; resolves with the subscribe reply
 *   pause()  close the connection and stay disconnected (simulates going offline)
 *   resume() reconnect with since; resolves with the subscribe reply
 *   stop()   close for good
 */
export function createOrderClient({ url, orderId, WebSocket, since = null, onStatus = () => {}, onInfo = () => {}, onFrame = () => {} }) {
  const channel = `orders.${orderId}`;
  let pos = since ? { ...since } : null; // last {offset, epoch} seen
  let ws = null;
  let wanted = false; // should we be connected?
  let retry = 250;
  let timer = null;
  let nextId = 1;

  function connect() {
    return new Promise((resolve, reject) => {
      const sock = new WebSocket(`${url.replace(/\/+$/, '')}/pubsub`);
      ws = sock;
      const subId = nextId++;
      let replied = false;
      sock.on('open', () => {
        const req = { type: 'subscribe', id: subId, channel };
        if (pos) req.since = { offset: pos.offset, epoch: pos.epoch };
        sock.send(JSON.stringify(req));
      });
      sock.on('message', (raw) => {
        let f;
        try { f = JSON.parse(raw.toString()); } catch { onInfo(`unparsable frame: ${raw}`); return; }
        onFrame(f);
        if (f.id === subId && (f.type === 'ok' || f.type === 'error')) {
          replied = true;
          if (f.type === 'error') {
            onInfo(`subscribe failed: ${f.code}: ${f.message}`);
            reject(new Error(`${f.code}: ${f.message}`));
            return;
          }
          retry = 250;
          if ('recovered' in f) {
            onInfo(f.recovered
              ? `reconnected to ${channel}: recovered, replaying from offset ${pos.offset + 1} to ${f.offset}`
              : `reconnected to ${channel}: could NOT recover (epoch or history changed); reload the order from the backend`);
          } else {
            onInfo(`subscribed to ${channel} at offset ${f.offset} (epoch ${f.epoch})`);
          }
          // without recovery, continue from the server's current position
          if (!f.recovered) pos = { offset: f.offset, epoch: f.epoch };
          resolve(f);
          return;
        }
        if (f.type === 'message' && f.channel === channel) {
          if (pos && f.epoch === pos.epoch && f.offset <= pos.offset) return; // already seen
          pos = { offset: f.offset, epoch: f.epoch };
          const status = f.data && typeof f.data === 'object' && 'status' in f.data ? f.data.status : f.data;
          onStatus({ channel, offset: f.offset, epoch: f.epoch, timestamp: f.timestamp, status, data: f.data });
        } else if (f.type === 'error') {
          onInfo(`server error: ${f.code}: ${f.message}`);
        }
      });
      sock.on('error', (e) => {
        onInfo(`connection error: ${e.message}`);
        if (!replied) reject(e);
      });
      sock.on('close', (code) => {
        if (ws === sock) ws = null;
        if (!replied) reject(new Error(`closed (${code}) before the subscribe reply`));
        if (!wanted) return;
        onInfo(`connection closed (${code}); reconnecting in ${retry} ms`);
        schedule();
      });
    });
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (!wanted) return;
      connect().catch(() => { /* the close handler schedules the next try */ });
    }, retry);
    retry = Math.min(retry * 2, 5000);
  }

  function disconnect() {
    clearTimeout(timer);
    if (ws) { const s = ws; ws = null; s.terminate(); }
  }

  return {
    start() { wanted = true; return connect(); },
    resume() { wanted = true; disconnect(); return connect(); },
    pause() { wanted = false; disconnect(); },
    stop() { wanted = false; disconnect(); },
    position() { return pos ? { ...pos } : null; },
  };
}

// ------------------------------------------------------------------------------------
// Command line

async function loadWs() {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const base of [path.join(here, 'client.mjs'), path.join(process.cwd(), 'index.js')]) {
    try {
      return createRequire(base)('ws');
    } catch { /* try the next place */ }
  }
  throw new Error('npm package "ws" not found: run `npm install ws` next to client.mjs or in the current directory');
}

async function main(argv) {
  let url = 'ws://127.0.0.1:8080';
  let since = null;
  let orderId = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--url') url = argv[++i];
    else if (a === '--since') {
      const m = /^(\d+):(.+)$/.exec(argv[++i] || '');
      if (!m) { console.error('--since wants OFFSET:EPOCH'); return 2; }
      since = { offset: Number(m[1]), epoch: m[2] };
    } else if (a === '-h' || a === '--help') {
      console.log('usage: node client.mjs [--url ws://HOST:PORT] [--since OFFSET:EPOCH] ORDER_ID');
      return 0;
    } else if (!orderId) orderId = a;
    else { console.error(`unexpected argument ${a}`); return 2; }
  }
  if (!orderId) { console.error('usage: node client.mjs [--url ws://HOST:PORT] [--since OFFSET:EPOCH] ORDER_ID'); return 2; }
  const WebSocket = await loadWs();
  const client = createOrderClient({
    url,
    orderId,
    WebSocket,
    since,
    onStatus: (m) => console.log(`[${m.channel}] #${m.offset} status=${m.status} epoch=${m.epoch}`),
    onInfo: (line) => console.log(`# ${line}`),
  });
  const stop = () => {
    const p = client.position();
    client.stop();
    if (p) console.log(`# stopped at ${p.offset}:${p.epoch} (resume with --since ${p.offset}:${p.epoch})`);
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    await client.start();
  } catch (e) {
    console.error(`# first connection failed (${e.message}); retrying`);
  }
  return null; // keep running
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => { if (code !== null) process.exit(code); });
}
