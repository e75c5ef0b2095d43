// herald pub / herald sub against a real server's /pubsub.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startHerald, heraldBin } from '../helpers/herald.mjs';

function run(args, ms = 8000) {
  return new Promise((resolve) => {
    const p = spawn(heraldBin(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), ms);
    p.on('exit', (code, signal) => { clearTimeout(t); resolve({ code, signal, out, err }); });
  });
}

test('pub prints offset and epoch; sub prints the data of each message in order', async () => {
  const srv = await startHerald(['--threads', '2']);
  try {
    const url = `ws://127.0.0.1:${srv.port}/pubsub`;
    const sub = run(['sub', 'orders.7', '--url', url, '--count', '3']);
    await new Promise((r) => setTimeout(r, 500));
    const p1 = await run(['pub', 'orders.7', '{"status":"paid"}', '--url', url]);
    assert.equal(p1.code, 0, p1.err);
    assert.match(p1.out, /^offset=1 epoch=[a-z0-9]+\n$/);
    assert.equal((await run(['pub', 'orders.7', 'shipped', '--url', url])).code, 0);
    assert.equal((await run(['pub', 'orders.7', '3', '--url', url])).code, 0);
    const s = await sub;
    assert.equal(s.code, 0, s.err);
    assert.equal(s.out, '{"status":"paid"}\n"shipped"\n3\n');
  } finally { await srv.stop(); }
});

test('sub --since/--epoch replays what was missed', async () => {
  const srv = await startHerald([]);
  try {
    const url = `ws://127.0.0.1:${srv.port}/pubsub`;
    const first = await run(['pub', 'a.b', '1', '--url', url]);
    const epoch = /epoch=(\S+)/.exec(first.out)[1];
    await run(['pub', 'a.b', '2', '--url', url]);
    await run(['pub', 'a.b', '3', '--url', url]);
    const s = await run(['sub', 'a.b', '--url', url, '--since', '1', '--epoch', epoch, '--count', '2']);
    assert.equal(s.code, 0, s.err);
    assert.equal(s.out, '2\n3\n');
  } finally { await srv.stop(); }
});

test('errors: server refusal -> 1 with the error code; bad usage -> 2; unreachable -> 1', async () => {
  const srv = await startHerald([]);
  try {
    const url = `ws://127.0.0.1:${srv.port}/pubsub`;
    const bad = await run(['pub', 'no..pe', 'x', '--url', url]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /bad_request/);
    assert.equal((await run(['pub', 'only-channel'])).code, 2);
    assert.equal((await run(['sub', 'c', '--since', '3'])).code, 2);
    assert.equal((await run(['sub', 'c', '--bogus'])).code, 2);
    const down = await run(['pub', 'c', 'x', '--url', 'ws://127.0.0.1:1/pubsub']);
    assert.equal(down.code, 1);
    assert.match(down.err, /refused/);
  } finally { await srv.stop(); }
});

test('pub --api publishes through the HTTP API (with --api-key), and reports HTTP errors', async () => {
  const srv = await startHerald(['--api-key', 'sekret']);
  try {
    const url = `ws://127.0.0.1:${srv.port}/pubsub`;
    const api = `http://127.0.0.1:${srv.port}/api/publish`;
    const sub = run(['sub', 'api.c', '--url', url, '--count', '1']);
    await new Promise((r) => setTimeout(r, 400));
    const ok = await run(['pub', 'api.c', '{"n":1}', '--api', api, '--api-key', 'sekret']);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /^offset=1 epoch=[a-z0-9]+\n$/);
    assert.equal((await sub).out, '{"n":1}\n');
    const denied = await run(['pub', 'api.c', '1', '--api', api]);
    assert.equal(denied.code, 1);
    assert.match(denied.err, /HTTP 401 unauthorized/);
    assert.equal((await run(['pub', 'api.c', '1', '--api', 'https://x/api/publish'])).code, 2);
  } finally { await srv.stop(); }
});
