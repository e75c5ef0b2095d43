// Helpers for the SockJS tests (docs/stomp.md, "SockJS"): raw SockJS sessions over fetch
// (polling, streaming and eventsource receivers read frame by frame) and a @stomp/stompjs
// client over sockjs-client with one transport forced. Every wait is bounded.
import SockJS from 'sockjs-client';
import { Client } from '@stomp/stompjs';
import { Sj } from '../40-stomp/stomp-helpers.mjs';
import { withTimeout } from '../helpers/herald.mjs';

let n = 0;
/** A fresh session id (sockjs-client uses 8 random characters). */
export function sid() {
  n += 1;
  return `s${process.pid}x${n}`;
}

export function base(srv) {
  return `http://127.0.0.1:${srv.port}/stomp`;
}

/** A STOMP frame as the string a SockJS client sends (NUL included). */
export function stompFrame(command, headers = {}, body = '') {
  const head = [command, ...Object.entries(headers).map(([k, v]) => `${k}:${v}`)].join('\n');
  return `${head}\n\n${body}\0`;
}

/** Parses one SockJS frame: {type: 'o'|'h'|'a'|'c', messages?, code?, reason?}. */
export function parseFrame(f) {
  const t = f[0];
  if (t === 'a') return { type: 'a', messages: JSON.parse(f.slice(1)) };
  if (t === 'c') { const [code, reason] = JSON.parse(f.slice(1)); return { type: 'c', code, reason }; }
  return { type: t };
}

/** One SockJS session spoken by hand over fetch. */
export class RawSession {
  constructor(srv, id = sid(), query = '') {
    this.url = `${base(srv)}/000/${id}`;
    this.query = query;
  }

  async poll() {
    const r = await fetch(`${this.url}/xhr${this.query}`, { method: 'POST', signal: AbortSignal.timeout(30000) });
    const text = await r.text();
    return { status: r.status, text, headers: r.headers, frame: parseFrame(text.replace(/\n$/, '')) };
  }

  /** Polls until an a[...] frame; returns its messages. */
  async pollMessages(ms = 5000) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const r = await this.poll();
      if (r.frame.type === 'a') return r.frame.messages;
      if (r.frame.type === 'c') throw new Error(`session closed: ${r.text}`);
    }
    throw new Error('no a[...] frame');
  }

  async send(body) {
    const r = await fetch(`${this.url}/xhr_send${this.query}`, {
      method: 'POST',
      body: typeof body === 'string' ? body : JSON.stringify(body),
      headers: { 'content-type': 'text/plain' },
      signal: AbortSignal.timeout(5000),
    });
    return { status: r.status, text: await r.text(), headers: r.headers };
  }
}

/**
 * A streaming receiver (xhr_streaming or eventsource) read as it arrives: frames()
 * yields SockJS frames, prelude is what came before the first frame.
 */
export class StreamReader {
  constructor(url, transport) {
    this.transport = transport;
    this.ctl = new AbortController();
    this.buf = '';
    this.prelude = null;
    this.frames = [];
    this.rawEvents = []; // eventsource: each event as sent
    this.waiters = new Set();
    this.ended = false;
    this.ready = fetch(`${url}/${transport}`, {
      method: transport === 'eventsource' ? 'GET' : 'POST',
      signal: this.ctl.signal,
    }).then((res) => {
      this.res = res;
      this._pump(res.body.getReader());
      return res;
    });
  }

  async _pump(reader) {
    const dec = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.buf += dec.decode(value, { stream: true });
        this._split();
      }
    } catch { /* aborted */ }
    this.ended = true;
    this._wake();
  }

  _split() {
    if (this.transport === 'xhr_streaming') {
      if (this.prelude === null) {
        const i = this.buf.indexOf('\n');
        if (i < 0) return;
        this.prelude = this.buf.slice(0, i + 1);
        this.buf = this.buf.slice(i + 1);
      }
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        this.frames.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 1);
      }
    } else {
      if (this.prelude === null) {
        if (this.buf.length < 2) return;
        this.prelude = this.buf.slice(0, 2);
        this.buf = this.buf.slice(2);
      }
      let i;
      while ((i = this.buf.indexOf('\r\n\r\n')) >= 0) {
        const ev = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 4);
        if (!ev.startsWith('data: ')) throw new Error(`not a data line: ${ev}`);
        this.rawEvents.push(ev);
        this.frames.push(decodeURI(ev.slice(6))); // as sockjs-client does
      }
    }
    this._wake();
  }

  _wake() { for (const f of [...this.waiters]) f(); }

  /** The next frame (parsed), waiting up to ms. */
  async next(ms = 5000) {
    const deadline = Date.now() + ms;
    while (!this.frames.length) {
      if (this.ended) throw new Error(`stream ended; prelude ${JSON.stringify(this.prelude)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame within ${ms} ms`);
      await new Promise((resolve) => {
        const f = () => { clearTimeout(t); this.waiters.delete(f); resolve(); };
        const t = setTimeout(f, left);
        this.waiters.add(f);
      });
    }
    return parseFrame(this.frames.shift());
  }

  /** Waits for the response to end (the server closed it). */
  async end(ms = 5000) {
    const deadline = Date.now() + ms;
    while (!this.ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.ended;
  }

  close() { this.ctl.abort(); }
}

/**
 * Connects @stomp/stompjs over sockjs-client to srv's /stomp with one transport forced
 * ('websocket', 'xhr-streaming', 'xhr-polling', 'eventsource'); resolves to an Sj (see
 * 40-stomp/stomp-helpers.mjs) once CONNECTED arrived.
 */
export function sockjsStomp(srv, transport, { connectHeaders = {}, timeoutMs = 8000 } = {}) {
  const url = `${base(srv)}`;
  const client = new Client({
    webSocketFactory: () => new SockJS(url, null, { transports: [transport] }),
    connectHeaders,
    heartbeatOutgoing: 0,
    heartbeatIncoming: 0,
    reconnectDelay: 0,
    connectionTimeout: 0,
  });
  const sj = new Sj(client);
  sj.transport = transport;
  client.debug = (s) => { sj.log.push(s); if (sj.log.length > 200) sj.log.splice(0, 100); };
  client.onUnhandledMessage = (m) => { sj.unhandled.push(m); sj._wake(); };
  client.onStompError = (f) => { sj.errors.push(f); sj._wake(); };
  client.onWebSocketClose = (evt) => { sj.closeEvt = { code: evt?.code, reason: String(evt?.reason ?? '') }; sj._wake(); };
  client.onWebSocketError = () => sj._wake();
  client.onConnect = (f) => { sj.connected = f; sj._wake(); };
  client.activate();
  return withTimeout((async () => {
    try {
      await sj._until(() => {
        if (sj.connected) return sj;
        if (sj.closeEvt) throw new Error(`SockJS (${transport}) closed (${sj.closeEvt.code} ${sj.closeEvt.reason}) before CONNECTED${sj._describe()}`);
        return undefined;
      }, `CONNECTED over SockJS ${transport}`, timeoutMs);
    } catch (e) {
      await sj.kill();
      throw e;
    }
    return sj;
  })(), timeoutMs + 1000, `SockJS ${transport} connect`);
}
