// The chat page's behaviour: join a room under a name, keep one connection to the gateway through
// the client generated from wsgate.yaml (chat-client.js: `wsgate sdk typescript`, which reconnects
// with exponential backoff and jitter), send messages and show what arrives. `sendmessage` is an
// acknowledged route: the client keeps each message until the gateway acknowledged it and resends
// it after a reconnect (the gateway drops the copy if the first one got through), so a message
// typed while the connection is down, or lost with it, is delivered once it is back.
import { ChatClient } from './chat-client.js';

const config = JSON.parse(document.getElementById('chat-config').textContent);
const el = {
  status: document.getElementById('status'),
  joinForm: document.getElementById('join-form'),
  name: document.getElementById('name'),
  room: document.getElementById('room'),
  join: document.getElementById('join'),
  messages: document.getElementById('messages'),
  sendForm: document.getElementById('send-form'),
  message: document.getElementById('message'),
  send: document.getElementById('send'),
};

// The generated client takes the gateway's origin and the stage apart.
const cut = config.gatewayUrl.lastIndexOf('/');
const gatewayBase = config.gatewayUrl.slice(0, cut);
const stage = config.gatewayUrl.slice(cut + 1);

let client = null;
let name = '';
let room = '';

function setStatus(state, text) {
  el.status.dataset.state = state;
  el.status.textContent = text;
}

function setCanSend(on) {
  el.message.disabled = !on;
  el.send.disabled = !on;
}

function join() {
  const current = new ChatClient(gatewayBase, { stage, query: { name, room } });
  client = current;
  current.on({
    onOpen: () => {
      if (client !== current) return;
      setStatus('connected', `Connected as ${name} in ${room || 'lobby'}`);
      setCanSend(true);
      el.message.focus();
    },
    onPush: (payload) => receive(payload),
    onRaw: (raw) => addNotice(String(raw)),
    onGatewayError: (frame) => addNotice(frame.message),
    onClose: (error, reconnectInMs) => {
      if (client !== current) return;
      if (reconnectInMs === null) {
        setCanSend(false);
        setStatus('idle', 'Not connected');
        return;
      }
      // Messages sent meanwhile wait in the client and go out on the next connection.
      const seconds = (reconnectInMs / 1000).toFixed(1);
      setStatus('reconnecting', `Disconnected (code ${error.code}). Reconnecting in ${seconds} s…`);
    },
  });
  setStatus('connecting', 'Connecting…');
  current.connect().catch(() => {
    // The first attempt failed; the client goes on trying and onClose shows it.
  });
}

function leave(reason) {
  if (client) {
    const old = client;
    client = null;
    old.close(1000, reason);
  }
  setCanSend(false);
}

function receive(payload) {
  if (payload && typeof payload === 'object' && 'from' in payload && 'data' in payload) {
    addMessage(payload.from, payload.data, payload.at);
  } else if (payload && typeof payload === 'object' && 'message' in payload) {
    addNotice(String(payload.message));
  } else {
    addNotice(typeof payload === 'string' ? payload : JSON.stringify(payload));
  }
}

function append(item) {
  const atBottom = el.messages.scrollTop + el.messages.clientHeight >= el.messages.scrollHeight - 8;
  el.messages.append(item);
  if (atBottom) item.scrollIntoView({ block: 'end' });
}

function addMessage(from, data, at) {
  const item = document.createElement('li');
  item.className = 'message';
  const who = document.createElement('span');
  who.className = 'from';
  who.textContent = String(from);
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = typeof data === 'string' ? data : JSON.stringify(data);
  const time = document.createElement('time');
  time.className = 'at';
  const date = new Date(Number(at) || Date.now());
  time.dateTime = date.toISOString();
  time.textContent = date.toLocaleTimeString();
  item.append(who, text, time);
  append(item);
}

function addNotice(text) {
  const item = document.createElement('li');
  item.className = 'notice';
  item.textContent = text;
  append(item);
}

el.joinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const chosen = el.name.value.trim();
  if (!chosen) return;
  leave('Changing name');
  name = chosen;
  room = el.room.value.trim();
  el.join.textContent = 'Rejoin';
  join();
});

el.sendForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = el.message.value;
  if (!text.trim() || !client) return;
  const sender = client;
  sender.sendmessage({ data: text }).catch((error) => {
    // Refused for good (the gateway's nack), or the page left the room before the ack.
    if (client === sender) addNotice(`Not sent: ${error.message}`);
  });
  el.message.value = '';
  el.message.focus();
});

window.addEventListener('pagehide', () => leave('Page closed'));
