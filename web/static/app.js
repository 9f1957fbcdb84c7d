// mdgate dashboard: speaks docs/protocol.md over /ws. Plain JS, no build.
"use strict";

const $ = (id) => document.getElementById(id);
const rows = new Map();   // topic -> row state
const dirty = new Set();  // topics to repaint on the next frame
const stats = { count: 0, gaps: 0, skipped: 0, reconnects: 0, lagMs: null };
let ws = null, prefix = $("filter").value, backoff = 500, nextId = 1, retryTimer = null;

function setConn(state, note) {
  const el = $("conn");
  el.textContent = state;
  el.className = "state " + (state === "live" ? "live" : state === "reconnecting" ? "reconnecting" : "down");
  document.body.dataset.conn = state;
  if (note !== undefined) $("note").textContent = note;
}

function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

function subscribe() {
  // Resume: tell the gateway the last seq we hold per topic under the prefix.
  const resume = {};
  for (const [topic, r] of rows) {
    if (topic.startsWith(prefix) && r.seq) resume[topic] = { seq: r.seq, epoch: r.epoch };
  }
  send({ op: "subscribe", id: nextId++, prefixes: [prefix], snapshot: true,
         slow: $("conflate").checked ? "conflate" : "disconnect", resume });
}

function connect() {
  retryTimer = null;
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  // With auth on, open the page as /?token=<JWT>: the token goes as a subprotocol.
  const token = new URLSearchParams(location.search).get("token");
  ws = token ? new WebSocket(url, ["mdgate", "bearer." + token]) : new WebSocket(url);
  ws.onopen = () => { backoff = 500; setConn("live", ""); subscribe(); };
  ws.onmessage = (ev) => {
    for (const line of ev.data.split("\n")) {
      if (line) handle(JSON.parse(line));
    }
  };
  ws.onclose = (ev) => {
    ws = null;
    const why = ev.code === 4008 ? "cut off: " + ev.reason : ev.reason || "closed (" + ev.code + ")";
    setConn("reconnecting", why);
    stats.reconnects++;
    const delay = backoff * (0.75 + Math.random() * 0.5);
    backoff = Math.min(backoff * 2, 10000);
    if (!retryTimer) retryTimer = setTimeout(connect, delay);
  };
}

function handle(m) {
  switch (m.op) {
    case "update":
    case "snapshot":
      return tick(m);
    case "error":
      $("note").textContent = "error " + m.code + ": " + m.message;
      return;
    case "ack":
      if (m.req === "subscribe") $("note").textContent = "subscribed " + (m.prefixes || []).join(",") + " · " + m.snapshot + " cached";
      return;
  }
}

function tick(m) {
  if (!m.topic.startsWith(prefix)) return;
  let r = rows.get(m.topic);
  if (r && r.epoch === m.epoch && m.seq <= r.seq) return; // already have it
  if (m.op === "update") {
    stats.count++;
    if (m.skipped) stats.skipped += m.skipped;
    else if (r && r.epoch === m.epoch && m.seq !== r.seq + 1) stats.gaps++;
    stats.lagMs = Date.now() - m.ts / 1000;
  } else if (m.gap) {
    stats.gaps++;
  }
  if (!r) {
    r = { prices: [], first: null };
    rows.set(m.topic, r);
  }
  if (m.deleted) { r.deleted = true; }
  const d = m.data;
  const px = d && typeof d === "object" ? d.px : typeof d === "number" ? d : null;
  r.prev = r.px;
  r.px = px;
  r.data = d;
  r.seq = m.seq;
  r.epoch = m.epoch;
  r.ts = m.ts;
  if (px != null) {
    if (r.first == null) r.first = d && d.chg != null ? px - d.chg : px;
    r.prices.push(px);
    if (r.prices.length > 40) r.prices.shift();
  }
  dirty.add(m.topic);
}

function fmt(x) {
  if (x == null || Number.isNaN(x)) return "–";
  const a = Math.abs(x);
  return x.toFixed(a >= 1000 ? 2 : a >= 10 ? 2 : 4);
}

function spark(prices) {
  if (prices.length < 2) return "";
  const lo = Math.min(...prices), hi = Math.max(...prices), span = hi - lo || 1;
  const pts = prices.map((p, i) => (i * 90 / (prices.length - 1)).toFixed(1) + "," + (17 - (p - lo) / span * 16).toFixed(1));
  return '<svg class="spark" viewBox="0 0 90 18"><polyline points="' + pts.join(" ") + '"/></svg>';
}

function render() {
  const body = $("rows");
  for (const topic of dirty) {
    const r = rows.get(topic);
    if (!r) continue;
    if (!r.tr) {
      r.tr = document.createElement("tr");
      r.tr.dataset.topic = topic;
      r.tr.innerHTML = "<td></td><td class=num></td><td class=num></td><td class=num></td><td class=num></td><td></td><td class=num></td><td></td>";
      r.tr.cells[0].textContent = topic;
      // keep rows sorted by topic
      let before = null;
      for (const tr of body.rows) { if (tr.dataset.topic > topic) { before = tr; break; } }
      body.insertBefore(r.tr, before);
    }
    const c = r.tr.cells, d = r.data || {};
    const chg = r.px != null && r.first != null ? r.px - r.first : null;
    c[1].textContent = r.px != null ? fmt(r.px) : (r.deleted ? "deleted" : JSON.stringify(d).slice(0, 40));
    c[2].textContent = chg == null ? "–" : (chg >= 0 ? "+" : "") + fmt(chg);
    c[2].className = "num " + (chg > 0 ? "up" : chg < 0 ? "down" : "");
    c[3].textContent = fmt(d.bid);
    c[4].textContent = fmt(d.ask);
    c[5].innerHTML = spark(r.prices);
    c[6].textContent = r.seq;
    c[7].textContent = new Date(r.ts / 1000).toLocaleTimeString();
    if (r.prev != null && r.px != null && r.px !== r.prev) {
      r.tr.classList.remove("flash-up", "flash-down");
      void r.tr.offsetWidth; // restart the animation
      r.tr.classList.add(r.px > r.prev ? "flash-up" : "flash-down");
    }
  }
  dirty.clear();
  $("rowcount").textContent = rows.size + " instruments";
  requestAnimationFrame(render);
}

function applyFilter() {
  const next = $("filter").value;
  if (next === prefix) return;
  send({ op: "unsubscribe", id: nextId++, prefixes: [prefix] });
  prefix = next;
  for (const [topic, r] of rows) {
    if (!topic.startsWith(prefix)) { if (r.tr) r.tr.remove(); rows.delete(topic); }
  }
  subscribe();
}

$("filter").addEventListener("change", applyFilter);
$("filter").addEventListener("keydown", (e) => { if (e.key === "Enter") applyFilter(); });
$("conflate").addEventListener("change", () => { send({ op: "unsubscribe", id: nextId++, prefixes: [prefix] }); subscribe(); });

setInterval(() => {
  $("rate").textContent = stats.count;
  stats.count = 0;
  $("lag").textContent = stats.lagMs == null ? "–" : Math.max(0, stats.lagMs).toFixed(1) + " ms";
  $("gaps").textContent = stats.gaps;
  $("skipped").textContent = stats.skipped;
  $("reconnects").textContent = stats.reconnects;
}, 1000);

window.mdgate = { rows, stats, state: () => document.body.dataset.conn };
setConn("connecting");
requestAnimationFrame(render);
connect();
