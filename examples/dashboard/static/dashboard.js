// The dashboard page's behaviour: keep one WebSocket to the gateway (reconnecting with
// exponential backoff and jitter), and plot every update as it arrives, one small chart per
// series, on plain canvases. The group keeps history (wsgate.yaml, docs/recovery.md): the page
// connects with `envelope=1`, remembers the position (epoch, offset) of the last update, and
// reconnects with `recover=GROUP:EPOCH:OFFSET`, so the gateway first replays what was missed
// and the plot has no gap; when history cannot cover it (`notRecovered`) the line is broken
// there instead of being drawn across the hole.
(() => {
  'use strict';

  const BACKOFF_BASE_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  // Points kept and drawn per series.
  const MAX_POINTS = 150;
  const COLORS = ['#2563eb', '#16a34a', '#d97706', '#db2777', '#7c3aed', '#0891b2'];

  const config = JSON.parse(document.getElementById('dashboard-config').textContent);
  const el = {
    status: document.getElementById('status'),
    received: document.getElementById('received'),
    lastSeen: document.getElementById('last-seen'),
    nodes: document.getElementById('nodes'),
    charts: document.getElementById('charts'),
  };
  el.nodes.textContent = config.nodes > 1
    ? `connected to node A of ${config.nodes}; the publisher posts through another node`
    : 'one gateway node';

  // Sequence numbers kept for the browser test (every update received, in order).
  const MAX_SEQS = 10000;

  // What the page has seen, also read by the browser test.
  const state = {
    received: 0,
    lastSeq: -1,
    reconnects: 0,
    recovered: 0,
    replayed: 0,
    notRecovered: 0,
    seqs: [],
    series: {},
  };
  // Per group: the position of the last update received, { epoch, offset }.
  const positions = new Map();
  // Set by a notRecovered signal: the next point starts a new line.
  let gapPending = false;
  window.dashboard = state;

  let socket = null;
  let attempt = 0;
  let reconnectTimer = null;
  let drawQueued = false;

  function setStatus(name, text) {
    el.status.dataset.state = name;
    el.status.textContent = text;
  }

  // Exponential backoff with "equal jitter": half the capped delay, plus a random half.
  function backoffDelay(n) {
    const capped = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** n);
    return Math.round(capped / 2 + Math.random() * (capped / 2));
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    setStatus('connecting', attempt === 0 ? 'Connecting…' : `Reconnecting (attempt ${attempt + 1})…`);
    const ws = new WebSocket(gatewayUrl());
    socket = ws;
    ws.addEventListener('open', () => {
      if (socket !== ws) return;
      attempt = 0;
      setStatus('connected', 'Live');
    });
    ws.addEventListener('message', (event) => {
      if (socket !== ws) return;
      frame(event.data);
    });
    // An 'error' event is always followed by 'close'; reconnecting is handled there.
    ws.addEventListener('close', (event) => {
      if (socket !== ws) return;
      socket = null;
      const delay = backoffDelay(attempt);
      attempt += 1;
      state.reconnects += 1;
      setStatus('reconnecting', `Disconnected (code ${event.code}). Reconnecting in ${(delay / 1000).toFixed(1)} s…`);
      reconnectTimer = setTimeout(connect, delay);
    });
  }

  // The gateway URL with `envelope=1`, or `recover=` naming the last position of each group.
  function gatewayUrl() {
    const url = new URL(config.gatewayUrl);
    const recover = [...positions].map(([group, p]) => `${group}:${p.epoch}:${p.offset}`);
    if (recover.length > 0) url.searchParams.set('recover', recover.join(','));
    else url.searchParams.set('envelope', '1');
    return url.toString();
  }

  // A frame of the gateway: an envelope (`type: message`), a recovery signal, or (for a group
  // without history) the raw update.
  function frame(raw) {
    let value;
    try {
      value = JSON.parse(raw);
    } catch {
      return;
    }
    if (!value || typeof value.group !== 'string') {
      receive(value);
      return;
    }
    const known = positions.get(value.group);
    if (value.type === 'message' && typeof value.offset === 'number') {
      if (known && known.epoch === value.epoch && value.offset <= known.offset) return; // seen
      positions.set(value.group, { epoch: value.epoch, offset: value.offset });
      let update;
      try {
        update = JSON.parse(value.data);
      } catch {
        return;
      }
      receive(update);
    } else if (value.type === 'recovered') {
      state.recovered += 1;
      state.replayed += Number(value.replayed) || 0;
      if (!known || known.epoch !== value.epoch || known.offset < value.offset) {
        positions.set(value.group, { epoch: value.epoch, offset: value.offset });
      }
    } else if (value.type === 'notRecovered') {
      // Nothing to refetch the figures from: break the line where updates are missing and go
      // on from the current position.
      state.notRecovered += 1;
      gapPending = true;
      if (typeof value.epoch === 'string' && typeof value.offset === 'number') {
        positions.set(value.group, { epoch: value.epoch, offset: value.offset });
      } else {
        positions.delete(value.group);
      }
    } else {
      receive(value);
    }
  }

  function chartFor(name, index) {
    let series = state.series[name];
    if (series) return series;
    const card = document.createElement('article');
    card.className = 'chart';
    const title = document.createElement('h2');
    const label = document.createElement('span');
    label.textContent = name;
    const value = document.createElement('span');
    value.className = 'value';
    title.append(label, value);
    const canvas = document.createElement('canvas');
    canvas.id = `chart-${name}`;
    canvas.dataset.points = '0';
    card.append(title, canvas);
    el.charts.append(card);
    series = { points: [], unit: '', color: COLORS[index % COLORS.length], canvas, value };
    state.series[name] = series;
    return series;
  }

  function receive(update) {
    if (!update || typeof update.series !== 'object') return;
    const seq = Number(update.seq);
    state.received += 1;
    state.lastSeq = seq;
    state.seqs.push(seq);
    if (state.seqs.length > MAX_SEQS) state.seqs.shift();
    const gap = gapPending;
    gapPending = false;
    const at = Number(update.t) || Date.now();
    Object.entries(update.series).forEach(([name, v], index) => {
      const value = Number(v);
      if (!Number.isFinite(value)) return;
      const series = chartFor(name, index);
      series.unit = (update.units && update.units[name]) || '';
      series.points.push({ t: at, v: value, seq, gap });
      if (series.points.length > MAX_POINTS) series.points.shift();
    });
    el.received.textContent = String(state.received);
    el.lastSeen.textContent = new Date(at).toLocaleTimeString();
    if (!drawQueued) {
      drawQueued = true;
      requestAnimationFrame(drawAll);
    }
  }

  function drawAll() {
    drawQueued = false;
    for (const series of Object.values(state.series)) draw(series);
  }

  function draw(series) {
    const { canvas, points } = series;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext('2d');
    ctx.clearRect(0, 0, width, height);
    if (points.length === 0) return;
    const last = points[points.length - 1];
    series.value.textContent = `${last.v.toFixed(1)} ${series.unit}`.trim();

    let lo = Infinity;
    let hi = -Infinity;
    for (const p of points) {
      lo = Math.min(lo, p.v);
      hi = Math.max(hi, p.v);
    }
    const pad = (hi - lo) * 0.1 || Math.abs(hi) * 0.1 || 1;
    lo -= pad;
    hi += pad;
    const t0 = points[0].t;
    const span = Math.max(1, last.t - t0);
    const x = (t) => ((t - t0) / span) * (width - 1);
    const y = (v) => height - 1 - ((v - lo) / (hi - lo)) * (height - 1);

    ctx.strokeStyle = getComputedStyle(document.documentElement).getPropertyValue('--grid') || '#e5e7eb';
    ctx.lineWidth = 1;
    for (let i = 1; i < 4; i += 1) {
      const gy = Math.round((height * i) / 4) + 0.5;
      ctx.beginPath();
      ctx.moveTo(0, gy);
      ctx.lineTo(width, gy);
      ctx.stroke();
    }

    // The scale: top and bottom values of the visible range.
    ctx.fillStyle = getComputedStyle(document.documentElement).getPropertyValue('--muted') || '#6b7280';
    ctx.font = `${11 * ratio}px system-ui, sans-serif`;
    ctx.textBaseline = 'top';
    ctx.fillText(hi.toFixed(1), 2 * ratio, 2 * ratio);
    ctx.textBaseline = 'bottom';
    ctx.fillText(lo.toFixed(1), 2 * ratio, height - 2 * ratio);

    ctx.strokeStyle = series.color;
    ctx.lineWidth = 2 * ratio;
    ctx.lineJoin = 'round';
    ctx.beginPath();
    points.forEach((p, i) => {
      if (i === 0 || p.gap) ctx.moveTo(x(p.t), y(p.v));
      else ctx.lineTo(x(p.t), y(p.v));
    });
    ctx.stroke();
    canvas.dataset.points = String(points.length);
    canvas.dataset.seqs = points.map((p) => p.seq).join(',');
  }

  window.addEventListener('resize', () => requestAnimationFrame(drawAll));
  // Back online: try now instead of waiting out the backoff.
  window.addEventListener('online', () => {
    if (!socket) connect();
  });
  window.addEventListener('pagehide', () => {
    clearTimeout(reconnectTimer);
    if (socket) {
      const old = socket;
      socket = null;
      old.close(1000, 'Page closed');
    }
  });

  connect();
})();
