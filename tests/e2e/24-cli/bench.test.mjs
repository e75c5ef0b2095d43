// herald bench: each scenario on a short run; the RESULT line is the contract with
// bench/run.sh. No timed assertions: only counts and consistency.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, runHerald } from '../helpers/herald.mjs';

/** Parses the last stdout line "RESULT k=v ..." into an object (numbers where numeric). */
function result(stdout) {
  const lines = stdout.trimEnd().split('\n');
  const last = lines[lines.length - 1];
  assert.match(last, /^RESULT /, `last stdout line is not RESULT: ${JSON.stringify(stdout.slice(-500))}`);
  assert.equal(lines.filter((l) => l.startsWith('RESULT')).length, 1, 'exactly one RESULT line');
  const out = {};
  for (const kv of last.split(' ').slice(1)) {
    const eq = kv.indexOf('=');
    assert.ok(eq > 0, `not key=value: ${kv}`);
    const v = kv.slice(eq + 1);
    out[kv.slice(0, eq)] = /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
  }
  return out;
}

describe('herald bench', () => {
  let srv;
  before(async () => { srv = await startHerald(['--threads', '1']); });
  after(async () => { await srv.stop(); });

  test('echo: msgs > 0, errors=0, all keys present', async () => {
    const r = await runHerald(['bench', 'echo', `${srv.url}/ws`, '-c', '4', '-p', '2', '-d', '1', '--warmup', '0', '--quiet'],
      { timeoutMs: 20000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', '--quiet prints nothing on stderr');
    const res = result(r.stdout);
    assert.equal(res.mode, 'echo');
    assert.equal(res.conns, 4);
    assert.equal(res.inflight, 2);
    assert.equal(res.size, 32);
    assert.equal(res.duration_s, 1);
    assert.ok(res.msgs > 0, r.stdout);
    assert.ok(res.msgs_per_s > 0 && res.mb_per_s > 0, r.stdout);
    for (const k of ['p50_us', 'p99_us', 'p999_us']) assert.equal(typeof res[k], 'number', k);
    assert.ok(res.p50_us <= res.p99_us && res.p99_us <= res.p999_us, r.stdout);
    assert.equal(res.errors, 0);
  });

  test('echo with binary messages, two threads and progress lines', async () => {
    const r = await runHerald(['bench', 'echo', `${srv.url}/ws`, '-c', '6', '-s', '4096', '--binary', '--threads', '2',
      '-d', '1.5', '--warmup', '0.2'], { timeoutMs: 20000 });
    assert.equal(r.code, 0, r.stderr);
    const res = result(r.stdout);
    assert.ok(res.msgs > 0, r.stdout);
    assert.equal(res.size, 4096);
    assert.equal(res.errors, 0);
    assert.match(r.stderr, /^bench echo .*msgs\/s=/m, 'a progress line on stderr');
  });

  test('broadcast at a fixed rate: nothing lost, deliveries = sent x subscribers', async () => {
    const r = await runHerald(['bench', 'broadcast', `${srv.url}/broadcast`, '-c', '50', '--publishers', '2',
      '--rate', '200', '-d', '1', '--warmup', '0'], { timeoutMs: 30000 });
    assert.equal(r.code, 0, r.stderr);
    const res = result(r.stdout);
    assert.equal(res.mode, 'broadcast');
    assert.equal(res.subs, 50);
    assert.equal(res.publishers, 2);
    assert.equal(res.rate, 200);
    assert.ok(res.sent > 0, r.stdout);
    assert.equal(res.lost, 0, r.stdout);
    assert.equal(res.deliveries, res.sent * 50, r.stdout);
    assert.equal(res.out_of_order, 0);
    assert.equal(res.errors, 0);
  });

  test('broadcast as fast as possible over two threads', async () => {
    const r = await runHerald(['bench', 'broadcast', `${srv.url}/broadcast`, '-c', '20', '--publishers', '3',
      '--threads', '2', '-d', '1', '--warmup', '0', '--quiet'], { timeoutMs: 30000 });
    assert.equal(r.code, 0, r.stderr);
    const res = result(r.stdout);
    assert.ok(res.sent > 0, r.stdout);
    assert.equal(res.lost, 0, r.stdout);
    assert.equal(res.deliveries, res.sent * 20);
    assert.equal(res.errors, 0);
  });

  for (const via of ['ws', 'api']) {
    test(`pubsub --via ${via}: every message to every subscriber, offsets in order`, async () => {
      const r = await runHerald(['bench', 'pubsub', `${srv.url}/pubsub`, '-c', '20', '--rate', '100', '--via', via,
        '-d', '1', '--warmup', '0', '--quiet'], { timeoutMs: 30000 });
      assert.equal(r.code, 0, r.stderr);
      const res = result(r.stdout);
      assert.equal(res.mode, 'pubsub');
      assert.equal(res.subs, 20);
      assert.equal(res.via, via);
      assert.equal(res.rate, 100);
      assert.equal(res.size, 32);
      assert.ok(res.sent > 0, r.stdout);
      assert.equal(res.deliveries, res.sent * 20, r.stdout);
      assert.equal(res.lost, 0, r.stdout);
      assert.equal(res.out_of_order, 0, r.stdout);
      assert.equal(res.errors, 0, `${r.stdout}\n${r.stderr}`);
      for (const k of ['deliveries_per_s', 'p50_us', 'p99_us']) assert.equal(typeof res[k], 'number', k);
      assert.ok(res.p50_us <= res.p99_us, r.stdout);
    });
  }

  test('idle with --pid reports RSS per connection', async () => {
    const r = await runHerald(['bench', 'idle', `${srv.url}/ws`, '-c', '200', '--pid', String(srv.proc.pid), '--hold', '0.5'],
      { timeoutMs: 30000 });
    assert.equal(r.code, 0, r.stderr);
    const res = result(r.stdout);
    assert.equal(res.mode, 'idle');
    assert.equal(res.conns, 200);
    assert.equal(typeof res.rss_before_kb, 'number', r.stdout);
    assert.equal(typeof res.rss_after_kb, 'number', r.stdout);
    assert.equal(typeof res.rss_per_conn_bytes, 'number', r.stdout);
    assert.equal(res.errors, 0);
  });

  test('idle without --pid has "-" for the RSS fields', async () => {
    const r = await runHerald(['bench', 'idle', `${srv.url}/ws`, '-c', '10', '--hold', '0', '--quiet'], { timeoutMs: 20000 });
    assert.equal(r.code, 0, r.stderr);
    const res = result(r.stdout);
    assert.equal(res.rss_before_kb, '-');
    assert.equal(res.rss_per_conn_bytes, '-');
    assert.equal(res.errors, 0);
  });

  test('no connection possible: exit 1, errors counted', async () => {
    const r = await runHerald(['bench', 'echo', 'ws://127.0.0.1:1/ws', '-c', '3', '-d', '0.2', '--warmup', '0', '--quiet'],
      { timeoutMs: 20000 });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(result(r.stdout).errors, 3);
  });

  test('usage errors are exit 2; --help is exit 0', async () => {
    for (const args of [[], ['nonsense', `${srv.url}/ws`], ['echo'], ['echo', 'http://x/ws'],
      ['echo', `${srv.url}/ws`, '-c', '0'], ['echo', `${srv.url}/ws`, '-s', '4'], ['echo', `${srv.url}/ws`, '--bogus'],
      ['echo', `${srv.url}/ws`, '-d'], ['idle', `${srv.url}/ws`, '--rate', '5'],
      ['broadcast', `${srv.url}/broadcast`, '-c', '2', '--publishers', '3'],
      ['pubsub', `${srv.url}/pubsub`, '-s', '4'], ['pubsub', `${srv.url}/pubsub`, '--via', 'tcp'],
      ['pubsub', `${srv.url}/pubsub`, '--publishers', '2'], ['echo', `${srv.url}/ws`, '--via', 'api']]) {
      const r = await runHerald(['bench', ...args]);
      assert.equal(r.code, 2, `${JSON.stringify(args)}: ${r.stderr}`);
      assert.match(r.stderr, /herald bench: /);
    }
    const h = await runHerald(['bench', '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /herald bench echo URL/);
    assert.match(h.stdout, /herald bench pubsub URL/);
  });
});
