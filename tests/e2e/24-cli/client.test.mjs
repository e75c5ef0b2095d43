// herald client: pipe and terminal use, exit codes, close and error lines.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startHerald, heraldBin, waitUntil, withTimeout } from '../helpers/herald.mjs';

/** Spawn `herald client ...args`, feed `input` (string, or null to keep stdin open). */
function spawnClient(args, input = null) {
  const proc = spawn(heraldBin(), ['client', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const r = { proc, stdout: '', stderr: '' };
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => { r.stdout += d; });
  proc.stderr.on('data', (d) => { r.stderr += d; });
  proc.stdin.on('error', () => { /* the client may exit before reading everything */ });
  r.exited = new Promise((resolve) => proc.once('close', (code, signal) => resolve({ code, signal })));
  if (input !== null) proc.stdin.end(input);
  return r;
}

async function runClient(args, input, timeoutMs = 10000) {
  const r = spawnClient(args, input);
  const t = setTimeout(() => { try { r.proc.kill('SIGKILL'); } catch { /* gone */ } }, timeoutMs);
  const { code, signal } = await r.exited;
  clearTimeout(t);
  return { code, signal, stdout: r.stdout, stderr: r.stderr };
}

// Runs the client under a pseudo-terminal (python3's pty module): waits for the prompt
// (if expected), types a line, waits for it to come back, then Ctrl-D.
const PTY_SCRIPT = String.raw`
import json, os, pty, select, sys, time
binary, url, line, want_prompt = sys.argv[1], sys.argv[2], sys.argv[3].encode(), sys.argv[4] == '1'
extra = sys.argv[5:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(binary, [binary, 'client'] + extra + [url])
buf = b''
def pump(pred, secs):
    global buf
    end = time.time() + secs
    while not pred() and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                d = os.read(fd, 4096)
            except OSError:
                return
            if not d:
                return
            buf += d
if want_prompt:
    pump(lambda: b'> ' in buf, 5)
else:
    time.sleep(0.5)
    pump(lambda: False, 0.2)
os.write(fd, line + b'\n')
pump(lambda: buf.count(line) >= 2, 5)   # the terminal's echo of what we typed + the message
os.write(fd, b'\x04')                    # Ctrl-D: end of input
status = None
end = time.time() + 5
while time.time() < end:
    p, st = os.waitpid(pid, os.WNOHANG)
    if p:
        status = os.WEXITSTATUS(st) if os.WIFEXITED(st) else -1
        break
    pump(lambda: False, 0.05)
if status is None:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
print(json.dumps({'out': buf.decode('utf8', 'replace'), 'status': status}))
`;

async function runPty(url, line, wantPrompt, extra = []) {
  const proc = spawn('/usr/bin/python3', ['-c', PTY_SCRIPT, heraldBin(), url, line, wantPrompt ? '1' : '0', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { err += d; });
  const code = await withTimeout(new Promise((resolve) => proc.once('close', resolve)), 20000, 'pty script');
  assert.equal(code, 0, `pty script failed: ${err}`);
  return JSON.parse(out);
}

describe('herald client', () => {
  let srv;
  before(async () => { srv = await startHerald(); });
  after(async () => { await srv.stop(); });

  test('echo hi | herald client URL prints hi and exits 0', async () => {
    const r = await runClient([`${srv.url}/ws`], 'hi\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hi\n');
    assert.match(r.stderr, /^closed: 1000 \(normal\) reason ""$/m);
  });

  test('several lines come back in order; a last line without newline is sent too', async () => {
    const lines = Array.from({ length: 50 }, (_, i) => `line ${i} ${'x'.repeat(i)}`);
    const r = await runClient([`${srv.url}/ws`], `${lines.join('\n')}\nlast`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.split('\n'), [...lines, 'last', '']);
  });

  test('--binary sends binary messages, printed as hex; --raw writes the bytes', async () => {
    const r = await runClient(['--binary', `${srv.url}/ws`], 'hi\nAB\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '6869\n4142\n');
    const raw = await runClient(['--binary', '--raw', `${srv.url}/ws`], 'hi\nAB\n');
    assert.equal(raw.code, 0, raw.stderr);
    assert.equal(raw.stdout, 'hiAB');
  });

  test('headers, protocol and origin options are accepted; a 404 is exit 1 with one error line', async () => {
    const ok = await runClient(['-H', 'X-Test: 1', '--protocol', 'chat', '--origin', `http://127.0.0.1:${srv.port}`,
      '--compress', `${srv.url}/ws`], 'zz\n');
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'zz\n');
    const foreign = await runClient(['--origin', 'http://evil.example', `${srv.url}/ws`], 'hi\n');
    assert.equal(foreign.code, 1, 'the origin reaches the server (same-host policy refuses this one)');
    const r = await runClient([`${srv.url}/no-such-endpoint`], 'hi\n');
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^error: .*404/);
  });

  test('connection refused is exit 1', async () => {
    const r = await runClient(['ws://127.0.0.1:1/ws'], 'hi\n');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: /m);
  });

  test('usage errors are exit 2', async () => {
    for (const args of [['not-a-url'], ['http://127.0.0.1/ws'], [], ['--bogus', `${srv.url}/ws`],
      ['-H', 'no colon', `${srv.url}/ws`], ['--ping', 'x', `${srv.url}/ws`], ['ws://[bad/ws']]) {
      const r = await runClient(args, '');
      assert.equal(r.code, 2, `${JSON.stringify(args)}: ${r.stderr}`);
      assert.match(r.stderr, /herald client: /);
    }
  });

  test('--help documents the exit codes', async () => {
    const r = await runClient(['--help'], '');
    assert.equal(r.code, 0);
    assert.match(r.stdout, /exit codes:/);
    assert.match(r.stdout, /3 +closed by the server/);
  });

  test('a terminal gets the "> " prompt and the typed line back; --no-prompt has none', async () => {
    const r = await runPty(`${srv.url}/ws`, 'hello-pty', true);
    assert.equal(r.status, 0, r.out);
    assert.ok(r.out.includes('> '), `no prompt in ${JSON.stringify(r.out)}`);
    assert.ok(r.out.split('hello-pty').length >= 3, `line not echoed back: ${JSON.stringify(r.out)}`);
    const np = await runPty(`${srv.url}/ws`, 'quiet-pty', false, ['--no-prompt']);
    assert.equal(np.status, 0, np.out);
    assert.ok(!np.out.includes('> '), `prompt with --no-prompt: ${JSON.stringify(np.out)}`);
    assert.ok(np.out.split('quiet-pty').length >= 3, np.out);
  });
});

describe('herald client and server shutdown', () => {
  test('the server going away (1001 at SIGTERM) prints the close line and exits 0', async () => {
    const srv = await startHerald();
    const c = spawnClient([`${srv.url}/ws`]);
    try {
      c.proc.stdin.write('before-shutdown\n');
      await waitUntil(() => c.stdout.includes('before-shutdown\n'), 5000, 'the echo');
      await srv.stop();
      const { code } = await withTimeout(c.exited, 5000, 'client exit');
      assert.match(c.stderr, /^closed: 1001 \(going away\) reason ".*"$/m);
      assert.equal(code, 0, c.stderr);
    } finally {
      try { c.proc.kill('SIGKILL'); } catch { /* gone */ }
      await srv.stop();
    }
  });
});
