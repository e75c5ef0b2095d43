// herald bench stomp: the pubsub fan-out over STOMP 1.2 on /stomp, on short runs. The
// RESULT line is the contract with bench/run.sh. No timed assertions: only counts.
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

describe('herald bench stomp', () => {
  let srv;
  // ro.*: client publishing refused, so a SEND there is answered with ERROR.
  before(async () => { srv = await startHerald(['--threads', '1', '--namespace', 'ro.*:publish=off']); });
  after(async () => { await srv.stop(); });

  for (const via of ['ws', 'api']) {
    test(`--via ${via} at a fixed rate: every message to every subscriber, no errors`, async () => {
      const r = await runHerald(['bench', 'stomp', `${srv.url}/stomp`, '-c', '8', '--rate', '100', '--via', via,
        '-d', '1', '--warmup', '0', '--quiet'], { timeoutMs: 30000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '', '--quiet prints nothing on stderr');
      const res = result(r.stdout);
      assert.equal(res.mode, 'stomp');
      assert.equal(res.subs, 8);
      assert.equal(res.via, via);
      assert.equal(res.rate, 100);
      assert.equal(res.size, 32);
      assert.ok(res.sent > 0, r.stdout);
      assert.ok(res.deliveries > 0, r.stdout);
      assert.equal(res.deliveries, res.sent * 8, r.stdout);
      assert.equal(res.lost, 0, r.stdout);
      assert.equal(res.out_of_order, 0, r.stdout);
      assert.equal(res.errors, 0, `${r.stdout}\n${r.stderr}`);
      for (const k of ['deliveries_per_s', 'p50_us', 'p99_us']) assert.equal(typeof res[k], 'number', k);
      assert.ok(res.p50_us <= res.p99_us, r.stdout);
    });
  }

  test('as fast as possible over two threads, with progress lines', async () => {
    const r = await runHerald(['bench', 'stomp', `${srv.url}/stomp`, '-c', '6', '--threads', '2',
      '--channel', 'bench.stomp', '-d', '1', '--warmup', '0.2'], { timeoutMs: 30000 });
    assert.equal(r.code, 0, r.stderr);
    const res = result(r.stdout);
    assert.equal(res.rate, 0);
    assert.ok(res.deliveries > 0, r.stdout);
    assert.equal(res.deliveries, res.sent * 6, r.stdout);
    assert.equal(res.out_of_order, 0, r.stdout);
    assert.equal(res.errors, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /^bench stomp .*subscribed=6 .*deliveries\/s=/m, 'a progress line on stderr');
  });

  test('an ERROR frame from the server stops the run: exit 1, its message on stderr', async () => {
    const r = await runHerald(['bench', 'stomp', `${srv.url}/stomp`, '-c', '3', '--channel', 'ro.x',
      '-d', '5', '--warmup', '0', '--quiet'], { timeoutMs: 30000 });
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /answered ERROR on connection \d+ \(publisher\): message:\S/);
    assert.ok(result(r.stdout).errors > 0, r.stdout);
  });

  test('usage errors are exit 2', async () => {
    for (const args of [['stomp', `${srv.url}/stomp`, '-s', '4'], ['stomp', `${srv.url}/stomp`, '--via', 'tcp'],
      ['stomp', `${srv.url}/stomp`, '--channel', 'a:b'], ['stomp', `${srv.url}/stomp`, '--publishers', '2']]) {
      const r = await runHerald(['bench', ...args]);
      assert.equal(r.code, 2, `${JSON.stringify(args)}: ${r.stderr}`);
      assert.match(r.stderr, /herald bench: /);
    }
    const h = await runHerald(['bench', '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /herald bench stomp URL/);
  });
});
