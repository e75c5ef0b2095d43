// A front end written for Spring's .withSockJS(): @stomp/stompjs over sockjs-client,
// against Herald unchanged, with each transport forced (websocket, xhr-streaming,
// xhr-polling, eventsource). Messages cross between SockJS and plain /stomp clients
// both ways, queues round-robin across transports, and a client that leaves takes its
// subscriptions with it. (The Node driver sends its xhr_send POST bodies chunked, as
// they are: Herald decodes chunked request bodies, docs/api.md.)
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, sleep } from '../helpers/herald.mjs';
import { stompjs, Clients, api, uid } from '../40-stomp/stomp-helpers.mjs';
import { sockjsStomp } from './sockjs-helpers.mjs';

const TRANSPORTS = ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource'];

async function subscribers(srv, channel) {
  const r = await api(srv, 'GET', '/api/channels');
  const c = (r.json?.channels ?? []).find((x) => x.channel === channel);
  return c ? c.subscribers : 0;
}

describe('@stomp/stompjs over sockjs-client', { timeout: 60000 }, () => {
  let srv;
  const clients = new Clients();
  before(async () => { srv = await startHerald(['--threads', '2']); });
  after(async () => {
    await clients.closeAll();
    if (srv) {
      assert.equal(await srv.stop(), 0, srv.stderr().slice(-3000));
      assert.doesNotMatch(srv.stderr(), /runtime error|Sanitizer/);
    }
  });

  for (const transport of TRANSPORTS) {
    test(`${transport}: topic messages both ways with a plain /stomp client, receipts, unicode and %`, async () => {
      const sj = await clients.add(sockjsStomp(srv, transport));
      assert.equal(sj.headers.version, '1.2');
      assert.equal(sj.client.webSocket.transport, transport); // what sockjs-client chose
      const plain = await clients.add(stompjs(srv));
      const ch = uid(`sj-${transport}-`);
      const subS = await sj.subscribe(`/topic/${ch}`);
      const subP = await plain.subscribe(`/topic/${ch}`);
      await plain.send(`/topic/${ch}`, 'from plain 100% %41 é\u2028😀');
      assert.equal((await subS.next()).body, 'from plain 100% %41 é\u2028😀');
      assert.equal((await subP.next()).body, 'from plain 100% %41 é\u2028😀');
      await sj.send(`/topic/${ch}`, 'from sockjs', { 'content-type': 'text/plain' });
      assert.equal((await subP.next()).body, 'from sockjs');
      assert.equal((await subS.next()).body, 'from sockjs');
      // The HTTP API reaches it as any channel subscriber.
      assert.equal((await api(srv, 'POST', '/api/publish', { channel: ch, data: { k: transport } })).status, 200);
      assert.deepEqual(JSON.parse((await subS.next()).body), { k: transport });
      await sj.disconnect();
      await plain.disconnect();
    });
  }

  test('a /queue is shared round-robin by consumers on different transports', async () => {
    const q = `/queue/${uid('jobs')}`;
    const a = await clients.add(sockjsStomp(srv, 'xhr-polling'));
    const b = await clients.add(sockjsStomp(srv, 'xhr-streaming'));
    const subA = await a.subscribe(q);
    const subB = await b.subscribe(q);
    const sender = await clients.add(stompjs(srv));
    for (let i = 0; i < 6; i++) await sender.send(q, `job${i}`);
    await sleep(300);
    const got = [...(await subA.quiet(200)), ...(await subB.quiet(200))].map((m) => m.body).sort();
    assert.deepEqual(got, ['job0', 'job1', 'job2', 'job3', 'job4', 'job5']);
    assert.ok(subA.messages.length > 0 && subB.messages.length > 0,
      `both consumers get work: ${subA.messages.length} / ${subB.messages.length}`);
  });

  test('a SockJS client that disconnects leaves no subscription behind', async () => {
    for (const transport of ['xhr-streaming', 'eventsource']) {
      const sj = await clients.add(sockjsStomp(srv, transport));
      const ch = uid('leave');
      await sj.subscribe(`/topic/${ch}`);
      assert.equal(await subscribers(srv, ch), 1);
      await sj.disconnect();
      const deadline = Date.now() + 4000;
      let n = 1;
      while (Date.now() < deadline && (n = await subscribers(srv, ch)) !== 0) await sleep(50);
      assert.equal(n, 0, `${transport}: subscription left behind`);
    }
  });
});
