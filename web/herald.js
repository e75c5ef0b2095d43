// herald.js: the JavaScript client of Herald's /pubsub protocol, for browsers and
// Node >= 20. One dependency-free ES module, no build step. docs/client-js.md is the
// manual; docs/protocol.md the wire protocol. It reconnects with back-off and jitter,
// detects dead connections with pings, resubscribes with `since` so that no message is
// missed or repeated while the channel's history covers the gap, matches replies to
// requests by id, and falls back to SSE and long-polling when WebSocket cannot open.

const DEFAULTS = {
  transports: ['websocket', 'sse', 'poll'],
  reconnectDelay: { min: 500, max: 15000 },
  stableAfter: 5000, // ms a connection must last before the back-off starts over
  pingInterval: 15000,
  pingTimeout: 10000, // no pong and no other frame within this: the connection is dead
  requestTimeout: 10000,
  maxQueue: 100, // requests waiting for a connection
  fallbackAfter: 2, // failed opens of a transport that never worked before moving on
  fallbackAfterWorked: 8, // the same for a transport that once worked (server down?)
  upgradeAfter: 60000, // on a fallback, probe WebSocket this often (0: never)
  sseIdleTimeout: 45000, // the server sends ": ping" every 15 s
  pollTimeout: 25, // seconds the server may hold a long-poll
  maxBuffered: 4 * 1024 * 1024, // WebSocket bytes queued in the browser before publish refuses
  maxEventBytes: 4 * 1024 * 1024, // one SSE event
  maxPatternChannels: 1000, // per-channel positions remembered for a pattern subscription
};

const POSITION_RE = /^[a-z0-9]+$/;

/** An Error with a stable `.code` (and the server's reply in `.reply` when there was one). */
export class HeraldError extends Error {
  constructor(code, message, extra) {
    super(message || code);
    this.name = 'HeraldError';
    this.code = code;
    if (extra) Object.assign(this, extra);
  }
}

/** "a:3:e1,b.c:0:e2" from [{channel, offset, epoch}, ...] (the contract's position string). */
export function formatPosition(entries) {
  const parts = [];
  for (const e of entries) {
    if (e.offset === null || e.offset === undefined || !e.epoch) continue;
    parts.push(`${e.channel}:${e.offset}:${e.epoch}`);
  }
  return parts.join(',');
}

/**
 * The inverse of formatPosition. Entries are parsed from the right (the channel may
 * hold ':'); a malformed entry is skipped rather than trusted.
 */
export function parsePosition(text) {
  const out = [];
  if (typeof text !== 'string' || text === '') return out;
  for (const entry of text.split(',')) {
    const e = entry.lastIndexOf(':');
    if (e <= 0) continue;
    const o = entry.lastIndexOf(':', e - 1);
    if (o <= 0) continue;
    const epoch = entry.slice(e + 1);
    const off = entry.slice(o + 1, e);
    if (!POSITION_RE.test(epoch) || !/^[0-9]+$/.test(off)) continue;
    out.push({ channel: entry.slice(0, o), offset: Number(off), epoch });
  }
  return out;
}

/** True for a subscription pattern: a `*` segment or a final `>` segment. */
export function isPattern(name) {
  const segs = name.split('.');
  return segs.includes('*') || segs[segs.length - 1] === '>';
}

/** `orders.*` matches one segment, `orders.>` one or more (docs/protocol.md). */
export function matchChannel(pattern, channel) {
  if (pattern === channel) return true;
  const p = pattern.split('.');
  const c = channel.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>' && i === p.length - 1) return c.length > i;
    if (i >= c.length) return false;
    if (p[i] !== '*' && p[i] !== c[i]) return false;
  }
  return p.length === c.length;
}

/** Back-off with full jitter: uniform in [0, min(max, min * 2^attempt)). */
export function backoffDelay(attempt, { min, max }, random = Math.random) {
  const cap = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}

/** Absolute ws(s) URL: accepts http(s) and, in a page, a path relative to it. */
export function wsUrlFor(url) {
  const base = globalThis.location && globalThis.location.href;
  const u = base ? new URL(url, base) : new URL(url);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  return u.toString();
}

/** http(s) URL of `path` on the host of a ws(s) URL. */
export function httpUrlFor(wsUrl, path) {
  const u = new URL(wsUrl);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  else if (u.protocol === 'wss:') u.protocol = 'https:';
  if (/^[a-z]+:\/\//i.test(path)) return path;
  u.pathname = path;
  u.search = '';
  u.hash = '';
  return u.toString();
}

function withQuery(url, params) {
  const u = new URL(url);
  for (const [k, v] of params) u.searchParams.append(k, v);
  return u.toString();
}

function errFrom(reply, fallbackCode) {
  const code = (reply && (reply.code || reply.error)) || fallbackCode;
  return new HeraldError(code, (reply && reply.message) || code, { reply });
}

// ---------------------------------------------------------------------------------------
// Subscriptions: one per channel name or pattern, shared by every subscribe() call of
// that name; each call gets its own handle.

class Sub {
  constructor(channel) {
    this.channel = channel;
    this.pattern = isPattern(channel);
    this.listeners = new Set();
    this.offset = null; // last message seen (or the top at subscribe time)
    this.epoch = null;
    this.perChannel = new Map(); // pattern subscriptions: channel -> {offset, epoch}
    this.active = false; // subscribed on the current connection
    this.reqId = null; // subscribe request in flight
    this.readyWaiters = [];
  }

  settleReady(err) {
    const w = this.readyWaiters;
    this.readyWaiters = [];
    for (const [res, rej] of w) {
      if (err) rej(err);
      else res();
    }
  }
}

// ---------------------------------------------------------------------------------------

export class Herald {
  /**
   * @param {string} url  ws(s)://host:port/pubsub
   * @param {object} [options] see docs/client-js.md
   */
  constructor(url, options = {}) {
    this.url = wsUrlFor(url);
    // an option given as undefined keeps its default (pages pass optional settings through)
    const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    const o = { ...DEFAULTS, ...given };
    o.reconnectDelay = { ...DEFAULTS.reconnectDelay, ...(given.reconnectDelay || {}) };
    this.options = o;
    const g = globalThis;
    // WebSocket: undefined given explicitly means "none" (as a page that blocked it)
    this._WS = 'WebSocket' in options ? options.WebSocket : g.WebSocket;
    this._ES = 'EventSource' in options ? options.EventSource : g.EventSource;
    this._fetch = 'fetch' in options ? options.fetch : g.fetch && g.fetch.bind(g);
    this._setTimeout = o.setTimeout || g.setTimeout.bind(g);
    this._clearTimeout = o.clearTimeout || g.clearTimeout.bind(g);
    this._now = o.now || (() => Date.now());
    this._random = o.random || Math.random;
    this.sseUrl = httpUrlFor(this.url, o.sseUrl || '/sse');
    this.pollUrl = httpUrlFor(this.url, o.pollUrl || '/poll');
    this.healthUrl = httpUrlFor(this.url, o.healthUrl || '/healthz');

    this.state = 'closed';
    this.transport = null;
    this.latency = null;
    this._listeners = new Map();
    this._subs = new Map();
    this._pending = new Map(); // id -> request
    this._queue = []; // requests waiting for a connection
    this._nextId = 1;
    this._t = null; // the current transport
    this._connected = false;
    this._stopped = true; // before connect() and after close()
    this._closedByUser = false; // close() was called: requests reject at once
    this._everConnected = false;
    this._attempt = 0; // back-off exponent
    this._kindIndex = 0;
    this._failures = 0; // failed opens on the current transport kind
    this._skips = 0; // transports skipped in a row as unusable
    this._worked = new Set(); // transport kinds that opened at least once
    this._timers = new Set();
    this._retryTimer = null;
  }

  // -- events ---------------------------------------------------------------------------

  on(event, fn) {
    let s = this._listeners.get(event);
    if (!s) this._listeners.set(event, (s = new Set()));
    s.add(fn);
    return this;
  }

  off(event, fn) {
    const s = this._listeners.get(event);
    if (s) s.delete(fn);
    return this;
  }

  _emit(event, arg) {
    const s = this._listeners.get(event);
    if (!s) return;
    for (const fn of [...s]) {
      try {
        fn(arg);
      } catch (e) {
        // a throwing listener must not break the client's own state machine
        if (event !== 'error') this._emit('error', new HeraldError('listener', `a '${event}' listener threw: ${e && e.message}`, { cause: e }));
      }
    }
  }

  _setState(state, retryInMs) {
    this.state = state;
    const ev = { state, transport: this.transport };
    if (retryInMs !== undefined) ev.retryInMs = retryInMs;
    this._emit('state', ev);
  }

  // -- timers (injectable, and all cancelled by close()) --------------------------------

  _timer(fn, ms) {
    const h = this._setTimeout(() => {
      this._timers.delete(h);
      fn();
    }, ms);
    this._timers.add(h);
    return h;
  }

  _cancel(h) {
    if (h === null || h === undefined) return;
    this._timers.delete(h);
    this._clearTimeout(h);
  }

  // -- connection life ------------------------------------------------------------------

  connect() {
    if (!this._stopped) return this;
    this._stopped = false;
    this._closedByUser = false;
    this._attempt = 0;
    this._failures = 0;
    this._skips = 0;
    this._kindIndex = 0;
    // a browser coming back online need not sit out the rest of a long back-off
    if (typeof globalThis.addEventListener === 'function' && !this._onOnline) {
      this._onOnline = () => {
        if (this._retryTimer === null || this._stopped) return;
        this._cancel(this._retryTimer);
        this._retryTimer = null;
        this._open();
      };
      globalThis.addEventListener('online', this._onOnline);
    }
    this._open();
    return this;
  }

  /** Stops for good: no reconnect; pending and queued requests reject with 'closed'. */
  close() {
    this._closedByUser = true;
    this._stopped = true;
    const t = this._t;
    const wasConnected = this._connected;
    this._t = null;
    this._connected = false;
    this.transport = null;
    if (t) t.abort(1000, 'client closed');
    if (this._onOnline) {
      globalThis.removeEventListener('online', this._onOnline);
      this._onOnline = null;
    }
    for (const h of [...this._timers]) this._cancel(h);
    this._retryTimer = null;
    for (const sub of this._subs.values()) {
      sub.active = false;
      sub.reqId = null;
    }
    const err = new HeraldError('closed', 'the client was closed');
    for (const p of [...this._pending.values()]) this._finish(p, err);
    this._queue = [];
    if (this.state !== 'closed') this._setState('closed');
    if (wasConnected) this._emit('disconnected', { code: 1000, reason: 'client closed', willReconnect: false });
  }

  _kinds() {
    return this.options.transports;
  }

  async _token() {
    const tk = this.options.token;
    if (typeof tk === 'function') return tk();
    return tk;
  }

  _open() {
    this._retryTimer = null;
    if (this._stopped) return;
    const kinds = this._kinds();
    if (!kinds.length) {
      this._emit('error', new HeraldError('no_transport', 'no transport configured'));
      this.close();
      return;
    }
    const kind = kinds[this._kindIndex % kinds.length];
    this.transport = kind;
    this._setState(this._everConnected ? 'reconnecting' : 'connecting', 0);
    let t;
    if (kind === 'websocket') t = new WsTransport(this);
    else if (kind === 'sse') t = new SseTransport(this);
    else if (kind === 'poll') t = new PollTransport(this);
    else {
      this._emit('error', new HeraldError('bad_option', `unknown transport '${kind}'`));
      this._attemptFailed(null, { unusable: true });
      return;
    }
    this._t = t;
    Promise.resolve()
      .then(() => this._token())
      .then(
        (token) => {
          if (this._t !== t) return;
          this._tokenValue = token;
          t.start(token);
        },
        (e) => {
          if (this._t !== t) return;
          this._emit('error', new HeraldError('token', `the token function failed: ${e && e.message}`, { cause: e }));
          this._transportClosed(t, { code: 4000, reason: 'no token', opened: false });
        },
      );
  }

  /** Called by a transport once it is usable. */
  _transportOpen(t) {
    if (t !== this._t || this._stopped) return;
    this._connected = true;
    this._everConnected = true;
    this._worked.add(t.kind);
    this._failures = 0;
    this._skips = 0;
    this._openedAt = this._now();
    this._stableTimer = this._timer(() => {
      this._attempt = 0;
    }, this.options.stableAfter);
    this.transport = t.kind;
    this._setState('connected');
    this._emit('connected', { transport: t.kind });
    if (t !== this._t) return; // a listener closed or dropped it
    this._syncSubs();
    const q = this._queue;
    this._queue = [];
    for (const p of q) this._dispatch(p);
    if (t.kind === 'websocket') this._startPings(t);
    else if (this.options.upgradeAfter > 0 && this._kinds()[0] === 'websocket' && this._WS) {
      this._upgradeTimer = this._timer(() => this._probeUpgrade(t), this.options.upgradeAfter);
    }
  }

  /** Called by a transport when it closed or failed to open (once per transport). */
  _transportClosed(t, { code = 1006, reason = '', opened = false, unusable = false } = {}) {
    if (t !== this._t) return;
    this._t = null;
    const wasConnected = this._connected;
    this._connected = false;
    this._cancel(this._pingTimer);
    this._cancel(this._stableTimer);
    this._cancel(this._upgradeTimer);
    this._pingTimer = this._stableTimer = this._upgradeTimer = null;
    for (const sub of this._subs.values()) {
      sub.active = false;
      sub.reqId = null;
    }
    // A request already sent may or may not have been executed: the caller decides
    // whether to send it again (a publish sent twice is two messages).
    const err = new HeraldError('disconnected', 'the connection was lost before the reply');
    for (const p of [...this._pending.values()]) if (p.sent) this._finish(p, err);
    if (this._stopped) return;
    if (wasConnected) {
      this._emit('disconnected', { code, reason, willReconnect: true });
    }
    this._attemptFailed(t, { opened: opened || wasConnected, unusable });
  }

  _attemptFailed(t, { opened = false, unusable = false }) {
    const kinds = this._kinds();
    let delay;
    if (opened) {
      this._failures = 0;
      this._skips = 0;
      delay = this._nextDelay();
    } else {
      this._failures++;
      const kind = kinds[this._kindIndex % kinds.length];
      const limit = this._worked.has(kind) ? this.options.fallbackAfterWorked : this.options.fallbackAfter;
      if (unusable || this._failures >= limit) {
        this._kindIndex = (this._kindIndex + 1) % kinds.length;
        this._failures = 0;
      }
      if (unusable && this._skips < kinds.length) {
        // the next transport is worth trying at once: this one could not even start
        this._skips++;
        delay = 0;
      } else {
        this._skips = 0;
        delay = this._nextDelay();
      }
    }
    this.transport = null;
    this._setState('reconnecting', delay);
    this._retryTimer = this._timer(() => this._open(), delay);
  }

  _nextDelay() {
    const d = backoffDelay(this._attempt, this.options.reconnectDelay, this._random);
    this._attempt = Math.min(this._attempt + 1, 30);
    return d;
  }

  /** Drop the current connection (dead, or being replaced) and reconnect. */
  _drop(code, reason, opts = {}) {
    const t = this._t;
    if (!t) return;
    t.abort(code, reason);
    this._transportClosed(t, { code, reason, opened: this._connected });
    if (opts.now && this._retryTimer) {
      this._cancel(this._retryTimer);
      this._retryTimer = this._timer(() => this._open(), 0);
    }
  }

  // On a fallback, see now and then whether WebSocket gets through again.
  _probeUpgrade(t) {
    this._upgradeTimer = null;
    if (t !== this._t || !this._connected) return;
    let ws;
    let done = false;
    const again = () => {
      if (t === this._t) this._upgradeTimer = this._timer(() => this._probeUpgrade(t), this.options.upgradeAfter);
    };
    try {
      ws = new this._WS(this._tokenValue ? withQuery(this.url, [['token', this._tokenValue]]) : this.url);
    } catch {
      again();
      return;
    }
    const timer = this._timer(() => finish(false), this.options.requestTimeout);
    const finish = (ok) => {
      if (done) return;
      done = true;
      this._cancel(timer);
      try {
        ws.close(1000);
      } catch {
        /* already closed */
      }
      if (!ok) {
        again();
        return;
      }
      if (t !== this._t) return;
      this._kindIndex = 0;
      this._failures = 0;
      this._drop(1000, 'switching to websocket', { now: true });
    };
    ws.onopen = () => finish(true);
    ws.onerror = () => finish(false);
    ws.onclose = () => finish(false);
  }

  // -- liveness -------------------------------------------------------------------------

  _startPings(t) {
    const tick = () => {
      this._pingTimer = null;
      if (t !== this._t) return;
      const sentAt = this._now();
      const rx = t.rxCount;
      this._call({ type: 'ping' }, this.options.pingTimeout).then(
        () => {
          this.latency = this._now() - sentAt;
          this._emit('latency', { ms: this.latency });
        },
        (e) => {
          if (t !== this._t) return;
          // no pong, and nothing else either since the ping went out: dead
          if (e.code === 'timeout' && t.rxCount === rx) this._drop(4000, 'ping timeout');
        },
      );
      if (t === this._t) this._pingTimer = this._timer(tick, this.options.pingInterval);
    };
    this._pingTimer = this._timer(tick, this.options.pingInterval);
  }

  // -- requests -------------------------------------------------------------------------

  /**
   * Send a request; resolves to the reply object, rejects with a HeraldError. While not
   * connected the request waits in a bounded queue; its timeout runs from this call.
   */
  _call(frame, timeoutMs = this.options.requestTimeout, hooks = null) {
    return new Promise((resolve, reject) => {
      if (this._closedByUser) {
        reject(new HeraldError('closed', 'the client was closed'));
        return;
      }
      const id = this._nextId++;
      const p = { id, frame: { ...frame, id }, resolve, reject, sent: false, hooks, timer: null };
      p.timer = this._timer(() => this._finish(p, new HeraldError('timeout', `no reply to '${frame.type}' within ${timeoutMs} ms`)), timeoutMs);
      this._pending.set(id, p);
      if (this._connected) {
        this._dispatch(p);
      } else if (this._queue.length >= this.options.maxQueue) {
        this._finish(p, new HeraldError('queue_full', `${this.options.maxQueue} requests already wait for a connection`));
      } else {
        this._queue.push(p);
      }
    });
  }

  _dispatch(p) {
    if (!this._pending.has(p.id)) return; // timed out while queued
    const t = this._t;
    p.sent = true;
    if (t.kind === 'websocket') {
      const err = t.send(p.frame);
      if (err) this._finish(p, err);
      return;
    }
    t.call(p.frame).then(
      (reply) => this._reply(reply, p),
      (e) => this._finish(p, e instanceof HeraldError ? e : new HeraldError('network', e && e.message)),
    );
  }

  /** Settle request p (or the one whose id the reply carries). Synchronous. */
  _reply(reply, p = this._pending.get(reply.id)) {
    if (!p) return false;
    if (reply.type === 'error') this._finish(p, errFrom(reply, 'error'));
    else this._finish(p, null, reply);
    return true;
  }

  _finish(p, err, reply) {
    if (!this._pending.delete(p.id)) return;
    this._cancel(p.timer);
    const qi = this._queue.indexOf(p);
    if (qi >= 0) this._queue.splice(qi, 1);
    if (p.hooks) {
      // subscribe replies must be applied before the next frame is read (the recovered
      // messages follow the ok at once): no promise hop
      if (err) p.hooks.error(err);
      else p.hooks.ok(reply);
    }
    if (err) p.reject(err);
    else p.resolve(reply);
  }

  /** Publish; resolves to {offset, epoch}. */
  async publish(channel, data) {
    if (data === undefined) data = null;
    const r = await this._call({ type: 'publish', channel, data });
    return { offset: r.offset, epoch: r.epoch };
  }

  /** Retained messages, oldest first: {messages, offset, epoch}. */
  async history(channel, { limit, since } = {}) {
    const f = { type: 'history', channel };
    if (limit !== undefined) f.limit = limit;
    if (since) f.since = { offset: since.offset, epoch: since.epoch };
    const r = await this._call(f);
    const out = { messages: r.messages || [], offset: r.offset, epoch: r.epoch };
    if ('recovered' in r) out.recovered = r.recovered;
    return out;
  }

  /** The clients subscribed to a channel with presence on: [{client, user}]. */
  async presence(channel) {
    const r = await this._call({ type: 'presence', channel });
    return r.clients || [];
  }

  /** Round trip to the server in ms (also stored in .latency). */
  async ping() {
    const t0 = this._now();
    await this._call({ type: 'ping' });
    this.latency = this._now() - t0;
    this._emit('latency', { ms: this.latency });
    return this.latency;
  }

  // -- subscriptions --------------------------------------------------------------------

  /**
   * Subscribe to a channel or pattern; `cb(msg)` gets each message once. The returned
   * handle has unsubscribe(), ready (a promise: the first subscribe was accepted) and
   * position. options: {since: {offset, epoch}} to start from a known position.
   */
  subscribe(channel, cb, options = {}) {
    if (typeof channel !== 'string' || channel === '') throw new HeraldError('bad_request', 'channel must be a non-empty string');
    let sub = this._subs.get(channel);
    const fresh = !sub;
    if (fresh) {
      sub = new Sub(channel);
      if (options.since && !sub.pattern) {
        sub.offset = options.since.offset;
        sub.epoch = options.since.epoch;
      }
      this._subs.set(channel, sub);
    }
    const entry = { cb, onGap: options.onGap };
    sub.listeners.add(entry);
    const handle = {
      channel,
      ready: new Promise((res, rej) => {
        if (sub.active) res();
        else sub.readyWaiters.push([res, rej]);
      }),
      unsubscribe: () => {
        if (!sub.listeners.delete(entry)) return;
        if (sub.listeners.size === 0 && this._subs.get(channel) === sub) this._removeSub(sub);
      },
      get position() {
        return sub.offset === null ? null : { offset: sub.offset, epoch: sub.epoch };
      },
    };
    handle.ready.catch(() => {}); // reported through 'error' as well
    if (fresh) this._syncSubs();
    return handle;
  }

  _removeSub(sub) {
    this._subs.delete(sub.channel);
    sub.settleReady(new HeraldError('unsubscribed', 'unsubscribed before the server accepted'));
    if (!this._connected) return;
    if (this._t.kind === 'websocket') {
      if (sub.active || sub.reqId !== null) {
        // errors (not_subscribed after a race) are of no interest here
        this._call({ type: 'unsubscribe', channel: sub.channel }).catch(() => {});
      }
    } else {
      this._t.channelsChanged();
    }
  }

  _syncSubs() {
    if (!this._connected) return;
    const t = this._t;
    if (t.kind !== 'websocket') {
      t.channelsChanged();
      return;
    }
    for (const sub of this._subs.values()) {
      if (sub.active || sub.reqId !== null) continue;
      const f = { type: 'subscribe', channel: sub.channel };
      const since = !sub.pattern && sub.epoch ? { offset: sub.offset, epoch: sub.epoch } : null;
      if (since) f.since = since;
      const hooks = {
        ok: (reply) => {
          sub.reqId = null;
          if (this._subs.get(sub.channel) !== sub) return;
          this._subscribed(sub, reply, since);
        },
        error: (e) => {
          sub.reqId = null;
          if (e.code === 'disconnected' || e.code === 'closed') return; // resubscribed later
          if (this._subs.get(sub.channel) !== sub) return;
          if (e.code === 'timeout') {
            if (t === this._t) this._drop(4000, 'subscribe timed out');
            return;
          }
          if (e.code === 'already_subscribed') {
            sub.active = true;
            sub.settleReady(null);
            return;
          }
          this._subs.delete(sub.channel);
          e.channel = sub.channel;
          sub.settleReady(e);
          this._emit('error', e);
        },
      };
      // _call takes this id and sends at once (we are connected); a failed send resets it
      sub.reqId = this._nextId;
      this._call(f, this.options.requestTimeout, hooks).catch(() => {});
    }
  }

  /**
   * The server accepted a subscription: {offset, epoch, recovered?} of the channel.
   * Used by every transport.
   */
  _subscribed(sub, info, since) {
    sub.active = true;
    if (!sub.pattern && info && info.epoch !== undefined) {
      if (since && info.recovered === false) {
        this._gap(sub, since, info);
        sub.offset = info.offset;
        sub.epoch = info.epoch;
      } else if (!since || sub.epoch === null) {
        sub.offset = info.offset;
        sub.epoch = info.epoch;
      }
      // recovered: the missed messages follow; the position moves with them
    } else if (sub.pattern && this._everConnected && sub.resubscribed) {
      this._gap(sub, null, null);
    }
    sub.resubscribed = true;
    sub.settleReady(null);
  }

  _gap(sub, since, info) {
    const ev = {
      channel: sub.channel,
      since,
      offset: info ? info.offset : null,
      epoch: info ? info.epoch : null,
    };
    for (const l of sub.listeners) {
      if (l.onGap) {
        try {
          l.onGap(ev);
        } catch {
          /* the app's problem */
        }
      }
    }
    this._emit('gap', ev);
  }

  /** A message from any transport: dedupe per subscription, then deliver. */
  _deliver(msg) {
    if (!msg || typeof msg.channel !== 'string') return;
    let fresh = false;
    const targets = [];
    for (const sub of this._subs.values()) {
      if (sub.pattern ? !matchChannel(sub.channel, msg.channel) : sub.channel !== msg.channel) continue;
      if (!this._advance(sub, msg)) continue;
      fresh = true;
      targets.push(sub);
    }
    if (!fresh) return;
    this._emit('message', msg);
    for (const sub of targets) {
      for (const l of [...sub.listeners]) {
        try {
          l.cb(msg);
        } catch (e) {
          this._emit('error', new HeraldError('listener', `a subscription callback threw: ${e && e.message}`, { cause: e }));
        }
      }
    }
  }

  // True when msg is new for sub (and records it); false for a duplicate.
  _advance(sub, msg) {
    if (typeof msg.offset !== 'number' || typeof msg.epoch !== 'string') return true;
    if (!sub.pattern) {
      if (sub.epoch === msg.epoch && sub.offset !== null && msg.offset <= sub.offset) return false;
      sub.offset = msg.offset;
      sub.epoch = msg.epoch;
      return true;
    }
    const pos = sub.perChannel.get(msg.channel);
    if (pos && pos.epoch === msg.epoch && msg.offset <= pos.offset) return false;
    sub.perChannel.delete(msg.channel); // re-insert: the map's order is least recently seen first
    sub.perChannel.set(msg.channel, { offset: msg.offset, epoch: msg.epoch });
    if (sub.perChannel.size > this.options.maxPatternChannels) {
      sub.perChannel.delete(sub.perChannel.keys().next().value);
    }
    return true;
  }

  /** Position string of the exact-name subscriptions (the contract's `since`). */
  position() {
    const entries = [];
    for (const sub of this._subs.values()) {
      if (!sub.pattern) entries.push({ channel: sub.channel, offset: sub.offset, epoch: sub.epoch });
    }
    return formatPosition(entries);
  }

  _frame(m) {
    if (!m || typeof m !== 'object') return;
    switch (m.type) {
      case 'message':
        this._deliver(m);
        break;
      case 'join':
      case 'leave':
        this._emit(m.type, m);
        break;
      case 'ok':
      case 'pong':
      case 'error':
        if (m.id !== undefined && this._reply(m)) break;
        if (m.type === 'error') this._emit('error', errFrom(m, 'error'));
        break;
      default:
        break;
    }
  }
}

// ---------------------------------------------------------------------------------------
// WebSocket transport: the whole protocol runs over it.

class WsTransport {
  constructor(core) {
    this.core = core;
    this.kind = 'websocket';
    this.ws = null;
    this.opened = false;
    this.done = false;
    this.rxCount = 0;
  }

  start(token) {
    const core = this.core;
    if (typeof core._WS !== 'function') {
      this._fail(false, true, 'WebSocket is not available');
      return;
    }
    let url = core.url;
    if (token) url = withQuery(url, [['token', token]]);
    let ws;
    try {
      ws = new core._WS(url);
    } catch (e) {
      this._fail(false, true, e && e.message);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.done) return;
      this.opened = true;
      core._transportOpen(this);
    };
    ws.onmessage = (ev) => {
      if (this.done) return;
      this.rxCount++;
      let text = ev.data;
      if (typeof text !== 'string') {
        try {
          text = new TextDecoder().decode(text);
        } catch {
          return;
        }
      }
      let m;
      try {
        m = JSON.parse(text);
      } catch {
        core._emit('error', new HeraldError('bad_frame', 'the server sent a frame that is not JSON'));
        return;
      }
      core._frame(m);
    };
    ws.onerror = () => {
      /* 'close' follows and says everything */
    };
    ws.onclose = (ev) => {
      if (this.done) return;
      this.done = true;
      core._transportClosed(this, { code: ev && ev.code, reason: (ev && ev.reason) || '', opened: this.opened });
    };
  }

  _fail(opened, unusable, reason) {
    if (this.done) return;
    this.done = true;
    // never call back synchronously from start()
    Promise.resolve().then(() => this.core._transportClosed(this, { code: 1006, reason: reason || '', opened, unusable }));
  }

  send(frame) {
    const ws = this.ws;
    if (frame.type === 'publish' && ws.bufferedAmount > this.core.options.maxBuffered) {
      return new HeraldError('buffer_full', 'too much unsent data on the WebSocket');
    }
    try {
      ws.send(JSON.stringify(frame));
    } catch (e) {
      return new HeraldError('disconnected', e && e.message);
    }
    return null;
  }

  abort(code, reason) {
    this.done = true;
    const ws = this.ws;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
    try {
      ws.close(code >= 3000 || code === 1000 ? code : 1000, reason);
    } catch {
      /* not open yet, or gone */
    }
  }
}

// ---------------------------------------------------------------------------------------
// Fallbacks. Publish goes over POST (the contract's POST /sse and /poll); history and
// presence need the API (options.api), else they reject with 'unsupported'.

class HttpFallback {
  constructor(core, kind, url) {
    this.core = core;
    this.kind = kind;
    this.url = url;
    this.token = null;
    this.opened = false;
    this.done = false;
    this.lastRx = 0;
  }

  _headers(extra = {}) {
    const h = { ...extra };
    if (this.token) h.Authorization = `Bearer ${this.token}`;
    return h;
  }

  async _fetch(url, init = {}, timeoutMs = this.core.options.requestTimeout) {
    const core = this.core;
    if (typeof core._fetch !== 'function') throw new HeraldError('unsupported', 'fetch is not available');
    const ctrl = new AbortController();
    const timer = core._timer(() => ctrl.abort(), timeoutMs);
    try {
      return await core._fetch(url, { ...init, signal: ctrl.signal, cache: 'no-store' });
    } catch (e) {
      if (ctrl.signal.aborted) throw new HeraldError('timeout', `no answer from ${url} within ${timeoutMs} ms`);
      throw new HeraldError('network', e && e.message);
    } finally {
      core._cancel(timer);
    }
  }

  async _json(res) {
    try {
      return await res.json();
    } catch {
      return null;
    }
  }

  // The subclass says what it lacks (_unavailable) and how it begins receiving (_begin);
  // with nothing to subscribe to, a probe stands in for the first answer.
  start(token) {
    this.token = token;
    const missing = this._unavailable();
    if (missing) {
      this._fail(missing, true);
      return;
    }
    if (this._channels().length === 0) {
      this._probe().then(
        () => this._opened(),
        (e) => this._fail(e.message),
      );
      return;
    }
    this._begin();
  }

  // Reachability check used when there is nothing to subscribe to: a GET without a
  // channel is answered 400 at once by a server that has the endpoint.
  async _probe() {
    const res = await this._fetch(this.url, { headers: this._headers() });
    if (res.body && res.body.cancel) res.body.cancel().catch(() => {});
    if (res.status === 404 || res.status >= 500) throw new HeraldError('unavailable', `${this.url}: HTTP ${res.status}`);
    return res;
  }

  async call(frame) {
    const core = this.core;
    if (frame.type === 'publish') {
      const body = { channel: frame.channel, data: frame.data, id: frame.id };
      const res = await this._fetch(this.url, {
        method: 'POST',
        headers: this._headers({ 'Content-Type': 'application/json' }),
        body: JSON.stringify(body),
      });
      const j = await this._json(res);
      if (!res.ok || !j || j.type === 'error') throw errFrom(j, `http_${res.status}`);
      return { type: 'ok', id: frame.id, offset: j.offset, epoch: j.epoch };
    }
    if (frame.type === 'ping') {
      // any answer is a round trip; /healthz answers 200 (no console noise in pages)
      const res = await this._fetch(core.healthUrl, {});
      if (res.body && res.body.cancel) res.body.cancel().catch(() => {});
      return { type: 'pong', id: frame.id };
    }
    const api = core.options.api;
    if ((frame.type === 'history' || frame.type === 'presence') && api && api.url) {
      const base = httpUrlFor(core.url, api.url).replace(/\/+$/, '');
      let url = `${base}/channels/${encodeURIComponent(frame.channel)}/${frame.type}`;
      const q = [];
      if (frame.limit !== undefined) q.push(['limit', String(frame.limit)]);
      if (frame.since) q.push(['since', String(frame.since.offset)], ['epoch', frame.since.epoch]);
      if (q.length) url = withQuery(url, q);
      const res = await this._fetch(url, { headers: { ...(api.headers || {}) } });
      const j = await this._json(res);
      if (!res.ok || !j) throw errFrom(j, `http_${res.status}`);
      return { type: 'ok', id: frame.id, ...j };
    }
    throw new HeraldError('unsupported', `'${frame.type}' needs WebSocket (or the api option) on the ${this.kind} fallback`);
  }

  // The exact-name channels to follow (patterns need WebSocket).
  _channels() {
    const out = [];
    for (const sub of this.core._subs.values()) if (!sub.pattern) out.push(sub);
    return out;
  }

  _rejectPatterns() {
    for (const sub of [...this.core._subs.values()]) {
      if (!sub.pattern || sub.refused) continue;
      sub.refused = true;
      const e = new HeraldError('unsupported', `pattern subscriptions need WebSocket (${sub.channel})`, { channel: sub.channel });
      sub.settleReady(e);
      this.core._emit('error', e);
    }
  }

  _opened() {
    if (this.opened || this.done) return;
    this.opened = true;
    this.core._transportOpen(this);
  }

  _fail(reason, unusable = false) {
    if (this.done) return;
    this.done = true;
    this._stop();
    this.core._transportClosed(this, { code: 1006, reason, opened: this.opened, unusable });
  }

  abort() {
    this.done = true;
    this._stop();
  }

  async _reportHttpError(res) {
    const j = await this._json(res);
    const e = errFrom(j, `http_${res.status}`);
    e.status = res.status;
    this.core._emit('error', e);
    return e;
  }
}

class SseTransport extends HttpFallback {
  constructor(core) {
    super(core, 'sse', core.sseUrl);
    this.stream = null; // {close()}
    this.key = null; // the channel set of the open stream
    this.reopenTimer = null;
  }

  _unavailable() {
    return !this.core._ES && typeof this.core._fetch !== 'function' ? 'neither EventSource nor fetch' : null;
  }

  _begin() {
    this._openStream();
  }

  channelsChanged() {
    if (this.done || this.reopenTimer !== null) return;
    // several subscribe() calls in a row reopen the stream once
    this.reopenTimer = this.core._timer(() => {
      this.reopenTimer = null;
      if (this.done) return;
      const subs = this._channels();
      const key = subs.map((s) => s.channel).join(',');
      if (key === this.key) return;
      this._closeStream();
      if (subs.length) this._openStream();
    }, 0);
  }

  _openStream() {
    const core = this.core;
    this._rejectPatterns();
    const subs = this._channels();
    this.key = subs.map((s) => s.channel).join(',');
    this.sinceBySub = new Map();
    for (const s of subs) if (s.epoch) this.sinceBySub.set(s.channel, { offset: s.offset, epoch: s.epoch });
    const position = core.position();
    const q = subs.map((s) => ['channel', s.channel]);
    if (position) q.push(['since', position]);
    if (core._ES) {
      if (this.token) q.push(['token', this.token]);
      this._openEventSource(withQuery(this.url, q));
    } else {
      this._openFetch(withQuery(this.url, q), position);
    }
  }

  _event(type, data) {
    const core = this.core;
    this.lastRx = core._now();
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      return;
    }
    if (type === 'subscribed') {
      this._opened();
      for (const c of (m && m.channels) || []) {
        const sub = core._subs.get(c.channel);
        if (sub) core._subscribed(sub, c, this.sinceBySub.get(c.channel) || null);
      }
    } else if (type === 'message') {
      core._deliver(m);
    } else if (type === 'join' || type === 'leave') {
      core._emit(type, m);
    } else if (type === 'error') {
      core._emit('error', errFrom(m, 'error'));
    }
  }

  _openEventSource(url) {
    const es = new this.core._ES(url);
    const stream = { close: () => es.close() };
    this.stream = stream;
    const on = (type) => (ev) => {
      if (this.stream === stream) this._event(type, ev.data);
    };
    es.addEventListener('subscribed', on('subscribed'));
    es.addEventListener('message', on('message'));
    es.addEventListener('join', on('join'));
    es.addEventListener('leave', on('leave'));
    // The browser would reconnect by itself, but with our own back-off and the position
    // we keep, a fresh stream is just as good and the state stays visible.
    es.onerror = () => {
      if (this.stream !== stream) return;
      es.close();
      this._fail('event stream failed');
    };
  }

  async _openFetch(url, position) {
    const core = this.core;
    const ctrl = new AbortController();
    const stream = { close: () => ctrl.abort() };
    this.stream = stream;
    const headers = this._headers({ Accept: 'text/event-stream' });
    if (position) headers['Last-Event-ID'] = position;
    let idle = null;
    const kick = () => {
      core._cancel(idle);
      idle = core._timer(() => ctrl.abort(), core.options.sseIdleTimeout);
    };
    kick();
    try {
      const res = await core._fetch(url, { headers, signal: ctrl.signal, cache: 'no-store' });
      if (this.stream !== stream) return;
      if (res.status !== 200 || !/^text\/event-stream/i.test(res.headers.get('content-type') || '')) {
        await this._reportHttpError(res);
        this._fail(`HTTP ${res.status}`, res.status === 404);
        return;
      }
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      const parser = new SseParser(core.options.maxEventBytes, (type, data) => {
        if (this.stream === stream) this._event(type, data);
      });
      for (;;) {
        const { value, done } = await reader.read();
        if (this.stream !== stream) {
          reader.cancel().catch(() => {});
          return;
        }
        if (done) break;
        kick();
        this.lastRx = core._now();
        if (!parser.push(dec.decode(value, { stream: true }))) {
          core._emit('error', new HeraldError('bad_frame', 'an event is larger than maxEventBytes'));
          break;
        }
      }
      if (this.stream === stream) this._fail('event stream ended');
    } catch (e) {
      if (this.stream === stream) this._fail(`event stream failed: ${e && e.message}`);
    } finally {
      core._cancel(idle);
    }
  }

  _closeStream() {
    const s = this.stream;
    this.stream = null;
    this.key = null;
    if (s) s.close();
  }

  _stop() {
    this.core._cancel(this.reopenTimer);
    this.reopenTimer = null;
    this._closeStream();
  }
}

/** text/event-stream parser (the WHATWG rules, minus `retry`, which we do not need). */
export class SseParser {
  constructor(maxBytes, onEvent) {
    this.max = maxBytes;
    this.onEvent = onEvent;
    this.buf = '';
    this.type = '';
    this.data = [];
    this.size = 0;
    this.lastId = '';
  }

  /** Feed text; false when an event or line grew beyond the bound. */
  push(text) {
    this.buf += text;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) break;
      // a lone \r at the very end may be the first half of \r\n
      if (m[0] === '\r' && m.index === this.buf.length - 1) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this._line(line);
    }
    return this.buf.length + this.size <= this.max;
  }

  _line(line) {
    if (line === '') {
      if (this.data.length) this.onEvent(this.type || 'message', this.data.join('\n'), this.lastId);
      this.type = '';
      this.data = [];
      this.size = 0;
      return;
    }
    if (line[0] === ':') return;
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    let value = c < 0 ? '' : line.slice(c + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'data') {
      this.data.push(value);
      this.size += value.length + 1;
    } else if (field === 'event') this.type = value;
    else if (field === 'id' && !value.includes('\0')) this.lastId = value;
  }
}

class PollTransport extends HttpFallback {
  constructor(core) {
    super(core, 'poll', core.pollUrl);
    this.ctrl = null;
    this.running = false;
    this.changed = false;
  }

  _unavailable() {
    return typeof this.core._fetch !== 'function' ? 'fetch is not available' : null;
  }

  _begin() {
    this._loop();
  }

  channelsChanged() {
    if (this.done) return;
    this.changed = true;
    if (this.running) {
      if (this.ctrl) this.ctrl.abort();
    } else {
      this._loop();
    }
  }

  async _get(subs, since, timeoutS) {
    const core = this.core;
    const q = subs.map((s) => ['channel', s.channel]);
    if (since) q.push(['since', since], ['timeout', String(timeoutS)]);
    this.ctrl = new AbortController();
    const ctrl = this.ctrl;
    const timer = core._timer(() => ctrl.abort(), (since ? timeoutS : 0) * 1000 + core.options.requestTimeout);
    try {
      const res = await core._fetch(withQuery(this.url, q), { headers: this._headers(), signal: ctrl.signal, cache: 'no-store' });
      const j = await this._json(res);
      if (res.status !== 200 || !j) {
        const e = errFrom(j, `http_${res.status}`);
        e.status = res.status;
        throw e;
      }
      this.lastRx = core._now();
      return j;
    } catch (e) {
      if (ctrl.signal.aborted && this.changed && !this.done) return null; // the set changed
      throw e;
    } finally {
      core._cancel(timer);
      if (this.ctrl === ctrl) this.ctrl = null;
    }
  }

  async _loop() {
    const core = this.core;
    this.running = true;
    try {
      while (!this.done) {
        this.changed = false;
        this._rejectPatterns();
        const subs = this._channels();
        if (subs.length === 0) {
          this._opened();
          break;
        }
        // channels without a position learn it first (no since: answered at once)
        const fresh = subs.filter((s) => !s.epoch);
        if (fresh.length) {
          const j = await this._get(fresh, null, 0);
          if (this.done) return;
          if (!j) continue;
          const pos = new Map(parsePosition(j.position).map((p) => [p.channel, p]));
          for (const s of fresh) {
            const p = pos.get(s.channel);
            if (!p) throw new HeraldError('bad_reply', `the poll answer has no position for ${s.channel}`);
            if (core._subs.get(s.channel) === s) core._subscribed(s, p, null);
          }
        }
        this._opened();
        if (this.done) return;
        const all = this._channels().filter((s) => s.epoch);
        if (!all.length) continue;
        const since = formatPosition(all.map((s) => ({ channel: s.channel, offset: s.offset, epoch: s.epoch })));
        const before = new Map(all.map((s) => [s.channel, { offset: s.offset, epoch: s.epoch }]));
        for (const s of all) if (!s.active) core._subscribed(s, null, null);
        const j = await this._get(all, since, core.options.pollTimeout);
        if (this.done) return;
        if (!j) continue;
        if (j.recovered === false) {
          // the history did not cover the gap: say so for every channel that moved on
          const pos = new Map(parsePosition(j.position).map((p) => [p.channel, p]));
          for (const s of all) {
            const p = pos.get(s.channel);
            const b = before.get(s.channel);
            if (p && (p.epoch !== b.epoch || p.offset !== b.offset)) core._gap(s, b, p);
          }
        }
        for (const m of j.messages || []) core._deliver(m);
        // the answer's position is authoritative (also covers recovered:false)
        for (const p of parsePosition(j.position)) {
          const s = core._subs.get(p.channel);
          if (s && !s.pattern && (s.epoch !== p.epoch || s.offset === null || p.offset > s.offset)) {
            s.offset = p.offset;
            s.epoch = p.epoch;
          }
        }
      }
    } catch (e) {
      if (e instanceof HeraldError && e.status >= 400 && e.status < 500) core._emit('error', e);
      this._fail(e && e.message, e && e.status === 404);
    } finally {
      this.running = false;
    }
  }

  _stop() {
    if (this.ctrl) this.ctrl.abort();
  }
}

export default Herald;
