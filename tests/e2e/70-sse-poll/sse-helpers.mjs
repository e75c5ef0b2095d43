// Helpers of the /sse and /poll tests: a JWT signer, one-shot HTTP requests and a small
// SSE reader over node:http (Node has no EventSource) so that Last-Event-ID, pausing and
// raw framing are under the test's control.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { withTimeout } from '../helpers/herald.mjs';

export const SECRET = 'e2e-secret-0123456789-abcdefghij';
const b64u = (b) => Buffer.from(b).toString('base64url');
export function jwt(claims) {
  const input = `${b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64u(JSON.stringify(claims))}`;
  return `${input}.${b64u(crypto.createHmac('sha256', SECRET).update(input).digest())}`;
}

export const agent = new http.Agent({ keepAlive: false });

/** Stops srv and checks that no sanitizer spoke (the suite also runs under ASan+UBSan). */
export async function stopClean(srv) {
  if (!srv) return undefined;
  const code = await srv.stop();
  assert.doesNotMatch(srv.stderr(), /runtime error|AddressSanitizer|LeakSanitizer/, srv.stderr().slice(-4000));
  return code;
}

const parseJson = (text) => { try { return JSON.parse(text); } catch { return undefined; } };

/** One HTTP request; resolves {status, headers, body, json}. body: a string as is, else
 * JSON; type: its Content-Type (none unless given). */
export function request(port, method, path, { body, headers = {}, type, ms = 70000 } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body));
    const req = http.request({ host: '127.0.0.1', port, method, path, agent,
      headers: { ...headers, ...(data !== undefined ? { 'content-length': Buffer.byteLength(data), ...(type ? { 'content-type': type } : {}) } : {}) } },
    (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text, json: parseJson(text) }));
    });
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  }), ms, `${method} ${path}`);
}

/** An SSE stream: {status, headers, events ({event, id, data, json}), comments, raw, retry,
 * lastId, ended, clean, waitFor(pred), messages(), close()}; clean: the body ended with
 * its last chunk (not a dropped connection). For a status other than 200, also {body,
 * json} once the body is in. */
export function sse(port, query, { headers = {} } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: `/sse?${query}`, agent,
      headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      const s = { res, req, status: res.statusCode, headers: res.headers, events: [], comments: [],
        raw: '', ended: false, clean: false, lastId: null };
      let buf = '';
      let cur = { event: 'message', data: [], id: undefined };
      const waiters = [];
      const wake = () => { for (const w of waiters.splice(0)) w(); };
      res.setEncoding('utf8');
      res.on('data', (d) => {
        s.raw += d;
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line === '') {
            if (cur.data.length) {
              const data = cur.data.join('\n');
              if (cur.id !== undefined) s.lastId = cur.id;
              s.events.push({ event: cur.event, id: cur.id, data, json: parseJson(data) });
            }
            cur = { event: 'message', data: [], id: undefined };
          } else if (line.startsWith(':')) {
            s.comments.push(line);
          } else {
            const c = line.indexOf(':');
            const field = c < 0 ? line : line.slice(0, c);
            const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
            if (field === 'data') cur.data.push(value);
            else if (field === 'event') cur.event = value;
            else if (field === 'id') cur.id = value;
            else if (field === 'retry') s.retry = Number(value);
          }
        }
        wake();
      });
      const ended = (clean) => { if (clean) s.clean = true; s.ended = true; wake(); };
      res.on('end', () => ended(true));
      res.on('aborted', () => ended(false));
      res.on('error', () => ended(false));
      res.on('close', () => ended(false));
      s.waitFor = async (pred, ms = 5000, what = 'event') => {
        const deadline = Date.now() + ms;
        for (;;) {
          const e = s.events.find(pred);
          if (e) return e;
          if (s.ended) throw new Error(`stream ended waiting for ${what}; raw: ${s.raw.slice(-500)}`);
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; raw: ${s.raw.slice(-500)}`);
          await new Promise((r) => { waiters.push(r); setTimeout(r, 50); });
        }
      };
      s.messages = () => s.events.filter((e) => e.event === 'message').map((e) => e.json);
      s.close = () => { req.destroy(); };
      if (res.statusCode !== 200) {
        res.on('end', () => resolve({ ...s, body: s.raw, json: parseJson(s.raw) }));
        return;
      }
      resolve(s);
    });
    req.on('error', reject);
  }), 10000, `GET /sse?${query}`);
}
