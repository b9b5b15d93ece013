// The chat page's behaviour: join under a name, keep one WebSocket to the gateway (reconnecting
// with exponential backoff and jitter), send messages and show what arrives.
(() => {
  'use strict';

  const BACKOFF_BASE_MS = 500;
  const BACKOFF_MAX_MS = 15000;

  const config = JSON.parse(document.getElementById('chat-config').textContent);
  const el = {
    status: document.getElementById('status'),
    joinForm: document.getElementById('join-form'),
    name: document.getElementById('name'),
    join: document.getElementById('join'),
    messages: document.getElementById('messages'),
    sendForm: document.getElementById('send-form'),
    message: document.getElementById('message'),
    send: document.getElementById('send'),
  };

  let socket = null;
  let name = '';
  let attempt = 0;
  let reconnectTimer = null;
  // True while the user wants to be in the chat (joined and not leaving the page).
  let wanted = false;

  function setStatus(state, text) {
    el.status.dataset.state = state;
    el.status.textContent = text;
  }

  function setCanSend(on) {
    el.message.disabled = !on;
    el.send.disabled = !on;
  }

  // Exponential backoff with "equal jitter": half the capped delay, plus a random half.
  function backoffDelay(n) {
    const capped = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** n);
    return Math.round(capped / 2 + Math.random() * (capped / 2));
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    const url = `${config.gatewayUrl}?name=${encodeURIComponent(name)}`;
    setStatus('connecting', attempt === 0 ? 'Connecting…' : `Reconnecting (attempt ${attempt + 1})…`);
    const ws = new WebSocket(url);
    socket = ws;
    ws.addEventListener('open', () => {
      if (socket !== ws) return;
      attempt = 0;
      setStatus('connected', `Connected as ${name}`);
      setCanSend(true);
      el.message.focus();
    });
    ws.addEventListener('message', (event) => {
      if (socket !== ws) return;
      receive(event.data);
    });
    // An 'error' event is always followed by 'close'; reconnecting is handled there.
    ws.addEventListener('close', (event) => {
      if (socket !== ws) return;
      socket = null;
      setCanSend(false);
      if (!wanted) {
        setStatus('idle', 'Not connected');
        return;
      }
      scheduleReconnect(event.code);
    });
  }

  function scheduleReconnect(code) {
    const delay = backoffDelay(attempt);
    attempt += 1;
    const seconds = (delay / 1000).toFixed(1);
    setStatus('reconnecting', `Disconnected (code ${code}). Reconnecting in ${seconds} s…`);
    reconnectTimer = setTimeout(connect, delay);
  }

  function leave(reason) {
    wanted = false;
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (socket) {
      const old = socket;
      socket = null;
      old.close(1000, reason);
    }
    setCanSend(false);
  }

  function receive(raw) {
    let payload;
    try {
      payload = JSON.parse(raw);
    } catch {
      addNotice(String(raw));
      return;
    }
    if (payload && typeof payload === 'object' && 'from' in payload && 'data' in payload) {
      addMessage(payload.from, payload.data, payload.at);
    } else if (payload && typeof payload === 'object' && 'message' in payload) {
      addNotice(String(payload.message));
    } else {
      addNotice(String(raw));
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
    wanted = true;
    attempt = 0;
    el.join.textContent = 'Rejoin';
    connect();
  });

  el.sendForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = el.message.value;
    if (!text.trim() || !socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ action: 'sendmessage', data: text }));
    el.message.value = '';
    el.message.focus();
  });

  // Back online: try now instead of waiting out the backoff.
  window.addEventListener('online', () => {
    if (wanted && !socket) connect();
  });

  window.addEventListener('pagehide', () => leave('Page closed'));
})();
