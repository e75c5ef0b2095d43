// Functional check of a peer server before it is benchmarked:
//   node bench/peers/check.mjs PORT
// /ws: a text, a binary, a 64 KiB and a 16 MiB message come back unchanged and
// of the same type; /broadcast: with 3 clients, a message from one reaches all 3.
// Exits 0 and prints "ok" on success, 1 with the reason otherwise.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, 'node-ws', 'package.json'));
const WebSocket = require('ws');

const port = Number(process.argv[2]);
const base = `ws://127.0.0.1:${port}`;
const timer = setTimeout(() => fail('timed out'), 30000);

function fail(why) {
  console.error(`check failed on port ${port}: ${why}`);
  process.exit(1);
}

function open(p) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(base + p, { perMessageDeflate: false, maxPayload: 32 * 1024 * 1024 });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function next(ws) {
  return new Promise((resolve, reject) => {
    ws.once('message', (data, isBinary) => resolve({ data, isBinary }));
    ws.once('close', (code) => reject(new Error(`closed ${code}`)));
  });
}

async function main() {
  const echo = await open('/ws');
  const cases = [
    [Buffer.from('hello herald'), false],
    [Buffer.from([0, 1, 2, 255, 254]), true],
    [Buffer.alloc(64 * 1024, 7), true],
    [Buffer.alloc(16 * 1024 * 1024, 'x'), false],
  ];
  for (const [payload, binary] of cases) {
    const got = next(echo);
    echo.send(payload, { binary });
    const { data, isBinary } = await got;
    if (isBinary !== binary) fail(`echo of ${payload.length} B: binary=${isBinary}, sent binary=${binary}`);
    if (!Buffer.from(data).equals(payload)) fail(`echo of ${payload.length} B differs`);
  }
  echo.close();

  const subs = await Promise.all([open('/broadcast'), open('/broadcast'), open('/broadcast')]);
  const got = subs.map(next);
  subs[1].send('to everyone');
  for (const { data, isBinary } of await Promise.all(got)) {
    if (isBinary || data.toString() !== 'to everyone') fail('broadcast message differs');
  }
  for (const s of subs) s.close();
  clearTimeout(timer);
  console.log('ok');
  setTimeout(() => process.exit(0), 100);
}

main().catch((e) => fail(e.message));
