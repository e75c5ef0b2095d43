// Peer server for the Herald benchmark matrix, on the npm package `ws`.
//   /ws         echo: every message back, text as text, binary as binary
//   /broadcast  every message to every client of /broadcast, sender included
// Usage: node server.mjs PORT   (Node is single-threaded: one core)
import http from 'node:http';
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] || 9003);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`usage: node server.mjs PORT`);
  process.exit(2);
}

const MAX_MESSAGE = 16 * 1024 * 1024;
const opts = { noServer: true, perMessageDeflate: false, maxPayload: MAX_MESSAGE };
const echoServer = new WebSocketServer(opts);
const castServer = new WebSocketServer({ ...opts, clientTracking: true });

echoServer.on('connection', (sock) => {
  sock.on('message', (data, isBinary) => {
    sock.send(data, { binary: isBinary });
  });
  sock.on('error', () => {});
});

castServer.on('connection', (sock) => {
  sock.on('message', (data, isBinary) => {
    // One frame for all subscribers: the same Buffer is handed to each send.
    for (const peer of castServer.clients) {
      if (peer.readyState === 1) peer.send(data, { binary: isBinary });
    }
  });
  sock.on('error', () => {});
});

const httpServer = http.createServer((req, res) => {
  res.writeHead(426, { 'content-type': 'text/plain' });
  res.end('WebSocket only\n');
});
httpServer.on('upgrade', (req, socket, head) => {
  const path = (req.url || '').split('?')[0];
  const target = path === '/ws' ? echoServer : path === '/broadcast' ? castServer : null;
  if (!target) {
    socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
    return;
  }
  socket.setNoDelay(true);
  target.handleUpgrade(req, socket, head, (ws) => target.emit('connection', ws, req));
});
httpServer.maxConnections = 100000;
httpServer.listen({ host: '127.0.0.1', port, backlog: 4096 }, () => {
  console.log(`listening on 127.0.0.1:${port}`);
});

const stop = () => {
  for (const s of [echoServer, castServer]) for (const c of s.clients) c.terminate();
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
