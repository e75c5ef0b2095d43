// The demo page: a chat room and an order tracker on /pubsub through herald.js, a STOMP
// chat with @stomp/stompjs on /stomp, and a raw WebSocket console. Everything a user
// typed or a server sent is put in the page as text (textContent), never as markup.
//
// Query parameters, for trying things out (and for the browser tests):
//   ?transports=sse,poll   herald.js transports in order (default websocket,sse,poll)
//   ?retry=MS              reconnect back-off start (default 500)
import { Herald } from '/herald.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
const MAX_LOG = 200; // entries kept per log

function append(list, parts, cls) {
  const li = document.createElement('li');
  if (cls) li.className = cls;
  for (const [text, c] of parts) {
    const span = document.createElement('span');
    if (c) span.className = c;
    span.textContent = text;
    li.append(span);
  }
  list.append(li);
  while (list.children.length > MAX_LOG) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
  return li;
}

const clock = (ts) => {
  const d = ts ? new Date(ts) : new Date();
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString();
};

function remembered(input, key, fallback) {
  input.value = sessionStorage.getItem(key) || input.value || fallback;
  input.addEventListener('change', () => sessionStorage.setItem(key, input.value));
}

// ---------------------------------------------------------------- herald.js + badge

const retry = Number(params.get('retry')) || 500;
const apiKeyInput = $('api-key');
remembered(apiKeyInput, 'herald.apiKey', '');
const apiHeaders = () => (apiKeyInput.value ? { Authorization: `Bearer ${apiKeyInput.value}` } : {});

const options = {
  reconnectDelay: { min: retry, max: Math.max(15000, retry) },
  api: { url: '/api', get headers() { return apiHeaders(); } },
};
if (params.get('transports')) options.transports = params.get('transports').split(',');
const h = new Herald(`${wsBase}/pubsub`, options);
window.herald = h; // for the console (and the tests)

const badge = $('conn');
const badgeText = $('conn-text');
let retryAt = 0;
let countdown = null;

function showState(state, transport) {
  badge.dataset.state = state;
  clearInterval(countdown);
  countdown = null;
  if (state === 'connected') {
    const ms = h.latency === null ? '' : ` · ${Math.round(h.latency)} ms`;
    badgeText.textContent = `live · ${transport || h.transport}${ms}`;
  } else if (state === 'reconnecting') {
    const tick = () => {
      const s = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      badgeText.textContent = `reconnecting in ${s}s`;
    };
    tick();
    countdown = setInterval(tick, 250);
  } else {
    badgeText.textContent = state === 'connecting' ? 'connecting…' : state;
  }
}

h.on('state', ({ state, transport, retryInMs }) => {
  if (state === 'reconnecting') retryAt = Date.now() + (retryInMs || 0);
  showState(state, transport);
});
h.on('latency', () => {
  if (h.state === 'connected') showState('connected');
});
h.on('connected', () => h.ping().catch(() => {}));
setInterval(() => {
  if (h.state === 'connected') h.ping().catch(() => {});
}, 5000);

/** Earlier messages from the channel's history, then live ones with no gap or repeat. */
async function follow(channel, cb, limit, onNote) {
  let since;
  try {
    const past = await h.history(channel, { limit });
    for (const m of past.messages) cb({ ...m, channel });
    since = { offset: past.offset, epoch: past.epoch };
  } catch (e) {
    if (e.code !== 'not_found') onNote(`history unavailable: ${e.message}`);
  }
  return h.subscribe(channel, cb, since ? { since } : {});
}

// ---------------------------------------------------------------- chat room

const chatLog = $('chat-log');
const chatName = $('chat-name');
remembered(chatName, 'herald.name', `guest-${Math.floor(Math.random() * 9000 + 1000)}`);

function showChat(msg) {
  const d = msg.data && typeof msg.data === 'object' ? msg.data : { text: String(msg.data) };
  append(chatLog, [[`${clock(msg.timestamp)} `, 'meta'], [`${String(d.name ?? '?')}: `, 'who'],
    [String(d.text ?? ''), 'in']]);
}

follow('chat.lobby', showChat, 20, (t) => append(chatLog, [[t, 'sys']]));

$('chat-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = $('chat-text');
  if (!text.value.trim()) return;
  const data = { name: chatName.value.trim() || 'guest', text: text.value };
  text.value = '';
  try {
    await h.publish('chat.lobby', data);
  } catch (e) {
    append(chatLog, [[`not sent (${e.code || 'error'}): ${e.message}`, 'sys']]);
  }
});

// ---------------------------------------------------------------- order tracker

const orderLog = $('order-log');
const orderNote = $('order-note');
const statusButtons = [...document.querySelectorAll('button.status')];
let orderSub = null;
let orderChannel = null;

function note(text, error = false) {
  orderNote.textContent = text;
  orderNote.classList.toggle('error', error);
}

function showStatus(msg) {
  const d = msg.data && typeof msg.data === 'object' ? msg.data : { status: String(msg.data) };
  const li = append(orderLog, [[String(d.status ?? '?'), 'st'], [clock(d.at || msg.timestamp), 'meta'],
    [`#${msg.offset}`, 'meta']]);
  li.dataset.status = String(d.status ?? '');
}

$('order-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const id = $('order-id').value.trim();
  if (!/^[A-Za-z0-9_-]{1,40}$/.test(id)) {
    note('An order id is letters, digits, - or _.', true);
    return;
  }
  if (orderSub) orderSub.unsubscribe();
  orderLog.replaceChildren();
  delete orderLog.dataset.following;
  orderChannel = `orders.${id}`;
  note(`Following ${orderChannel}.`);
  const channel = orderChannel;
  const sub = await follow(channel, (m) => { if (orderChannel === channel) showStatus(m); }, 50,
    (t) => note(t, true));
  if (orderChannel !== channel) {
    sub.unsubscribe();
    return;
  }
  orderSub = sub;
  for (const b of statusButtons) b.disabled = false;
  try {
    await sub.ready;
    if (orderChannel === channel) orderLog.dataset.following = channel; // live from here
  } catch (e) {
    note(`Cannot follow ${channel}: ${e.message}`, true);
  }
});

for (const b of statusButtons) {
  b.addEventListener('click', async () => {
    if (!orderChannel) return;
    const body = { channel: orderChannel, data: { status: b.dataset.status, at: new Date().toISOString() } };
    try {
      const res = await fetch('/api/publish', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...apiHeaders() },
        body: JSON.stringify(body),
      });
      if (res.status === 401) note('The server needs its API key (--api-key): enter it above.', true);
      else if (!res.ok) note(`Not posted: HTTP ${res.status}.`, true);
      else note(`Posted "${b.dataset.status}" to ${orderChannel}.`);
    } catch (e) {
      note(`Not posted: ${e.message}`, true);
    }
  });
}

// ---------------------------------------------------------------- STOMP chat

const stompState = $('stomp-state');
const stompLog = $('stomp-log');
const stompName = $('stomp-name');
const stompSend = $('stomp-send');
stompName.value = chatName.value;
let stomp = null;

if (!window.StompJs) {
  stompState.textContent = 'STOMP library not installed (run npm ci in web/ and rebuild Herald).';
  stompState.classList.add('error');
} else {
  stomp = new window.StompJs.Client({
    brokerURL: `${wsBase}/stomp`,
    reconnectDelay: 2000,
    heartbeatIncoming: 10000,
    heartbeatOutgoing: 10000,
  });
  stomp.onConnect = () => {
    stompState.textContent = 'connected to /stomp';
    stompSend.disabled = false;
    stomp.subscribe('/topic/chat', (frame) => {
      let d;
      try {
        d = JSON.parse(frame.body);
      } catch {
        d = { text: frame.body };
      }
      append(stompLog, [[`${clock()} `, 'meta'], [`${String(d.name ?? '?')}: `, 'who'], [String(d.text ?? ''), 'in']]);
    });
  };
  stomp.onWebSocketClose = () => {
    stompState.textContent = 'disconnected, reconnecting…';
    stompSend.disabled = true;
  };
  stomp.onStompError = (frame) => {
    stompState.textContent = `STOMP error: ${frame.headers.message || ''}`;
  };
  stomp.activate();
}

$('stomp-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = $('stomp-text');
  if (!stomp || !stomp.connected || !text.value.trim()) return;
  stomp.publish({
    destination: '/topic/chat',
    body: JSON.stringify({ name: stompName.value.trim() || 'guest', text: text.value }),
    headers: { 'content-type': 'application/json' },
  });
  text.value = '';
});

// ---------------------------------------------------------------- raw console

const rawUrl = $('raw-url');
const rawLog = $('raw-log');
const rawConnect = $('raw-connect');
const rawDisconnect = $('raw-disconnect');
const rawSend = $('raw-send');
rawUrl.value = `${wsBase}/ws`;
let raw = null;

function rawLine(text, cls) {
  append(rawLog, [[`${clock()} `, 'meta'], [text, cls]]);
}

function rawButtons(open) {
  rawConnect.disabled = open;
  rawDisconnect.disabled = !open;
  rawSend.disabled = !open;
}

rawConnect.addEventListener('click', () => {
  let ws;
  try {
    ws = new WebSocket(rawUrl.value);
  } catch (e) {
    rawLine(`cannot connect: ${e.message}`, 'sys');
    return;
  }
  raw = ws;
  rawButtons(true);
  rawSend.disabled = true;
  rawLine(`connecting to ${rawUrl.value}`, 'sys');
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => {
    rawLine('open', 'sys');
    rawSend.disabled = false;
  };
  ws.onmessage = (ev) => rawLine(typeof ev.data === 'string' ? `< ${ev.data}` : `< [binary, ${ev.data.byteLength} bytes]`, 'in');
  ws.onerror = () => rawLine('error', 'sys');
  ws.onclose = (ev) => {
    rawLine(`closed: ${ev.code}${ev.reason ? ` ${ev.reason}` : ''}`, 'sys');
    if (raw === ws) {
      raw = null;
      rawButtons(false);
    }
  };
});

rawDisconnect.addEventListener('click', () => {
  if (raw) raw.close(1000, 'bye');
});

$('raw-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = $('raw-text');
  if (!raw || raw.readyState !== WebSocket.OPEN) return;
  raw.send(text.value);
  rawLine(`> ${text.value}`, 'out');
  text.value = '';
});

h.connect();
