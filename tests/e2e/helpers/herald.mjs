// Shared helpers for the herald end-to-end suite.
//
//   startHerald(args)  -> spawn `herald serve --listen 127.0.0.1:0 ...args`, wait for the
//                         "herald listening on 127.0.0.1:PORT" line.
//   runHerald(args)    -> run the binary to completion (CLI tests), bounded by a timeout.
//   rawConnect(port)   -> a raw TCP WebSocket client with its own frame encoder/decoder.
//
// Every wait in here is bounded: nothing may hang the suite.

import { spawn } from 'node:child_process';
import net from 'node:net';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

export const OP = Object.freeze({
  CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa,
});

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** A TCP port free on 127.0.0.1 right now (for a server that must listen on a known port). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function heraldBin() {
  const bin = process.env.HERALD_BIN;
  if (!bin) {
    throw new Error('HERALD_BIN is not set: point it at the herald binary, e.g. HERALD_BIN=build/src/herald');
  }
  return bin;
}

// ---------------------------------------------------------------------------------------
// Process management. We only ever signal PIDs that we spawned ourselves.

const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

function waitExit(proc, timeoutMs) {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    return Promise.resolve(true);
  }
  return new Promise((resolve) => {
    const t = setTimeout(() => { proc.off('exit', onExit); resolve(false); }, timeoutMs);
    function onExit() { clearTimeout(t); resolve(true); }
    proc.once('exit', onExit);
  });
}

/**
 * Start `herald serve --listen 127.0.0.1:0 ...args`.
 * Resolves to { port, url, proc, stderr(), stdout(), exited, stop() }.
 */
export function startHerald(args = [], { timeoutMs = 10000, env } = {}) {
  const bin = heraldBin();
  const proc = spawn(bin, ['serve', '--listen', '127.0.0.1:0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  live.add(proc);
  let stdoutText = '';
  let stderrText = '';
  proc.stderr.setEncoding('utf8');
  proc.stdout.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    // keep the diagnostics bounded
    stderrText += d;
    if (stderrText.length > 200000) stderrText = stderrText.slice(-100000);
  });
  const exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => { live.delete(proc); resolve({ code, signal }); });
  });

  return new Promise((resolve, reject) => {
    let done = false;
    const fail = (why) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try { proc.kill('SIGKILL'); } catch { /* gone */ }
      reject(new Error(`herald did not start (${why}).\nargs: ${JSON.stringify(args)}\n` +
        `stdout: ${JSON.stringify(stdoutText.slice(0, 2000))}\nstderr:\n${stderrText.slice(-4000)}`));
    };
    const timer = setTimeout(() => fail(`no listening line within ${timeoutMs} ms`), timeoutMs);
    proc.once('error', (e) => fail(`spawn error: ${e.message}`));
    proc.once('exit', (code, signal) => fail(`exited early with code ${code} signal ${signal}`));
    proc.stdout.on('data', (d) => {
      stdoutText += d;
      if (done) return;
      const m = /^herald listening on 127\.0\.0\.1:(\d+)\r?\n/m.exec(stdoutText);
      if (!m) return;
      done = true;
      clearTimeout(timer);
      const port = Number(m[1]);
      const server = {
        port,
        url: `ws://127.0.0.1:${port}`,
        proc,
        exited,
        stderr: () => stderrText,
        stdout: () => stdoutText,
        /** SIGTERM, wait up to graceMs, then SIGKILL. Resolves to the exit code (null if killed by a signal). */
        async stop({ signal = 'SIGTERM', graceMs = 5000 } = {}) {
          if (proc.exitCode === null && proc.signalCode === null) {
            try { proc.kill(signal); } catch { /* gone */ }
            if (!(await waitExit(proc, graceMs))) {
              try { proc.kill('SIGKILL'); } catch { /* gone */ }
              await waitExit(proc, 5000);
            }
          }
          const r = await exited;
          return r.code;
        },
      };
      resolve(server);
    });
  });
}

/** Run the binary with the given argv to completion. Resolves to {code, signal, stdout, stderr}. */
export function runHerald(args, { timeoutMs = 5000 } = {}) {
  const proc = spawn(heraldBin(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => { stdout += d; });
  proc.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    let timedOut = false;
    const t = setTimeout(() => { timedOut = true; try { proc.kill('SIGKILL'); } catch { /* gone */ } }, timeoutMs);
    proc.once('error', (e) => { clearTimeout(t); live.delete(proc); reject(e); });
    proc.once('close', (code, signal) => {
      clearTimeout(t);
      live.delete(proc);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

// ---------------------------------------------------------------------------------------
// Frame codec.

/** Encode one frame. rsv is a 3-bit number (4 = RSV1, 2 = RSV2, 1 = RSV3) or use rsv1/rsv2/rsv3. */
export function encodeFrame({
  fin = true, rsv = 0, rsv1 = false, rsv2 = false, rsv3 = false, opcode = OP.TEXT,
  payload = Buffer.alloc(0), mask = true, maskKey,
} = {}) {
  const data = toBuf(payload);
  const len = data.length;
  let bits = rsv & 7;
  if (rsv1) bits |= 4;
  if (rsv2) bits |= 2;
  if (rsv3) bits |= 1;
  let headLen = 2;
  if (len >= 126 && len <= 0xffff) headLen += 2;
  else if (len > 0xffff) headLen += 8;
  if (mask) headLen += 4;
  const out = Buffer.allocUnsafe(headLen + len);
  out[0] = (fin ? 0x80 : 0) | (bits << 4) | (opcode & 0x0f);
  let off = 2;
  if (len < 126) {
    out[1] = len;
  } else if (len <= 0xffff) {
    out[1] = 126;
    out.writeUInt16BE(len, 2);
    off = 4;
  } else {
    out[1] = 127;
    out.writeBigUInt64BE(BigInt(len), 2);
    off = 10;
  }
  if (mask) {
    out[1] |= 0x80;
    const key = maskKey ? toBuf(maskKey) : crypto.randomBytes(4);
    key.copy(out, off, 0, 4);
    off += 4;
    for (let i = 0; i < len; i++) out[off + i] = data[i] ^ key[i & 3];
  } else {
    data.copy(out, off);
  }
  return out;
}

/** Encode a frame header only, declaring `length` payload bytes (payload written separately). */
export function encodeHeader({ fin = true, rsv = 0, opcode = OP.TEXT, length, mask = true, maskKey }) {
  const key = maskKey ? toBuf(maskKey) : Buffer.from([0, 0, 0, 0]);
  const parts = [];
  const b0 = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  if (length < 126) parts.push(Buffer.from([b0, (mask ? 0x80 : 0) | length]));
  else if (length <= 0xffff) {
    const h = Buffer.alloc(4); h[0] = b0; h[1] = (mask ? 0x80 : 0) | 126; h.writeUInt16BE(length, 2); parts.push(h);
  } else {
    const h = Buffer.alloc(10); h[0] = b0; h[1] = (mask ? 0x80 : 0) | 127; h.writeBigUInt64BE(BigInt(length), 2); parts.push(h);
  }
  if (mask) parts.push(key);
  return Buffer.concat(parts);
}

export function closePayload(code, reason = '') {
  if (code === undefined || code === null) return Buffer.alloc(0);
  const r = toBuf(reason);
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

export function toBuf(x) {
  if (Buffer.isBuffer(x)) return x;
  if (typeof x === 'string') return Buffer.from(x, 'utf8');
  if (x instanceof Uint8Array) return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  if (Array.isArray(x)) return Buffer.from(x);
  throw new TypeError('payload must be a Buffer, string, Uint8Array or byte array');
}

function splitBuffer(buf, split) {
  if (!split) return [buf];
  const pieces = [];
  let off = 0;
  if (typeof split === 'number') {
    while (off < buf.length) { pieces.push(buf.subarray(off, off + split)); off += split; }
  } else {
    for (const n of split) {
      if (off >= buf.length) break;
      pieces.push(buf.subarray(off, off + n));
      off += n;
    }
    if (off < buf.length) pieces.push(buf.subarray(off));
  }
  return pieces;
}

// ---------------------------------------------------------------------------------------
// permessage-deflate helpers (RFC 7692) built on node:zlib.

const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** Stateless compression of one message: deflate, sync flush, strip the 00 00 ff ff tail. */
export function deflateMessage(data, { windowBits = 15 } = {}) {
  const opts = windowBits <= 8
    ? { windowBits: 9, strategy: zlib.constants.Z_HUFFMAN_ONLY } // no back-references at all
    : { windowBits };
  const out = zlib.deflateRawSync(toBuf(data), { ...opts, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return stripTail(out);
}

/** Stateless decompression of one message: append 00 00 ff ff and inflate. */
export function inflateMessage(data) {
  return zlib.inflateRawSync(Buffer.concat([toBuf(data), TAIL]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
}

function stripTail(out) {
  if (out.length >= 4 && out.subarray(out.length - 4).equals(TAIL)) return out.subarray(0, out.length - 4);
  return out;
}

/** A deflate or inflate context kept across messages (context takeover). */
export class StreamCodec {
  constructor(kind, { windowBits = 15 } = {}) {
    this.kind = kind;
    if (kind === 'deflate') {
      const opts = windowBits <= 8
        ? { windowBits: 9, strategy: zlib.constants.Z_HUFFMAN_ONLY }
        : { windowBits };
      this.z = zlib.createDeflateRaw(opts);
    } else {
      this.z = zlib.createInflateRaw({ windowBits: 15 });
    }
    this.out = [];
    this.err = null;
    this.z.on('data', (c) => this.out.push(c));
    this.z.on('error', (e) => { this.err = e; });
  }

  async process(data) {
    const input = this.kind === 'deflate' ? toBuf(data) : Buffer.concat([toBuf(data), TAIL]);
    this.z.write(input);
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`zlib ${this.kind} flush timed out`)), 10000);
      this.z.flush(zlib.constants.Z_SYNC_FLUSH, () => { clearTimeout(t); resolve(); });
    });
    if (this.err) throw this.err;
    const out = Buffer.concat(this.out);
    this.out = [];
    return this.kind === 'deflate' ? stripTail(out) : out;
  }

  close() { this.z.close(); }
}

/** Parse a Sec-WebSocket-Extensions value into [{name, params: [[k, v|true], ...]}]. */
export function parseExtensions(value) {
  if (value === undefined || value === null) return [];
  const out = [];
  for (const ext of splitOutsideQuotes(value, ',')) {
    const parts = splitOutsideQuotes(ext, ';').map((s) => s.trim());
    if (!parts[0]) continue;
    const params = [];
    for (const p of parts.slice(1)) {
      if (!p) continue;
      const eq = p.indexOf('=');
      if (eq < 0) params.push([p.toLowerCase(), true]);
      else {
        let v = p.slice(eq + 1).trim();
        if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1);
        params.push([p.slice(0, eq).trim().toLowerCase(), v]);
      }
    }
    out.push({ name: parts[0].toLowerCase(), params });
  }
  return out;
}

function splitOutsideQuotes(s, sep) {
  const out = [];
  let cur = '';
  let q = false;
  for (const ch of s) {
    if (ch === '"') q = !q;
    if (ch === sep && !q) { out.push(cur); cur = ''; } else cur += ch;
  }
  out.push(cur);
  return out;
}

// ---------------------------------------------------------------------------------------
// Raw client.

export function acceptFor(key) {
  return crypto.createHash('sha1').update(key + WS_GUID).digest('base64');
}

/** Parse an HTTP response head. Returns {status, reason, version, headers: {lower: [values]}, get(name)}. */
export function parseHttpHead(text) {
  const lines = text.split('\r\n');
  const m = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]);
  if (!m) throw new Error(`bad HTTP status line: ${JSON.stringify(lines[0])}`);
  const headers = {};
  for (const line of lines.slice(1)) {
    if (!line) continue;
    const c = line.indexOf(':');
    if (c <= 0) throw new Error(`bad HTTP header line: ${JSON.stringify(line)}`);
    const k = line.slice(0, c).trim().toLowerCase();
    (headers[k] ||= []).push(line.slice(c + 1).trim());
  }
  return {
    version: m[1],
    status: Number(m[2]),
    reason: m[3] || '',
    headers,
    raw: text,
    get(name) { const v = headers[name.toLowerCase()]; return v ? v.join(', ') : undefined; },
  };
}

export class RawClient {
  constructor(socket, port) {
    this.socket = socket;
    this.port = port;
    this.chunks = [];
    this.avail = 0;
    this.ended = false; // peer FIN or socket closed
    this.closed = false; // socket fully closed
    this.error = null; // e.g. ECONNRESET
    this.waiters = new Set();
    socket.setNoDelay(true);
    socket.on('data', (d) => { this.chunks.push(d); this.avail += d.length; this._wake(); });
    socket.on('end', () => { this.ended = true; this._wake(); });
    socket.on('error', (e) => { this.error = e; this._wake(); });
    socket.on('close', () => { this.ended = true; this.closed = true; this._wake(); });
  }

  _wake() {
    const w = [...this.waiters];
    this.waiters.clear();
    for (const f of w) f();
  }

  /** Wait until something happens on the socket, or reject after `deadline` (ms timestamp). */
  _waitEvent(deadline, what) {
    const ms = deadline - Date.now();
    if (ms <= 0) return Promise.reject(new Error(`timed out waiting for ${what}`));
    return new Promise((resolve, reject) => {
      const f = () => { clearTimeout(t); resolve(); };
      const t = setTimeout(() => { this.waiters.delete(f); reject(new Error(`timed out waiting for ${what}`)); }, ms);
      this.waiters.add(f);
    });
  }

  /** Peek the first n buffered bytes (n <= avail) as one Buffer. */
  _peek(n) {
    if (this.chunks.length && this.chunks[0].length >= n) return this.chunks[0].subarray(0, n);
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all.subarray(0, n);
  }

  _take(n) {
    const b = Buffer.from(this._peek(n)); // copy out
    let left = n;
    while (left > 0) {
      const c = this.chunks[0];
      if (c.length <= left) { this.chunks.shift(); left -= c.length; } else { this.chunks[0] = c.subarray(left); left = 0; }
    }
    this.avail -= n;
    return b;
  }

  /** True when the peer closed its side (FIN/RST) or the socket is gone. */
  get tcpClosed() { return this.ended || this.closed; }

  async write(buf) {
    if (this.socket.destroyed || this.socket.writableEnded) return false;
    return new Promise((resolve) => {
      try {
        this.socket.write(buf, (err) => resolve(!err));
      } catch {
        resolve(false);
      }
    });
  }

  /** Write bytes, optionally split into several TCP writes with delays. */
  async sendRaw(data, { split, delay = 0, truncate } = {}) {
    let buf = toBuf(data);
    if (truncate !== undefined) buf = buf.subarray(0, truncate);
    const pieces = splitBuffer(buf, split);
    for (let i = 0; i < pieces.length; i++) {
      if (i > 0 && delay) await sleep(delay);
      // do not await the write callback for the last piece: the server may legitimately
      // stop reading (e.g. fail fast) and we must still be able to read its close frame
      if (i === pieces.length - 1) this.write(pieces[i]);
      else await this.write(pieces[i]);
    }
    return buf;
  }

  /** Encode and send a frame. Options of encodeFrame plus split/delay/truncate. */
  sendFrame(opts = {}) {
    const { split, delay, truncate, ...frame } = opts;
    return this.sendRaw(encodeFrame(frame), { split, delay, truncate });
  }

  sendFrames(frames) {
    return this.sendRaw(Buffer.concat(frames.map((f) => encodeFrame(f))));
  }

  sendText(text, opts = {}) { return this.sendFrame({ opcode: OP.TEXT, payload: text, ...opts }); }
  sendBinary(data, opts = {}) { return this.sendFrame({ opcode: OP.BINARY, payload: data, ...opts }); }
  sendClose(code, reason, opts = {}) { return this.sendFrame({ opcode: OP.CLOSE, payload: closePayload(code, reason), ...opts }); }

  /** Read the HTTP response head (and a Content-Length body if any). */
  async readHttpResponse({ timeoutMs = 5000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.avail > 0) {
        const all = this._peek(this.avail);
        const end = all.indexOf('\r\n\r\n');
        if (end >= 0) {
          const head = this._take(end + 4).toString('latin1').slice(0, -4);
          const res = parseHttpHead(head);
          const cl = res.get('content-length');
          if (cl !== undefined && res.status !== 101) {
            const n = Number(cl);
            while (this.avail < n && !this.tcpClosed) await this._waitEvent(deadline, 'HTTP body');
            res.body = this._take(Math.min(n, this.avail)).toString('utf8');
          }
          return res;
        }
      }
      if (this.tcpClosed) {
        throw new Error(`connection closed before a complete HTTP response head (got ${JSON.stringify(this._peek(this.avail).toString('latin1'))})`);
      }
      await this._waitEvent(deadline, 'HTTP response head');
    }
  }

  /**
   * Send a valid upgrade request (plus header overrides: a value of null removes that header)
   * and read the 101. Throws unless the response is a correct 101.
   */
  async handshake(extraHeaders = {}, { path = '/ws', timeoutMs = 5000, trailer } = {}) {
    const key = crypto.randomBytes(16).toString('base64');
    const req = buildRequest({ path, port: this.port, key, headers: extraHeaders });
    await this.sendRaw(trailer ? Buffer.concat([Buffer.from(req, 'latin1'), trailer]) : Buffer.from(req, 'latin1'));
    const res = await this.readHttpResponse({ timeoutMs });
    if (res.status !== 101) {
      throw new Error(`expected 101, got ${res.status}:\n${res.raw}`);
    }
    const accept = res.get('sec-websocket-accept');
    if (accept !== acceptFor(key)) {
      throw new Error(`bad Sec-WebSocket-Accept ${accept} for key ${key}`);
    }
    if ((res.get('upgrade') || '').toLowerCase() !== 'websocket') throw new Error(`bad Upgrade header in 101:\n${res.raw}`);
    if (!/(^|,)\s*upgrade\s*(,|$)/i.test(res.get('connection') || '')) throw new Error(`bad Connection header in 101:\n${res.raw}`);
    this.response = res;
    return res;
  }

  /**
   * Read one frame. Resolves to
   * {fin, rsv, rsv1, rsv2, rsv3, opcode, masked, payload, code?, reason?}
   * or null if the TCP connection ended before a complete frame.
   */
  async readFrame({ timeoutMs = 5000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this._tryParse();
      if (f) return f;
      if (this.tcpClosed) return null;
      await this._waitEvent(deadline, 'a frame');
    }
  }

  _tryParse() {
    if (this.avail < 2) return null;
    const h = this._peek(Math.min(this.avail, 14));
    const b0 = h[0];
    const b1 = h[1];
    const masked = (b1 & 0x80) !== 0;
    let len = b1 & 0x7f;
    let off = 2;
    if (len === 126) {
      if (h.length < 4) return null;
      len = h.readUInt16BE(2);
      off = 4;
    } else if (len === 127) {
      if (h.length < 10) return null;
      const big = h.readBigUInt64BE(2);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('server sent a frame with an absurd 64-bit length');
      len = Number(big);
      off = 10;
    }
    let key = null;
    if (masked) {
      if (h.length < off + 4) return null;
      key = Buffer.from(h.subarray(off, off + 4));
      off += 4;
    }
    if (this.avail < off + len) return null;
    const raw = this._take(off + len);
    const payload = raw.subarray(off);
    if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3];
    const rsv = (b0 >> 4) & 7;
    const f = {
      fin: (b0 & 0x80) !== 0,
      rsv,
      rsv1: (rsv & 4) !== 0,
      rsv2: (rsv & 2) !== 0,
      rsv3: (rsv & 1) !== 0,
      opcode: b0 & 0x0f,
      masked,
      payload,
    };
    if (f.opcode === OP.CLOSE) {
      f.code = payload.length >= 2 ? payload.readUInt16BE(0) : null;
      f.reason = payload.length > 2 ? payload.subarray(2).toString('utf8') : '';
    }
    return f;
  }

  /**
   * Read frames until a close frame (or TCP end). Resolves to
   * {frames: [non-close frames, in order], close: closeFrame|null, tcpClosed: bool}.
   * With reply=true a close frame is sent back (echoing the code) as a well-behaved client does.
   * Also waits (bounded by tcpWaitMs) for the server to close TCP after the close frame.
   */
  async readUntilClose({ timeoutMs = 5000, reply = false, tcpWaitMs = 3000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    const frames = [];
    let close = null;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a close frame (got ${describeFrames(frames)})`);
      const f = await this.readFrame({ timeoutMs: left });
      if (!f) break;
      if (f.opcode === OP.CLOSE) { close = f; break; }
      frames.push(f);
    }
    if (close && reply) {
      const code = close.code;
      this.sendClose(code && code !== 1005 && code !== 1006 && code !== 1015 ? code : undefined).catch(() => {});
    }
    const tcpClosed = await this.waitForTcpClose(tcpWaitMs);
    return { frames, close, tcpClosed };
  }

  /** Resolves true once the peer has closed the TCP connection, false after timeoutMs. Discards data. */
  async waitForTcpClose(timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.tcpClosed) {
      try { await this._waitEvent(deadline, 'TCP close'); } catch { return false; }
    }
    return true;
  }

  /**
   * Read one complete data message (reassembling continuation frames). Control frames met
   * on the way are pushed into `controls` (pings are not answered). Throws on close/TCP end.
   */
  async readMessage({ timeoutMs = 5000, controls = [] } = {}) {
    const deadline = Date.now() + timeoutMs;
    const parts = [];
    let first = null;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a message');
      const f = await this.readFrame({ timeoutMs: left });
      if (!f) throw new Error(`connection closed while waiting for a message${this.error ? ` (${this.error.code})` : ''}`);
      if (f.opcode >= 8) {
        if (f.opcode === OP.CLOSE) {
          const e = new Error(`got close frame (code ${f.code}, reason ${JSON.stringify(f.reason)}) while waiting for a message`);
          e.closeFrame = f;
          throw e;
        }
        controls.push(f);
        continue;
      }
      if (!first) {
        if (f.opcode === OP.CONT) throw new Error('server sent a continuation frame without a message start');
        first = f;
      } else if (f.opcode !== OP.CONT) {
        throw new Error(`server sent opcode ${f.opcode} inside a fragmented message`);
      }
      parts.push(f.payload);
      if (f.fin) {
        return { opcode: first.opcode, rsv1: first.rsv1, payload: Buffer.concat(parts), frames: parts.length };
      }
    }
  }

  end() { try { this.socket.end(); } catch { /* gone */ } }

  destroy() { try { this.socket.destroy(); } catch { /* gone */ } }
}

function describeFrames(frames) {
  if (!frames.length) return 'no frames';
  return frames.map((f) => `op${f.opcode}/${f.payload.length}B`).join(', ');
}

/** Build an upgrade request. headers: overrides (case-insensitive); null removes a default. */
export function buildRequest({
  method = 'GET', path = '/ws', version = 'HTTP/1.1', port, key, headers = {},
} = {}) {
  const defaults = [
    ['Host', `127.0.0.1:${port}`],
    ['Upgrade', 'websocket'],
    ['Connection', 'Upgrade'],
    ['Sec-WebSocket-Key', key || crypto.randomBytes(16).toString('base64')],
    ['Sec-WebSocket-Version', '13'],
  ];
  const lower = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), [k, v]]));
  const lines = [`${method} ${path} ${version}`];
  for (const [k, v] of defaults) {
    const o = lower.get(k.toLowerCase());
    if (o) {
      lower.delete(k.toLowerCase());
      if (o[1] === null) continue;
      for (const val of [].concat(o[1])) lines.push(`${k}: ${val}`);
    } else {
      lines.push(`${k}: ${v}`);
    }
  }
  for (const [, [k, v]] of lower) {
    if (v === null) continue;
    for (const val of [].concat(v)) lines.push(`${k}: ${val}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** Open a TCP connection to 127.0.0.1:port. Resolves to a RawClient. */
export function rawConnect(port, { timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const t = setTimeout(() => { socket.destroy(); reject(new Error(`connect to port ${port} timed out`)); }, timeoutMs);
    socket.once('error', (e) => { clearTimeout(t); reject(e); });
    socket.once('connect', () => {
      clearTimeout(t);
      socket.removeAllListeners('error');
      resolve(new RawClient(socket, port));
    });
  });
}

/** Connect and complete the WebSocket handshake on `path` (default /ws). */
export async function rawWs(port, { path = '/ws', headers = {} } = {}) {
  const c = await rawConnect(port);
  try {
    await c.handshake(headers, { path });
  } catch (e) {
    c.destroy();
    throw e;
  }
  return c;
}

/** Run fn with a bound: reject if it does not settle within ms. */
export function withTimeout(promise, ms, what = 'operation') {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(t));
}

/** Poll pred() every stepMs until it is true; reject after ms. The poll always stops. */
export async function waitUntil(pred, ms, what = 'condition', stepMs = 20) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

/** Deterministic pseudo-random bytes (fast, reproducible). */
export function patternBytes(n, seed = 1) {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** ASCII text of length n (printable, pseudo-random). */
export function patternText(n, seed = 7) {
  const b = patternBytes(n, seed);
  for (let i = 0; i < n; i++) b[i] = 0x21 + (b[i] % 94);
  return b.toString('latin1');
}
