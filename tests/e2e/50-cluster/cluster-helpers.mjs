// Shared pieces of the cluster suite: one redis-server and N herald nodes started with
// --redis, a /pubsub client that queues every frame, and the bookkeeping that checks
// exactly-once, per-publisher-order delivery. Every wait is bounded.
import crypto from 'node:crypto';
import WebSocket from 'ws';
import { startHerald, sleep, withTimeout } from '../helpers/herald.mjs';
import { startRedis, haveRedis } from '../helpers/redis.mjs';

export { sleep, withTimeout, haveRedis };

export const SKIP = haveRedis() ? false : 'needs /usr/bin/redis-server and /usr/bin/redis-cli';

/**
 * One Redis and n nodes sharing it. extra: more `herald serve` arguments for every node.
 * Resolves to { redis, nodes, prefix, stop() }.
 */
export async function startCluster(n = 3, { extra = [], prefix = 'herald', redis, nodeArgs = () => [] } = {}) {
  const r = redis || await startRedis();
  const nodes = [];
  try {
    for (let i = 0; i < n; i++) {
      const own = nodeArgs(i);
      const threads = own.includes('--threads') ? [] : ['--threads', '1'];
      nodes.push(await startHerald([...threads, '--redis', r.url, '--redis-prefix', prefix, ...extra, ...own]));
    }
    // A node answers /healthz before its Redis connections are up: wait until every node
    // reports Redis reachable, so the first publish of a test is not a race.
    for (const nd of nodes) await waitRedisUp(nd, 8000);
  } catch (e) {
    for (const nd of nodes) await nd.stop({ signal: 'SIGKILL' });
    if (!redis) await r.stop();
    throw e;
  }
  return {
    redis: r,
    nodes,
    prefix,
    /** Stops every node (SIGTERM) and Redis; resolves to the nodes' exit codes. Throws
     * if a node reported a sanitizer error (ASan/UBSan builds). */
    async stop() {
      const codes = [];
      for (const nd of nodes) codes.push(await nd.stop());
      if (!redis) await r.stop();
      for (const nd of nodes) {
        const m = /runtime error:.*|ERROR: (Address|Leak)Sanitizer.*/.exec(nd.stderr());
        if (m) throw new Error(`node :${nd.port}: ${m[0]}\n${nd.stderr().slice(-3000)}`);
      }
      return codes;
    },
  };
}

/** GET /healthz of a node: { status, body } (body parsed when it is JSON). */
export async function health(node) {
  const res = await fetch(`http://127.0.0.1:${node.port}/healthz`, { signal: AbortSignal.timeout(3000) });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = { text }; }
  return { status: res.status, body };
}

/**
 * Whether /healthz says the node's Redis link is up: true, false, or undefined when the
 * answer has no "redis" member (src/api/health.c: {"status":"ok","redis":"up"|"down",
 * "node":"<id>"}).
 */
export function redisUp(body) {
  const r = body && body.redis;
  if (r === 'up') return true;
  if (r === 'down') return false;
  return undefined;
}

export async function waitRedisUp(node, ms, want = true) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try { last = await health(node); } catch (e) { last = { error: e.message }; }
    if (redisUp(last.body) === want) return last;
    if (Date.now() >= deadline) {
      throw new Error(`node :${node.port} /healthz did not report redis ${want ? 'up' : 'down'} within ${ms} ms; last: ${JSON.stringify(last)}`);
    }
    await sleep(50);
  }
}

/** GET /metrics of a node as text. */
export async function metrics(node) {
  const res = await fetch(`http://127.0.0.1:${node.port}/metrics`, { signal: AbortSignal.timeout(3000) });
  return res.text();
}

/** POST /api/publish on a node. Resolves to { status, body }. */
export async function apiPublish(node, channel, data) {
  const res = await fetch(`http://127.0.0.1:${node.port}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ channel, data }),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = { text }; }
  return { status: res.status, body };
}

// ------------------------------------------------------------------------------------
// A /pubsub client: every frame is parsed and queued; take() removes the first queued
// frame matching a predicate, waiting up to a deadline.

export class Ps {
  constructor(ws, name) {
    this.ws = ws;
    this.name = name;
    this.queue = [];
    this.messages = []; // every `message` frame, in arrival order
    this.closed = null;
    this.waiters = new Set();
    this.nextId = 1;
    ws.on('message', (d) => {
      let f;
      try { f = JSON.parse(d.toString()); } catch { f = { type: '<unparsable>', text: d.toString() }; }
      if (f.type === 'message') this.messages.push(f);
      else this.queue.push(f);
      this._wake();
    });
    ws.on('close', (code, reason) => { this.closed = { code, reason: reason.toString() }; this._wake(); });
    ws.on('error', (e) => { this.error = e; this._wake(); });
  }

  static open(node, { name = '', token } = {}) {
    const url = `${node.url}/pubsub${token ? `?token=${token}` : ''}`;
    return withTimeout(new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      const c = new Ps(ws, name || `:${node.port}`);
      ws.once('open', () => resolve(c));
      ws.once('error', reject);
    }), 10000, `open ${url}`);
  }

  _wake() { for (const f of [...this.waiters]) f(); }

  _wait(deadline) {
    const ms = deadline - Date.now();
    if (ms <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const f = () => { clearTimeout(t); this.waiters.delete(f); resolve(true); };
      const t = setTimeout(() => { this.waiters.delete(f); resolve(false); }, ms);
      this.waiters.add(f);
    });
  }

  send(x) { this.ws.send(typeof x === 'string' ? x : JSON.stringify(x)); }

  async take(pred, what = 'a frame', ms = 5000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.queue.findIndex(pred);
      if (i >= 0) return this.queue.splice(i, 1)[0];
      if (this.closed) throw new Error(`${this.name}: closed (${this.closed.code}) while waiting for ${what}`);
      if (!(await this._wait(deadline))) {
        throw new Error(`${this.name}: timed out after ${ms} ms waiting for ${what}; queued: ${JSON.stringify(this.queue).slice(0, 500)}`);
      }
    }
  }

  /** Send a request with a fresh id and resolve to its reply (ok or error). */
  async request(frame, ms = 5000) {
    const id = this.nextId++;
    this.send({ ...frame, id });
    return this.take((f) => (f.type === 'ok' || f.type === 'error') && f.id === id, `the reply to ${frame.type} #${id}`, ms);
  }

  async subscribe(channel, extra = {}) {
    const r = await this.request({ type: 'subscribe', channel, ...extra });
    if (r.type !== 'ok') throw new Error(`${this.name}: subscribe ${channel}: ${JSON.stringify(r)}`);
    return r;
  }

  async publish(channel, data) {
    const r = await this.request({ type: 'publish', channel, data });
    if (r.type !== 'ok') throw new Error(`${this.name}: publish ${channel}: ${JSON.stringify(r)}`);
    return r;
  }

  /** Wait until pred(this.messages) holds. */
  async waitMessages(pred, what, ms = 8000) {
    const deadline = Date.now() + ms;
    while (!pred(this.messages)) {
      if (this.closed) throw new Error(`${this.name}: closed (${this.closed.code}) while waiting for ${what}`);
      if (!(await this._wait(deadline))) {
        throw new Error(`${this.name}: timed out after ${ms} ms waiting for ${what}; have ${this.messages.length} messages, last: ${JSON.stringify(this.messages.slice(-3))}`);
      }
    }
  }

  close() { try { this.ws.close(); } catch { /* gone */ } }

  async closeAndWait(ms = 3000) {
    if (this.closed) return;
    this.close();
    const deadline = Date.now() + ms;
    while (!this.closed && await this._wait(deadline)) { /* until closed */ }
  }
}

/**
 * Checks that msgs (message frames whose data is {p, seq}) hold every (p, seq) of
 * expected (a Map p -> count, seq 0..count-1) exactly once, each publisher's in order.
 * Returns a list of problems (empty when all is well).
 */
export function checkExactlyOnce(msgs, expected, who = '') {
  const problems = [];
  const seen = new Map();
  for (const m of msgs) {
    const d = m.data;
    if (!d || typeof d !== 'object' || typeof d.p !== 'string' || !Number.isInteger(d.seq)) {
      problems.push(`${who}: unexpected message ${JSON.stringify(m)}`);
      continue;
    }
    if (!expected.has(d.p)) {
      problems.push(`${who}: message from unknown publisher ${JSON.stringify(m)}`);
      continue;
    }
    const last = seen.has(d.p) ? seen.get(d.p) : -1;
    if (d.seq === last) problems.push(`${who}: duplicate ${d.p}#${d.seq}`);
    else if (d.seq < last) problems.push(`${who}: ${d.p}#${d.seq} after #${last} (out of order or duplicate)`);
    else if (d.seq !== last + 1) problems.push(`${who}: ${d.p}#${last + 1}..#${d.seq - 1} missing before #${d.seq}`);
    seen.set(d.p, Math.max(last, d.seq));
  }
  for (const [p, count] of expected) {
    const last = seen.has(p) ? seen.get(p) : -1;
    if (last !== count - 1) problems.push(`${who}: from ${p} got up to #${last}, expected up to #${count - 1}`);
  }
  if (msgs.length !== [...expected.values()].reduce((a, b) => a + b, 0) && problems.length === 0) {
    problems.push(`${who}: ${msgs.length} messages for ${[...expected.values()].reduce((a, b) => a + b, 0)} published`);
  }
  return problems;
}

// HS256 tokens for --auth with --jwt-secret.
export const SECRET = 'cluster-secret-0123456789-abcdefghij';
export function jwt(sub, secret = SECRET) {
  const b64u = (b) => Buffer.from(b).toString('base64url');
  const input = `${b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64u(JSON.stringify({ sub }))}`;
  return `${input}.${b64u(crypto.createHmac('sha256', secret).update(input).digest())}`;
}

/** A unique channel-name suffix per test run (channels live in a shared Redis). */
export function uniq() { return crypto.randomBytes(4).toString('hex'); }
