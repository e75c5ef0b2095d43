// Interop with Python's `websockets` (Debian python3-websockets, run by /usr/bin/python3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startHerald } from '../helpers/herald.mjs';

const PY = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./py_client.py', import.meta.url));

function runPython(args, timeoutMs) {
  return new Promise((resolve, reject) => {
    const p = spawn(PY, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const t = setTimeout(() => { out += `\n[killed after ${timeoutMs} ms]`; p.kill('SIGKILL'); }, timeoutMs);
    p.once('error', (e) => { clearTimeout(t); reject(e); });
    p.once('close', (code, signal) => { clearTimeout(t); resolve({ code, signal, out }); });
  });
}

test('python websockets client: echo (deflate on/off, up to 1 MiB), ping, fragments, close code, 1009', { timeout: 90000 }, async () => {
  const srv = await startHerald(['--threads', '2']);
  const limited = await startHerald(['--max-message', '64K']);
  try {
    const r = await runPython([srv.url, limited.url], 75000);
    assert.equal(r.code, 0, `py_client.py failed (exit ${r.code}, signal ${r.signal}):\n${r.out}\n--- herald stderr ---\n${srv.stderr().slice(-2000)}`);
    assert.match(r.out, /ALL OK/);
  } finally {
    await srv.stop();
    await limited.stop();
  }
});
