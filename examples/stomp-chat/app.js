'use strict';

// Where the STOMP broker is. This is the only line that differs between Spring and Herald:
//   Spring, registry.addEndpoint("/ws"):  'ws://localhost:8080/ws'
//   Herald:                               'ws://localhost:8080/stomp'
const brokerURL = 'ws://localhost:8080/stomp';

// For tests and demos the page also takes ?broker=ws://host:port/path.
function chooseBroker() {
  const fromQuery = new URLSearchParams(window.location.search).get('broker');
  if (fromQuery && /^wss?:\/\//i.test(fromQuery)) {
    return fromQuery;
  }
  return brokerURL;
}

const joinPage = document.getElementById('join-page');
const joinForm = document.getElementById('join-form');
const usernameInput = document.getElementById('username');
const chatPage = document.getElementById('chat-page');
const messageForm = document.getElementById('message-form');
const messageInput = document.getElementById('message');
const sendButton = document.getElementById('send');
const leaveButton = document.getElementById('leave');
const messageList = document.getElementById('messages');
const statusLine = document.getElementById('status');

let stompClient = null;
let username = null;
let announced = false;

function setStatus(state, text) {
  statusLine.dataset.state = state;
  statusLine.textContent = text;
  sendButton.disabled = state !== 'connected';
}

function connect(event) {
  event.preventDefault();
  const name = usernameInput.value.trim();
  if (!name) {
    usernameInput.focus();
    return;
  }
  if (typeof StompJs === 'undefined') {
    setStatus('error', 'Could not load stomp.js');
    return;
  }
  username = name;
  announced = false;
  joinPage.hidden = true;
  chatPage.hidden = false;
  messageInput.focus();

  const client = new StompJs.Client({
    brokerURL: chooseBroker(),
    reconnectDelay: 5000,
    heartbeatIncoming: 10000,
    heartbeatOutgoing: 10000,
  });
  // Callbacks of a client we already left behind (after Leave) change nothing.
  const current = (fn) => (...args) => {
    if (client === stompClient) {
      fn(...args);
    }
  };
  client.beforeConnect = current(() => setStatus('connecting', 'Connecting…'));
  client.onConnect = current(onConnected);
  client.onStompError = current(onStompError);
  client.onWebSocketError = current(() => setStatus('error', 'Cannot reach the chat server.'));
  client.onWebSocketClose = current(() => {
    // Keep the reason of an error on screen while stomp.js tries again.
    const before = statusLine.dataset.state === 'error' ? `${statusLine.textContent} ` : '';
    setStatus('reconnecting', `${before}Reconnecting…`);
  });
  stompClient = client;
  client.activate();
}

function onConnected() {
  setStatus('connected', `Connected as ${username}`);
  stompClient.subscribe('/topic/public', onMessageReceived);
  // Tell everybody we are here, once per visit (not again after a reconnect).
  if (!announced) {
    announced = true;
    stompClient.publish({
      destination: '/app/chat.addUser',
      body: JSON.stringify({ sender: username, type: 'JOIN' }),
    });
  }
}

function onStompError(frame) {
  const reason = frame.headers.message || 'unknown error';
  setStatus('error', `Server error: ${reason}.`);
}

function sendMessage(event) {
  event.preventDefault();
  const content = messageInput.value.trim();
  if (!content || !stompClient || !stompClient.connected) {
    return;
  }
  stompClient.publish({
    destination: '/app/chat.sendMessage',
    body: JSON.stringify({ sender: username, content, type: 'CHAT' }),
  });
  messageInput.value = '';
  messageInput.focus();
}

// Announce the leave and wait (briefly) for the server's receipt, so the LEAVE is
// handled before the connection closes.
function leave() {
  const client = stompClient;
  if (!client) {
    return;
  }
  stompClient = null;
  const done = () => {
    client.deactivate();
    setStatus('disconnected', 'Not connected');
    chatPage.hidden = true;
    joinPage.hidden = false;
    messageList.replaceChildren();
    usernameInput.focus();
  };
  if (!client.connected) {
    done();
    return;
  }
  const receipt = `leave-${Date.now()}`;
  const timer = setTimeout(done, 2000);
  client.watchForReceipt(receipt, () => {
    clearTimeout(timer);
    done();
  });
  client.publish({
    destination: '/app/chat.leaveUser',
    body: JSON.stringify({ sender: username, type: 'LEAVE' }),
    headers: { receipt },
  });
}

function onMessageReceived(frame) {
  let message;
  try {
    message = JSON.parse(frame.body);
  } catch {
    return;
  }
  if (!message || typeof message.sender !== 'string') {
    return;
  }
  const item = document.createElement('li');
  item.dataset.type = message.type;
  if (message.type === 'CHAT') {
    item.className = 'chat';
    if (message.sender === username) {
      item.classList.add('own');
    }
    const sender = document.createElement('span');
    sender.className = 'sender';
    sender.textContent = message.sender;
    const content = document.createElement('span');
    content.className = 'content';
    content.textContent = String(message.content ?? '');
    item.append(sender, ' ', content);
  } else if (message.type === 'JOIN' || message.type === 'LEAVE') {
    item.className = 'event';
    item.textContent = `${message.sender} ${message.type === 'JOIN' ? 'joined' : 'left'}`;
  } else {
    return;
  }
  messageList.append(item);
  messageList.scrollTop = messageList.scrollHeight;
}

joinForm.addEventListener('submit', connect);
messageForm.addEventListener('submit', sendMessage);
leaveButton.addEventListener('click', leave);
// Closing the tab: a best-effort goodbye, without waiting for an answer.
window.addEventListener('pagehide', () => {
  if (stompClient && stompClient.connected) {
    stompClient.publish({
      destination: '/app/chat.leaveUser',
      body: JSON.stringify({ sender: username, type: 'LEAVE' }),
    });
  }
});
