// A throw-away redis-server for the cluster tests (tests/e2e/50-cluster).
//
//   startRedis({args})     -> spawn /usr/bin/redis-server on a free loopback port (no
//                             persistence; args: more redis-server arguments, e.g.
//                             ['--enable-debug-command', 'local']), wait until PING answers. Resolves to
//                             { port, url, proc, pid, stop(), kill(), restart(), cli() }.
//   redisCli(port, ...a)   -> run /usr/bin/redis-cli -p port ...a; resolves to its stdout
//                             (trimmed); rejects on a non-zero exit or an (error) reply.
//   haveRedis()            -> true when both binaries exist (tests skip with a reason if not).
//
// Only PIDs spawned here are ever signalled. Every wait is bounded.

import { freePort } from './herald.mjs';
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export const REDIS_SERVER = process.env.REDIS_SERVER || '/usr/bin/redis-server';
export const REDIS_CLI = process.env.REDIS_CLI || '/usr/bin/redis-cli';

export function haveRedis() {
  try {
    fs.accessSync(REDIS_SERVER, fs.constants.X_OK);
    fs.accessSync(REDIS_CLI, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

/** A port that was free a moment ago: bind port 0 on loopback, read it, release it. */
export { freePort };

/** redis-cli -p port args...: stdout trimmed. Rejects on failure or an "(error)"/ERR reply. */
export function redisCli(port, ...args) {
  return new Promise((resolve, reject) => {
    execFile(REDIS_CLI, ['-h', '127.0.0.1', '-p', String(port), ...args.map(String)],
      { timeout: 5000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`redis-cli ${args.join(' ')} failed: ${err.message} ${stderr}`));
          return;
        }
        const out = stdout.replace(/\r?\n$/, '');
        // redis-cli exits 0 on a server error reply when stdout is not a tty
        if (/^(\(error\) )?(ERR|WRONGTYPE|NOSCRIPT|NOAUTH|LOADING)\b/.test(out)) {
          reject(new Error(`redis-cli ${args.join(' ')}: ${out}`));
          return;
        }
        resolve(out);
      });
  });
}

/** PING over a raw socket (no redis-cli process per poll): true on +PONG. */
function ping(port, ms = 500) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok) => { clearTimeout(t); s.destroy(); resolve(ok); };
    const t = setTimeout(() => done(false), ms);
    s.once('error', () => done(false));
    s.on('data', (d) => { buf += d; if (buf.includes('\r\n')) done(buf.startsWith('+PONG')); });
    s.once('connect', () => s.write('PING\r\n'));
  });
}

function spawnRedis(port, args = []) {
  const proc = spawn(REDIS_SERVER, [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--protected-mode', 'no', '--daemonize', 'no', '--loglevel', 'warning', '--dir', '/tmp',
    ...args,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  proc.log = '';
  const keep = (d) => { proc.log += d; if (proc.log.length > 100000) proc.log = proc.log.slice(-50000); };
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  proc.exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => { live.delete(proc); resolve({ code, signal }); });
  });
  return proc;
}

async function waitReady(proc, port, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`redis-server on port ${port} exited early (${proc.exitCode ?? proc.signalCode}):\n${proc.log.slice(-2000)}`);
    }
    if (await ping(port)) return;
    if (Date.now() >= deadline) throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms:\n${proc.log.slice(-2000)}`);
    await sleep(25);
  }
}

async function waitGone(proc, ms) {
  if (proc.exitCode !== null || proc.signalCode !== null) return true;
  return Promise.race([proc.exited.then(() => true), sleep(ms).then(() => false)]);
}

/**
 * Start redis-server on a free loopback port. Tries a few ports in case another process
 * grabs the chosen one between the probe and the bind.
 */
export async function startRedis({ timeoutMs = 10000, args = [] } = {}) {
  let lastErr;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const proc = spawnRedis(port, args);
    try {
      await waitReady(proc, port, timeoutMs);
    } catch (e) {
      lastErr = e;
      try { proc.kill('SIGKILL'); } catch { /* gone */ }
      await waitGone(proc, 2000);
      continue;
    }
    return makeHandle(proc, port, timeoutMs, args);
  }
  throw lastErr;
}

function makeHandle(first, port, timeoutMs, args) {
  const r = {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    proc: first,
    get pid() { return r.proc.pid; },
    get alive() { return r.proc.exitCode === null && r.proc.signalCode === null; },
    log: () => r.proc.log,
    cli: (...args) => redisCli(port, ...args),
    /** SIGTERM, then SIGKILL after graceMs. */
    async stop({ graceMs = 3000 } = {}) {
      const p = r.proc;
      if (p.exitCode !== null || p.signalCode !== null) return;
      try { p.kill('SIGTERM'); } catch { /* gone */ }
      if (!(await waitGone(p, graceMs))) {
        try { p.kill('SIGKILL'); } catch { /* gone */ }
        await waitGone(p, 3000);
      }
    },
    /** SIGKILL by PID (a crash: no goodbye to clients). */
    async kill() {
      const p = r.proc;
      if (p.exitCode !== null || p.signalCode !== null) return;
      try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
      await waitGone(p, 3000);
    },
    /** Start again on the same port (empty: no persistence). Kills the old one first. */
    async restart() {
      await r.kill();
      const deadline = Date.now() + timeoutMs;
      let lastErr;
      // the port may sit in TIME_WAIT briefly; redis binds with SO_REUSEADDR, so retry
      // only for a real failure to start
      while (Date.now() < deadline) {
        const p = spawnRedis(port, args);
        try {
          await waitReady(p, port, Math.max(500, deadline - Date.now()));
          r.proc = p;
          return r;
        } catch (e) {
          lastErr = e;
          try { p.kill('SIGKILL'); } catch { /* gone */ }
          await waitGone(p, 2000);
          await sleep(100);
        }
      }
      throw lastErr || new Error(`redis-server did not restart on port ${port}`);
    },
  };
  return r;
}
