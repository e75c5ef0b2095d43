// Helpers for the STOMP end-to-end tests (docs/stomp.md): a @stomp/stompjs client driven
// through promises with bounded waits, a raw STOMP client over the `ws` package with its
// own frame codec, the HTTP API and a tiny webhook backend. Every wait is bounded.
import http from 'node:http';
import WebSocket from 'ws';
import { Client } from '@stomp/stompjs';
import { sleep, withTimeout } from '../helpers/herald.mjs';

export const STOMP_PROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

let uniq = 0;
/** A name unique in this process: destinations, receipts, logins. */
export function uid(prefix = 'x') {
  uniq += 1;
  return `${prefix}${uniq}`;
}

// ------------------------------------------------------------------------------------
// Waiting: one small event-driven base class (no polling).

class Waitable {
  constructor() { this._waiters = new Set(); }

  _wake() { for (const f of [...this._waiters]) f(); }

  _wait(deadline) {
    const ms = deadline - Date.now();
    if (ms <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const f = () => { clearTimeout(t); this._waiters.delete(f); resolve(true); };
      const t = setTimeout(() => { this._waiters.delete(f); resolve(false); }, ms);
      this._waiters.add(f);
    });
  }

  /** Wait until fn() returns something other than undefined; returns it. */
  async _until(fn, what, ms) {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = fn();
      if (v !== undefined) return v;
      if (!(await this._wait(deadline))) throw new Error(`timed out after ${ms} ms waiting for ${what}${this._describe()}`);
    }
  }

  _describe() { return ''; }
}

// ------------------------------------------------------------------------------------
// @stomp/stompjs. Node 20 has no global WebSocket: stompjs gets one from the `ws` package
// through webSocketFactory (stompjs only uses the standard onopen/onmessage/... API and
// binaryType, which `ws` implements). TextEncoder/TextDecoder are globals in Node 20.

/** One subscription of a stompjs client: its MESSAGE frames, queued in arrival order. */
export class SjSub extends Waitable {
  constructor(owner, destination) {
    super();
    this.owner = owner;
    this.destination = destination;
    this.messages = []; // every message, in arrival order
    this.queue = []; // not taken yet
    this.stomp = null; // the stompjs StompSubscription
  }

  get id() { return this.stomp.id; }

  _push(m) { this.messages.push(m); this.queue.push(m); this._wake(); }

  _describe() {
    const q = this.queue.map((m) => m.body).join(' | ').slice(0, 300);
    return ` on ${this.destination} (queued: ${q || 'nothing'}${this.owner.closeEvt ? `; socket closed ${this.owner.closeEvt.code}` : ''})`;
  }

  /** The next message, waiting up to ms. */
  next(ms = 4000) {
    return this._until(() => (this.queue.length ? this.queue.shift() : undefined), 'a MESSAGE', ms);
  }

  /** The next n messages, in arrival order. */
  async take(n, ms = 4000) {
    const out = [];
    const deadline = Date.now() + ms;
    for (let i = 0; i < n; i++) {
      out.push(await this._until(() => (this.queue.length ? this.queue.shift() : undefined),
        `MESSAGE ${i + 1} of ${n}`, Math.max(1, deadline - Date.now())));
    }
    return out;
  }

  /** Wait ms and return (and remove) whatever arrived: used to prove absence. */
  async quiet(ms = 300) {
    await sleep(ms);
    return this.queue.splice(0);
  }

  /** UNSUBSCRIBE, waiting for its RECEIPT. */
  async unsubscribe() {
    const receipt = uid('unsub-');
    const p = this.owner.receipt(receipt);
    this.stomp.unsubscribe({ receipt });
    await p;
  }
}

/** A connected stompjs client with promise-returning helpers. */
export class Sj extends Waitable {
  constructor(client) {
    super();
    this.client = client;
    this.connected = null; // the CONNECTED frame
    this.errors = []; // ERROR frames
    this.closeEvt = null; // {code, reason} of the WebSocket close
    this.heartbeats = []; // Date.now() of every server heart-beat
    this.unhandled = []; // MESSAGE frames without a known subscription
    this.log = [];
  }

  _describe() {
    const e = this.errors.map((f) => f.headers.message).join(' | ');
    return `${e ? `; ERROR frames: ${e}` : ''}${this.closeEvt ? `; socket closed ${this.closeEvt.code}` : ''}; last debug: ${this.log.slice(-5).join(' / ').slice(0, 600)}`;
  }

  get headers() { return this.connected.headers; }

  /** A promise for the RECEIPT with this id (register before sending the frame). */
  receipt(id, ms = 4000) {
    return withTimeout(new Promise((resolve) => this.client.watchForReceipt(id, resolve)), ms, `RECEIPT ${id}${this._describe()}`);
  }

  /** SUBSCRIBE (with a receipt, awaited): resolves to an SjSub. */
  async subscribe(destination, headers = {}) {
    const sub = new SjSub(this, destination);
    const receipt = uid('sub-');
    const p = this.receipt(receipt);
    sub.stomp = this.client.subscribe(destination, (m) => sub._push(m), { ...headers, receipt });
    await p;
    return sub;
  }

  /** SEND; with receipt (default) resolves once the RECEIPT came. */
  async send(destination, body = '', headers = {}, { receipt = true, binaryBody } = {}) {
    if (!receipt) {
      this.client.publish({ destination, body, headers, binaryBody });
      return null;
    }
    const id = uid('send-');
    const p = this.receipt(id);
    this.client.publish({ destination, body: binaryBody ? undefined : body, binaryBody, headers: { ...headers, receipt: id } });
    return p;
  }

  /** The first ERROR frame, waiting up to ms. */
  error(ms = 4000) {
    return this._until(() => this.errors[0], 'an ERROR frame', ms);
  }

  /** The WebSocket close {code, reason}, waiting up to ms. */
  closed(ms = 4000) {
    return this._until(() => this.closeEvt ?? undefined, 'the WebSocket to close', ms);
  }

  /** DISCONNECT (stompjs waits for its RECEIPT, then closes), bounded. */
  async disconnect(ms = 4000) {
    if (this.closeEvt) return;
    try {
      await withTimeout(this.client.deactivate(), ms, 'stompjs deactivate');
    } catch {
      await this.kill();
    }
  }

  /** Close the WebSocket without DISCONNECT. */
  async kill() {
    try { await withTimeout(this.client.deactivate({ force: true }), 2000, 'force deactivate'); } catch { /* gone */ }
  }
}

/**
 * Connect a stompjs client to srv's /stomp. Resolves once CONNECTED arrived; rejects on an
 * ERROR frame, a close or a timeout. heartbeat = [outgoing, incoming] as stompjs names them
 * (sent as heart-beat:outgoing,incoming); default 0,0 so no timer runs.
 */
export function stompjs(srv, {
  login, passcode, heartbeat = [0, 0], connectHeaders = {}, protocols = STOMP_PROTOCOLS,
  path = '/stomp', timeoutMs = 5000, onHeartbeat,
} = {}) {
  const headers = { ...connectHeaders };
  if (login !== undefined) headers.login = login;
  if (passcode !== undefined) headers.passcode = passcode;
  const url = `${srv.url}${path}`;
  const client = new Client({
    webSocketFactory: () => new WebSocket(url, protocols, { perMessageDeflate: false }),
    connectHeaders: headers,
    heartbeatOutgoing: heartbeat[0],
    heartbeatIncoming: heartbeat[1],
    reconnectDelay: 0,
    connectionTimeout: 0,
  });
  const sj = new Sj(client);
  client.debug = (s) => { sj.log.push(s); if (sj.log.length > 200) sj.log.splice(0, 100); };
  client.onHeartbeatReceived = () => { sj.heartbeats.push(Date.now()); if (onHeartbeat) onHeartbeat(); };
  client.onUnhandledMessage = (m) => { sj.unhandled.push(m); sj._wake(); };
  client.onStompError = (f) => { sj.errors.push(f); sj._wake(); };
  client.onWebSocketClose = (evt) => {
    sj.closeEvt = { code: evt?.code, reason: String(evt?.reason ?? '') };
    sj._wake();
  };
  client.onWebSocketError = () => sj._wake();
  client.onConnect = (f) => { sj.connected = f; sj._wake(); };
  client.activate();
  return (async () => {
    try {
      await sj._until(() => {
        if (sj.connected) return sj;
        if (sj.errors.length) throw new Error(`CONNECT answered with ERROR: ${sj.errors[0].headers.message}`);
        if (sj.closeEvt) throw new Error(`WebSocket to ${url} closed (${sj.closeEvt.code}) before CONNECTED${sj._describe()}`);
        return undefined;
      }, `CONNECTED from ${url}`, timeoutMs);
    } catch (e) {
      await sj.kill();
      throw e;
    }
    return sj;
  })();
}

/** A set of stompjs clients closed together in after(). */
export class Clients {
  constructor() { this.list = []; }

  async add(p) { const c = await p; this.list.push(c); return c; }

  async closeAll() {
    const l = this.list.splice(0);
    await Promise.all(l.map((c) => c.kill()));
  }
}

// ------------------------------------------------------------------------------------
// Raw STOMP over `ws`: frames are built by hand (nothing is escaped for you) and every
// frame the server sends is parsed here, independently of stompjs.

const ESC11 = { n: '\n', c: ':', '\\': '\\' };
const ESC12 = { ...ESC11, r: '\r' };

/** Unescape a header value as STOMP 1.1/1.2 say; returns null on an undefined escape. */
export function unescapeValue(raw, version) {
  const table = version === '1.2' ? ESC12 : ESC11;
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i];
    if (ch !== '\\') { out += ch; continue; }
    const r = table[raw[i + 1]];
    if (r === undefined) return null;
    out += r;
    i++;
  }
  return out;
}

/** Encode one frame: headers is an object or an array of [name, value] (sent verbatim). */
export function encodeStomp(command, headers = {}, body = '') {
  const list = Array.isArray(headers) ? headers : Object.entries(headers);
  const head = [command, ...list.map(([k, v]) => `${k}:${v}`)].join('\n');
  return Buffer.concat([Buffer.from(`${head}\n\n`, 'utf8'), Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'), Buffer.from([0])]);
}

export class RawStomp extends Waitable {
  constructor(ws) {
    super();
    this.ws = ws;
    this.version = null; // from CONNECTED
    this.pending = Buffer.alloc(0);
    this.frames = []; // every parsed frame
    this.queue = []; // frames not taken yet
    this.heartbeats = []; // Date.now() of every EOL received between frames
    this.messages = 0; // WebSocket messages received
    this.closeEvt = null;
    this.parseError = null;
    ws.on('message', (data) => {
      this.messages++;
      this.pending = Buffer.concat([this.pending, Buffer.isBuffer(data) ? data : Buffer.from(data)]);
      try { this._parse(); } catch (e) { this.parseError = e; }
      this._wake();
    });
    ws.on('close', (code, reason) => { this.closeEvt = { code, reason: reason.toString() }; this._wake(); });
    ws.on('error', (e) => { this.wsError = e; this._wake(); });
  }

  _describe() {
    const q = this.queue.map((f) => `${f.command}${f.headers.message ? `(${f.headers.message})` : ''}`).join(', ');
    return ` (queued frames: ${q || 'none'}${this.closeEvt ? `; closed ${this.closeEvt.code}` : ''}${this.parseError ? `; parse error ${this.parseError.message}` : ''})`;
  }

  _parse() {
    for (;;) {
      let i = 0;
      const b = this.pending;
      // EOLs between frames are heart-beats
      while (i < b.length && (b[i] === 0x0a || (b[i] === 0x0d && b[i + 1] === 0x0a))) {
        this.heartbeats.push(Date.now());
        i += b[i] === 0x0d ? 2 : 1;
      }
      if (i > 0) { this.pending = b.subarray(i); continue; }
      if (!b.length) return;
      const headEnd = findHeadEnd(b);
      if (headEnd < 0) return;
      const headText = b.subarray(0, headEnd.start).toString('utf8');
      const lines = headText.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
      const command = lines[0];
      const rawHeaders = [];
      for (const line of lines.slice(1)) {
        const c = line.indexOf(':');
        if (c < 0) throw new Error(`server header line without ':': ${JSON.stringify(line)}`);
        rawHeaders.push([line.slice(0, c), line.slice(c + 1)]);
      }
      const escaped = this.version && this.version !== '1.0' && command !== 'CONNECTED';
      const headers = {};
      for (const [k, v] of rawHeaders) {
        const name = escaped ? unescapeValue(k, this.version) : k;
        const value = escaped ? unescapeValue(v, this.version) : v;
        if (name === null || value === null) throw new Error(`server sent an undefined escape in ${JSON.stringify(`${k}:${v}`)}`);
        if (!(name in headers)) headers[name] = value;
      }
      const bodyStart = headEnd.end;
      let bodyEnd;
      if (headers['content-length'] !== undefined) {
        const n = Number(headers['content-length']);
        if (!Number.isInteger(n) || n < 0) throw new Error(`bad content-length ${headers['content-length']}`);
        if (b.length < bodyStart + n + 1) return;
        if (b[bodyStart + n] !== 0) throw new Error(`no NUL after a content-length body in ${command}`);
        bodyEnd = bodyStart + n;
      } else {
        bodyEnd = b.indexOf(0, bodyStart);
        if (bodyEnd < 0) return;
      }
      const body = Buffer.from(b.subarray(bodyStart, bodyEnd));
      const f = { command, headers, rawHeaders, body, text: body.toString('utf8'), at: Date.now() };
      if (command === 'CONNECTED') this.version = headers.version || '1.0';
      this.frames.push(f);
      this.queue.push(f);
      this.pending = b.subarray(bodyEnd + 1);
    }
  }

  /** Send bytes as one WebSocket message (text unless binary). */
  sendRaw(data, { binary = false } = {}) {
    this.ws.send(Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8'), { binary });
  }

  /** Send one frame as one WebSocket message. */
  send(command, headers = {}, body = '', opts = {}) {
    this.sendRaw(encodeStomp(command, headers, body), opts);
  }

  /** Remove and return the first queued frame matching pred (a command name or a function). */
  next(pred, ms = 4000) {
    const p = typeof pred === 'string' ? (f) => f.command === pred : pred;
    const what = typeof pred === 'string' ? `a ${pred} frame` : 'a matching frame';
    return this._until(() => {
      const i = this.queue.findIndex(p);
      if (i >= 0) return this.queue.splice(i, 1)[0];
      if (this.parseError) throw this.parseError;
      if (this.closeEvt) throw new Error(`socket closed (${this.closeEvt.code}) while waiting for ${what}${this._describe()}`);
      return undefined;
    }, what, ms);
  }

  /** The RECEIPT for receipt id. */
  receipt(id, ms) { return this.next((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === id, ms); }

  /** The next ERROR frame; waits for it even if the socket closed right after it. */
  error(ms = 4000) {
    return this._until(() => {
      const i = this.queue.findIndex((f) => f.command === 'ERROR');
      if (i >= 0) return this.queue.splice(i, 1)[0];
      if (this.parseError) throw this.parseError;
      if (this.closeEvt) throw new Error(`socket closed (${this.closeEvt.code}) without an ERROR frame${this._describe()}`);
      return undefined;
    }, 'an ERROR frame', ms);
  }

  /** The close {code, reason}, waiting up to ms. */
  closed(ms = 4000) {
    return this._until(() => this.closeEvt ?? undefined, 'the server to close the WebSocket', ms);
  }

  /** Wait ms and return (and remove) the queued frames: used to prove absence. */
  async quiet(ms = 300) {
    await sleep(ms);
    return this.queue.splice(0);
  }

  /** CONNECT (default accept-version 1.2, host, heart-beat 0,0); resolves to CONNECTED. */
  async connect(headers = {}, { command = 'CONNECT', ms = 4000 } = {}) {
    const h = { 'accept-version': '1.2', host: '127.0.0.1', 'heart-beat': '0,0', ...headers };
    for (const k of Object.keys(h)) if (h[k] === null) delete h[k];
    this.send(command, h);
    const f = await this.next((x) => x.command === 'CONNECTED' || x.command === 'ERROR', ms);
    if (f.command !== 'CONNECTED') throw new Error(`CONNECT answered with ERROR: ${f.headers.message}`);
    return f;
  }

  /** SUBSCRIBE with a receipt, awaited. */
  async subscribe(destination, headers = {}) {
    const receipt = uid('rsub-');
    this.send('SUBSCRIBE', { id: uid('s'), destination, ...headers, receipt });
    await this.receipt(receipt);
  }

  close() { try { this.ws.terminate(); } catch { /* gone */ } }
}

function findHeadEnd(b) {
  // the blank line: "\n\n" or "\n\r\n"
  for (let i = 0; i < b.length; i++) {
    if (b[i] !== 0x0a) continue;
    if (b[i + 1] === 0x0a) return { start: i, end: i + 2 };
    if (b[i + 1] === 0x0d && b[i + 2] === 0x0a) return { start: i, end: i + 3 };
  }
  return -1;
}

/** Open a raw WebSocket to srv's /stomp (not yet CONNECTed). */
export function rawStomp(srv, { protocols = STOMP_PROTOCOLS, path = '/stomp' } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(`${srv.url}${path}`, protocols, { perMessageDeflate: false });
    const c = new RawStomp(ws);
    ws.once('open', () => resolve(c));
    ws.once('error', reject);
    ws.once('unexpected-response', (req, res) => reject(new Error(`upgrade to ${path} answered ${res.statusCode}`)));
  }), 5000, `open ${srv.url}${path}`);
}

// ------------------------------------------------------------------------------------
// HTTP API and /pubsub.

/** An HTTP request to srv; resolves to {status, text, json, headers}. */
export async function api(srv, method, path, body) {
  const res = await fetch(`http://127.0.0.1:${srv.port}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, text, json, headers: res.headers };
}

/** A minimal /pubsub client (docs/protocol.md). */
export class Ps extends Waitable {
  constructor(ws) {
    super();
    this.ws = ws;
    this.queue = [];
    this.closed = null;
    this.nextId = 1;
    ws.on('message', (d) => {
      let f;
      try { f = JSON.parse(d.toString()); } catch { f = { type: '<unparsable>', text: d.toString() }; }
      this.queue.push(f);
      this._wake();
    });
    ws.on('close', (code) => { this.closed = { code }; this._wake(); });
    ws.on('error', () => this._wake());
  }

  static open(srv) {
    return withTimeout(new Promise((resolve, reject) => {
      const ws = new WebSocket(`${srv.url}/pubsub`, { perMessageDeflate: false });
      const c = new Ps(ws);
      ws.once('open', () => resolve(c));
      ws.once('error', reject);
    }), 5000, 'open /pubsub');
  }

  take(pred, what, ms = 4000) {
    return this._until(() => {
      const i = this.queue.findIndex(pred);
      if (i >= 0) return this.queue.splice(i, 1)[0];
      if (this.closed) throw new Error(`/pubsub closed (${this.closed.code}) while waiting for ${what}`);
      return undefined;
    }, what, ms);
  }

  async req(obj) {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ ...obj, id }));
    return this.take((f) => ['ok', 'error'].includes(f.type) && f.id === id, `the reply to ${obj.type}`);
  }

  message(channel, ms) { return this.take((f) => f.type === 'message' && f.channel === channel, `a message on ${channel}`, ms); }

  close() { try { this.ws.terminate(); } catch { /* gone */ } }
}

// ------------------------------------------------------------------------------------
// A webhook backend: node:http on 127.0.0.1:0. handler(req, json) returns
// {status, body (object or string), delayMs}; every request is recorded.

export async function startBackend(handler) {
  const requests = [];
  const waiters = new Set();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let json;
      try { json = JSON.parse(text); } catch { json = undefined; }
      const rec = { method: req.method, url: req.url, headers: req.headers, text, json, at: Date.now() };
      requests.push(rec);
      for (const f of [...waiters]) f();
      let ans;
      try { ans = (await handler(rec)) || { status: 204 }; } catch (e) { ans = { status: 599, body: String(e) }; }
      if (ans.delayMs) await sleep(ans.delayMs);
      const body = ans.body === undefined ? '' : (typeof ans.body === 'string' ? ans.body : JSON.stringify(ans.body));
      const headers = body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {};
      rec.answeredAt = Date.now();
      res.writeHead(ans.status ?? 200, headers);
      res.end(body);
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}/stomp`,
    requests,
    /** The first recorded request matching pred, waiting up to ms. */
    async request(pred = () => true, ms = 4000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const r = requests.find(pred);
        if (r) return r;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for a webhook request (got ${requests.length}: ${requests.map((x) => x.text).join(' | ').slice(0, 400)})`);
        await new Promise((resolve) => {
          const f = () => { clearTimeout(t); waiters.delete(f); resolve(); };
          const t = setTimeout(f, left);
          waiters.add(f);
        });
      }
    },
    close() {
      server.closeAllConnections?.();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
